"""Course progress: completed required lessons / required lessons, stored on the enrollment.

`recompute_*` run in the caller's transaction after anything that changes either side (a
completion, a lesson added, removed or made optional). Completing the course is detected
here, once: the enrollment row is locked and `completed_at` is set only if it was empty.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.core.db import utcnow
from lms_live.courses.models import Lesson
from lms_live.enrollments.models import Enrollment, EnrollmentStatus, LessonCompletion


@dataclass(frozen=True, slots=True)
class ProgressChange:
    """What changed for one enrollment (for events and tasks after the commit)."""

    enrollment_id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    percent: float
    completed_lessons: int
    required_lessons: int
    course_completed: bool  # True only on the transition to 100 %
    completed_at: datetime | None


async def required_lessons(session: AsyncSession, *, course_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Lesson)
        .where(Lesson.course_id == course_id, Lesson.is_required.is_(True))
    )
    return int(count or 0)


async def recompute_enrollment(
    session: AsyncSession, *, enrollment: Enrollment, required: int | None = None
) -> ProgressChange:
    """Recompute one (locked) enrollment's progress; completes the course on reaching 100 %."""
    if required is None:
        required = await required_lessons(session, course_id=enrollment.course_id)
    done = await session.scalar(
        select(func.count())
        .select_from(LessonCompletion)
        .join(Lesson, Lesson.id == LessonCompletion.lesson_id)
        .where(LessonCompletion.enrollment_id == enrollment.id, Lesson.is_required.is_(True))
    )
    done = int(done or 0)
    percent = round(100.0 * done / required, 2) if required else 0.0
    enrollment.progress_percent = percent
    just_completed = False
    if required and done >= required and enrollment.completed_at is None:
        enrollment.completed_at = utcnow()
        if enrollment.status == EnrollmentStatus.ACTIVE:
            enrollment.status = EnrollmentStatus.COMPLETED.value
        just_completed = True
    return ProgressChange(
        enrollment_id=enrollment.id,
        user_id=enrollment.user_id,
        course_id=enrollment.course_id,
        percent=percent,
        completed_lessons=done,
        required_lessons=required,
        course_completed=just_completed,
        completed_at=enrollment.completed_at,
    )


async def recompute_course(session: AsyncSession, *, course_id: uuid.UUID) -> list[ProgressChange]:
    """Recompute every enrollment of a course (after its required lessons changed). A course
    once completed stays completed (a certificate was issued); its percent still follows."""
    required = await required_lessons(session, course_id=course_id)
    rows = await session.scalars(
        select(Enrollment).where(Enrollment.course_id == course_id).with_for_update()
    )
    return [await recompute_enrollment(session, enrollment=e, required=required) for e in rows]
