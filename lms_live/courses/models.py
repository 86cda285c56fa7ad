"""Courses, their sections and lessons, tags and co-instructors.

Invariants:
- `course.slug` is unique; `section.position` is dense (0..n-1) within a course and
  `lesson.position` dense within a section: every change to an outline locks the course row
  first (`SELECT ... FOR UPDATE`), so concurrent edits serialise instead of interleaving;
- `lesson.course_id` repeats its section's course (queries by course need no join);
- money is integer minor units with an ISO 4217 currency; `price_minor == 0` is free;
- `course.enrollment_count` counts active and completed enrollments (catalog popularity);
  the enrollments domain keeps it in step in the same transaction.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lms_live.core.db import Base, IdMixin, TimestampMixin


class CourseStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class Level(enum.StrEnum):
    BEGINNER = "beginner"
    INTERMEDIATE = "intermediate"
    ADVANCED = "advanced"


class LessonKind(enum.StrEnum):
    TEXT = "text"
    VIDEO = "video"
    FILE = "file"
    QUIZ = "quiz"


class Course(IdMixin, TimestampMixin, Base):
    __tablename__ = "course"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'published', 'archived')", name="status"),
        CheckConstraint("level IN ('beginner', 'intermediate', 'advanced')", name="level"),
        CheckConstraint("price_minor >= 0", name="price_minor"),
        CheckConstraint("enrollment_count >= 0", name="enrollment_count"),
        Index("ix_course_status_published_at", "status", "published_at"),
        # sort=popular: read backwards, it yields enrollment_count DESC, published_at DESC
        # NULLS FIRST (the catalog's order) without sorting every published course.
        Index("ix_course_status_popular", "status", "enrollment_count", "published_at"),
    )

    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    level: Mapped[str] = mapped_column(String(20), default=Level.BEGINNER.value)
    language: Mapped[str] = mapped_column(String(16), default="en")
    price_minor: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    status: Mapped[str] = mapped_column(String(20), default=CourseStatus.DRAFT.value)
    published_at: Mapped[datetime | None]
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user.id"), index=True)
    cover_file: Mapped[str | None] = mapped_column(String(300))
    enrollment_count: Mapped[int] = mapped_column(default=0)


class CourseTag(Base):
    __tablename__ = "course_tag"

    course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("course.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class CourseInstructor(Base):
    """A co-instructor: may edit the course and see its learners, like the owner."""

    __tablename__ = "course_instructor"

    course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("course.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Section(IdMixin, TimestampMixin, Base):
    __tablename__ = "section"
    __table_args__ = (Index("ix_section_course_id_position", "course_id", "position"),)

    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    position: Mapped[int]


class Lesson(IdMixin, TimestampMixin, Base):
    __tablename__ = "lesson"
    __table_args__ = (
        CheckConstraint("kind IN ('text', 'video', 'file', 'quiz')", name="kind"),
        Index("ix_lesson_section_id_position", "section_id", "position"),
    )

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("section.id", ondelete="CASCADE"))
    course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("course.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))
    position: Mapped[int]
    body: Mapped[str] = mapped_column(Text, default="")
    video_url: Mapped[str | None] = mapped_column(String(1000))
    duration_seconds: Mapped[int | None]
    file_ref: Mapped[str | None] = mapped_column(String(300))
    quiz_id: Mapped[uuid.UUID | None]
    is_preview: Mapped[bool] = mapped_column(default=False)
    is_required: Mapped[bool] = mapped_column(default=True)
