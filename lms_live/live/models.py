"""Live sessions: the session, its questions (snapshotted when it is created), players, answers.

Invariants:
- a session's questions are frozen at creation (`live_question.body` is the question version's
  spec, `option_order` drawn once for everyone), so editing the bank never changes a session;
- at most one question of a session is open (`opened_at` set, `closed_at` null); its
  `closes_at` is the latest deadline of any player (null while the clock is paused); a pause
  moves `opened_at` forward by its length when it ends, so every deadline moves with it;
- a player's deadline is `opened_at + time_limit_ms * time_factor + GRACE`; answers are judged
  by the server's receive time against it, under a key-share lock on the question row, and a
  question is closed under an update lock: an answer is either committed before the close (and
  scored) or refused;
- one answer per (question, player) (unique); the client's `client_answer_id` makes resends
  idempotent; `points`/`streak` are filled when the question closes, by the session's scoring
  policy, from the stored answers only (so scores can always be recomputed);
- `live_player.score/streak/correct_count/rank` are the totals after the last closed question.
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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from lms_live.core.db import Base, IdMixin, TimestampMixin, utcnow


class Phase(enum.StrEnum):
    LOBBY = "lobby"
    QUESTION_OPEN = "question_open"
    QUESTION_CLOSED = "question_closed"
    LEADERBOARD = "leaderboard"
    FINISHED = "finished"


class LiveSession(IdMixin, TimestampMixin, Base):
    """One live run of a quiz, hosted by an instructor of its course."""

    __tablename__ = "live_session"
    __table_args__ = (
        CheckConstraint(
            "phase IN ('lobby', 'question_open', 'question_closed', 'leaderboard', 'finished')",
            name="phase",
        ),
        # A code names one session among those not finished.
        Index(
            "uq_live_session_active_code",
            "code",
            unique=True,
            postgresql_where=text("phase <> 'finished'"),
            sqlite_where=text("phase <> 'finished'"),
        ),
        Index("ix_live_session_quiz_id_created_at", "quiz_id", "created_at"),
    )

    quiz_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("quiz.id", ondelete="CASCADE"))
    course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("course.id", ondelete="CASCADE"), index=True
    )
    host_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(12))
    phase: Mapped[str] = mapped_column(String(16), default=Phase.LOBBY.value)
    current_index: Mapped[int] = mapped_column(default=-1)
    question_count: Mapped[int]
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    finished_by: Mapped[str | None] = mapped_column(String(12))  # host | idle
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)


class LiveQuestion(IdMixin, Base):
    """One question of a session, frozen; its clock when it is played."""

    __tablename__ = "live_question"
    __table_args__ = (
        UniqueConstraint("session_id", "position"),
        Index(
            "ix_live_question_due",
            "closes_at",
            postgresql_where=text("opened_at IS NOT NULL AND closed_at IS NULL"),
            sqlite_where=text("opened_at IS NOT NULL AND closed_at IS NULL"),
        ),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("live_session.id", ondelete="CASCADE"))
    position: Mapped[int]
    question_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("question_version.id", ondelete="SET NULL"), index=True
    )
    type: Mapped[str] = mapped_column(String(20))
    prompt: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    option_order: Mapped[list[str]] = mapped_column(JSON, default=list)
    time_limit_ms: Mapped[int]
    opened_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    closes_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(String(16))  # time | all_answered | host
    skipped: Mapped[bool] = mapped_column(default=False)


class LivePlayer(IdMixin, Base):
    """Someone playing a session: an account (learner) or a guest with a nickname."""

    __tablename__ = "live_player"
    __table_args__ = (
        UniqueConstraint("session_id", "user_id"),
        UniqueConstraint("session_id", "nickname_key"),
        CheckConstraint("score >= 0", name="score"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("live_session.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    nickname: Mapped[str] = mapped_column(String(40))
    nickname_key: Mapped[str] = mapped_column(String(40))  # casefolded, for uniqueness
    time_factor: Mapped[float] = mapped_column(default=1.0)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    left_at: Mapped[datetime | None]
    kicked_at: Mapped[datetime | None]
    banned: Mapped[bool] = mapped_column(default=False)
    score: Mapped[int] = mapped_column(default=0)
    streak: Mapped[int] = mapped_column(default=0)
    correct_count: Mapped[int] = mapped_column(default=0)
    answered_count: Mapped[int] = mapped_column(default=0)
    rank: Mapped[int | None]


class LiveAnswer(IdMixin, Base):
    """A player's answer to one question, committed before it was acknowledged."""

    __tablename__ = "live_answer"
    __table_args__ = (
        UniqueConstraint("question_id", "player_id"),
        CheckConstraint("points IS NULL OR points >= 0", name="points"),
        CheckConstraint("elapsed_ms >= 0", name="elapsed"),
        CheckConstraint("fraction >= 0 AND fraction <= 1", name="fraction"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_session.id", ondelete="CASCADE"), index=True
    )
    question_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_question.id", ondelete="CASCADE")
    )
    player_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_player.id", ondelete="CASCADE"), index=True
    )
    client_answer_id: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    choice: Mapped[str] = mapped_column(String(200))  # distribution key (labels or state)
    state: Mapped[str] = mapped_column(String(20))  # quizzes.grading.GradeState
    fraction: Mapped[float]
    received_at: Mapped[datetime]
    elapsed_ms: Mapped[int]
    points: Mapped[int | None]
    streak: Mapped[int | None]
