"""Authorization matrix of the learning endpoints: catalog, course authoring, outlines, lesson
reading, enrollments and progress, certificates x the six callers of tests/test_authz_matrix.py.

The world of every cell: the instructor owns a published course (one section: a text lesson, a
preview lesson, a quiz lesson) which the student has completed, holding its certificate (PDF
stored), and a draft course ready to publish (one text lesson). The other student and the other
instructor have nothing to do with either course; the admin may do everything an instructor of
the course may. Object-level refusals are asserted with their codes, and each row's `then`
checks that a refused call changed nothing (or that the allowed one did what it says).

`tests/test_authz_matrix.py::test_matrix_covers_every_endpoint` counts these rows too.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from lms_live import keys
from lms_live.certificates.models import Certificate, CertificateStatus
from lms_live.core.db import utcnow
from lms_live.courses.models import (
    Course,
    CourseInstructor,
    CourseStatus,
    Lesson,
    LessonKind,
    Section,
)
from lms_live.enrollments.models import Enrollment, EnrollmentStatus, LessonCompletion
from tests.authkit import Api
from tests.test_authz_matrix import (
    ACTORS,
    ANONYMOUS,
    SIGNED_IN,
    Call,
    Expected,
    Row,
    World,
    admin_only,
    build_world,
    public,
    send,
    signed_in,
)

CERTIFICATE = "LMS-2026-7K3Q-9XWM"
STUDENTS = ("student", "other_student")
TEACHERS = ("instructor", "admin")  # who may act on the instructor's courses


@dataclass
class Courses:
    published: Course
    draft: Course
    section: Section
    text: Lesson
    preview: Lesson
    quiz: Lesson
    draft_section: Section
    draft_lesson: Lesson


@dataclass
class LearningWorld:
    world: World
    courses: Courses

    @property
    def api(self) -> Api:
        return self.world.api

    def headers(self, actor: str) -> dict[str, str]:
        return self.world.headers(actor)

    def user_id(self, actor: str) -> uuid.UUID:
        return self.world.members[actor].user.id

    async def scalar(self, statement: Any) -> Any:
        async with self.api.app[keys.DATABASE].sessions() as session:
            return await session.scalar(statement)


async def build_learning_world(api: Api) -> LearningWorld:
    world = await build_world(api)
    owner = world.members["instructor"].user.id
    async with api.app[keys.DATABASE].transaction() as session:
        published = Course(
            slug="published-course",
            title="Published course",
            summary="Open to all",
            owner_id=owner,
            status=CourseStatus.PUBLISHED.value,
            published_at=utcnow(),
        )
        draft = Course(slug="draft-course", title="Draft course", summary="Soon", owner_id=owner)
        session.add_all([published, draft])
        await session.flush()
        section = Section(course_id=published.id, title="Part one", position=0)
        draft_section = Section(course_id=draft.id, title="Part one", position=0)
        session.add_all([section, draft_section])
        await session.flush()

        def lesson(sec: Section, title: str, position: int, **extra: Any) -> Lesson:
            values: dict[str, Any] = {"kind": LessonKind.TEXT.value, "body": f"Body of {title}"}
            values.update(extra)
            return Lesson(
                section_id=sec.id,
                course_id=sec.course_id,
                title=title,
                position=position,
                **values,
            )

        text = lesson(section, "Text lesson", 0)
        preview = lesson(section, "Preview lesson", 1, is_preview=True)
        quiz = lesson(section, "Quiz lesson", 2, kind=LessonKind.QUIZ.value, quiz_id=uuid.uuid4())
        draft_lesson = lesson(draft_section, "Draft lesson", 0)
        session.add_all([text, preview, quiz, draft_lesson])
        enrollment = Enrollment(
            user_id=world.members["student"].user.id,
            course_id=published.id,
            status=EnrollmentStatus.COMPLETED.value,
            completed_at=utcnow(),
            progress_percent=100.0,
        )
        session.add(enrollment)
        published.enrollment_count = 1
        await session.flush()
        # The student's certificate of the published course, its PDF stored.
        pdf = b"%PDF-1.7 certificate of the matrix"
        session.add(
            Certificate(
                number=CERTIFICATE,
                enrollment_id=enrollment.id,
                user_id=enrollment.user_id,
                course_id=published.id,
                learner_name="Test student",
                course_title=published.title,
                instructor_name="Test instructor",
                completed_at=utcnow(),
                storage_key="certificates/matrix.pdf",
                sha256=hashlib.sha256(pdf).hexdigest(),
                size_bytes=len(pdf),
                issued_at=utcnow(),
            )
        )
    await api.app[keys.STORAGE].put("certificates/matrix.pdf", pdf, content_type="application/pdf")
    courses = Courses(published, draft, section, text, preview, quiz, draft_section, draft_lesson)
    return LearningWorld(world, courses)


# --------------------------------------------------------------------------- expectations


def teachers_only(status: int) -> dict[str, Expected]:
    """roles instructor/admin, then the course's own instructors: students 403 by role, the
    other instructor 403 by the object-level check."""
    return signed_in(403, "forbidden", instructor=(status, None), admin=(status, None))


def learners_only(status: int, refused: Expected) -> dict[str, Expected]:
    """Only the enrolled student succeeds; every other signed-in caller gets `refused`."""
    return signed_in(refused[0], refused[1], student=(status, None))


# --------------------------------------------------------------------------- rows

LearningBuild = Any  # (LearningWorld, actor) -> Call
LearningCheck = Any  # (LearningWorld, actor, body) -> None


@dataclass(frozen=True)
class LearningRow:
    method: str
    path: str
    expect: Mapping[str, Expected]
    build: LearningBuild
    then: LearningCheck | None = None
    variant: str = ""

    def id_for(self, actor: str) -> str:
        suffix = f" ({self.variant})" if self.variant else ""
        return f"{actor}-{self.method} {self.path}{suffix}"

    def as_row(self) -> Row:
        """The shape the coverage check of tests/test_authz_matrix.py reads."""
        return Row(self.method, self.path, self.expect, send(), variant=self.variant)


def on(**path: str) -> LearningBuild:
    """Path values named after the world's objects: on(course_id="published")."""

    async def build(w: LearningWorld, actor: str) -> Call:
        return Call(path={name: str(getattr(w.courses, attr).id) for name, attr in path.items()})

    return build


