"""Course outlines over HTTP: sections and lessons added, changed, moved and deleted by the
course's instructors, positions kept dense, lesson fields checked against their kind, whole
reorders refused when stale and serialised when concurrent, learners' progress recomputed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from lms_live import keys
from lms_live.app import create_app
from lms_live.auth.models import Role, User
from lms_live.courses.models import (
    Course,
    CourseInstructor,
    CourseStatus,
    Lesson,
    LessonKind,
    Section,
)
from lms_live.enrollments.events import learner_stream
from lms_live.enrollments.models import Enrollment, LessonCompletion
from tests.authkit import Api
from tests.conftest import make_settings

Headers = dict[str, str]
Stored = list[tuple[uuid.UUID, list[uuid.UUID]]]


# --------------------------------------------------------------------------- helpers


async def make_course(
    api: Api, owner: User, *, status: CourseStatus = CourseStatus.PUBLISHED
) -> Course:
    async with api.app[keys.DATABASE].transaction() as session:
        course = Course(slug=uuid.uuid4().hex, title="Rivers", owner_id=owner.id, status=status)
        session.add(course)
    return course


async def make_section(api: Api, course: Course, position: int, title: str = "S") -> Section:
    async with api.app[keys.DATABASE].transaction() as session:
        section = Section(course_id=course.id, title=title, position=position)
        session.add(section)
    return section


async def make_lesson(
    api: Api, section: Section, position: int, *, required: bool = True, title: str = "L"
) -> Lesson:
    async with api.app[keys.DATABASE].transaction() as session:
        lesson = Lesson(
            section_id=section.id,
            course_id=section.course_id,
            title=title,
            kind=LessonKind.TEXT.value,
            position=position,
            is_required=required,
        )
        session.add(lesson)
    return lesson


async def stored(api: Api, course_id: uuid.UUID) -> Stored:
    """The outline as the database holds it, after checking every position is dense."""
    async with api.app[keys.DATABASE].sessions() as session:
        sections = list(
            await session.scalars(
                select(Section).where(Section.course_id == course_id).order_by(Section.position)
            )
        )
        lessons = list(
            await session.scalars(
                select(Lesson).where(Lesson.course_id == course_id).order_by(Lesson.position)
            )
        )
    assert [s.position for s in sections] == list(range(len(sections)))
    result: Stored = []
    for section in sections:
        own = [lesson for lesson in lessons if lesson.section_id == section.id]
        assert [lesson.position for lesson in own] == list(range(len(own))), section.title
        result.append((section.id, [lesson.id for lesson in own]))
    assert sum(len(ids) for _, ids in result) == len(lessons)
    return result


def ids(items: list[dict[str, Any]]) -> list[uuid.UUID]:
    return [uuid.UUID(item["id"]) for item in items]


async def call(
    api: Api, method: str, path: str, headers: Headers, body: Any = None
) -> tuple[int, Any]:
    response = await api.client.request(method, path, headers=headers, json=body)
    if response.status == 204:
        return 204, None
    return response.status, await response.json()


# --------------------------------------------------------------------------- sections


async def test_sections_inserted_in_the_middle_keep_positions_dense(api: Api) -> None:
    owner, headers, _ = await api.signed_in(Role.INSTRUCTOR)
    course = await make_course(api, owner, status=CourseStatus.DRAFT)
    url = f"/api/v1/courses/{course.id}/sections"
    made = []
    for title in ("One", "Two", "Three"):
        status, body = await call(api, "POST", url, headers, {"title": title})
        assert status == 201, body
        made.append(body)
    assert [s["position"] for s in made] == [0, 1, 2]
    assert made[0]["lessons"] == []
    assert made[0]["course_id"] == str(course.id)

    status, middle = await call(api, "POST", url, headers, {"title": "  Between  ", "position": 1})
    assert status == 201
    assert middle["title"] == "Between"
    assert middle["position"] == 1
    status, first = await call(api, "POST", url, headers, {"title": "Zero", "position": 0})
    status, last = await call(api, "POST", url, headers, {"title": "End", "position": 5})
    assert status == 201
    assert last["position"] == 5

    layout = await stored(api, course.id)
    assert [sid for sid, _ in layout] == ids([first, made[0], middle, made[1], made[2], last])

    status, outline = await call(api, "GET", f"/api/v1/courses/{course.id}/outline", headers)
    assert status == 200
    assert outline["course_id"] == str(course.id)
    assert [s["title"] for s in outline["sections"]] == [
        "Zero",
        "One",
        "Between",
        "Two",
        "Three",
        "End",
    ]
    assert [s["position"] for s in outline["sections"]] == list(range(6))


async def test_bad_sections_are_refused(api: Api) -> None:
    owner, headers, _ = await api.signed_in(Role.INSTRUCTOR)
    course = await make_course(api, owner)
    await make_section(api, course, 0)
    url = f"/api/v1/courses/{course.id}/sections"

    status, body = await call(api, "POST", url, headers, {"title": "Far", "position": 2})
    assert status == 422
    assert body["error"] == "position_out_of_range"
    for bad in ({"title": "   "}, {"title": "x" * 201}, {"title": "a\x00b"}, {}, {"title": 5}):
        status, body = await call(api, "POST", url, headers, bad)
        assert status == 422, bad
        assert body["error"] == "validation_failed"
        assert body["details"][0]["loc"][0] == "body"
    status, body = await call(api, "POST", url, headers, {"title": "T", "position": -1})
    assert status == 422
    status, body = await call(api, "POST", url, headers, {"title": "T", "colour": "red"})
    assert status == 422

    status, body = await call(
        api, "POST", f"/api/v1/courses/{uuid.uuid4()}/sections", headers, {"title": "T"}
    )
    assert status == 404
    assert body["error"] == "course_not_found"
    status, body = await call(api, "POST", "/api/v1/courses/nope/sections", headers, {"title": "T"})
    assert status == 422
    assert len(await stored(api, course.id)) == 1


async def test_sections_are_renamed_and_moved(api: Api) -> None:
    owner, headers, _ = await api.signed_in(Role.INSTRUCTOR)
    course = await make_course(api, owner)
    a, b, c = [await make_section(api, course, i, t) for i, t in enumerate("ABC")]
    lesson = await make_lesson(api, a, 0)

    status, body = await call(api, "PATCH", f"/api/v1/sections/{a.id}", headers, {"title": "A2"})
    assert status == 200
    assert body["title"] == "A2"
    assert body["position"] == 0
    assert ids(body["lessons"]) == [lesson.id]

    status, body = await call(api, "PATCH", f"/api/v1/sections/{a.id}", headers, {"position": 2})
    assert status == 200
    assert body["position"] == 2
    assert [sid for sid, _ in await stored(api, course.id)] == [b.id, c.id, a.id]

    status, body = await call(api, "PATCH", f"/api/v1/sections/{a.id}", headers, {"position": 3})
    assert status == 422
    assert body["error"] == "position_out_of_range"
    for bad in ({"title": None}, {"title": ""}, {"position": None}):
        status, body = await call(api, "PATCH", f"/api/v1/sections/{a.id}", headers, bad)
        assert status == 422, bad
        assert body["error"] == "validation_failed"
    status, body = await call(
        api, "PATCH", f"/api/v1/sections/{uuid.uuid4()}", headers, {"title": "X"}
    )
    assert status == 404
    assert body["error"] == "section_not_found"


async def test_deleting_a_section_takes_its_lessons_and_closes_up(api: Api) -> None:
    owner, headers, _ = await api.signed_in(Role.INSTRUCTOR)
    course = await make_course(api, owner)
    a, b, c = [await make_section(api, course, i, t) for i, t in enumerate("ABC")]
    await make_lesson(api, b, 0)
    await make_lesson(api, b, 1)
    kept = await make_lesson(api, c, 0)

    status, _ = await call(api, "DELETE", f"/api/v1/sections/{b.id}", headers)
    assert status == 204
    assert await stored(api, course.id) == [(a.id, []), (c.id, [kept.id])]
    status, body = await call(api, "DELETE", f"/api/v1/sections/{b.id}", headers)
    assert status == 404
    assert body["error"] == "section_not_found"


# --------------------------------------------------------------------------- lessons


async def test_lessons_of_every_kind_are_created_in_order(api: Api) -> None:
    owner, headers, _ = await api.signed_in(Role.INSTRUCTOR)
    course = await make_course(api, owner)
    section = await make_section(api, course, 0)
    url = f"/api/v1/sections/{section.id}/lessons"
    quiz = uuid.uuid4()
    bodies = [
        {"title": "Read", "kind": "text", "body": "# Hello", "duration_seconds": 300},
        {
            "title": "Watch",
            "kind": "video",
            "video_url": "https://video.example.org/v/1",
            "duration_seconds": 600,
            "is_preview": True,
        },
        {"title": "Download", "kind": "file", "file_ref": "lessons/notes.pdf"},
        {"title": "Check", "kind": "quiz", "quiz_id": str(quiz), "is_required": False},
    ]
    made = []
    for request in bodies:
        status, body = await call(api, "POST", url, headers, request)
        assert status == 201, body
        made.append(body)
    text, video, file, quiz_lesson = made
    assert text["body"] == "# Hello"
    assert text["video_url"] is None
    assert text["kind"] == "text"
    assert text["course_id"] == str(course.id)
    assert text["section_id"] == str(section.id)
    assert text["is_required"] is True
    assert text["is_preview"] is False
    assert video["video_url"] == "https://video.example.org/v/1"
    assert video["duration_seconds"] == 600
    assert video["is_preview"] is True
    assert video["body"] == ""
    assert file["file_ref"] == "lessons/notes.pdf"
    assert quiz_lesson["quiz_id"] == str(quiz)
    assert quiz_lesson["is_required"] is False
    assert [m["position"] for m in made] == [0, 1, 2, 3]

    status, inserted = await call(
        api, "POST", url, headers, {"title": "Intro", "kind": "text", "position": 0}
    )
    assert status == 201
    assert inserted["position"] == 0
    assert await stored(api, course.id) == [(section.id, ids([inserted, *made]))]
    status, body = await call(
        api, "POST", url, headers, {"title": "Far", "kind": "text", "position": 7}
    )
    assert status == 422
    assert body["error"] == "position_out_of_range"
    status, body = await call(
        api, "POST", f"/api/v1/sections/{uuid.uuid4()}/lessons", headers, bodies[0]
    )
    assert status == 404
    assert body["error"] == "section_not_found"


@pytest.mark.parametrize(
    ("request_body", "error", "field"),
    [
        ({"kind": "video", "video_url": "https://x.org/v", "body": "text"}, "content", "body"),
        ({"kind": "video"}, "content", "video_url"),
        ({"kind": "file"}, "content", "file_ref"),
        ({"kind": "quiz"}, "content", "quiz_id"),
        ({"kind": "text", "quiz_id": str(uuid.uuid4())}, "content", "quiz_id"),
        ({"kind": "text", "video_url": "https://x.org/v"}, "content", "video_url"),
        ({"kind": "quiz", "quiz_id": str(uuid.uuid4()), "file_ref": "a.pdf"}, "content",
         "file_ref"),
        ({"kind": "file", "file_ref": "../etc/passwd"}, "validation", "file_ref"),
        ({"kind": "file", "file_ref": "/abs/path"}, "validation", "file_ref"),
        ({"kind": "file", "file_ref": "a b.pdf"}, "validation", "file_ref"),
        ({"kind": "video", "video_url": "javascript:alert(1)"}, "validation", "video_url"),
        ({"kind": "video", "video_url": "ftp://x.org/v"}, "validation", "video_url"),
        ({"kind": "video", "video_url": "https://x.org/" + "v" * 1000}, "validation", "video_url"),
        ({"kind": "video", "video_url": "https://x.org/v", "duration_seconds": 0}, "validation",
         "duration_seconds"),
        ({"kind": "text", "duration_seconds": 86_401}, "validation", "duration_seconds"),
        ({"kind": "text", "body": "x" * 100_001}, "validation", "body"),
        ({"kind": "text", "body": "a\x00b"}, "validation", "body"),
        ({"kind": "quiz", "quiz_id": "not-a-uuid"}, "validation", "quiz_id"),
        ({"kind": "audio"}, "validation", "kind"),
        ({"kind": "text", "is_preview": "yes"}, "validation", "is_preview"),
        ({"kind": "text", "section_id": str(uuid.uuid4())}, "validation", "section_id"),
    ],
)  # fmt: skip
async def test_lesson_fields_must_fit_the_kind(
    api: Api, request_body: dict[str, Any], error: str, field: str
) -> None:
    owner, headers, _ = await api.signed_in(Role.INSTRUCTOR)
    course = await make_course(api, owner)
    section = await make_section(api, course, 0)
    status, body = await call(
        api,
        "POST",
        f"/api/v1/sections/{section.id}/lessons",
        headers,
        {"title": "L"} | request_body,
    )
    assert status == 422, body
    code = "lesson_content_invalid" if error == "content" else "validation_failed"
    assert body["error"] == code
    assert ["body", field] in [d["loc"][:2] for d in body["details"]]
    assert await stored(api, course.id) == [(section.id, [])]


async def test_lessons_are_changed_within_their_kind(api: Api) -> None:
    owner, headers, _ = await api.signed_in(Role.INSTRUCTOR)
    course = await make_course(api, owner)
    section = await make_section(api, course, 0)
    url = f"/api/v1/sections/{section.id}/lessons"
    _, first = await call(api, "POST", url, headers, {"title": "First", "kind": "text"})
    _, video = await call(
        api, "POST", url, headers, {"title": "V", "kind": "video", "video_url": "https://x.org/1"}
    )
    lesson_url = f"/api/v1/lessons/{video['id']}"

    status, body = await call(
        api,
        "PATCH",
        lesson_url,
        headers,
        {"title": "Video", "video_url": "https://x.org/2", "duration_seconds": 90, "kind": "video"},
    )
    assert status == 200, body
    assert body["title"] == "Video"
    assert body["video_url"] == "https://x.org/2"
    assert body["duration_seconds"] == 90
    assert body["updated_at"] >= video["updated_at"]

    status, body = await call(api, "PATCH", lesson_url, headers, {"duration_seconds": None})
    assert status == 200
    assert body["duration_seconds"] is None
    assert body["title"] == "Video"

    status, body = await call(api, "PATCH", lesson_url, headers, {"kind": "text"})
    assert status == 422
    assert body["error"] == "lesson_kind_fixed"
    status, body = await call(api, "PATCH", lesson_url, headers, {"video_url": None})
    assert status == 422
    assert body["error"] == "lesson_content_invalid"
    assert body["details"][0]["loc"] == ["body", "video_url"]
    status, body = await call(api, "PATCH", lesson_url, headers, {"body": "Words"})
    assert status == 422
    assert body["error"] == "lesson_content_invalid"
    for bad in ({"title": None}, {"is_required": None}, {"kind": None}, {"position": -1}):
        status, body = await call(api, "PATCH", lesson_url, headers, bad)
        assert status == 422, bad
        assert body["error"] == "validation_failed"

    status, body = await call(
        api, "PATCH", f"/api/v1/lessons/{first['id']}", headers, {"body": "**bold**"}
    )
    assert status == 200
    assert body["body"] == "**bold**"
    status, body = await call(
        api, "PATCH", f"/api/v1/lessons/{first['id']}", headers, {"body": None}
    )
    assert status == 200
    assert body["body"] == ""

    status, body = await call(api, "PATCH", lesson_url, headers, {"position": 0})
    assert status == 200
    assert body["position"] == 0
    assert await stored(api, course.id) == [(section.id, ids([video, first]))]
    status, body = await call(api, "PATCH", lesson_url, headers, {"position": 2})
    assert status == 422
    assert body["error"] == "position_out_of_range"

    async with api.app[keys.DATABASE].sessions() as session:
        row = await session.get(Lesson, uuid.UUID(video["id"]))
    assert row is not None
    assert (row.kind, row.video_url, row.body) == ("video", "https://x.org/2", "")

    status, body = await call(
        api, "PATCH", f"/api/v1/lessons/{uuid.uuid4()}", headers, {"title": "X"}
    )
    assert status == 404
    assert body["error"] == "lesson_not_found"


async def test_deleting_a_lesson_closes_up_its_section(api: Api) -> None:
    owner, headers, _ = await api.signed_in(Role.INSTRUCTOR)
    course = await make_course(api, owner)
    section = await make_section(api, course, 0)
    a, b, c = [await make_lesson(api, section, i) for i in range(3)]

    status, _ = await call(api, "DELETE", f"/api/v1/lessons/{b.id}", headers)
    assert status == 204
    assert await stored(api, course.id) == [(section.id, [a.id, c.id])]
    status, body = await call(api, "DELETE", f"/api/v1/lessons/{b.id}", headers)
    assert status == 404
    assert body["error"] == "lesson_not_found"


# --------------------------------------------------------------------------- reorder


async def test_outline_is_reordered_and_lessons_move_between_sections(api: Api) -> None:
    owner, headers, _ = await api.signed_in(Role.INSTRUCTOR)
    course = await make_course(api, owner)
    s1, s2, s3 = [await make_section(api, course, i, t) for i, t in enumerate(("A", "B", "C"))]
    l1, l2 = await make_lesson(api, s1, 0), await make_lesson(api, s1, 1)
    l3 = await make_lesson(api, s2, 0)
    order = [(s3.id, [l2.id, l3.id]), (s1.id, []), (s2.id, [l1.id])]

    status, body = await call(
        api,
        "PUT",
        f"/api/v1/courses/{course.id}/outline",
        headers,
        {"sections": [{"id": str(s), "lessons": [str(i) for i in ls]} for s, ls in order]},
    )
    assert status == 200, body
    assert body["course_id"] == str(course.id)
    assert [(uuid.UUID(s["id"]), ids(s["lessons"])) for s in body["sections"]] == order
    assert [s["position"] for s in body["sections"]] == [0, 1, 2]
    moved = body["sections"][0]["lessons"]
    assert [(m["section_id"], m["position"]) for m in moved] == [(str(s3.id), 0), (str(s3.id), 1)]
    assert await stored(api, course.id) == order

    status, again = await call(api, "GET", f"/api/v1/courses/{course.id}/outline", headers)
    assert again == body


async def test_a_stale_outline_is_refused_with_what_differs(api: Api) -> None:
    owner, headers, _ = await api.signed_in(Role.INSTRUCTOR)
    course = await make_course(api, owner)
    other = await make_course(api, owner)
    s1, s2 = await make_section(api, course, 0), await make_section(api, course, 1)
    l1, l2 = await make_lesson(api, s1, 0), await make_lesson(api, s2, 0)
    foreign = await make_lesson(api, await make_section(api, other, 0), 0)
    before = await stored(api, course.id)
    url = f"/api/v1/courses/{course.id}/outline"

    def section(sid: uuid.UUID, *lessons: uuid.UUID) -> dict[str, Any]:
        return {"id": str(sid), "lessons": [str(i) for i in lessons]}

    status, body = await call(
        api,
        "PUT",
        url,
        headers,
        {"sections": [section(s1.id, l1.id, l1.id, foreign.id), section(s1.id)]},
    )
    assert status == 409
    assert body["error"] == "outline_mismatch"
    assert sorted(body["details"], key=lambda d: (d["entity"], d["problem"])) == [
        {"entity": "lesson", "problem": "duplicated", "ids": [str(l1.id)]},
        {"entity": "lesson", "problem": "missing", "ids": [str(l2.id)]},
        {"entity": "lesson", "problem": "unknown", "ids": [str(foreign.id)]},
        {"entity": "section", "problem": "duplicated", "ids": [str(s1.id)]},
        {"entity": "section", "problem": "missing", "ids": [str(s2.id)]},
    ]
    status, body = await call(api, "PUT", url, headers, {"sections": [section(s1.id, l1.id)]})
    assert status == 409
    assert body["details"] == [
        {"entity": "section", "problem": "missing", "ids": [str(s2.id)]},
        {"entity": "lesson", "problem": "missing", "ids": [str(l2.id)]},
    ]
    assert await stored(api, course.id) == before

    for bad in ({}, {"sections": [{"id": str(s1.id)}]}, {"sections": [{"id": "x", "lessons": []}]}):
        status, body = await call(api, "PUT", url, headers, bad)
        assert status == 422, bad
    status, body = await call(
        api, "PUT", f"/api/v1/courses/{uuid.uuid4()}/outline", headers, {"sections": []}
    )
    assert status == 404
    assert body["error"] == "course_not_found"


@pytest.mark.shared_db
async def test_concurrent_reorders_serialise_on_the_course(
    api: Api, aiohttp_client: Any, tmp_path: Path, worker_id: str, pg_url: str, redis_url: str
) -> None:
    """Two instances, two editors, the same course: each PUT applies whole, the last wins;
    a reorder racing a new lesson either lands first or is refused as stale."""
    owner, owner_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    colleague, colleague_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    settings = make_settings(
        tmp_path / "second", worker_id, pg_url=pg_url, redis_url=redis_url, task_broker="memory"
    )
    second = await aiohttp_client(create_app(settings))
    course = await make_course(api, owner)
    async with api.app[keys.DATABASE].transaction() as session:
        session.add(CourseInstructor(course_id=course.id, user_id=colleague.id))
    s1, s2 = await make_section(api, course, 0), await make_section(api, course, 1)
    a, b = await make_lesson(api, s1, 0), await make_lesson(api, s1, 1)
    c, d = await make_lesson(api, s2, 0), await make_lesson(api, s2, 1)
    url = f"/api/v1/courses/{course.id}/outline"
    one: Stored = [(s2.id, [d.id, a.id, b.id]), (s1.id, [c.id])]
    two: Stored = [(s1.id, [b.id]), (s2.id, [c.id, d.id, a.id])]

    def payload(order: Stored) -> dict[str, Any]:
        return {"sections": [{"id": str(s), "lessons": [str(i) for i in ls]} for s, ls in order]}

    for _ in range(5):
        first, other = await asyncio.gather(
            api.client.put(url, headers=owner_headers, json=payload(one)),
            second.put(url, headers=colleague_headers, json=payload(two)),
        )
        assert (first.status, other.status) == (200, 200)
        assert await stored(api, course.id) in (one, two)

    put, post = await asyncio.gather(
        api.client.put(url, headers=owner_headers, json=payload(one)),
        second.post(
            f"/api/v1/sections/{s1.id}/lessons",
            headers=colleague_headers,
            json={"title": "New", "kind": "text", "position": 0},
        ),
    )
    assert post.status == 201
    new = uuid.UUID((await post.json())["id"])
    layout = await stored(api, course.id)
    if put.status == 200:  # the reorder ran first; the lesson went in after it
        assert layout == [(s2.id, [d.id, a.id, b.id]), (s1.id, [new, c.id])]
    else:
        assert put.status == 409
        assert (await put.json())["details"] == [
            {"entity": "lesson", "problem": "missing", "ids": [str(new)]}
        ]
        assert new in layout[[s for s, _ in layout].index(s1.id)][1]


# --------------------------------------------------------------------------- who may


async def test_only_the_course_instructors_and_admins_edit_the_outline(api: Api) -> None:
    owner, owner_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    colleague, colleague_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    _, stranger_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    _, student_headers, _ = await api.signed_in(Role.STUDENT)
    _, admin_headers, _ = await api.signed_in(Role.ADMIN)
    course = await make_course(api, owner)
    async with api.app[keys.DATABASE].transaction() as session:
        session.add(CourseInstructor(course_id=course.id, user_id=colleague.id))
    section = await make_section(api, course, 0)
    lesson = await make_lesson(api, section, 0)
    reorder = {"sections": [{"id": str(section.id), "lessons": [str(lesson.id)]}]}
    operations: list[tuple[str, str, Any]] = [
        ("POST", f"/api/v1/courses/{course.id}/sections", {"title": "T"}),
        ("PATCH", f"/api/v1/sections/{section.id}", {"title": "T"}),
        ("POST", f"/api/v1/sections/{section.id}/lessons", {"title": "T", "kind": "text"}),
        ("PATCH", f"/api/v1/lessons/{lesson.id}", {"title": "T"}),
        ("GET", f"/api/v1/courses/{course.id}/outline", None),
        ("PUT", f"/api/v1/courses/{course.id}/outline", reorder),
    ]
    for method, path, body in operations:
        for headers, status, code in (
            ({}, 401, "unauthorized"),
            (student_headers, 403, "forbidden"),
            (stranger_headers, 403, "forbidden"),
        ):
            got, answer = await call(api, method, path, headers, body)
            assert (got, answer["error"]) == (status, code), (method, path, headers)
        for headers in (owner_headers, colleague_headers, admin_headers):
            if method == "PUT":  # the outline as it stands now (others added to it meanwhile)
                _, current = await call(api, "GET", path, headers)
                body = {
                    "sections": [
                        {"id": s["id"], "lessons": [x["id"] for x in s["lessons"]]}
                        for s in reversed(current["sections"])
                    ]
                }
            got, answer = await call(api, method, path, headers, body)
            assert got in (200, 201), (method, path, answer)
    for path in (f"/api/v1/lessons/{lesson.id}", f"/api/v1/sections/{section.id}"):
        for headers, status in ((stranger_headers, 403), (student_headers, 403), ({}, 401)):
            got, _ = await call(api, "DELETE", path, headers)
            assert got == status
    status, _ = await call(api, "DELETE", f"/api/v1/lessons/{lesson.id}", colleague_headers)
    assert status == 204
    status, _ = await call(api, "DELETE", f"/api/v1/sections/{section.id}", admin_headers)
    assert status == 204


# --------------------------------------------------------------------------- progress


async def test_progress_follows_the_required_lessons(api: Api) -> None:
    owner, headers, _ = await api.signed_in(Role.INSTRUCTOR)
    learner = await api.user(Role.STUDENT)
    course = await make_course(api, owner)
    one, two = await make_section(api, course, 0), await make_section(api, course, 1)
    done = await make_lesson(api, one, 0)
    await make_lesson(api, one, 1)
    async with api.app[keys.DATABASE].transaction() as session:
        enrollment = Enrollment(user_id=learner.id, course_id=course.id, progress_percent=50.0)
        session.add(enrollment)
        await session.flush()
        session.add(LessonCompletion(enrollment_id=enrollment.id, lesson_id=done.id))

    async def percent() -> float:
        async with api.app[keys.DATABASE].sessions() as session:
            row = await session.get(Enrollment, enrollment.id)
        assert row is not None
        return row.progress_percent

    async def published() -> list[float]:
        events = await api.app[keys.STREAMS].since(learner_stream(learner.id), 0)
        assert events is not None
        return [e.data["percent"] for e in events if e.event == "progress_changed"]

    lessons = f"/api/v1/sections/{two.id}/lessons"
    status, added = await call(api, "POST", lessons, headers, {"title": "More", "kind": "text"})
    assert status == 201
    assert await percent() == 33.33
    assert await published() == [33.33]

    status, optional = await call(
        api, "POST", lessons, headers, {"title": "Extra", "kind": "text", "is_required": False}
    )
    assert status == 201
    assert await percent() == 33.33
    assert await published() == [33.33]  # the required lessons did not change

    status, _ = await call(api, "DELETE", f"/api/v1/lessons/{added['id']}", headers)
    assert status == 204
    assert await percent() == 50.0
    assert await published() == [33.33, 50.0]

    status, _ = await call(
        api, "PATCH", f"/api/v1/lessons/{optional['id']}", headers, {"is_required": True}
    )
    assert status == 200
    assert await percent() == 33.33

    status, _ = await call(api, "DELETE", f"/api/v1/sections/{two.id}", headers)
    assert status == 204
    assert await percent() == 50.0
    assert await published() == [33.33, 50.0, 33.33, 50.0]

    status, _ = await call(
        api, "PATCH", f"/api/v1/lessons/{done.id}", headers, {"title": "Renamed"}
    )
    assert await published() == [33.33, 50.0, 33.33, 50.0]
    async with api.app[keys.DATABASE].sessions() as session:
        undone = await session.scalar(
            select(Lesson.id).where(Lesson.section_id == one.id, Lesson.id != done.id)
        )
    status, _ = await call(
        api, "PATCH", f"/api/v1/lessons/{undone}", headers, {"is_required": False}
    )
    assert status == 200
    assert await percent() == 100.0
    async with api.app[keys.DATABASE].sessions() as session:
        row = await session.get(Enrollment, enrollment.id)
    assert row is not None
    assert row.status == "completed"
    assert row.completed_at is not None
    events = await api.app[keys.STREAMS].since(learner_stream(learner.id), 0)
    assert events is not None
    assert events[-1].event == "course_completed"
