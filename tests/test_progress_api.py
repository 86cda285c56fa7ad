"""Progress over REST: completing and opening lessons, the learner's progress and courses,
the resume point, the events numbered on the `/progress` streams, and the course completed
exactly once when the last lessons are completed at the same moment."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select

from lms_live import keys
from lms_live.auth.models import Role
from lms_live.core.uow import UnitOfWork, unit_of_work
from lms_live.courses.models import LessonKind
from lms_live.enrollments import service
from lms_live.enrollments.models import LessonCompletion
from lms_live.enrollments.progress import ProgressChange
from tests.authkit import Api
from tests.test_enrollments import (
    Built,
    Person,
    build_course,
    complete,
    enroll,
    enrollment_row,
    error,
    person,
    scalar,
    unenroll,
)

RESUME_OUTLINE = (
    (("Welcome", LessonKind.TEXT, False), ("Basics", LessonKind.TEXT, True)),
    (("Deep", LessonKind.VIDEO, True), ("Bonus", LessonKind.FILE, False)),
)
TWO_REQUIRED = ((("First", LessonKind.TEXT, True), ("Second", LessonKind.TEXT, True)),)


async def progress(api: Api, who: Person, course_id: uuid.UUID) -> tuple[int, dict[str, Any]]:
    response = await api.client.get(f"/api/v1/courses/{course_id}/progress", headers=who.headers)
    body: dict[str, Any] = await response.json()
    return response.status, body


async def open_lesson(api: Api, who: Person, lesson_id: uuid.UUID) -> tuple[int, Any]:
    response = await api.client.post(f"/api/v1/lessons/{lesson_id}/open", headers=who.headers)
    body = await response.json() if response.content_type == "application/json" else None
    return response.status, body


async def mine(api: Api, who: Person, query: str = "") -> tuple[int, dict[str, Any]]:
    response = await api.client.get(f"/api/v1/users/me/enrollments{query}", headers=who.headers)
    body: dict[str, Any] = await response.json()
    return response.status, body


async def learner_with_course(api: Api, outline: Any = None) -> tuple[Person, Person, Built]:
    owner = await person(api, Role.INSTRUCTOR)
    built = await (
        build_course(api, owner, outline=outline) if outline else build_course(api, owner)
    )
    student = await person(api)
    assert (await enroll(api, student, built.id))[0] == 201
    return owner, student, built


def _iso(value: str) -> str:
    """A timestamp of a response body (`...Z`) as the events write it (`...+00:00`)."""
    return datetime.fromisoformat(value).isoformat()


async def stream(api: Api, name: str) -> list[tuple[int, str, dict[str, Any]]]:
    events = await api.app[keys.STREAMS].since(name, 0)
    assert events is not None
    return [(e.seq, e.event, e.data) for e in events]


# --------------------------------------------------------------------------- progress


async def test_percent_counts_required_lessons_only(api: Api) -> None:
    _, student, built = await learner_with_course(api)  # Intro, Tour | Extra (optional), Practice
    ids = {lesson.title: str(lesson.id) for lesson in built.lessons}

    status, fresh = await progress(api, student, built.id)
    assert status == 200
    row = await enrollment_row(api, student, built.id)
    assert row is not None
    assert fresh == {
        "course_id": str(built.id),
        "enrollment_id": str(row.id),
        "status": "active",
        "percent": 0.0,
        "completed_lessons": 0,
        "required_lessons": 3,
        "completed_lesson_ids": [],
        "last_lesson_id": None,
        "last_activity_at": None,
        "completed_at": None,
        "resume": {"lesson_id": ids["Intro"], "title": "Intro"},
    }

    steps = [
        ("Extra", 0.0, 0, ["Extra"]),
        ("Practice", 33.33, 1, ["Extra", "Practice"]),
        ("Intro", 66.67, 2, ["Intro", "Extra", "Practice"]),
    ]
    for title, percent, done, order in steps:
        status, body = await complete(api, student, built.lesson(title))
        assert status == 200, body
        assert body["percent"] == percent
        assert body["completed_lessons"] == done
        assert body["required_lessons"] == 3
        assert body["completed_lesson_ids"] == [ids[t] for t in order]
        assert body["last_lesson_id"] == ids[title]
        assert body["last_activity_at"] is not None
        assert body["status"] == "active"
        assert body["completed_at"] is None
        assert (await progress(api, student, built.id))[1] == body

    status, done_body = await complete(api, student, built.lesson("Tour"))
    assert status == 200
    assert done_body["percent"] == 100.0
    assert done_body["completed_lessons"] == 3
    assert done_body["status"] == "completed"
    assert done_body["completed_at"] is not None
    assert done_body["resume"] is None


async def test_progress_needs_an_enrollment(api: Api) -> None:
    owner, student, built = await learner_with_course(api)
    stranger = await person(api)
    assert error(*await progress(api, stranger, built.id)) == (404, "enrollment_not_found")
    assert error(*await progress(api, owner, built.id)) == (404, "enrollment_not_found")
    assert error(*await progress(api, student, uuid.uuid4())) == (404, "course_not_found")
    anonymous = await api.client.get(f"/api/v1/courses/{built.id}/progress")
    assert anonymous.status == 401

    await complete(api, student, built.lesson("Intro"))
    await unenroll(api, student, built.id)
    status, kept = await progress(api, student, built.id)
    assert status == 200
    assert kept["status"] == "cancelled"
    assert kept["percent"] == 33.33


async def test_resume_point_rules(api: Api) -> None:
    _, student, built = await learner_with_course(api, RESUME_OUTLINE)

    async def resume() -> str | None:
        _, body = await progress(api, student, built.id)
        _, page = await mine(api, student, "?status=" + body["status"])
        [item] = page["items"]
        assert item["resume"] == body["resume"]
        return body["resume"]["title"] if body["resume"] else None

    assert await resume() == "Basics"  # the first required lesson (Welcome is optional)
    assert (await open_lesson(api, student, built.lesson("Bonus").id))[0] == 204
    assert await resume() == "Bonus"  # opened last, not completed (optional or not)
    await complete(api, student, built.lesson("Basics"))
    assert await resume() == "Deep"  # the last lesson is completed: first required left
    await open_lesson(api, student, built.lesson("Welcome").id)
    assert await resume() == "Welcome"
    await open_lesson(api, student, built.lesson("Basics").id)
    assert await resume() == "Deep"
    await complete(api, student, built.lesson("Deep"))
    assert await resume() is None  # nothing required left, the last one opened is done
    await open_lesson(api, student, built.lesson("Bonus").id)
    assert await resume() == "Bonus"


# --------------------------------------------------------------------------- completing


async def test_completing_is_for_enrolled_learners_and_not_for_quizzes(api: Api) -> None:
    outline = ((("Read", LessonKind.TEXT, True), ("Test", LessonKind.QUIZ, True)),)
    owner, student, built = await learner_with_course(api, outline)
    stranger = await person(api)
    admin = await person(api, Role.ADMIN)
    read, quiz = built.lesson("Read"), built.lesson("Test")

    for who in (stranger, owner, admin):
        assert error(*await complete(api, who, read)) == (403, "enrollment_required")
        assert error(*await open_lesson(api, who, read.id)) == (403, "enrollment_required")
    assert error(*await complete(api, student, quiz)) == (409, "quiz_lesson")
    missing = await api.client.post(
        f"/api/v1/lessons/{uuid.uuid4()}/complete", headers=student.headers
    )
    assert error(missing.status, await missing.json()) == (404, "lesson_not_found")
    missing = await api.client.post(f"/api/v1/lessons/{uuid.uuid4()}/open", headers=student.headers)
    assert error(missing.status, await missing.json()) == (404, "lesson_not_found")
    bad = await api.client.post("/api/v1/lessons/nope/complete", headers=student.headers)
    assert bad.status == 422
    for action in ("complete", "open"):
        anonymous = await api.client.post(f"/api/v1/lessons/{read.id}/{action}")
        assert anonymous.status == 401

    await unenroll(api, student, built.id)
    assert error(*await complete(api, student, read)) == (403, "enrollment_required")
    assert error(*await open_lesson(api, student, read.id)) == (403, "enrollment_required")
    assert await scalar(api, select(func.count()).select_from(LessonCompletion)) == 0
    assert await api.app[keys.STREAMS].head(f"learner:{student.id}") == 0


async def test_completing_again_answers_the_same_and_publishes_nothing(api: Api) -> None:
    _, student, built = await learner_with_course(api)
    status, first = await complete(api, student, built.lesson("Intro"))
    assert status == 200
    head = await api.app[keys.STREAMS].head(f"learner:{student.id}")
    assert head == 2  # lesson_completed, progress_changed

    status, again = await complete(api, student, built.lesson("Intro"))
    assert status == 200
    assert again == first
    assert await api.app[keys.STREAMS].head(f"learner:{student.id}") == head
    assert await api.app[keys.STREAMS].head(f"course:{built.id}") == head
    count = select(func.count()).select_from(LessonCompletion)
    assert await scalar(api, count) == 1


async def test_completions_publish_numbered_events_to_learner_and_course(api: Api) -> None:
    _, student, built = await learner_with_course(api, TWO_REQUIRED)
    first, second = built.lessons
    await complete(api, student, first)
    _, done = await complete(api, student, second)

    base = {"course_id": str(built.id), "user_id": str(student.id)}
    expected = [
        ("lesson_completed", base | {"lesson_id": str(first.id)}),
        (
            "progress_changed",
            base | {"percent": 50.0, "completed_lessons": 1, "required_lessons": 2},
        ),
        ("lesson_completed", base | {"lesson_id": str(second.id)}),
        (
            "progress_changed",
            base | {"percent": 100.0, "completed_lessons": 2, "required_lessons": 2},
        ),
        ("course_completed", base | {"completed_at": _iso(done["completed_at"])}),
    ]
    for name in (f"learner:{student.id}", f"course:{built.id}"):
        events = await stream(api, name)
        assert [(e, d) for _, e, d in events] == expected, name
        seqs = [seq for seq, _, _ in events]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)


async def test_course_completed_hook_runs_once(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[ProgressChange] = []

    async def hook(work: UnitOfWork, change: ProgressChange) -> None:
        calls.append(change)

    monkeypatch.setattr(service, "on_course_completed", hook)
    _, student, built = await learner_with_course(api, TWO_REQUIRED)
    for lesson in [*built.lessons, *built.lessons]:
        await complete(api, student, lesson)
    assert len(calls) == 1
    assert calls[0].course_completed
    assert calls[0].user_id == student.id


async def test_quiz_engine_completes_a_quiz_lesson_through_the_service(api: Api) -> None:
    outline = ((("Read", LessonKind.TEXT, True), ("Test", LessonKind.QUIZ, True)),)
    _, student, built = await learner_with_course(api, outline)
    await complete(api, student, built.lesson("Read"))

    async with unit_of_work(api.app) as work:
        lesson, enrollment = await service.learner_lesson(
            work.session, user_id=student.id, lesson_id=built.lesson("Test").id
        )
        change = await service.complete_lesson(work.session, enrollment=enrollment, lesson=lesson)
    assert change is not None
    assert change.course_completed
    assert change.percent == 100.0
    async with unit_of_work(api.app) as work:
        lesson, enrollment = await service.learner_lesson(
            work.session, user_id=student.id, lesson_id=built.lesson("Test").id
        )
        again = await service.complete_lesson(work.session, enrollment=enrollment, lesson=lesson)
    assert again is None
    _, body = await progress(api, student, built.id)
    assert body["status"] == "completed"


async def test_opening_a_lesson_records_it(api: Api) -> None:
    _, student, built = await learner_with_course(api)
    lesson = built.lesson("Tour")
    assert await open_lesson(api, student, lesson.id) == (204, None)
    row = await enrollment_row(api, student, built.id)
    assert row is not None
    assert row.last_lesson_id == lesson.id
    assert row.last_activity_at is not None
    _, body = await progress(api, student, built.id)
    assert body["last_lesson_id"] == str(lesson.id)
    assert body["completed_lesson_ids"] == []


@pytest.mark.shared_db
async def test_concurrent_last_completions_complete_the_course_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[ProgressChange] = []

    async def hook(work: UnitOfWork, change: ProgressChange) -> None:
        calls.append(change)

    monkeypatch.setattr(service, "on_course_completed", hook)
    owner = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner, outline=TWO_REQUIRED)
    learners = [await person(api) for _ in range(4)]
    for who in learners:
        await enroll(api, who, built.id)

    results = await asyncio.gather(
        *(complete(api, who, lesson) for who in learners for lesson in built.lessons)
    )
    assert all(status == 200 for status, _ in results)
    for who in learners:
        row = await enrollment_row(api, who, built.id)
        assert row is not None
        bodies = [body for _, body in results if body["enrollment_id"] == str(row.id)]
        assert sorted(body["percent"] for body in bodies) == [50.0, 100.0]
        assert row.status == "completed"
        assert row.completed_at is not None
        events = await stream(api, f"learner:{who.id}")
        completed = [data for _, name, data in events if name == "course_completed"]
        assert completed == [
            {
                "course_id": str(built.id),
                "user_id": str(who.id),
                "completed_at": row.completed_at.isoformat(),
            }
        ]
    course_events = await stream(api, f"course:{built.id}")
    assert sum(1 for _, e, _ in course_events if e == "course_completed") == len(learners)
    assert sorted(str(c.user_id) for c in calls) == sorted(str(w.id) for w in learners)


# --------------------------------------------------------------------------- my enrollments


async def test_my_enrollments_lists_mine_most_recent_first(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    a = await build_course(api, owner)
    b = await build_course(api, owner)
    c = await build_course(api, owner)
    student, other = await person(api), await person(api)
    for built in (a, b, c):
        await enroll(api, student, built.id)
    await enroll(api, other, a.id)
    await unenroll(api, student, c.id)
    await complete(api, student, a.lesson("Intro"))  # a: most recent activity

    status, page = await mine(api, student)
    assert status == 200
    assert [item["course"]["id"] for item in page["items"]] == [str(a.id), str(b.id)]
    assert (page["total"], page["limit"], page["offset"]) == (2, 20, 0)
    first = page["items"][0]
    row = await enrollment_row(api, student, a.id)
    assert row is not None
    assert first["id"] == str(row.id)
    assert first["course"] == {"id": str(a.id), "slug": a.course.slug, "title": a.course.title}
    assert first["status"] == "active"
    assert first["progress_percent"] == 33.33
    assert first["last_activity_at"] is not None
    assert first["completed_at"] is None
    assert first["enrolled_at"]
    assert first["resume"] == {"lesson_id": str(a.lesson("Tour").id), "title": "Tour"}

    _, cancelled = await mine(api, student, "?status=cancelled")
    assert [item["course"]["id"] for item in cancelled["items"]] == [str(c.id)]
    assert (await mine(api, student, "?status=completed"))[1]["items"] == []
    _, paged = await mine(api, student, "?limit=1&offset=1")
    assert [item["course"]["id"] for item in paged["items"]] == [str(b.id)]
    assert paged["total"] == 2
    for query in ("?limit=0", "?limit=101", "?offset=-1", "?status=paused"):
        assert error(*await mine(api, student, query)) == (422, "validation_failed")
    assert (await api.client.get("/api/v1/users/me/enrollments")).status == 401


@contextmanager
def counting_queries(api: Api) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = api.app[keys.DATABASE].engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_my_enrollments_takes_the_same_queries_for_any_page_size(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    student = await person(api)
    courses = [await build_course(api, owner) for _ in range(6)]
    for index, built in enumerate(courses):
        await enroll(api, student, built.id)
        if index % 2:
            await open_lesson(api, student, built.lesson("Tour").id)
        if index % 3 == 0:
            await complete(api, student, built.lesson("Intro"))

    for limit in (1, 6):
        with counting_queries(api) as statements:
            status, page = await mine(api, student, f"?limit={limit}")
        assert status == 200
        assert len(page["items"]) == limit
        assert all(item["resume"] is not None for item in page["items"])
        # count, page, last lessons opened, first required lessons left: whatever the size
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) <= 4, selects