def send_learning(json: Any = None) -> LearningBuild:
    async def build(w: LearningWorld, actor: str) -> Call:
        return Call(json=json)

    return build


def with_body(body: Any, **path: str) -> LearningBuild:
    base = on(**path)

    async def build(w: LearningWorld, actor: str) -> Call:
        call = await base(w, actor)
        return Call(json=body, path=call.path)

    return build


async def course_title(w: LearningWorld, course: str) -> str:
    found = await w.scalar(select(Course.title).where(Course.id == getattr(w.courses, course).id))
    return str(found)


def title_changed_for_teachers(course: str, new: str) -> LearningCheck:
    async def check(w: LearningWorld, actor: str, body: Any) -> None:
        expected = new if actor in TEACHERS else getattr(w.courses, course).title
        assert await course_title(w, course) == expected

    return check


def course_status_for_teachers(course: str, changed: str | None) -> LearningCheck:
    """After the call: `changed` for teachers (None: the row is gone), unchanged otherwise."""

    async def check(w: LearningWorld, actor: str, body: Any) -> None:
        target = getattr(w.courses, course)
        status = await w.scalar(select(Course.status).where(Course.id == target.id))
        assert status == (changed if actor in TEACHERS else target.status)

    return check


async def other_instructor_path(w: LearningWorld, actor: str) -> Call:
    return Call(
        path={
            "course_id": str(w.courses.published.id),
            "user_id": str(w.user_id("other_instructor")),
        }
    )


async def other_instructor_co_teaching(w: LearningWorld, actor: str) -> Call:
    """The other instructor made co-instructor of the published course first."""
    async with w.api.app[keys.DATABASE].transaction() as session:
        session.add(
            CourseInstructor(
                course_id=w.courses.published.id, user_id=w.user_id("other_instructor")
            )
        )
    return await other_instructor_path(w, actor)


def co_instructor_after(present_for_teachers: bool) -> LearningCheck:
    async def check(w: LearningWorld, actor: str, body: Any) -> None:
        count = await w.scalar(
            select(func.count())
            .select_from(CourseInstructor)
            .where(CourseInstructor.user_id == w.user_id("other_instructor"))
        )
        added = actor in TEACHERS
        expected = present_for_teachers if added else not present_for_teachers
        assert bool(count) == expected

    return check


