"""Reading a lesson: who may (instructors, admins, enrolled learners, anyone for a preview of a
published course), what the others are told (403 enrollment_required, or 404 for a draft), and
that the Markdown body comes rendered safely."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from lms_live import keys
from lms_live.auth.models import Role, User
from lms_live.courses.models import (
    Course,
    CourseInstructor,
    CourseStatus,
    Lesson,
    LessonKind,
    Section,
)
from lms_live.enrollments.models import Enrollment, EnrollmentStatus
from tests.authkit import Api

Headers = dict[str, str]


async def make_lesson(
    api: Api,
    owner: User,
    *,
    status: CourseStatus = CourseStatus.PUBLISHED,
    preview: bool = False,
    **fields: Any,
) -> Lesson:
    """A lesson (text unless told) in a new course of `owner`, second in its section."""
    async with api.app[keys.DATABASE].transaction() as session:
        course = Course(slug=uuid.uuid4().hex, title="Rivers", owner_id=owner.id, status=status)
        session.add(course)
        await session.flush()
        section = Section(course_id=course.id, title="One", position=0)
        session.add(section)
        await session.flush()
        values: dict[str, Any] = {"kind": LessonKind.TEXT.value, "body": "Hello"} | fields
        session.add(
            Lesson(section_id=section.id, course_id=course.id, title="Zero", position=0, **values)
        )
        lesson = Lesson(
            section_id=section.id,
            course_id=course.id,
            title="Source",
            position=1,
            is_preview=preview,
            **values,
        )
        session.add(lesson)
    return lesson


async def enroll(api: Api, user: User, lesson: Lesson, status: EnrollmentStatus) -> None:
    async with api.app[keys.DATABASE].transaction() as session:
        session.add(Enrollment(user_id=user.id, course_id=lesson.course_id, status=status.value))


async def read(api: Api, lesson: Lesson | uuid.UUID | str, headers: Headers) -> tuple[int, Any]:
    lesson_id = lesson.id if isinstance(lesson, Lesson) else lesson
    response = await api.client.get(f"/api/v1/lessons/{lesson_id}", headers=headers)
    return response.status, await response.json()


async def test_an_enrolled_learner_reads_the_lesson_rendered(api: Api) -> None:
    owner = await api.user(Role.INSTRUCTOR)
    learner, headers, _ = await api.signed_in(Role.STUDENT)
    lesson = await make_lesson(
        api,
        owner,
        body="# Title\n\nSome *words* and a [link](https://example.org).",
        duration_seconds=240,
    )
    await enroll(api, learner, lesson, EnrollmentStatus.ACTIVE)

    status, body = await read(api, lesson, headers)
    assert status == 200, body
    assert body == {
        "id": str(lesson.id),
        "course_id": str(lesson.course_id),
        "section_id": str(lesson.section_id),
        "title": "Source",
        "kind": "text",
        "position": 1,
        "body": "# Title\n\nSome *words* and a [link](https://example.org).",
        "body_html": (
            "<h1>Title</h1>\n<p>Some <em>words</em> and a "
            '<a href="https://example.org" rel="nofollow noopener">link</a>.</p>\n'
        ),
        "video_url": None,
        "duration_seconds": 240,
        "file_ref": None,
        "quiz_id": None,
        "is_preview": False,
        "is_required": True,
    }


async def test_the_body_html_never_carries_the_authors_html(api: Api) -> None:
    owner, headers, _ = await api.signed_in(Role.INSTRUCTOR)
    lesson = await make_lesson(
        api,
        owner,
        body='<script>alert("x")</script>\n\n[click](javascript:alert(1)) <img src=x onerror=y>',
    )
    status, body = await read(api, lesson, headers)
    assert status == 200
    html = body["body_html"]
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    assert "<img" not in html
    assert 'href="javascript' not in html


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "video", "body": "", "video_url": "https://x.org/v", "duration_seconds": 60},
        {"kind": "file", "body": "", "file_ref": "lessons/a.pdf"},
        {"kind": "quiz", "body": "", "quiz_id": uuid.UUID(int=7)},
    ],
)
async def test_every_kind_is_read_with_its_content(api: Api, fields: dict[str, Any]) -> None:
    owner = await api.user(Role.INSTRUCTOR)
    learner, headers, _ = await api.signed_in(Role.STUDENT)
    lesson = await make_lesson(api, owner, **fields)
    await enroll(api, learner, lesson, EnrollmentStatus.COMPLETED)
    status, body = await read(api, lesson, headers)
    assert status == 200
    assert body["kind"] == fields["kind"]
    assert body["body_html"] == ""
    for name, value in fields.items():
        assert body[name] == (str(value) if isinstance(value, uuid.UUID) else value)


async def test_who_reads_a_published_course(api: Api) -> None:
    owner, owner_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    colleague, colleague_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    _, stranger_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    _, admin_headers, _ = await api.signed_in(Role.ADMIN)
    enrolled, enrolled_headers, _ = await api.signed_in(Role.STUDENT)
    completed, completed_headers, _ = await api.signed_in(Role.STUDENT)
    cancelled, cancelled_headers, _ = await api.signed_in(Role.STUDENT)
    _, outsider_headers, _ = await api.signed_in(Role.STUDENT)
    lesson = await make_lesson(api, owner)
    preview = await make_lesson(api, owner, preview=True)
    for other in (lesson, preview):
        await enroll(api, enrolled, other, EnrollmentStatus.ACTIVE)
        await enroll(api, completed, other, EnrollmentStatus.COMPLETED)
        await enroll(api, cancelled, other, EnrollmentStatus.CANCELLED)
        async with api.app[keys.DATABASE].transaction() as session:
            session.add(CourseInstructor(course_id=other.course_id, user_id=colleague.id))

    for headers in (owner_headers, colleague_headers, admin_headers, enrolled_headers,
                    completed_headers):  # fmt: skip
        assert (await read(api, lesson, headers))[0] == 200
    for headers in (cancelled_headers, outsider_headers, stranger_headers):
        status, body = await read(api, lesson, headers)
        assert (status, body["error"]) == (403, "enrollment_required")
    for headers in (outsider_headers, cancelled_headers, stranger_headers, enrolled_headers):
        status, body = await read(api, preview, headers)
        assert status == 200
        assert body["is_preview"] is True

    status, body = await read(api, lesson, {})
    assert (status, body["error"]) == (401, "unauthorized")
    status, body = await read(api, lesson, {"Authorization": "Bearer nonsense"})
    assert (status, body["error"]) == (401, "invalid_token")
    status, body = await read(api, uuid.uuid4(), outsider_headers)
    assert (status, body["error"]) == (404, "lesson_not_found")
    status, body = await read(api, "not-a-uuid", outsider_headers)
    assert (status, body["error"]) == (422, "validation_failed")


async def test_a_draft_course_is_not_revealed(api: Api) -> None:
    owner, owner_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    _, stranger_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    _, admin_headers, _ = await api.signed_in(Role.ADMIN)
    enrolled, enrolled_headers, _ = await api.signed_in(Role.STUDENT)
    _, outsider_headers, _ = await api.signed_in(Role.STUDENT)
    lesson = await make_lesson(api, owner, status=CourseStatus.DRAFT)
    preview = await make_lesson(api, owner, status=CourseStatus.DRAFT, preview=True)
    await enroll(api, enrolled, lesson, EnrollmentStatus.ACTIVE)

    for headers in (owner_headers, admin_headers):
        assert (await read(api, lesson, headers))[0] == 200
    for target in (lesson, preview):
        for headers in (enrolled_headers, outsider_headers, stranger_headers):
            status, body = await read(api, target, headers)
            assert (status, body["error"]) == (404, "lesson_not_found")


async def test_an_archived_course_stays_open_to_its_learners_only(api: Api) -> None:
    owner, owner_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    enrolled, enrolled_headers, _ = await api.signed_in(Role.STUDENT)
    cancelled, cancelled_headers, _ = await api.signed_in(Role.STUDENT)
    _, outsider_headers, _ = await api.signed_in(Role.STUDENT)
    lesson = await make_lesson(api, owner, status=CourseStatus.ARCHIVED, preview=True)
    await enroll(api, enrolled, lesson, EnrollmentStatus.ACTIVE)
    await enroll(api, cancelled, lesson, EnrollmentStatus.CANCELLED)

    for headers in (owner_headers, enrolled_headers):
        assert (await read(api, lesson, headers))[0] == 200
    for headers in (cancelled_headers, outsider_headers):  # previews are for published courses
        status, body = await read(api, lesson, headers)
        assert (status, body["error"]) == (403, "enrollment_required")
