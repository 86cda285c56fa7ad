"""Enrollment and progress rules: who may enroll, enrolling and leaving, completing and opening
lessons, and the learner's and instructors' views of progress.

Invariants kept here (with models.py and progress.py):
- one enrollment per (user, course): a first enroll inserts under a savepoint; the loser of a
  concurrent double enroll hits the unique constraint and reads the winner's row instead;
- `course.enrollment_count` moves by `UPDATE ... SET enrollment_count = enrollment_count +/- 1`
  in the transaction that moves an enrollment into or out of `cancelled`;
- completing a lesson locks the enrollment row first (`SELECT ... FOR UPDATE`), so concurrent
  completions serialise and the course is completed exactly once;
- whether a caller may enroll at all (free or paid) is decided in `admission` only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.auth.models import User
from lms_live.certificates.tasks import ISSUE as ISSUE_CERTIFICATE
from lms_live.core.db import like_contains, utcnow
from lms_live.core.errors import (
    ConcurrentUpdate,
    Conflict,
    EnrollmentRequired,
    NotFound,
    PaymentRequired,
)
from lms_live.core.security import Principal
from lms_live.courses.access import (
    CourseNotFound,
    ensure_teaches,
    get_course,
    may_teach,
    teaches,
)
from lms_live.courses.models import Course, CourseStatus, Lesson, LessonKind, Section
from lms_live.enrollments.access import OPEN
from lms_live.enrollments.models import Enrollment, EnrollmentStatus, LessonCompletion
from lms_live.enrollments.progress import ProgressChange, recompute_enrollment, required_lessons
from lms_live.enrollments.schemas import RosterSort

if TYPE_CHECKING:
    from lms_live.core.uow import UnitOfWork


class EnrollmentNotFound(NotFound):
    code = "enrollment_not_found"
    message = "You are not enrolled in this course."


class LessonNotFound(NotFound):
    code = "lesson_not_found"
    message = "No such lesson."


class CourseNotPublished(Conflict):
    code = "course_not_published"
    message = "This course is not published yet: nobody can enroll in it."


class CourseNotOpen(Conflict):
    code = "course_not_open"
    message = "This course is archived and takes no new enrollments."


class TeachesCourse(Conflict):
    code = "teaches_course"
    message = "You teach this course; its instructors do not enroll in it."


class CourseNotFree(PaymentRequired):
    code = "payment_required"
    message = "This course must be bought before enrolling."


class QuizLesson(Conflict):
    code = "quiz_lesson"
    message = "A quiz lesson is completed by passing its quiz."


@dataclass(frozen=True, slots=True)
class Enrolled:
    """The caller's enrollment; `created` when this call created or re-activated it."""

    enrollment: Enrollment
    created: bool


@dataclass(frozen=True, slots=True)
class Resume:
    """Where the learner continues."""

    lesson_id: uuid.UUID
    title: str


@dataclass(frozen=True, slots=True)
class Progress:
    """One learner's progress in one course."""

    enrollment: Enrollment
    completed_lesson_ids: list[uuid.UUID]  # outline order, required or not
    completed_lessons: int  # required ones
    required_lessons: int
    resume: Resume | None


@dataclass(frozen=True, slots=True)
class MyEnrollment:
    enrollment: Enrollment
    course_slug: str
    course_title: str
    resume: Resume | None


@dataclass(frozen=True, slots=True)
class RosterEntry:
    enrollment: Enrollment
    user_id: uuid.UUID
    full_name: str
    email: str


# --------------------------------------------------------------------------- enrolling


async def admission(session: AsyncSession, *, course: Course, principal: Principal) -> None:
    """May the caller take a place in this published course now? Free courses admit everyone;
    a paid one answers 402 with its price. The payments work replaces this function."""
    if course.price_minor > 0:
        raise CourseNotFree(
            details=[{"price_minor": course.price_minor, "currency": course.currency}]
        )


