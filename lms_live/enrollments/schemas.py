"""Requests and responses of the enrollment and progress endpoints."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from lms_live.enrollments.models import EnrollmentStatus


class CourseIdPath(BaseModel):
    course_id: uuid.UUID


class LessonIdPath(BaseModel):
    lesson_id: uuid.UUID


class MyEnrollmentsQuery(BaseModel):
    status: EnrollmentStatus | None = Field(
        None, description="Only this status; by default active and completed ones."
    )
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1_000_000)


class RosterSort(enum.StrEnum):
    NAME = "name"  # A to Z
    PROGRESS = "progress"  # furthest first
    LAST_ACTIVITY = "last_activity"  # most recent first, never active last
    ENROLLED_AT = "enrolled_at"  # newest first


class RosterQuery(BaseModel):
    status: EnrollmentStatus | None = Field(
        None, description="Only this status; by default active and completed ones."
    )
    q: str | None = Field(
        None,
        max_length=200,
        pattern=r"^[^\x00]*$",  # PostgreSQL text cannot hold NUL: 422, not a 500
        description="Name or email contains this (any case).",
    )
    sort: RosterSort = Field(
        RosterSort.NAME,
        description="name: A to Z; progress: furthest first; last_activity: most recent "
        "first (never active last); enrolled_at: newest first.",
    )
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1_000_000)


class EnrollmentOut(BaseModel):
    id: uuid.UUID
    course_id: uuid.UUID
    user_id: uuid.UUID
    status: EnrollmentStatus
    enrolled_at: datetime
    progress_percent: float
    last_activity_at: datetime | None
    last_lesson_id: uuid.UUID | None
    completed_at: datetime | None
    cancelled_at: datetime | None


class CourseRefOut(BaseModel):
    id: uuid.UUID
    slug: str
    title: str


class ResumeOut(BaseModel):
    """Where to continue: the last lesson opened if not yet completed, otherwise the first
    required lesson not completed, in outline order."""

    lesson_id: uuid.UUID
    title: str


class MyEnrollmentOut(BaseModel):
    id: uuid.UUID
    course: CourseRefOut
    status: EnrollmentStatus
    progress_percent: float
    enrolled_at: datetime
    last_activity_at: datetime | None
    completed_at: datetime | None
    resume: ResumeOut | None


class MyEnrollmentsPage(BaseModel):
    items: list[MyEnrollmentOut]
    total: int
    limit: int
    offset: int


class CourseProgressOut(BaseModel):
    course_id: uuid.UUID
    enrollment_id: uuid.UUID
    status: EnrollmentStatus
    percent: float = Field(description="Completed required lessons / required lessons, x 100.")
    completed_lessons: int = Field(description="Required lessons completed.")
    required_lessons: int
    completed_lesson_ids: list[uuid.UUID] = Field(
        description="Every lesson completed (required or not), in outline order."
    )
    last_lesson_id: uuid.UUID | None = Field(description="The lesson opened or completed last.")
    last_activity_at: datetime | None
    completed_at: datetime | None = Field(description="When the course was completed, if it was.")
    resume: ResumeOut | None


class RosterUserOut(BaseModel):
    id: uuid.UUID
    full_name: str
    email: str


class RosterEntryOut(BaseModel):
    enrollment_id: uuid.UUID
    user: RosterUserOut
    status: EnrollmentStatus
    progress_percent: float
    enrolled_at: datetime
    last_activity_at: datetime | None
    completed_at: datetime | None


class RosterPage(BaseModel):
    items: list[RosterEntryOut]
    total: int
    limit: int
    offset: int
