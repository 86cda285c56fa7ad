"""Enrollment facts other domains ask (course content visibility, quiz access)."""

from __future__ import annotations

import uuid

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.enrollments.models import Enrollment, EnrollmentStatus

OPEN = (EnrollmentStatus.ACTIVE.value, EnrollmentStatus.COMPLETED.value)


async def is_enrolled(session: AsyncSession, *, user_id: uuid.UUID, course_id: uuid.UUID) -> bool:
    """Active or completed enrollment (a cancelled one no longer opens the content)."""
    found = await session.scalar(
        select(
            exists().where(
                Enrollment.user_id == user_id,
                Enrollment.course_id == course_id,
                Enrollment.status.in_(
                    [EnrollmentStatus.ACTIVE.value, EnrollmentStatus.COMPLETED.value]
                ),
            )
        )
    )
    return bool(found)