async def enroll(session: AsyncSession, *, principal: Principal, course_id: uuid.UUID) -> Enrolled:
    """Enroll the caller (or re-activate a cancelled enrollment, progress and `enrolled_at`
    kept); an active or completed enrollment is returned unchanged, even if the course has
    since been archived or priced. A draft is hidden (404) except from those who may teach
    it (409)."""
    course = await get_course(session, course_id=course_id)
    if course.status == CourseStatus.DRAFT:
        if await may_teach(session, principal=principal, course=course):
            raise CourseNotPublished()
        raise CourseNotFound()
    if await teaches(session, user_id=principal.user_id, course=course):
        raise TeachesCourse()
    for _ in range(3):
        enrollment = await _enrollment(
            session, user_id=principal.user_id, course_id=course.id, lock=True
        )
        if enrollment is not None and enrollment.status in OPEN:
            return Enrolled(enrollment, created=False)
        if course.status != CourseStatus.PUBLISHED:
            raise CourseNotOpen()
        await admission(session, course=course, principal=principal)
        if enrollment is None:
            enrollment = await _insert(session, user_id=principal.user_id, course_id=course.id)
            if enrollment is None:
                continue  # a concurrent enroll won the unique constraint: read its row
        else:
            enrollment.status = (
                EnrollmentStatus.COMPLETED.value
                if enrollment.completed_at is not None
                else EnrollmentStatus.ACTIVE.value
            )
            enrollment.cancelled_at = None
        await _count(session, course, +1)
        return Enrolled(enrollment, created=True)
    raise ConcurrentUpdate()


async def cancel(session: AsyncSession, *, user_id: uuid.UUID, course_id: uuid.UUID) -> None:
    """Leave a course: status `cancelled`, progress kept. Leaving twice changes nothing."""
    course = await get_course(session, course_id=course_id)
    enrollment = await _enrollment(session, user_id=user_id, course_id=course.id, lock=True)
    if enrollment is None:
        raise EnrollmentNotFound()
    if enrollment.status == EnrollmentStatus.CANCELLED:
        return
    enrollment.status = EnrollmentStatus.CANCELLED.value
    enrollment.cancelled_at = utcnow()
    await _count(session, course, -1)


