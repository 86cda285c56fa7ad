"""Requests and responses of the attempt endpoints (learners and the course's instructors).

A field the caller may not see at this moment (review policy) is null, never a hint: while an
attempt is in progress every correctness, score, feedback and right-answer field is null.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from lms_live.quizzes.models import AttemptStatus


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuizIdPath(BaseModel):
    quiz_id: uuid.UUID


class AttemptIdPath(BaseModel):
    attempt_id: uuid.UUID


class AnswerPath(BaseModel):
    attempt_id: uuid.UUID
    position: int = Field(ge=0, le=10_000, description="The question's place (0-based).")


class SaveAnswerIn(_In):
    response: dict[str, Any] = Field(
        description="The learner's response, shaped as the question type's response model."
    )
    revision: int = Field(
        ge=0,
        le=2_147_483_647,
        description="Increases with each save of this answer by the client; the highest "
        "stored wins, a lower one is refused (stale).",
    )


class GradeAnswerIn(_In):
    score: float = Field(ge=0, allow_inf_nan=False, description="0 .. the question's points.")
    feedback: str = Field("", max_length=10_000, pattern=r"^[^\x00]*$")


class OverrideIn(_In):
    score: float | None = Field(
        ge=0, allow_inf_nan=False, description="0 .. the attempt's max score; null removes it."
    )
    reason: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00]*\S[^\x00]*$")


class RegradeIn(_In):
    to_current_version: StrictBool = Field(
        False,
        description="Re-point every attempt's questions to their current versions first "
        "(after fixing a question); otherwise each attempt keeps its own versions.",
    )


class AttemptsQuery(BaseModel):
    user_id: uuid.UUID | None = None
    status: AttemptStatus | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


class ResetQuery(BaseModel):
    user_id: uuid.UUID


class ReviewOut(BaseModel):
    """Which parts of the review the caller sees now."""

    answers: bool
    correctness: bool
    points: bool
    feedback: bool
    right_answers: bool


class AttemptQuestionOut(BaseModel):
    position: int
    prompt: str = Field(description="Markdown.")
    prompt_html: str = Field(description="The prompt rendered safely (raw HTML off).")
    image_file: str | None
    points: float = Field(description="Points available.")
    question: dict[str, Any] = Field(
        description="What a learner may see while answering (options in the stored order)."
    )
    response: dict[str, Any] | None
    revision: int | None
    saved_at: datetime | None
    state: str | None = Field(
        description="correct, partial, incorrect, unanswered or needs_grading (review)."
    )
    score: float | None = Field(description="Points earned (review).")
    feedback: str | None
    general_feedback: str | None
    right_answer: dict[str, Any] | None


class AttemptOut(BaseModel):
    id: uuid.UUID
    quiz_id: uuid.UUID
    user_id: uuid.UUID
    number: int
    status: AttemptStatus
    started_at: datetime
    deadline: datetime | None
    submitted_at: datetime | None
    submitted_by: str | None
    server_now: datetime
    remaining_seconds: float | None = Field(
        description="Until the deadline by the server's clock (null: untimed); saves are "
        "accepted up to `grace_seconds` after it."
    )
    grace_seconds: int
    max_score: float
    score: float | None = Field(description="The score that counts (an override if any).")
    percent: float | None
    passed: bool | None = Field(description="null while pending (essays) or hidden.")
    needs_grading: bool
    override_reason: str | None = Field(description="Instructors only.")
    review: ReviewOut
    questions: list[AttemptQuestionOut]


class AnswerSavedOut(BaseModel):
    position: int
    revision: int
    saved_at: datetime
    response: dict[str, Any]


class AttemptUserOut(BaseModel):
    id: uuid.UUID
    full_name: str
    email: str


class AttemptListItemOut(BaseModel):
    id: uuid.UUID
    user: AttemptUserOut
    number: int
    status: AttemptStatus
    started_at: datetime
    deadline: datetime | None
    submitted_at: datetime | None
    submitted_by: str | None
    max_score: float
    score: float | None = Field(description="The score that counts (an override if any).")
    graded_score: float | None
    override_score: float | None
    override_reason: str | None
    percent: float | None
    passed: bool | None
    needs_grading: bool


class AttemptsPage(BaseModel):
    items: list[AttemptListItemOut]
    total: int
    limit: int
    offset: int


class ResetOut(BaseModel):
    deleted: int


class RegradeOut(BaseModel):
    attempts: int = Field(description="Submitted attempts regraded.")
    changed: int = Field(description="Attempts whose score or pass changed (learners told).")


class MyAttemptOut(BaseModel):
    id: uuid.UUID
    number: int
    status: AttemptStatus
    started_at: datetime
    deadline: datetime | None
    submitted_at: datetime | None
    score: float | None
    max_score: float
    percent: float | None
    passed: bool | None


class MyResultOut(BaseModel):
    quiz_id: uuid.UUID
    grading_method: str
    pass_percent: float
    attempts: list[MyAttemptOut]
    attempts_used: int
    attempts_allowed: int | None
    in_progress_attempt_id: uuid.UUID | None
    next_attempt_at: datetime | None
    percent: float | None = Field(description="By the grading method (null: hidden or none).")
    passed: bool | None
