"""Enrollments and lesson completions.

Invariants:
- one enrollment per (user, course); unenrolling sets status `cancelled` (progress kept, so
  enrolling again resumes); `course.enrollment_count` counts `active` + `completed`;
- `progress_percent` = completed required lessons / required lessons of the course, stored
  and recomputed whenever completions or the course's required lessons change;
- `completed_at` is set once, when progress first reaches 100 %, under a row lock: concurrent
  last completions complete the course exactly once.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lms_live.core.db import Base, IdMixin, TimestampMixin, utcnow


class EnrollmentStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Enrollment(IdMixin, TimestampMixin, Base):
    __tablename__ = "enrollment"
    __table_args__ = (
        UniqueConstraint("user_id", "course_id"),
        CheckConstraint("status IN ('active', 'completed', 'cancelled')", name="status"),
        CheckConstraint("progress_percent >= 0 AND progress_percent <= 100", name="progress"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("course.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default=EnrollmentStatus.ACTIVE.value)
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    progress_percent: Mapped[float] = mapped_column(default=0.0)
    last_activity_at: Mapped[datetime | None]
    last_lesson_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("lesson.id", ondelete="SET NULL")
    )


class LessonCompletion(Base):
    __tablename__ = "lesson_completion"

    enrollment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("enrollment.id", ondelete="CASCADE"), primary_key=True
    )
    lesson_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lesson.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    completed_at: Mapped[datetime] = mapped_column(default=utcnow)
