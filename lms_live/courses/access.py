"""Who may do what with a course: the facts other domains need, in one place."""

from __future__ import annotations

import uuid

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.core.authz import ADMIN
from lms_live.core.errors import Forbidden, NotFound
from lms_live.core.security import Principal
from lms_live.courses.models import Course, CourseInstructor, CourseStatus


class CourseNotFound(NotFound):
    code = "course_not_found"
    message = "No such course."


async def get_course(session: AsyncSession, *, course_id: uuid.UUID, lock: bool = False) -> Course:
    """The course, or CourseNotFound (`lock`: SELECT ... FOR UPDATE, for outline changes)."""
    course = await session.get(Course, course_id, with_for_update=lock or None)
    if course is None:
        raise CourseNotFound()
    return course


async def teaches(session: AsyncSession, *, user_id: uuid.UUID, course: Course) -> bool:
    """Whether the user owns or co-teaches the course."""
    if course.owner_id == user_id:
        return True
    found = await session.scalar(
        select(
            exists().where(
                CourseInstructor.course_id == course.id, CourseInstructor.user_id == user_id
            )
        )
    )
    return bool(found)


async def may_teach(session: AsyncSession, *, principal: Principal | None, course: Course) -> bool:
    """Admins, and the course's own instructors."""
    if principal is None:
        return False
    return principal.role == ADMIN or await teaches(
        session, user_id=principal.user_id, course=course
    )


async def ensure_teaches(session: AsyncSession, *, principal: Principal, course: Course) -> None:
    """403 unless the caller teaches this course or is an admin."""
    if not await may_teach(session, principal=principal, course=course):
        raise Forbidden("Only this course's instructors (and admins) may do this.")


def is_visible(course: Course) -> bool:
    """Shown in the public catalog."""
    return course.status == CourseStatus.PUBLISHED
