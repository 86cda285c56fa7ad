"""Quiz authoring over HTTP: quiz settings and their bounds, slots (fixed questions and tag
pools), the publication checks, deleting, per-learner accommodations (and the deadline of an
attempt in progress they move), and who may do any of it. Attempts are written straight into
the database (their endpoints belong to the attempts module)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from lms_live import keys
from lms_live.auth.models import Role
from lms_live.core.db import utcnow
from lms_live.courses.models import CourseInstructor, Lesson, LessonKind, Section
from lms_live.quizzes.bank import unmet_demand
from lms_live.quizzes.models import Accommodation, Attempt, AttemptStatus, Quiz, QuizSlot
from tests.authkit import Api
from tests.test_quiz_bank import (
    API,
    BODIES,
    Headers,
    add_question,
    call,
    enroll,
    make_attempt,
    make_course,
    teacher,
)

DEFAULT_POLICY = {
    "answers": "during",
    "correctness": "after_submit",
    "points": "after_submit",
    "feedback": "after_submit",
    "right_answers": "after_close",
}


# --------------------------------------------------------------------------- helpers


async def new_quiz(
    api: Api, headers: Headers, course_id: uuid.UUID | str, **fields: Any
) -> dict[str, Any]:
    """POST a quiz; asserts 201."""
    fields.setdefault("title", "Weekly quiz")
    status, body = await call(api, "POST", f"{API}/courses/{course_id}/quizzes", headers, fields)
    assert status == 201, body
    result: dict[str, Any] = body
    return result


async def put_slots(api: Api, headers: Headers, quiz_id: str, slots: list[Any]) -> tuple[int, Any]:
    return await call(api, "PUT", f"{API}/quizzes/{quiz_id}/slots", headers, {"slots": slots})


async def stored_slots(api: Api, quiz_id: str) -> list[tuple[int, str | None, str | None, int]]:
    async with api.app[keys.DATABASE].sessions() as session:
        rows = await session.scalars(
            select(QuizSlot)
            .where(QuizSlot.quiz_id == uuid.UUID(quiz_id))
            .order_by(QuizSlot.position)
        )
        return [
            (s.position, str(s.question_id) if s.question_id else None, s.pool_tag, s.pool_count)
            for s in rows
        ]


async def questions(
    api: Api, headers: Headers, course_id: uuid.UUID, tag: str, n: int
) -> list[str]:
    return [(await add_question(api, headers, course_id, tags=[tag]))["id"] for _ in range(n)]


# --------------------------------------------------------------------------- quizzes


async def test_a_new_quiz_takes_the_defaults(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    body = await new_quiz(api, headers, course.id, title="  Week 1  ", instructions="# Read")
    assert body["course_id"] == str(course.id)
    assert body["title"] == "Week 1"
    assert body["instructions_html"] == "<h1>Read</h1>\n"
    assert body["published"] is False
    assert body["time_limit_seconds"] is None
    assert (body["opens_at"], body["closes_at"], body["max_attempts"]) == (None, None, None)
    assert (body["min_wait_seconds"], body["pass_percent"]) == (0, 50.0)
    assert body["grading_method"] == "highest"
    assert (body["shuffle_questions"], body["shuffle_options"]) == (False, False)
    assert body["review_policy"] == DEFAULT_POLICY
    assert (body["overdue_policy"], body["overdue_grace_seconds"]) == ("auto_submit", 0)
    assert (body["slot_count"], body["question_count"], body["attempt_count"]) == (0, 0, 0)
    async with api.app[keys.DATABASE].sessions() as session:
        row = await session.get(Quiz, uuid.UUID(body["id"]))
    assert row is not None
    assert (row.title, row.published, row.review_policy) == ("Week 1", False, DEFAULT_POLICY)
    status, again = await call(api, "GET", f"{API}/quizzes/{body['id']}", headers)
    assert (status, again) == (200, body)


async def test_every_quiz_setting_is_stored_and_dates_come_back_in_utc(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    body = await new_quiz(
        api,
        headers,
        course.id,
        title="Exam",
        time_limit_seconds=3600,
        opens_at="2030-01-01T10:00:00+02:00",
        closes_at="2030-01-02T10:00:00Z",
        max_attempts=3,
        min_wait_seconds=600,
        pass_percent=75.5,
        grading_method="average",
        shuffle_questions=True,
        shuffle_options=True,
        review_policy={"right_answers": "never", "answers": "after_close"},
        overdue_policy="grace",
        overdue_grace_seconds=120,
    )
    assert body["opens_at"] == "2030-01-01T08:00:00Z"
    assert body["closes_at"] == "2030-01-02T10:00:00Z"
    assert (body["time_limit_seconds"], body["max_attempts"]) == (3600, 3)
    assert (body["min_wait_seconds"], body["pass_percent"]) == (600, 75.5)
    assert body["grading_method"] == "average"
    assert (body["shuffle_questions"], body["shuffle_options"]) == (True, True)
    assert body["review_policy"] == DEFAULT_POLICY | {
        "right_answers": "never",
        "answers": "after_close",
    }
    assert (body["overdue_policy"], body["overdue_grace_seconds"]) == ("grace", 120)
    async with api.app[keys.DATABASE].sessions() as session:
        row = await session.get(Quiz, uuid.UUID(body["id"]))
    assert row is not None
    assert row.opens_at == datetime(2030, 1, 1, 8, tzinfo=UTC)


BAD_QUIZZES: list[tuple[str, dict[str, Any]]] = [
    ("no title", {"title": None}),
    ("blank title", {"title": "  "}),
    ("time limit too short", {"time_limit_seconds": 59}),
    ("time limit too long", {"time_limit_seconds": 86_401}),
    ("time limit as text", {"time_limit_seconds": "600"}),
    (
        "closes before opens",
        {"opens_at": "2030-01-02T00:00:00Z", "closes_at": "2030-01-01T00:00:00Z"},
    ),
    (
        "closes when opens",
        {"opens_at": "2030-01-01T00:00:00Z", "closes_at": "2030-01-01T00:00:00Z"},
    ),
    ("naive date", {"opens_at": "2030-01-01T00:00:00"}),
    ("not a date", {"closes_at": "tomorrow"}),
    ("date out of range", {"opens_at": "0001-01-01T00:00:00+14:00"}),
    ("date far ahead", {"closes_at": "9999-12-31T23:59:59-14:00"}),
    ("zero attempts", {"max_attempts": 0}),
    ("too many attempts", {"max_attempts": 101}),
    ("negative wait", {"min_wait_seconds": -1}),
    ("wait too long", {"min_wait_seconds": 604_801}),
    ("pass mark over 100", {"pass_percent": 100.1}),
    ("pass mark negative", {"pass_percent": -1}),
    ("unknown grading", {"grading_method": "best"}),
    ("shuffle as text", {"shuffle_questions": "yes"}),
    ("correctness during", {"review_policy": {"correctness": "during"}}),
    ("right answers during", {"review_policy": {"right_answers": "during"}}),
    ("feedback during", {"review_policy": {"feedback": "during"}}),
    ("points during", {"review_policy": {"points": "during"}}),
    ("unknown review key", {"review_policy": {"hints": "never"}}),
    ("unknown review moment", {"review_policy": {"answers": "sometimes"}}),
    ("unknown overdue policy", {"overdue_policy": "extend"}),
    ("grace too long", {"overdue_grace_seconds": 3601}),
    ("unknown field", {"password": "x"}),
    ("NUL in instructions", {"instructions": "a\x00"}),
]


@pytest.mark.parametrize(("case", "change"), BAD_QUIZZES, ids=[c for c, _ in BAD_QUIZZES])
async def test_bad_quizzes_are_refused_and_nothing_is_stored(
    api: Api, case: str, change: dict[str, Any]
) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    fields = {name: value for name, value in ({"title": "Q"} | change).items() if value is not None}
    status, body = await call(api, "POST", f"{API}/courses/{course.id}/quizzes", headers, fields)
    assert (status, body["error"]) == (422, "validation_failed"), (case, body)
    async with api.app[keys.DATABASE].sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Quiz).where(Quiz.course_id == course.id)
        )
    assert count == 0


async def test_quiz_settings_are_changed_a_few_at_a_time(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    quiz = await new_quiz(
        api,
        headers,
        course.id,
        time_limit_seconds=600,
        opens_at="2030-01-01T00:00:00Z",
        closes_at="2030-02-01T00:00:00Z",
        instructions="Old",
    )
    path = f"{API}/quizzes/{quiz['id']}"
    status, body = await call(
        api,
        "PATCH",
        path,
        headers,
        {"review_policy": {"right_answers": "after_submit"}, "time_limit_seconds": None},
    )
    assert status == 200, body
    assert body["review_policy"] == DEFAULT_POLICY | {"right_answers": "after_submit"}
    assert body["time_limit_seconds"] is None
    assert body["instructions"] == "Old"
    status, body = await call(
        api, "PATCH", path, headers, {"review_policy": {"answers": "never"}, "instructions": None}
    )
    assert body["review_policy"] == DEFAULT_POLICY | {
        "right_answers": "after_submit",
        "answers": "never",
    }
    assert body["instructions"] == ""
    status, body = await call(
        api,
        "PATCH",
        path,
        headers,
        {"grading_method": "latest", "max_attempts": 2, "closes_at": None},
    )
    assert (body["grading_method"], body["max_attempts"], body["closes_at"]) == ("latest", 2, None)

    # The resulting window must still close after it opens.
    status, body = await call(api, "PATCH", path, headers, {"closes_at": "2029-12-31T00:00:00Z"})
    assert (status, body["error"]) == (422, "quiz_window_invalid")
    bad_patches: tuple[Any, ...] = (
        {},
        {"title": None},
        {"review_policy": None},
        {"review_policy": {}},
        {"review_policy": {"correctness": "during"}},
        {"grading_method": None},
        {"pass_percent": 101},
        {"published": True},
    )
    for bad in bad_patches:
        status, body = await call(api, "PATCH", path, headers, bad)
        assert (status, body["error"]) == (422, "validation_failed"), bad
    status, after = await call(api, "GET", path, headers)
    assert (after["closes_at"], after["published"], after["title"]) == (None, False, "Weekly quiz")


async def test_a_course_lists_its_quizzes_with_their_counts(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    other = await make_course(api, owner)
    first = await new_quiz(api, headers, course.id, title="First")
    second = await new_quiz(api, headers, course.id, title="Second")
    await new_quiz(api, headers, other.id, title="Elsewhere")
    fixed = await add_question(api, headers, course.id)
    await questions(api, headers, course.id, "pool", 3)
    status, _ = await put_slots(
        api,
        headers,
        first["id"],
        [{"question_id": fixed["id"]}, {"pool_tag": "pool", "pool_count": 3}],
    )
    assert status == 200
    student = await api.user(Role.STUDENT)
    await make_attempt(api, quiz_id=uuid.UUID(first["id"]), user_id=student.id)
    await make_attempt(api, quiz_id=uuid.UUID(first["id"]), user_id=student.id)

    status, body = await call(api, "GET", f"{API}/courses/{course.id}/quizzes", headers)
    assert status == 200
    assert body["total"] == 2
    assert [
        (q["title"], q["slot_count"], q["question_count"], q["attempt_count"])
        for q in body["items"]
    ] == [("First", 2, 4, 2), ("Second", 0, 0, 0)]
    status, body = await call(
        api, "GET", f"{API}/courses/{course.id}/quizzes?limit=1&offset=1", headers
    )
    assert [q["id"] for q in body["items"]] == [second["id"]]
    status, body = await call(api, "GET", f"{API}/courses/{uuid.uuid4()}/quizzes", headers)
    assert (status, body["error"]) == (404, "course_not_found")


async def test_only_an_unattempted_quiz_no_lesson_shows_is_deleted(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    plain = await new_quiz(api, headers, course.id)
    assert await call(api, "DELETE", f"{API}/quizzes/{plain['id']}", headers) == (204, None)
    status, body = await call(api, "GET", f"{API}/quizzes/{plain['id']}", headers)
    assert (status, body["error"]) == (404, "quiz_not_found")
    status, body = await call(api, "DELETE", f"{API}/quizzes/{plain['id']}", headers)
    assert (status, body["error"]) == (404, "quiz_not_found")

    attempted = await new_quiz(api, headers, course.id)
    student = await api.user(Role.STUDENT)
    await make_attempt(
        api,
        quiz_id=uuid.UUID(attempted["id"]),
        user_id=student.id,
        status=AttemptStatus.SUBMITTED.value,
    )
    status, body = await call(api, "DELETE", f"{API}/quizzes/{attempted['id']}", headers)
    assert (status, body["error"]) == (409, "quiz_has_attempts")

    shown = await new_quiz(api, headers, course.id)
    async with api.app[keys.DATABASE].transaction() as session:
        section = Section(course_id=course.id, title="S", position=0)
        session.add(section)
        await session.flush()
        session.add(
            Lesson(
                section_id=section.id,
                course_id=course.id,
                title="Quiz",
                kind=LessonKind.QUIZ.value,
                position=0,
                quiz_id=uuid.UUID(shown["id"]),
            )
        )
    status, body = await call(api, "DELETE", f"{API}/quizzes/{shown['id']}", headers)
    assert (status, body["error"]) == (409, "quiz_used_by_lesson")
    for quiz in (attempted, shown):
        assert (await call(api, "GET", f"{API}/quizzes/{quiz['id']}", headers))[0] == 200


# --------------------------------------------------------------------------- slots


async def test_slots_are_replaced_in_order_and_listed_with_their_questions(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    quiz = await new_quiz(api, headers, course.id)
    essay = await add_question(
        api, headers, course.id, title="Essay", points=4, body=BODIES["essay"]
    )
    choice = await add_question(api, headers, course.id, title="Choice")
    await questions(api, headers, course.id, "algebra", 2)
    status, body = await put_slots(
        api,
        headers,
        quiz["id"],
        [
            {"question_id": essay["id"]},
            {"pool_tag": "Algebra", "pool_count": 2},
            {"pool_tag": "empty"},
            {"question_id": choice["id"]},
        ],
    )
    assert status == 200, body
    assert body["quiz_id"] == quiz["id"]
    assert body["question_count"] == 5
    assert body["slots"] == [
        {
            "position": 0,
            "kind": "question",
            "question": {
                "id": essay["id"],
                "title": "Essay",
                "type": "essay",
                "points": 4.0,
                "archived": False,
                "current_version": 1,
            },
            "pool_tag": None,
            "pool_count": None,
            "available": None,
        },
        {
            "position": 1,
            "kind": "pool",
            "question": None,
            "pool_tag": "algebra",
            "pool_count": 2,
            "available": 2,
        },
        {
            "position": 2,
            "kind": "pool",
            "question": None,
            "pool_tag": "empty",
            "pool_count": 1,
            "available": 0,
        },
        {
            "position": 3,
            "kind": "question",
            "question": {
                "id": choice["id"],
                "title": "Choice",
                "type": "single_choice",
                "points": 1.0,
                "archived": False,
                "current_version": 1,
            },
            "pool_tag": None,
            "pool_count": None,
            "available": None,
        },
    ]
    assert await call(api, "GET", f"{API}/quizzes/{quiz['id']}/slots", headers) == (200, body)
    status, shown = await call(api, "GET", f"{API}/quizzes/{quiz['id']}", headers)
    assert (shown["slot_count"], shown["question_count"]) == (4, 5)

    status, body = await put_slots(api, headers, quiz["id"], [{"question_id": choice["id"]}])
    assert (status, body["question_count"]) == (200, 1)
    assert await stored_slots(api, quiz["id"]) == [(0, choice["id"], None, 1)]
    status, body = await put_slots(api, headers, quiz["id"], [])
    assert (status, body["slots"]) == (200, [])
    assert await stored_slots(api, quiz["id"]) == []


async def test_bad_slots_are_refused_and_the_old_ones_kept(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    other = await make_course(api, owner)
    quiz = await new_quiz(api, headers, course.id)
    mine = await add_question(api, headers, course.id)
    theirs = await add_question(api, headers, other.id)
    assert (await put_slots(api, headers, quiz["id"], [{"question_id": mine["id"]}]))[0] == 200
    before = await stored_slots(api, quiz["id"])

    status, body = await put_slots(
        api,
        headers,
        quiz["id"],
        [
            {"question_id": mine["id"]},
            {"question_id": theirs["id"]},
            {"question_id": str(uuid.uuid4())},
            {"question_id": mine["id"]},
        ],
    )
    assert (status, body["error"]) == (422, "slot_question_invalid")
    assert [(d["loc"], d["type"]) for d in body["details"]] == [
        (["body", "slots", 1, "question_id"], "not_in_course"),
        (["body", "slots", 2, "question_id"], "not_in_course"),
        (["body", "slots", 3, "question_id"], "repeated"),
    ]
    status, body = await put_slots(
        api, headers, quiz["id"], [{"pool_tag": "a", "pool_count": 100}] * 6
    )
    assert (status, body["error"]) == (422, "too_many_questions")
    bad_slots: tuple[Any, ...] = (
        [{"question_id": mine["id"], "pool_tag": "a"}],
        [{"pool_tag": "a", "pool_count": 0}],
        [{"pool_tag": "a", "pool_count": 101}],
        [{"pool_tag": "!!!"}],
        [{}],
        [{"question_id": "nope"}],
        [{"pool_tag": "a"}] * 201,
    )
    for bad in bad_slots:
        status, body = await put_slots(api, headers, quiz["id"], bad)
        assert (status, body["error"]) == (422, "validation_failed"), bad
    status, body = await call(api, "PUT", f"{API}/quizzes/{quiz['id']}/slots", headers, [])
    assert (status, body["error"]) == (422, "validation_failed")
    assert await stored_slots(api, quiz["id"]) == before
    status, body = await put_slots(api, headers, str(uuid.uuid4()), [])
    assert (status, body["error"]) == (404, "quiz_not_found")


# --------------------------------------------------------------------------- publication


async def test_publication_lists_every_problem_until_the_quiz_can_be_drawn(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    quiz = await new_quiz(api, headers, course.id)
    publish = f"{API}/quizzes/{quiz['id']}/publish"

    status, body = await call(api, "POST", publish, headers)
    assert (status, body["error"]) == (422, "quiz_not_ready")
    assert [d["type"] for d in body["details"]] == ["missing"]

    fixed = await add_question(api, headers, course.id, tags=["algebra"])
    archived = await add_question(api, headers, course.id)
    pool = await questions(api, headers, course.id, "algebra", 2)
    spare = await add_question(api, headers, course.id, tags=["algebra"])
    await call(api, "DELETE", f"{API}/questions/{spare['id']}", headers)
    await call(api, "DELETE", f"{API}/questions/{archived['id']}", headers)
    slots = [
        {"question_id": fixed["id"]},
        {"question_id": archived["id"]},
        {"pool_tag": "algebra", "pool_count": 2},
        {"pool_tag": "algebra"},
        {"pool_tag": "geometry"},
    ]
    assert (await put_slots(api, headers, quiz["id"], slots))[0] == 200
    status, body = await call(api, "POST", publish, headers)
    assert (status, body["error"]) == (422, "quiz_not_ready")
    problems = {(tuple(d["loc"]), d["type"]) for d in body["details"]}
    assert problems == {
        (("slots", 1, "question_id"), "question_archived"),
        (("slots", 2, "pool_tag"), "pool_too_small"),
        (("slots", 4, "pool_tag"), "pool_too_small"),
    }
    algebra = next(d for d in body["details"] if d.get("tag") == "algebra")
    # The fixed question has the tag too, but an attempt never shows a question twice.
    assert (algebra["needed"], algebra["available"]) == (3, 2)

    await questions(api, headers, course.id, "geometry", 1)
    await add_question(api, headers, course.id, tags=["algebra"])
    await call(api, "PATCH", f"{API}/questions/{archived['id']}", headers, {"archived": False})
    status, body = await call(api, "POST", publish, headers)
    assert status == 200, body
    assert body["published"] is True
    assert (await call(api, "POST", publish, headers))[0] == 200  # again: no change
    assert pool

    # Published, it must stay publishable: slots that break it are refused.
    status, body = await put_slots(
        api, headers, quiz["id"], [{"pool_tag": "geometry", "pool_count": 2}]
    )
    assert (status, body["error"]) == (422, "quiz_not_ready")
    assert len(await stored_slots(api, quiz["id"])) == 5
    status, body = await put_slots(api, headers, quiz["id"], [])
    assert (status, body["error"]) == (422, "quiz_not_ready")

    status, body = await call(api, "POST", f"{API}/quizzes/{quiz['id']}/unpublish", headers)
    assert (status, body["published"]) == (200, False)
    assert (await call(api, "POST", f"{API}/quizzes/{quiz['id']}/unpublish", headers))[0] == 200
    assert (await put_slots(api, headers, quiz["id"], []))[0] == 200


async def test_pools_sharing_questions_need_enough_distinct_ones(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    quiz = await new_quiz(api, headers, course.id)
    # Two questions tagged both a and b, one tagged only a.
    await add_question(api, headers, course.id, tags=["a", "b"])
    await add_question(api, headers, course.id, tags=["a", "b"])
    await add_question(api, headers, course.id, tags=["a"])
    publish = f"{API}/quizzes/{quiz['id']}/publish"

    # a draws 1, b draws 2: a must take its own question, and can.
    slots = [{"pool_tag": "a"}, {"pool_tag": "b", "pool_count": 2}]
    assert (await put_slots(api, headers, quiz["id"], slots))[0] == 200
    assert (await call(api, "POST", publish, headers))[0] == 200
    await call(api, "POST", f"{API}/quizzes/{quiz['id']}/unpublish", headers)

    # a draws 2 and b draws 2: 4 draws from 3 questions.
    slots = [{"pool_tag": "a", "pool_count": 2}, {"pool_tag": "b", "pool_count": 2}]
    assert (await put_slots(api, headers, quiz["id"], slots))[0] == 200
    status, body = await call(api, "POST", publish, headers)
    assert (status, body["error"]) == (422, "quiz_not_ready")
    [problem] = body["details"]
    assert (problem["type"], problem["missing"]) == ("pools_overlap", 1)


def test_pool_matching_finds_a_way_whenever_there_is_one() -> None:
    assert unmet_demand({"a": 1, "b": 1}, {"a": [1, 2], "b": [1]}) == {}
    assert unmet_demand({"b": 1, "a": 1}, {"a": [1, 2], "b": [1]}) == {}
    assert unmet_demand({"a": 1, "b": 1}, {"a": [1], "b": [1]}) == {"b": 1}
    # A chain: c's only question is held by b, whose other is held by a, which has a spare.
    members = {"a": [1, 2], "b": [1, 3], "c": [3]}
    assert unmet_demand({"a": 1, "b": 1, "c": 1}, members) == {}
    assert unmet_demand({"a": 2, "b": 1, "c": 1}, members) == {"c": 1}
    assert unmet_demand({"a": 3}, {"a": [1, 2]}) == {"a": 1}
    assert unmet_demand({"a": 1}, {}) == {"a": 1}


# --------------------------------------------------------------------------- accommodations


async def test_accommodations_are_set_replaced_listed_and_removed(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    quiz = await new_quiz(api, headers, course.id)
    learner = await api.user(Role.STUDENT)
    await enroll(api, learner.id, course.id)
    path = f"{API}/quizzes/{quiz['id']}/accommodations/{learner.id}"

    status, body = await call(
        api,
        "PUT",
        path,
        headers,
        {
            "extra_seconds": 900,
            "time_multiplier": 1.5,
            "extra_attempts": 2,
            "opens_at": "2030-01-01T00:00:00+01:00",
            "closes_at": "2030-01-03T00:00:00Z",
        },
    )
    assert status == 200, body
    assert (body["quiz_id"], body["user_id"], body["full_name"]) == (
        quiz["id"],
        str(learner.id),
        learner.full_name,
    )
    assert (body["extra_seconds"], body["time_multiplier"], body["extra_attempts"]) == (900, 1.5, 2)
    assert (body["opens_at"], body["closes_at"]) == ("2029-12-31T23:00:00Z", "2030-01-03T00:00:00Z")

    status, body = await call(api, "PUT", path, headers, {"time_multiplier": 2})
    assert status == 200
    assert (body["extra_seconds"], body["time_multiplier"], body["extra_attempts"]) == (0, 2.0, 0)
    assert (body["opens_at"], body["closes_at"]) == (None, None)
    async with api.app[keys.DATABASE].sessions() as session:
        rows = list(
            await session.scalars(
                select(Accommodation).where(Accommodation.quiz_id == uuid.UUID(quiz["id"]))
            )
        )
    assert [(r.user_id, r.time_multiplier) for r in rows] == [(learner.id, 2.0)]

    status, listed = await call(api, "GET", f"{API}/quizzes/{quiz['id']}/accommodations", headers)
    assert (status, listed["items"]) == (200, [body])

    assert await call(api, "DELETE", path, headers) == (204, None)
    status, body = await call(api, "DELETE", path, headers)
    assert (status, body["error"]) == (404, "accommodation_not_found")
    status, listed = await call(api, "GET", f"{API}/quizzes/{quiz['id']}/accommodations", headers)
    assert listed["items"] == []


async def test_accommodations_are_for_enrolled_learners_with_sane_values(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    quiz = await new_quiz(api, headers, course.id)
    outsider = await api.user(Role.STUDENT)
    left = await api.user(Role.STUDENT)
    await enroll(api, left.id, course.id, status="cancelled")
    learner = await api.user(Role.STUDENT)
    await enroll(api, learner.id, course.id)
    base = f"{API}/quizzes/{quiz['id']}/accommodations"

    for user in (outsider, left):
        status, body = await call(api, "PUT", f"{base}/{user.id}", headers, {"extra_seconds": 60})
        assert (status, body["error"]) == (422, "learner_not_enrolled")
        assert body["details"][0]["user_id"] == str(user.id)
    status, body = await call(api, "PUT", f"{base}/{uuid.uuid4()}", headers, {"extra_seconds": 60})
    assert (status, body["error"]) == (404, "user_not_found")
    status, body = await call(
        api, "PUT", f"{API}/quizzes/{uuid.uuid4()}/accommodations/{learner.id}", headers, {}
    )
    assert (status, body["error"]) == (404, "quiz_not_found")

    bad_allowances: tuple[Any, ...] = (
        {"extra_seconds": -1},
        {"extra_seconds": 86_401},
        {"time_multiplier": 0.5},
        {"time_multiplier": 10.5},
        {"time_multiplier": "2"},
        {"extra_attempts": -1},
        {"extra_attempts": 101},
        {"opens_at": "2030-01-02T00:00:00Z", "closes_at": "2030-01-01T00:00:00Z"},
        {"closes_at": "2030-01-01T00:00:00"},
        {"user_ids": [str(learner.id)]},
        {"extra_seconds": None},
    )
    for bad in bad_allowances:
        status, body = await call(api, "PUT", f"{base}/{learner.id}", headers, bad)
        assert (status, body["error"]) == (422, "validation_failed"), bad
    status, listed = await call(api, "GET", base, headers)
    assert listed["items"] == []


async def test_a_group_gets_one_accommodation_all_or_none(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    quiz = await new_quiz(api, headers, course.id)
    first, second = await api.user(Role.STUDENT), await api.user(Role.STUDENT)
    outsider = await api.user(Role.STUDENT)
    for user in (first, second):
        await enroll(api, user.id, course.id)
    base = f"{API}/quizzes/{quiz['id']}/accommodations"
    await call(api, "PUT", f"{base}/{first.id}", headers, {"extra_attempts": 5})

    status, body = await call(
        api,
        "PUT",
        base,
        headers,
        {"user_ids": [str(first.id), str(outsider.id), str(second.id)], "extra_seconds": 300},
    )
    assert (status, body["error"]) == (422, "learner_not_enrolled")
    assert [(d["loc"], d["user_id"]) for d in body["details"]] == [
        (["body", "user_ids", 1], str(outsider.id))
    ]
    status, listed = await call(api, "GET", base, headers)
    assert [(a["user_id"], a["extra_attempts"]) for a in listed["items"]] == [(str(first.id), 5)]

    ids = [str(second.id), str(first.id), str(second.id)]
    status, body = await call(api, "PUT", base, headers, {"user_ids": ids, "extra_seconds": 300})
    assert status == 200, body
    assert [(a["user_id"], a["extra_seconds"], a["extra_attempts"]) for a in body["items"]] == [
        (str(second.id), 300, 0),
        (str(first.id), 300, 0),
    ]
    bad_groups: list[dict[str, Any]] = [
        {"user_ids": []},
        {"user_ids": ["x"]},
        {"extra_seconds": 1},
        {"user_ids": None},
    ]
    for bad in bad_groups:
        status, body = await call(api, "PUT", base, headers, bad)
        assert (status, body["error"]) == (422, "validation_failed"), bad


async def test_an_accommodation_moves_the_deadline_of_an_attempt_in_progress(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    quiz = await new_quiz(api, headers, course.id, time_limit_seconds=600)
    learner = await api.user(Role.STUDENT)
    await enroll(api, learner.id, course.id)
    started = utcnow().replace(microsecond=0)
    quiz_id = uuid.UUID(quiz["id"])
    done = await make_attempt(
        api,
        quiz_id=quiz_id,
        user_id=learner.id,
        status=AttemptStatus.SUBMITTED.value,
        started_at=started - timedelta(hours=1),
        deadline=started - timedelta(minutes=50),
    )
    running = await make_attempt(
        api,
        quiz_id=quiz_id,
        user_id=learner.id,
        started_at=started,
        deadline=started + timedelta(seconds=600),
    )
    path = f"{API}/quizzes/{quiz['id']}/accommodations/{learner.id}"

    async def deadlines() -> tuple[datetime | None, datetime | None]:
        async with api.app[keys.DATABASE].sessions() as session:
            found = {
                a.id: a.deadline
                for a in await session.scalars(select(Attempt).where(Attempt.quiz_id == quiz_id))
            }
        return found[running], found[done]

    await call(api, "PUT", path, headers, {"extra_seconds": 300})
    assert await deadlines() == (
        started + timedelta(seconds=900),
        started - timedelta(minutes=50),
    )
    await call(api, "PUT", path, headers, {"time_multiplier": 2, "extra_seconds": 60})
    assert (await deadlines())[0] == started + timedelta(seconds=1260)
    close = started + timedelta(seconds=700)
    await call(api, "PUT", path, headers, {"time_multiplier": 3, "closes_at": close.isoformat()})
    assert (await deadlines())[0] == close  # capped by their own close
    await call(
        api,
        "PUT",
        f"{API}/quizzes/{quiz['id']}/accommodations",
        headers,
        {"user_ids": [str(learner.id)], "extra_seconds": 120},
    )
    assert (await deadlines())[0] == started + timedelta(seconds=720)
    assert await call(api, "DELETE", path, headers) == (204, None)
    assert await deadlines() == (
        started + timedelta(seconds=600),
        started - timedelta(minutes=50),
    )


# --------------------------------------------------------------------------- authorization


async def test_only_the_course_instructors_and_admins_author_quizzes(api: Api) -> None:
    owner, owner_headers = await teacher(api)
    course = await make_course(api, owner)
    co, co_headers = await teacher(api)
    async with api.app[keys.DATABASE].transaction() as session:
        session.add(CourseInstructor(course_id=course.id, user_id=co.id))
    _, other_headers = await teacher(api)
    _, admin_headers = await teacher(api, Role.ADMIN)
    student, student_headers = await teacher(api, Role.STUDENT)
    await enroll(api, student.id, course.id)
    question = await add_question(api, owner_headers, course.id)
    quiz = await new_quiz(api, owner_headers, course.id)
    spare = await new_quiz(api, owner_headers, course.id)
    qid = quiz["id"]
    slots = {"slots": [{"question_id": question["id"]}]}
    allowance = {"extra_seconds": 60}

    operations: list[tuple[str, str, Any, int]] = [
        ("POST", f"{API}/courses/{course.id}/quizzes", {"title": "New"}, 201),
        ("GET", f"{API}/courses/{course.id}/quizzes", None, 200),
        ("GET", f"{API}/quizzes/{qid}", None, 200),
        ("PATCH", f"{API}/quizzes/{qid}", {"pass_percent": 60}, 200),
        ("PUT", f"{API}/quizzes/{qid}/slots", slots, 200),
        ("GET", f"{API}/quizzes/{qid}/slots", None, 200),
        ("POST", f"{API}/quizzes/{qid}/publish", None, 200),
        ("POST", f"{API}/quizzes/{qid}/unpublish", None, 200),
        ("PUT", f"{API}/quizzes/{qid}/accommodations/{student.id}", allowance, 200),
        ("PUT", f"{API}/quizzes/{qid}/accommodations", {"user_ids": [str(student.id)]}, 200),
        ("GET", f"{API}/quizzes/{qid}/accommodations", None, 200),
        ("DELETE", f"{API}/quizzes/{qid}/accommodations/{student.id}", None, 204),
    ]
    for method, path, body, ok in operations:
        for name, headers, expected in (
            ("anonymous", {}, (401, "unauthorized")),
            ("student", student_headers, (403, "forbidden")),
            ("other instructor", other_headers, (403, "forbidden")),
        ):
            response = await api.client.request(method, path, headers=headers, json=body)
            error = (await response.json())["error"]
            assert (response.status, error) == expected, (name, method, path)
        for name, headers in (
            ("co-instructor", co_headers),
            ("admin", admin_headers),
            ("owner", owner_headers),
        ):
            if method == "DELETE":
                await call(api, "PUT", path, owner_headers, allowance)
            response = await api.client.request(method, path, headers=headers, json=body)
            assert response.status == ok, (name, method, path, await response.text())

    delete = f"{API}/quizzes/{spare['id']}"
    for headers, refused in (({}, 401), (student_headers, 403), (other_headers, 403)):
        assert (await call(api, "DELETE", delete, headers))[0] == refused
    assert (await call(api, "DELETE", delete, admin_headers))[0] == 204


@pytest.mark.shared_db
async def test_concurrent_writes_on_one_quiz_serialise(api: Api) -> None:
    """Real transactions in parallel: the quiz row lock orders them, never a 500 or a
    duplicate row."""
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    quiz = await new_quiz(api, headers, course.id)
    learner = await api.user(Role.STUDENT)
    await enroll(api, learner.id, course.id)
    pool = await questions(api, headers, course.id, "p", 3)
    path = f"{API}/quizzes/{quiz['id']}/accommodations/{learner.id}"
    # Warm up the client's connections so the writes below really overlap.
    await asyncio.gather(
        *[call(api, "GET", f"{API}/quizzes/{quiz['id']}", headers) for _ in range(10)]
    )
    results = await asyncio.gather(
        *[call(api, "PUT", path, headers, {"extra_seconds": n}) for n in range(20)],
        *[
            put_slots(api, headers, quiz["id"], [{"question_id": q} for q in pool[: n + 1]])
            for n in range(3)
        ],
    )
    assert [status for status, _ in results] == [200] * 23
    async with api.app[keys.DATABASE].sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Accommodation)
            .where(Accommodation.quiz_id == uuid.UUID(quiz["id"]))
        )
    assert count == 1
    slots = await stored_slots(api, quiz["id"])
    assert [position for position, *_ in slots] == list(range(len(slots)))