async def _enrollment(
    session: AsyncSession, *, user_id: uuid.UUID, course_id: uuid.UUID, lock: bool = False
) -> Enrollment | None:
    query = select(Enrollment).where(
        Enrollment.user_id == user_id, Enrollment.course_id == course_id
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found: Enrollment | None = await session.scalar(query)
    return found


async def _insert(
    session: AsyncSession, *, user_id: uuid.UUID, course_id: uuid.UUID
) -> Enrollment | None:
    """A new active enrollment, or None when the (user, course) row already exists. The
    savepoint keeps the transaction usable after the unique violation (PostgreSQL, SQLite)."""
    enrollment = Enrollment(
        user_id=user_id,
        course_id=course_id,
        status=EnrollmentStatus.ACTIVE.value,
        enrolled_at=utcnow(),
        progress_percent=0.0,
    )
    try:
        async with session.begin_nested():
            session.add(enrollment)
    except IntegrityError:
        return None
    return enrollment


async def _count(session: AsyncSession, course: Course, delta: int) -> None:
    """Move the course's enrollment count in SQL (no read-modify-write), never below 0."""
    moved = Course.enrollment_count + delta
    await session.execute(
        update(Course)
        .where(Course.id == course.id)
        .values(enrollment_count=case((moved < 0, 0), else_=moved))
        .execution_options(synchronize_session=False)
    )
    session.expire(course, ["enrollment_count"])


# --------------------------------------------------------------------------- lessons


async def learner_lesson(
    session: AsyncSession, *, user_id: uuid.UUID, lesson_id: uuid.UUID
) -> tuple[Lesson, Enrollment]:
    """The lesson and the caller's open (active or completed) enrollment in its course."""
    lesson = await session.get(Lesson, lesson_id)
    if lesson is None:
        raise LessonNotFound()
    enrollment = await _enrollment(session, user_id=user_id, course_id=lesson.course_id)
    if enrollment is None or enrollment.status not in OPEN:
        raise EnrollmentRequired()
    return lesson, enrollment


async def complete(
    session: AsyncSession, *, user_id: uuid.UUID, lesson_id: uuid.UUID
) -> tuple[Enrollment, ProgressChange | None]:
    """The learner marks a lesson done (not a quiz lesson: passing the quiz does that)."""
    lesson, enrollment = await learner_lesson(session, user_id=user_id, lesson_id=lesson_id)
    if lesson.kind == LessonKind.QUIZ:
        raise QuizLesson()
    return enrollment, await complete_lesson(session, enrollment=enrollment, lesson=lesson)


async def complete_lesson(
    session: AsyncSession, *, enrollment: Enrollment, lesson: Lesson
) -> ProgressChange | None:
    """Record a completed lesson of any kind (the quiz engine calls this when a quiz is passed)
    and recompute the progress. Locks the enrollment row first, so concurrent completions
    complete the course once. None when the lesson was already completed (nothing changed,
    nothing to publish); EnrollmentRequired when the enrollment is no longer open. The caller
    then runs `on_course_completed` (if `course_completed`) and, after the commit,
    `publish_progress`."""
    if lesson.course_id != enrollment.course_id:
        raise ValueError("the lesson is not part of the enrollment's course")
    await session.refresh(enrollment, with_for_update=True)
    if enrollment.status not in OPEN:
        raise EnrollmentRequired()
    if await session.get(LessonCompletion, (enrollment.id, lesson.id)) is not None:
        return None
    now = utcnow()
    session.add(
        LessonCompletion(enrollment_id=enrollment.id, lesson_id=lesson.id, completed_at=now)
    )
    enrollment.last_activity_at = now
    enrollment.last_lesson_id = lesson.id
    await session.flush()
    return await recompute_enrollment(session, enrollment=enrollment)


async def on_course_completed(work: UnitOfWork, change: ProgressChange) -> None:
    """The learner has just completed the course (once per enrollment, in the transaction
    that completed it): their certificate is queued, sent only after the commit."""
    work.enqueue(ISSUE_CERTIFICATE, enrollment_id=str(change.enrollment_id))


async def open_lesson(session: AsyncSession, *, user_id: uuid.UUID, lesson_id: uuid.UUID) -> None:
    """Remember the lesson the learner opened last (their resume point while not completed)."""
    lesson, enrollment = await learner_lesson(session, user_id=user_id, lesson_id=lesson_id)
    enrollment.last_lesson_id = lesson.id
    enrollment.last_activity_at = utcnow()


# --------------------------------------------------------------------------- reads


async def course_progress(
    session: AsyncSession, *, user_id: uuid.UUID, course_id: uuid.UUID
) -> Progress:
    """The caller's progress in a course (a cancelled enrollment shows its kept progress)."""
    course = await get_course(session, course_id=course_id)
    enrollment = await _enrollment(session, user_id=user_id, course_id=course.id)
    if enrollment is None:
        raise EnrollmentNotFound()
    return await progress_of(session, enrollment=enrollment)


async def progress_of(session: AsyncSession, *, enrollment: Enrollment) -> Progress:
    """Completed lessons, counts and resume point of one enrollment."""
    rows = await session.execute(
        select(Lesson.id, Lesson.is_required)
        .join(LessonCompletion, LessonCompletion.lesson_id == Lesson.id)
        .join(Section, Section.id == Lesson.section_id)
        .where(LessonCompletion.enrollment_id == enrollment.id)
        .order_by(Section.position, Lesson.position)
    )
    done = rows.all()
    resumes = await resume_points(session, [enrollment])
    return Progress(
        enrollment=enrollment,
        completed_lesson_ids=[lesson_id for lesson_id, _ in done],
        completed_lessons=sum(1 for _, required in done if required),
        required_lessons=await required_lessons(session, course_id=enrollment.course_id),
        resume=resumes.get(enrollment.id),
    )


async def resume_points(
    session: AsyncSession, enrollments: list[Enrollment]
) -> dict[uuid.UUID, Resume]:
    """Per enrollment: the last lesson opened if not completed, else the first required lesson
    not completed in outline order (section, then lesson position); absent when neither
    exists. Two queries whatever the number of enrollments."""
    found: dict[uuid.UUID, Resume] = {}
    if not enrollments:
        return found
    completed = exists().where(
        LessonCompletion.enrollment_id == Enrollment.id, LessonCompletion.lesson_id == Lesson.id
    )
    opened = [e.id for e in enrollments if e.last_lesson_id is not None]
    if opened:
        rows = await session.execute(
            select(Enrollment.id, Lesson.id, Lesson.title)
            .join(
                Lesson,
                and_(
                    Lesson.id == Enrollment.last_lesson_id,
                    Lesson.course_id == Enrollment.course_id,
                ),
            )
            .where(Enrollment.id.in_(opened), ~completed)
        )
        for enrollment_id, lesson_id, title in rows:
            found[enrollment_id] = Resume(lesson_id, title)
    rest = [e.id for e in enrollments if e.id not in found]
    if rest:
        rank = (
            func.row_number()
            .over(partition_by=Enrollment.id, order_by=(Section.position, Lesson.position))
            .label("rank")
        )
        candidates = (
            select(
                Enrollment.id.label("enrollment_id"),
                Lesson.id.label("lesson_id"),
                Lesson.title.label("title"),
                rank,
            )
            .select_from(Enrollment)
            .join(Lesson, Lesson.course_id == Enrollment.course_id)
            .join(Section, Section.id == Lesson.section_id)
            .where(Enrollment.id.in_(rest), Lesson.is_required.is_(True), ~completed)
            .subquery()
        )
        rows = await session.execute(
            select(candidates.c.enrollment_id, candidates.c.lesson_id, candidates.c.title).where(
                candidates.c.rank == 1
            )
        )
        for enrollment_id, lesson_id, title in rows:
            found[enrollment_id] = Resume(lesson_id, title)
    return found


def _statuses(status: EnrollmentStatus | None) -> list[str]:
    return [status.value] if status is not None else list(OPEN)


async def my_enrollments(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    status: EnrollmentStatus | None,
    limit: int,
    offset: int,
) -> tuple[list[MyEnrollment], int]:
    """A page of the caller's enrollments, most recently active first, and the total."""
    where = (Enrollment.user_id == user_id, Enrollment.status.in_(_statuses(status)))
    total = await session.scalar(select(func.count()).select_from(Enrollment).where(*where))
    rows = (
        await session.execute(
            select(Enrollment, Course.slug, Course.title)
            .join(Course, Course.id == Enrollment.course_id)
            .where(*where)
            .order_by(
                func.coalesce(Enrollment.last_activity_at, Enrollment.enrolled_at).desc(),
                Enrollment.id,
            )
            .limit(limit)
            .offset(offset)
        )
    ).all()
    resumes = await resume_points(session, [e for e, _, _ in rows])
    items = [MyEnrollment(e, slug, title, resumes.get(e.id)) for e, slug, title in rows]
    return items, int(total or 0)


_ROSTER_ORDER: dict[RosterSort, tuple[Any, ...]] = {
    RosterSort.NAME: (func.lower(User.full_name), User.email),
    RosterSort.PROGRESS: (Enrollment.progress_percent.desc(), func.lower(User.full_name)),
    RosterSort.LAST_ACTIVITY: (
        Enrollment.last_activity_at.desc().nulls_last(),
        func.lower(User.full_name),
    ),
    RosterSort.ENROLLED_AT: (Enrollment.enrolled_at.desc(), func.lower(User.full_name)),
}


async def roster(
    session: AsyncSession,
    *,
    principal: Principal,
    course_id: uuid.UUID,
    status: EnrollmentStatus | None,
    search: str | None,
    sort: RosterSort,
    limit: int,
    offset: int,
) -> tuple[list[RosterEntry], int]:
    """A page of a course's learners with their progress, for its instructors and admins."""
    course = await get_course(session, course_id=course_id)
    await ensure_teaches(session, principal=principal, course=course)
    where = [Enrollment.course_id == course.id, Enrollment.status.in_(_statuses(status))]
    if search and search.strip():
        pattern = like_contains(search.strip())
        where.append(
            or_(User.full_name.ilike(pattern, escape="\\"), User.email.ilike(pattern, escape="\\"))
        )
    total = await session.scalar(
        select(func.count())
        .select_from(Enrollment)
        .join(User, User.id == Enrollment.user_id)
        .where(*where)
    )
    rows = await session.execute(
        select(Enrollment, User.id, User.full_name, User.email)
        .join(User, User.id == Enrollment.user_id)
        .where(*where)
        .order_by(*_ROSTER_ORDER[sort], Enrollment.id)
        .limit(limit)
        .offset(offset)
    )
    items = [RosterEntry(e, user_id, name, email) for e, user_id, name, email in rows]
    return items, int(total or 0)