async def current_outline(w: LearningWorld, actor: str) -> Call:
    c = w.courses
    body = {
        "sections": [
            {
                "id": str(c.section.id),
                "lessons": [str(c.quiz.id), str(c.text.id), str(c.preview.id)],
            }
        ]
    }
    return Call(json=body, path={"course_id": str(c.published.id)})


async def completions(w: LearningWorld) -> int:
    return int(await w.scalar(select(func.count()).select_from(LessonCompletion)) or 0)


async def completed_by_student_only(w: LearningWorld, actor: str, body: Any) -> None:
    assert await completions(w) == (1 if actor == "student" else 0)


def sections_count_for_teachers(delta: int) -> LearningCheck:
    async def check(w: LearningWorld, actor: str, body: Any) -> None:
        count = await w.scalar(
            select(func.count())
            .select_from(Section)
            .where(Section.course_id == w.courses.published.id)
        )
        assert count == 1 + (delta if actor in TEACHERS else 0)

    return check


def lessons_count_for_teachers(delta: int) -> LearningCheck:
    async def check(w: LearningWorld, actor: str, body: Any) -> None:
        count = await w.scalar(
            select(func.count())
            .select_from(Lesson)
            .where(Lesson.course_id == w.courses.published.id)
        )
        assert count == 3 + (delta if actor in TEACHERS else 0)

    return check


def reads_lesson(lesson: str) -> LearningCheck:
    async def check(w: LearningWorld, actor: str, body: Any) -> None:
        if body and "body" in body:
            assert body["id"] == str(getattr(w.courses, lesson).id)

    return check


def enrolled(**status: str | None) -> LearningCheck:
    """The published course's enrollment status of each signed-in actor after the call."""

    async def check(w: LearningWorld, actor: str, body: Any) -> None:
        expected = {"student": EnrollmentStatus.COMPLETED.value} | status
        for name in SIGNED_IN:
            found = await w.scalar(
                select(Enrollment.status).where(
                    Enrollment.user_id == w.user_id(name),
                    Enrollment.course_id == w.courses.published.id,
                )
            )
            untouched = EnrollmentStatus.COMPLETED.value if name == "student" else None
            want = expected.get(name) if name == actor else untouched
            assert found == want, name

    return check


def slug_of(course: str) -> LearningBuild:
    async def build(w: LearningWorld, actor: str) -> Call:
        return Call(path={"slug": getattr(w.courses, course).slug})

    return build


async def draft_kept_unless_teacher(w: LearningWorld, actor: str, body: Any) -> None:
    found = await w.scalar(select(func.count()).where(Course.id == w.courses.draft.id))
    assert found == (0 if actor in TEACHERS else 1)


async def lists_own_courses(w: LearningWorld, actor: str, body: Any) -> None:
    if actor in ("instructor", "admin"):
        assert {c["slug"] for c in body["items"]} == {"published-course", "draft-course"}
    elif actor == "other_instructor":
        assert body["items"] == []


INSTRUCTORS = signed_in(
    403, "forbidden", instructor=(201, None), other_instructor=(201, None), admin=(201, None)
)

COURSE_ROWS: list[LearningRow] = [
    # ---- the public catalog: published courses for everyone; drafts for their teachers only.
    LearningRow("GET", "/api/v1/catalog", public(200), send_learning()),
    LearningRow("GET", "/api/v1/catalog/{slug}", public(200), slug_of("published")),
    LearningRow(
        "GET",
        "/api/v1/catalog/{slug}",
        {
            **dict.fromkeys(ACTORS, (404, "course_not_found")),
            "instructor": (200, None),
            "admin": (200, None),
        },
        slug_of("draft"),
        variant="draft",
    ),
    # ---- authoring: instructors and admins create and list; each touches only their courses.
    LearningRow(
        "POST", "/api/v1/courses", INSTRUCTORS, send_learning({"title": "A brand new course"})
    ),
    LearningRow(
        "GET",
        "/api/v1/courses",
        {k: ((200, None) if v[0] == 201 else v) for k, v in INSTRUCTORS.items()},
        send_learning(),
        lists_own_courses,
    ),
    LearningRow(
        "GET", "/api/v1/courses/{course_id}", teachers_only(200), on(course_id="published")
    ),
    LearningRow(
        "PATCH",
        "/api/v1/courses/{course_id}",
        teachers_only(200),
        with_body({"title": "Retitled course"}, course_id="published"),
        title_changed_for_teachers("published", "Retitled course"),
    ),
    LearningRow(
        "DELETE",
        "/api/v1/courses/{course_id}",
        teachers_only(204),
        on(course_id="draft"),
        draft_kept_unless_teacher,
    ),
    LearningRow(
        "POST",
        "/api/v1/courses/{course_id}/publish",
        teachers_only(200),
        on(course_id="draft"),
        course_status_for_teachers("draft", CourseStatus.PUBLISHED.value),
    ),
    LearningRow(
        "POST",
        "/api/v1/courses/{course_id}/archive",
        teachers_only(200),
        on(course_id="published"),
        course_status_for_teachers("published", CourseStatus.ARCHIVED.value),
    ),
    # Co-instructors: only the owner or an admin (the other instructor asks to join: 403).
    LearningRow(
        "PUT",
        "/api/v1/courses/{course_id}/instructors/{user_id}",
        teachers_only(200),
        other_instructor_path,
        co_instructor_after(present_for_teachers=True),
    ),
    # The other instructor co-teaches; removing them: owner or admin; they may not themselves.
    LearningRow(
        "DELETE",
        "/api/v1/courses/{course_id}/instructors/{user_id}",
        teachers_only(204),
        other_instructor_co_teaching,
        co_instructor_after(present_for_teachers=False),
    ),
]

