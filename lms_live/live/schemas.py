"""Requests, responses and socket payloads of live sessions (docs/live-protocol.md)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from lms_live.live.scoring import Policy


class LeaderboardMode(enum.StrEnum):
    EACH_QUESTION = "each_question"
    END = "end"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionOptions(_In):
    """How a live session plays and scores (frozen when it is created)."""

    scoring: Policy = Field(Policy.SPEED, description="speed, correctness or capped_bonus.")
    streaks: StrictBool = Field(True, description="Bonus for consecutive right answers.")
    points: StrictInt = Field(1000, ge=1, le=10_000, description="Points of one question.")
    seconds_per_question: StrictInt = Field(20, ge=5, le=600)
    leaderboard: LeaderboardMode = LeaderboardMode.EACH_QUESTION
    late_join: StrictBool = True
    guests: StrictBool = Field(False, description="People without an account may join.")
    nickname_filter: StrictBool = True
    accommodations: StrictBool = Field(
        True, description="The quiz's per-learner time multipliers apply."
    )
    shuffle_options: StrictBool = False


class QuizIdPath(BaseModel):
    quiz_id: uuid.UUID


class SessionIdPath(BaseModel):
    session_id: uuid.UUID


class JoinIn(_In):
    code: str = Field(min_length=1, max_length=20, description="The join code (case-insensitive).")
    nickname: str | None = Field(
        None, min_length=1, max_length=100, description="Required for guests."
    )


class JoinOut(BaseModel):
    session_id: uuid.UUID
    player_id: uuid.UUID
    player_token: str = Field(description="Connect to /live with auth={player_token}.")
    nickname: str
    quiz_title: str
    guest: bool


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    quiz_id: uuid.UUID
    course_id: uuid.UUID
    host_id: uuid.UUID | None
    title: str
    code: str
    join_url: str
    phase: str
    current_index: int
    question_count: int
    options: SessionOptions
    players: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SessionListOut(BaseModel):
    items: list[SessionOut]


class PlayerResultOut(BaseModel):
    player_id: uuid.UUID
    user_id: uuid.UUID | None
    nickname: str
    guest: bool
    rank: int | None
    score: int
    correct: int
    answered: int
    kicked: bool
    answers: list[dict[str, Any]] = Field(
        description="Per question: index, answered, state, points, elapsed_ms."
    )


class QuestionResultOut(BaseModel):
    index: int
    type: str
    prompt: str
    skipped: bool
    played: bool
    answered: int
    correct: int
    mean_points: float | None
    distribution: dict[str, int]


class ResultsOut(BaseModel):
    session: SessionOut
    max_score: int
    players: list[PlayerResultOut]
    questions: list[QuestionResultOut]


# --------------------------------------------------------------------------- socket payloads


class SyncIn(_In):
    last_seq: StrictInt | None = Field(None, ge=0)


class HostIn(_In):
    session_id: uuid.UUID
    last_seq: StrictInt | None = Field(None, ge=0)


class ControlIn(_In):
    session_id: uuid.UUID | None = None


class AnswerIn(_In):
    question: StrictInt = Field(ge=0, le=10_000)
    answer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    response: dict[str, Any]


class KickIn(_In):
    session_id: uuid.UUID | None = None
    player_id: uuid.UUID
    ban: StrictBool = False


class UnbanIn(_In):
    session_id: uuid.UUID | None = None
    player_id: uuid.UUID
