"""Question bank, quizzes, accommodations, attempts and answers.

Invariants:
- a question's versions are immutable once an attempt uses them: editing a used question adds
  version n+1 and moves `question.current_version`; running attempts keep theirs (an attempt
  question points at a `question_version` row, never at the question);
- `quiz_slot` is either a fixed question (`question_id`) or a pool (`pool_tag` + `pool_count`:
  that many questions drawn at random per attempt from the course bank's questions with that
  tag); the questions drawn, their order and each one's option order are stored per attempt
  (`attempt_question`), so an attempt reads the same on every reload;
- `attempt.deadline` is fixed when the attempt starts (time limit x accommodation, capped by the
  window's close) and only moved by an accommodation change; the server judges saves and
  submits by its own receive time against it (plus the documented grace);
- one `answer` row per attempt question (unique), overwritten by newer saves only: a save
  carries the client's `revision` and a lower one than stored is refused (stale);
- an attempt is graded exactly once when it leaves `in_progress` (submitted by the learner or by
  the sweeper, which takes overdue rows with `FOR UPDATE SKIP LOCKED`); regrading recomputes
  from the stored answers.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lms_live.core.db import Base, IdMixin, TimestampMixin, utcnow


class GradingMethod(enum.StrEnum):
    """Which attempt's score is the learner's quiz score."""

    HIGHEST = "highest"
    LATEST = "latest"
    AVERAGE = "average"


class OverduePolicy(enum.StrEnum):
    """What happens to an attempt still open at its deadline."""

    AUTO_SUBMIT = "auto_submit"  # submitted and graded with what was saved (default)
    GRACE = "grace"  # saves still accepted for `overdue_grace_seconds`, then submitted
    ABANDON = "abandon"  # closed without a score unless the learner submitted in time


class AttemptStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"
    ABANDONED = "abandoned"


class Question(IdMixin, TimestampMixin, Base):
    """A bank entry of a course; its content lives in versions."""

    __tablename__ = "question"

    course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("course.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    current_version: Mapped[int] = mapped_column(default=1)
    archived: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))


class QuestionTag(Base):
    __tablename__ = "question_tag"

    question_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("question.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class QuestionVersion(IdMixin, Base):
    """One immutable version of a question (`body` is a quizzes.spec.QuestionSpec as JSON)."""

    __tablename__ = "question_version"
    __table_args__ = (
        UniqueConstraint("question_id", "version"),
        CheckConstraint("points >= 0", name="points"),
    )

    question_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("question.id", ondelete="CASCADE"))
    version: Mapped[int]
    type: Mapped[str] = mapped_column(String(20))
    prompt: Mapped[str] = mapped_column(Text)
    points: Mapped[float] = mapped_column(default=1.0)
    general_feedback: Mapped[str] = mapped_column(Text, default="")
    image_file: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Quiz(IdMixin, TimestampMixin, Base):
    __tablename__ = "quiz"
    __table_args__ = (
        CheckConstraint("pass_percent >= 0 AND pass_percent <= 100", name="pass_percent"),
        CheckConstraint(
            "grading_method IN ('highest', 'latest', 'average')", name="grading_method"
        ),
        CheckConstraint(
            "overdue_policy IN ('auto_submit', 'grace', 'abandon')", name="overdue_policy"
        ),
    )

    course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("course.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text, default="")
    published: Mapped[bool] = mapped_column(default=False)
    time_limit_seconds: Mapped[int | None]
    opens_at: Mapped[datetime | None]
    closes_at: Mapped[datetime | None]
    max_attempts: Mapped[int | None]
    min_wait_seconds: Mapped[int] = mapped_column(default=0)
    pass_percent: Mapped[float] = mapped_column(default=50.0)
    grading_method: Mapped[str] = mapped_column(String(10), default=GradingMethod.HIGHEST.value)
    shuffle_questions: Mapped[bool] = mapped_column(default=False)
    shuffle_options: Mapped[bool] = mapped_column(default=False)
    # {"answers": when, "correctness": when, "points": when, "feedback": when,
    #  "right_answers": when} with when in never | during | after_submit | after_close
    review_policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    overdue_policy: Mapped[str] = mapped_column(String(12), default=OverduePolicy.AUTO_SUBMIT.value)
    overdue_grace_seconds: Mapped[int] = mapped_column(default=0)


class QuizSlot(IdMixin, Base):
    """One place in a quiz: a fixed question, or `pool_count` drawn from the tag `pool_tag`."""

    __tablename__ = "quiz_slot"
    __table_args__ = (
        UniqueConstraint("quiz_id", "position"),
        CheckConstraint(
            "(question_id IS NOT NULL AND pool_tag IS NULL) OR "
            "(question_id IS NULL AND pool_tag IS NOT NULL AND pool_count >= 1)",
            name="fixed_or_pool",
        ),
    )

    quiz_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("quiz.id", ondelete="CASCADE"))
    position: Mapped[int]
    question_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("question.id", ondelete="CASCADE"), index=True
    )
    pool_tag: Mapped[str | None] = mapped_column(String(40))
    pool_count: Mapped[int] = mapped_column(default=1)


class Accommodation(IdMixin, TimestampMixin, Base):
    """One learner's adjustments on one quiz (also applied to an attempt in progress)."""

    __tablename__ = "accommodation"
    __table_args__ = (UniqueConstraint("quiz_id", "user_id"),)

    quiz_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("quiz.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    extra_seconds: Mapped[int] = mapped_column(default=0)
    time_multiplier: Mapped[float] = mapped_column(default=1.0)
    extra_attempts: Mapped[int] = mapped_column(default=0)
    opens_at: Mapped[datetime | None]
    closes_at: Mapped[datetime | None]


class Attempt(IdMixin, TimestampMixin, Base):
    __tablename__ = "attempt"
    __table_args__ = (
        UniqueConstraint("quiz_id", "user_id", "number"),
        CheckConstraint("status IN ('in_progress', 'submitted', 'abandoned')", name="status"),
        CheckConstraint("score IS NULL OR (score >= 0 AND score <= max_score)", name="score"),
        Index("ix_attempt_status_deadline", "status", "deadline"),
        Index("ix_attempt_quiz_id_user_id", "quiz_id", "user_id"),
    )

    quiz_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("quiz.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    status: Mapped[str] = mapped_column(String(12), default=AttemptStatus.IN_PROGRESS.value)
    started_at: Mapped[datetime]
    deadline: Mapped[datetime | None]
    submitted_at: Mapped[datetime | None]
    submitted_by: Mapped[str | None] = mapped_column(String(10))  # learner | sweeper
    max_score: Mapped[float] = mapped_column(default=0.0)
    score: Mapped[float | None]
    percent: Mapped[float | None]
    passed: Mapped[bool | None]
    needs_grading: Mapped[bool] = mapped_column(default=False)
    override_score: Mapped[float | None]
    override_reason: Mapped[str | None] = mapped_column(String(500))


class AttemptQuestion(IdMixin, Base):
    """The question version shown at one position of an attempt, and its option order."""

    __tablename__ = "attempt_question"
    __table_args__ = (UniqueConstraint("attempt_id", "position"),)

    attempt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("attempt.id", ondelete="CASCADE"))
    position: Mapped[int]
    question_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("question_version.id", ondelete="RESTRICT"), index=True
    )
    option_order: Mapped[list[str]] = mapped_column(JSON, default=list)
    points: Mapped[float]


class Answer(IdMixin, Base):
    """The latest saved response to one attempt question, and its grade."""

    __tablename__ = "answer"
    __table_args__ = (CheckConstraint("revision >= 0", name="revision"),)

    attempt_question_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attempt_question.id", ondelete="CASCADE"), unique=True
    )
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(default=0)
    saved_at: Mapped[datetime]
    score: Mapped[float | None]
    state: Mapped[str | None] = mapped_column(String(20))
    feedback: Mapped[str] = mapped_column(Text, default="")
    graded_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    graded_at: Mapped[datetime | None]