OUTLINE_ROWS: list[LearningRow] = [
    # ---- outline authoring: roles instructor/admin, then the course's own instructors.
    LearningRow(
        "POST",
        "/api/v1/courses/{course_id}/sections",
        teachers_only(201),
        with_body({"title": "Part two"}, course_id="published"),
        sections_count_for_teachers(1),
    ),
    LearningRow(
        "PATCH",
        "/api/v1/sections/{section_id}",
        teachers_only(200),
        with_body({"title": "Renamed part"}, section_id="section"),
    ),
    LearningRow(
        "DELETE",
        "/api/v1/sections/{section_id}",
        teachers_only(204),
        on(section_id="section"),
        sections_count_for_teachers(-1),
    ),
    LearningRow(
        "POST",
        "/api/v1/sections/{section_id}/lessons",
        teachers_only(201),
        with_body({"title": "New", "kind": "text", "body": "Hello"}, section_id="section"),
        lessons_count_for_teachers(1),
    ),
    LearningRow(
        "PATCH",
        "/api/v1/lessons/{lesson_id}",
        teachers_only(200),
        with_body({"title": "Retitled"}, lesson_id="text"),
    ),
    LearningRow(
        "DELETE",
        "/api/v1/lessons/{lesson_id}",
        teachers_only(204),
        on(lesson_id="text"),
        lessons_count_for_teachers(-1),
    ),
    LearningRow(
        "GET", "/api/v1/courses/{course_id}/outline", teachers_only(200), on(course_id="published")
    ),
    LearningRow("PUT", "/api/v1/courses/{course_id}/outline", teachers_only(200), current_outline),
    # ---- reading a lesson: enrolled learners, the course's instructors, admins.
    LearningRow(
        "GET",
        "/api/v1/lessons/{lesson_id}",
        signed_in(
            403,
            "enrollment_required",
            student=(200, None),
            instructor=(200, None),
            admin=(200, None),
        ),
        on(lesson_id="text"),
        reads_lesson("text"),
    ),
    LearningRow(
        "GET",
        "/api/v1/lessons/{lesson_id}",
        signed_in(200),
        on(lesson_id="preview"),
        reads_lesson("preview"),
        variant="preview lesson",
    ),
    LearningRow(
        "GET",
        "/api/v1/lessons/{lesson_id}",
        signed_in(404, "lesson_not_found", instructor=(200, None), admin=(200, None)),
        on(lesson_id="draft_lesson"),
        reads_lesson("draft_lesson"),
        variant="draft course",
    ),
]

