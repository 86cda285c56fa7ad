"""Enrolling, leaving and the instructors' roster: what callers see (status, code, body) and
what the database keeps (one row per learner and course, `enrollment_count` in step), also
under concurrent double enrolls and on the embedded SQLite default.

The helpers here (people, courses with outlines) are shared with tests/test_progress_api.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from lms_live import keys, migrations
from lms_live.app import create_app
from lms_live.auth.models import Role, User
from lms_live.core.db import Database, make_engine, utcnow
from lms_live.core.security import Principal
from lms_live.courses.models import (
    Course,
    CourseInstructor,
    CourseStatus,
    Lesson,
    LessonKind,
    Section,
)
from lms_live.enrollments import service
from lms_live.enrollments.models import Enrollment, EnrollmentStatus
from tests.authkit import Api
from tests.conftest import make_settings

# --------------------------------------------------------------------------- helpers

# One outline: sections of (title, kind, required) lessons, in outline order.
Outline = Sequence[Sequence[tuple[str, LessonKind, bool]]]
TWO_SECTIONS: Outline = (
    (("Intro", LessonKind.TEXT, True), ("Tour", LessonKind.VIDEO, True)),
    (("Extra", LessonKind.TEXT, False), ("Practice", LessonKind.FILE, True)),
)


@dataclass
class Person:
    user: User
    headers: dict[str, str]

    @property
    def id(self) -> uuid.UUID:
        return self.user.id


@dataclass
class Built:
    course: Course
    lessons: list[Lesson]  # in outline order

    @property
    def id(self) -> uuid.UUID:
        return self.course.id

    def lesson(self, title: str) -> Lesson:
        return next(lesson for lesson in self.lessons if lesson.title == title)


def headers_for(app: Any, user: User) -> dict[str, str]:
    token = app[keys.TOKENS].issue(user_id=user.id, role=user.role)
    return {"Authorization": f"Bearer {token}"}


async def person(
    api: Api, role: Role = Role.STUDENT, *, name: str | None = None, email: str | None = None
) -> Person:
    """A user (any name and email) and an Authorization header for them."""
    async with api.app[keys.DATABASE].transaction() as session:
        user = User(
            email=email or f"{uuid.uuid4().hex[:10]}@example.org",
            full_name=name or f"Test {role.value}",
            password_hash="x",
            role=role.value,
            email_verified_at=utcnow(),
        )
        session.add(user)
    return Person(user, headers_for(api.app, user))


async def build_course(
    api: Api,
    owner: Person,
    *,
    outline: Outline = TWO_SECTIONS,
    status: CourseStatus = CourseStatus.PUBLISHED,
    price_minor: int = 0,
    currency: str = "EUR",
    co_instructors: Sequence[Person] = (),
) -> Built:
    """A course with its outline. Sections and lessons are inserted last position first, so
    only `position` can give the outline order."""
    async with api.app[keys.DATABASE].transaction() as session:
        course = Course(
            slug=uuid.uuid4().hex,
            title=f"Course {uuid.uuid4().hex[:6]}",
            owner_id=owner.id,
            status=status.value,
            price_minor=price_minor,
            currency=currency,
            published_at=utcnow() if status != CourseStatus.DRAFT else None,
        )
        session.add(course)
        await session.flush()
        for teacher in co_instructors:
            session.add(CourseInstructor(course_id=course.id, user_id=teacher.id))
        by_section: list[list[Lesson]] = []
        for s_pos in reversed(range(len(outline))):
            section = Section(course_id=course.id, title=f"Section {s_pos}", position=s_pos)
            session.add(section)
            await session.flush()
            lessons: list[Lesson] = []
            for l_pos in reversed(range(len(outline[s_pos]))):
                title, kind, required = outline[s_pos][l_pos]
                lesson = Lesson(
                    section_id=section.id,
                    course_id=course.id,
                    title=title,
                    kind=kind.value,
                    position=l_pos,
                    is_required=required,
                )
                session.add(lesson)
                await session.flush()
                lessons.insert(0, lesson)
            by_section.insert(0, lessons)
    return Built(course, [lesson for lessons in by_section for lesson in lessons])


async def scalar(api: Api, statement: Any) -> Any:
    async with api.app[keys.DATABASE].sessions() as session:
        return await session.scalar(statement)


async def enrollment_count(api: Api, course_id: uuid.UUID) -> int:
    return int(await scalar(api, select(Course.enrollment_count).where(Course.id == course_id)))


async def enrollment_row(api: Api, user: Person, course_id: uuid.UUID) -> Enrollment | None:
    found: Enrollment | None = await scalar(
        api,
        select(Enrollment).where(Enrollment.user_id == user.id, Enrollment.course_id == course_id),
    )
    return found


async def rows_of(api: Api, course_id: uuid.UUID) -> int:
    statement = select(func.count()).select_from(Enrollment)
    return int(await scalar(api, statement.where(Enrollment.course_id == course_id)))


async def enroll(api: Api, who: Person, course_id: uuid.UUID) -> tuple[int, dict[str, Any]]:
    response = await api.client.post(f"/api/v1/courses/{course_id}/enrollment", headers=who.headers)
    body: dict[str, Any] = await response.json()
    return response.status, body


async def unenroll(api: Api, who: Person, course_id: uuid.UUID) -> tuple[int, Any]:
    response = await api.client.delete(
        f"/api/v1/courses/{course_id}/enrollment", headers=who.headers
    )
    body = await response.json() if response.content_type == "application/json" else None
    return response.status, body


async def complete(api: Api, who: Person, lesson: Lesson) -> tuple[int, dict[str, Any]]:
    response = await api.client.post(f"/api/v1/lessons/{lesson.id}/complete", headers=who.headers)
    body: dict[str, Any] = await response.json()
    return response.status, body


def error(status: int, body: Any) -> tuple[int, Any]:
    return status, body.get("error") if isinstance(body, dict) else None


# --------------------------------------------------------------------------- enrolling


async def test_enroll_creates_once_then_answers_the_same_enrollment(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner)
    student = await person(api)

    status, body = await enroll(api, student, built.id)
    assert status == 201, body
    assert body["course_id"] == str(built.id)
    assert body["user_id"] == str(student.id)
    assert body["status"] == "active"
    assert body["progress_percent"] == 0.0
    assert body["completed_at"] is None
    assert body["cancelled_at"] is None
    assert body["last_lesson_id"] is None

    again_status, again = await enroll(api, student, built.id)
    assert again_status == 200
    assert again == body
    assert await rows_of(api, built.id) == 1
    assert await enrollment_count(api, built.id) == 1


async def test_enroll_is_refused_for_drafts_archived_and_own_courses(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    co = await person(api, Role.INSTRUCTOR)
    admin = await person(api, Role.ADMIN)
    student = await person(api)
    draft = await build_course(api, owner, status=CourseStatus.DRAFT, co_instructors=[co])
    archived = await build_course(api, owner, status=CourseStatus.ARCHIVED)
    published = await build_course(api, owner, co_instructors=[co])

    cases = [
        (student, draft.id, 404, "course_not_found"),
        (owner, draft.id, 409, "course_not_published"),
        (co, draft.id, 409, "course_not_published"),
        (admin, draft.id, 409, "course_not_published"),
        (student, archived.id, 409, "course_not_open"),
        (owner, published.id, 409, "teaches_course"),
        (co, published.id, 409, "teaches_course"),
        (student, uuid.uuid4(), 404, "course_not_found"),
    ]
    for who, course_id, status, code in cases:
        assert error(*await enroll(api, who, course_id)) == (status, code), (who.user.role, code)
    for built in (draft, archived, published):
        assert await rows_of(api, built.id) == 0
        assert await enrollment_count(api, built.id) == 0

    anonymous = await api.client.post(f"/api/v1/courses/{published.id}/enrollment")
    assert anonymous.status == 401
    bad = await api.client.post("/api/v1/courses/not-a-uuid/enrollment", headers=student.headers)
    assert bad.status == 422
    assert (await bad.json())["error"] == "validation_failed"


async def test_admins_and_other_instructors_may_enroll(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner)
    for role in (Role.ADMIN, Role.INSTRUCTOR):
        who = await person(api, role)
        assert (await enroll(api, who, built.id))[0] == 201
    assert await enrollment_count(api, built.id) == 2


async def test_paid_course_answers_402_with_its_price(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    paid = await build_course(api, owner, price_minor=4900, currency="USD")
    student = await person(api)

    status, body = await enroll(api, student, paid.id)
    assert status == 402
    assert body["error"] == "payment_required"
    assert body["details"] == [{"price_minor": 4900, "currency": "USD"}]
    assert await rows_of(api, paid.id) == 0
    assert await enrollment_count(api, paid.id) == 0


async def test_leaving_and_returning_keeps_progress_and_the_count(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner)
    ann, bob = await person(api), await person(api)

    _, first = await enroll(api, ann, built.id)
    assert (await enroll(api, bob, built.id))[0] == 201
    assert await enrollment_count(api, built.id) == 2
    assert (await complete(api, ann, built.lesson("Intro")))[0] == 200

    assert await unenroll(api, ann, built.id) == (204, None)
    row = await enrollment_row(api, ann, built.id)
    assert row is not None
    assert row.status == EnrollmentStatus.CANCELLED
    assert row.cancelled_at is not None
    assert await enrollment_count(api, built.id) == 1
    assert await unenroll(api, ann, built.id) == (204, None)  # idempotent
    assert await enrollment_count(api, built.id) == 1

    status, back = await enroll(api, ann, built.id)
    assert status == 201
    assert back["id"] == first["id"]
    assert back["status"] == "active"
    assert back["cancelled_at"] is None
    assert back["progress_percent"] == pytest.approx(33.33)
    assert back["enrolled_at"] == first["enrolled_at"]
    assert await enrollment_count(api, built.id) == 2
    assert (await enroll(api, ann, built.id))[0] == 200
    assert await enrollment_count(api, built.id) == 2
    assert await rows_of(api, built.id) == 2


async def test_leaving_when_not_enrolled_is_404(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner)
    student = await person(api)
    assert error(*await unenroll(api, student, built.id)) == (404, "enrollment_not_found")
    assert error(*await unenroll(api, student, uuid.uuid4())) == (404, "course_not_found")
    anonymous = await api.client.delete(f"/api/v1/courses/{built.id}/enrollment")
    assert anonymous.status == 401


async def test_returning_after_completing_is_completed_again(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner, outline=[[("Only", LessonKind.TEXT, True)]])
    student = await person(api)
    await enroll(api, student, built.id)
    assert (await complete(api, student, built.lessons[0]))[1]["status"] == "completed"
    await unenroll(api, student, built.id)

    status, body = await enroll(api, student, built.id)
    assert status == 201
    assert body["status"] == "completed"
    assert body["progress_percent"] == 100.0
    assert body["completed_at"] is not None
    assert await enrollment_count(api, built.id) == 1


async def test_archived_course_keeps_its_learners_but_takes_no_returns(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner)
    stays, leaves = await person(api), await person(api)
    await enroll(api, stays, built.id)
    await enroll(api, leaves, built.id)
    await unenroll(api, leaves, built.id)
    async with api.app[keys.DATABASE].transaction() as session:
        course = await session.get(Course, built.id)
        assert course is not None
        course.status = CourseStatus.ARCHIVED.value

    assert (await enroll(api, stays, built.id))[0] == 200
    assert error(*await enroll(api, leaves, built.id)) == (409, "course_not_open")
    assert await enrollment_count(api, built.id) == 1


async def test_price_applies_only_to_new_places(api: Api) -> None:
    """A learner already in a course that later got a price is not asked to pay again."""
    owner = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner)
    student = await person(api)
    await enroll(api, student, built.id)
    async with api.app[keys.DATABASE].transaction() as session:
        course = await session.get(Course, built.id)
        assert course is not None
        course.price_minor = 1000
    assert (await enroll(api, student, built.id))[0] == 200
    await unenroll(api, student, built.id)
    assert error(*await enroll(api, student, built.id)) == (402, "payment_required")
    assert await enrollment_count(api, built.id) == 0


@pytest.mark.shared_db
async def test_concurrent_double_enroll_creates_one_row(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner)
    students = [await person(api) for _ in range(3)]

    results = await asyncio.gather(
        *(enroll(api, who, built.id) for who in students for _ in range(4))
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 9 + [201] * 3
    for who in students:
        ids = {body["id"] for (status, body) in results if body["user_id"] == str(who.id)}
        assert len(ids) == 1
    assert await rows_of(api, built.id) == 3
    assert await enrollment_count(api, built.id) == 3


@pytest.mark.shared_db
async def test_enroll_that_loses_the_unique_race_reads_the_winners_row(api: Api) -> None:
    """Deterministic race: the first transaction has inserted but not committed when the
    second enrolls; the second waits on the unique index, loses, and answers the row."""
    owner = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner)
    student = await person(api)
    principal = Principal(user_id=student.id, role="student", jti="test", expires_at=utcnow())
    database = api.app[keys.DATABASE]

    async def second() -> service.Enrolled:
        async with database.transaction() as session:
            return await service.enroll(session, principal=principal, course_id=built.id)

    async with database.transaction() as session:
        first = await service.enroll(session, principal=principal, course_id=built.id)
        assert first.created
        loser = asyncio.create_task(second())
        await asyncio.sleep(0.3)  # let it block on the uncommitted row
        assert not loser.done()
    lost = await asyncio.wait_for(loser, 10)
    assert not lost.created
    assert lost.enrollment.id == first.enrollment.id
    assert await rows_of(api, built.id) == 1
    assert await enrollment_count(api, built.id) == 1


async def test_enrolling_works_on_the_embedded_sqlite_default(
    aiohttp_client: Any, tmp_path: Path, worker_id: str, smtp: Any
) -> None:
    """No DATABASE_URL, no REDIS_URL: the same rules on SQLite, including the savepoint that
    absorbs a duplicate insert."""
    settings = make_settings(tmp_path, worker_id, pg_url=None, redis_url=None)
    await asyncio.to_thread(migrations.upgrade, "head", url=settings.effective_database_url)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    api = Api(client, smtp[0])
    owner = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner)
    student = await person(api)

    assert (await enroll(api, student, built.id))[0] == 201
    assert (await enroll(api, student, built.id))[0] == 200
    status, progress = await complete(api, student, built.lesson("Tour"))
    assert status == 200
    assert progress["resume"]["title"] == "Intro"
    mine = await api.client.get("/api/v1/users/me/enrollments", headers=student.headers)
    assert (await mine.json())["items"][0]["resume"]["title"] == "Intro"
    roster = await api.client.get(
        f"/api/v1/courses/{built.id}/enrollments?sort=last_activity&q=TEST",
        headers=owner.headers,
    )
    assert (await roster.json())["total"] == 1
    assert await unenroll(api, student, built.id) == (204, None)
    assert (await enroll(api, student, built.id))[0] == 201
    assert await enrollment_count(api, built.id) == 1

    engine = make_engine(settings)
    try:
        async with Database.from_engine(engine).transaction() as session:
            assert await service._insert(session, user_id=student.id, course_id=built.id) is None
            count = await session.scalar(select(func.count()).select_from(Enrollment))
            assert count == 1  # the transaction is still usable after the savepoint
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- roster


async def roster(api: Api, who: Person, course_id: uuid.UUID, query: str = "") -> Any:
    response = await api.client.get(
        f"/api/v1/courses/{course_id}/enrollments{query}", headers=who.headers
    )
    return response.status, await response.json()


def names(page: dict[str, Any]) -> list[str]:
    return [item["user"]["full_name"] for item in page["items"]]


async def test_roster_lists_filters_sorts_and_pages(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner)
    cleo = await person(api, name="Cleo Park", email="cleo@example.org")
    ann = await person(api, name="ann Lee", email="ann_lee@example.org")
    bob = await person(api, name="Bob 100% Real", email="bob@example.net")
    dan = await person(api, name="Dan Gone", email="dan@example.org")
    for who in (cleo, ann, bob, dan):  # enrolled_at: cleo oldest, dan newest
        await enroll(api, who, built.id)
    await unenroll(api, dan, built.id)
    await complete(api, bob, built.lesson("Intro"))
    await complete(api, bob, built.lesson("Tour"))
    await complete(api, cleo, built.lesson("Intro"))  # cleo: most recent activity, ann: none

    status, page = await roster(api, owner, built.id)
    assert status == 200
    assert names(page) == ["ann Lee", "Bob 100% Real", "Cleo Park"]
    assert page["total"] == 3
    first = page["items"][0]
    assert first["user"] == {"id": str(ann.id), "full_name": "ann Lee", "email": ann.user.email}
    row = await enrollment_row(api, ann, built.id)
    assert row is not None
    assert first["enrollment_id"] == str(row.id)
    assert first["status"] == "active"
    assert first["progress_percent"] == 0.0
    assert first["last_activity_at"] is None
    assert first["completed_at"] is None
    assert first["enrolled_at"]

    assert names((await roster(api, owner, built.id, "?sort=progress"))[1]) == [
        "Bob 100% Real",
        "Cleo Park",
        "ann Lee",
    ]
    assert names((await roster(api, owner, built.id, "?sort=last_activity"))[1]) == [
        "Cleo Park",
        "Bob 100% Real",
        "ann Lee",
    ]
    assert names((await roster(api, owner, built.id, "?sort=enrolled_at"))[1]) == [
        "Bob 100% Real",
        "ann Lee",
        "Cleo Park",
    ]
    assert names((await roster(api, owner, built.id, "?status=cancelled"))[1]) == ["Dan Gone"]

    searches = {
        "CLEO": ["Cleo Park"],
        "example.org": ["ann Lee", "Cleo Park"],
        "100%25": ["Bob 100% Real"],  # a literal %
        "%25": ["Bob 100% Real"],
        "_": ["ann Lee"],  # a literal _ (only in ann_lee@...)
        "%5C": [],  # a literal backslash
        "nobody": [],
    }
    for q, expected in searches.items():
        _, found = await roster(api, owner, built.id, f"?q={q}")
        assert names(found) == expected, q
        assert found["total"] == len(expected)

    status, paged = await roster(api, owner, built.id, "?limit=1&offset=1")
    assert status == 200
    assert names(paged) == ["Bob 100% Real"]
    assert (paged["total"], paged["limit"], paged["offset"]) == (3, 1, 1)


async def test_roster_is_for_the_course_teachers_only(api: Api) -> None:
    owner = await person(api, Role.INSTRUCTOR)
    co = await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner, co_instructors=[co])
    student = await person(api)
    await enroll(api, student, built.id)

    for who in (owner, co, await person(api, Role.ADMIN)):
        status, page = await roster(api, who, built.id)
        assert status == 200
        assert page["total"] == 1
    for who in (await person(api, Role.INSTRUCTOR), student):
        assert error(*await roster(api, who, built.id)) == (403, "forbidden")
    assert error(*await roster(api, owner, uuid.uuid4())) == (404, "course_not_found")
    anonymous = await api.client.get(f"/api/v1/courses/{built.id}/enrollments")
    assert anonymous.status == 401
    for query in ("?sort=age", "?limit=0", "?limit=101", "?offset=-1", "?status=gone", "?q=a%00"):
        assert error(*await roster(api, owner, built.id, query)) == (422, "validation_failed")
