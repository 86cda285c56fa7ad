"""Snapshots for `/progress` clients that join or must reset (no SQL in the namespace)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.auth.models import User
from lms_live.courses.models import Course
from lms_live.enrollments.access import OPEN
from lms_live.enrollments.models import Enrollment


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


async def course_learners(session: AsyncSession, *, course_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every enrolled learner of a course with their progress (the dashboard's rows)."""
    rows = await session.execute(
        select(Enrollment, User.full_name)
        .join(User, User.id == Enrollment.user_id)
        .where(Enrollment.course_id == course_id, Enrollment.status.in_(OPEN))
        .order_by(User.full_name, User.id)
    )
    return [
        {
            "user_id": str(e.user_id),
            "full_name": name,
            "status": e.status,
            "percent": e.progress_percent,
            "last_activity_at": _iso(e.last_activity_at),
            "completed_at": _iso(e.completed_at),
        }
        for e, name in rows
    ]


async def learner_courses(session: AsyncSession, *, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """A learner's own progress in each course (their snapshot)."""
    rows = await session.execute(
        select(Enrollment, Course.title, Course.slug)
        .join(Course, Course.id == Enrollment.course_id)
        .where(Enrollment.user_id == user_id, Enrollment.status.in_(OPEN))
        .order_by(Course.title, Course.id)
    )
    return [
        {
            "course_id": str(e.course_id),
            "title": title,
            "slug": slug,
            "status": e.status,
            "percent": e.progress_percent,
            "completed_at": _iso(e.completed_at),
        }
        for e, title, slug in rows
    ]


async def enrolled_course_ids(session: AsyncSession, *, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The courses whose dashboards show this learner (for presence)."""
    rows = await session.scalars(
        select(Enrollment.course_id).where(
            Enrollment.user_id == user_id, Enrollment.status.in_(OPEN)
        )
    )
    return list(rows)