ENROLLMENT_ROWS: list[LearningRow] = [
    # Any signed-in caller may enroll in a published free course, except its instructors.
    LearningRow(
        "POST",
        "/api/v1/courses/{course_id}/enrollment",
        signed_in(
            201,
            student=(200, None),
            instructor=(409, "teaches_course"),
        ),
        on(course_id="published"),
        enrolled(other_student="active", other_instructor="active", admin="active"),
    ),
    LearningRow(
        "DELETE",
        "/api/v1/courses/{course_id}/enrollment",
        learners_only(204, (404, "enrollment_not_found")),
        on(course_id="published"),
        enrolled(student="cancelled"),
    ),
    LearningRow("GET", "/api/v1/users/me/enrollments", signed_in(200), send_learning()),
    LearningRow(
        "GET",
        "/api/v1/courses/{course_id}/progress",
        learners_only(200, (404, "enrollment_not_found")),
        on(course_id="published"),
    ),
    LearningRow(
        "POST",
        "/api/v1/lessons/{lesson_id}/complete",
        learners_only(200, (403, "enrollment_required")),
        on(lesson_id="text"),
        completed_by_student_only,
    ),
    LearningRow(
        "POST",
        "/api/v1/lessons/{lesson_id}/open",
        learners_only(204, (403, "enrollment_required")),
        on(lesson_id="text"),
    ),
    LearningRow(
        "GET",
        "/api/v1/courses/{course_id}/enrollments",
        teachers_only(200),
        on(course_id="published"),
    ),
]


async def certificate_path(w: LearningWorld, actor: str) -> Call:
    return Call(path={"number": CERTIFICATE})


async def revoke_body(w: LearningWorld, actor: str) -> Call:
    return Call(json={"reason": "Issued by mistake"}, path={"number": CERTIFICATE})


async def lists_own_certificates(w: LearningWorld, actor: str, body: Any) -> None:
    if actor == ANONYMOUS:
        return
    numbers = [item["number"] for item in body["items"]]
    assert numbers == ([CERTIFICATE] if actor == "student" else [])


async def revoked_by_admin_only(w: LearningWorld, actor: str, body: Any) -> None:
    status = await w.scalar(select(Certificate.status).where(Certificate.number == CERTIFICATE))
    revoked = CertificateStatus.REVOKED.value
    assert status == (revoked if actor == "admin" else CertificateStatus.ISSUED.value)


async def reissued_by_admin_only(w: LearningWorld, actor: str, body: Any) -> None:
    await w.api.app[keys.BROKER].wait_all()  # type: ignore[attr-defined]
    when = await w.scalar(select(Certificate.reissued_at).where(Certificate.number == CERTIFICATE))
    assert (when is not None) == (actor == "admin")


CERTIFICATE_ROWS: list[LearningRow] = [
    # Anyone may verify a number; the answer shows name, course and date only.
    LearningRow("GET", "/api/v1/certificates/{number}/verify", public(200), certificate_path),
    # The PDF: its learner, the course's instructors, admins; 404 for everyone else.
    LearningRow(
        "GET",
        "/api/v1/certificates/{number}/pdf",
        signed_in(
            404,
            "certificate_not_found",
            student=(200, None),
            instructor=(200, None),
            admin=(200, None),
        ),
        certificate_path,
    ),
    LearningRow(
        "GET",
        "/api/v1/users/me/certificates",
        signed_in(200),
        send_learning(),
        lists_own_certificates,
    ),
    LearningRow(
        "POST",
        "/api/v1/admin/certificates/{number}/revoke",
        admin_only(200),
        revoke_body,
        revoked_by_admin_only,
    ),
    LearningRow(
        "POST",
        "/api/v1/admin/certificates/{number}/reissue",
        admin_only(202),
        certificate_path,
        reissued_by_admin_only,
    ),
]

ROWS: list[LearningRow] = COURSE_ROWS + OUTLINE_ROWS + ENROLLMENT_ROWS + CERTIFICATE_ROWS

CELLS = [pytest.param(actor, row, id=row.id_for(actor)) for row in ROWS for actor in ACTORS]


@pytest.mark.parametrize(("actor", "row"), CELLS)
async def test_learning_authorization(api: Api, actor: str, row: LearningRow) -> None:
    w = await build_learning_world(api)
    call = await row.build(w, actor)
    kwargs: dict[str, Any] = {"headers": w.headers(actor)}
    if call.json is not None:
        kwargs["json"] = call.json
    response = await api.client.request(row.method, row.path.format(**call.path), **kwargs)
    body = await response.json() if response.content_type == "application/json" else None
    code = body.get("error") if response.status >= 400 and isinstance(body, dict) else None
    assert (response.status, code) == row.expect[actor], body
    if row.then is not None:
        await row.then(w, actor, body)


def test_every_row_names_every_actor() -> None:
    for row in ROWS:
        assert set(row.expect) == set(ACTORS), row.id_for("*")
    assert ANONYMOUS in ACTORS
    assert set(STUDENTS) <= set(ACTORS)
