"""Time rules of quiz attempts: windows, deadlines and what "in time" means. Pure: no I/O.

- An attempt's `deadline` = started_at + time limit x multiplier + extra seconds, capped by the
  window's close (the accommodation's close when it has one, else the quiz's); no time limit:
  the close itself (or no deadline at all).
- A save or submit is accepted iff the server's receive time <= deadline + `GRACE_SECONDS`
  (network grace, documented in the API); a quiz with the `grace` overdue policy adds its
  `overdue_grace_seconds` (see `accept_until`). The sweeper takes an attempt only once that
  moment has passed, so it never closes an attempt a save could still reach.
- The clock is injected: routes read `app[QUIZ_CLOCK]` (default `core.db.utcnow`), tests move it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from aiohttp import web

from lms_live.quizzes.models import AttemptStatus, OverduePolicy

GRACE_SECONDS = 2
GRACE = timedelta(seconds=GRACE_SECONDS)

Clock = Callable[[], datetime]
QUIZ_CLOCK: web.AppKey[Clock] = web.AppKey("quiz_clock")


class Window(Protocol):
    """The availability dates of a quiz or of an accommodation."""

    @property
    def opens_at(self) -> datetime | None: ...

    @property
    def closes_at(self) -> datetime | None: ...


class Allowance(Window, Protocol):
    """One learner's accommodation (models.Accommodation)."""

    @property
    def extra_seconds(self) -> int: ...

    @property
    def time_multiplier(self) -> float: ...


class TimedQuiz(Window, Protocol):
    """What the rules read of a quiz (models.Quiz)."""

    @property
    def time_limit_seconds(self) -> int | None: ...

    @property
    def overdue_policy(self) -> str: ...

    @property
    def overdue_grace_seconds(self) -> int: ...


class OpenAttempt(Protocol):
    """What `recompute_open_attempt` reads and moves (models.Attempt)."""

    status: str
    started_at: datetime
    deadline: datetime | None


def opens_for(quiz: Window, accommodation: Window | None) -> datetime | None:
    """When the quiz opens for this learner (the accommodation's date overrides)."""
    if accommodation is not None and accommodation.opens_at is not None:
        return accommodation.opens_at
    return quiz.opens_at


def closes_for(quiz: Window, accommodation: Window | None) -> datetime | None:
    """When the quiz closes for this learner (the accommodation's date overrides)."""
    if accommodation is not None and accommodation.closes_at is not None:
        return accommodation.closes_at
    return quiz.closes_at


def window_open(now: datetime, quiz: Window, accommodation: Window | None) -> bool:
    """Whether an attempt may start now: opens_at <= now < closes_at (either may be unset)."""
    opens = opens_for(quiz, accommodation)
    closes = closes_for(quiz, accommodation)
    return (opens is None or now >= opens) and (closes is None or now < closes)


def deadline_for(
    started_at: datetime,
    time_limit_seconds: int | None,
    accommodation: Allowance | None,
    window_close: datetime | None,
) -> datetime | None:
    """The attempt's own deadline: limit x multiplier + extra seconds, capped by the close."""
    if time_limit_seconds is None:
        return window_close
    multiplier = accommodation.time_multiplier if accommodation is not None else 1.0
    extra = accommodation.extra_seconds if accommodation is not None else 0
    seconds = max(0.0, time_limit_seconds * max(0.0, multiplier) + max(0, extra))
    deadline = started_at + timedelta(seconds=seconds)
    if window_close is not None and window_close < deadline:
        return window_close
    return deadline


def overdue_grace(quiz: TimedQuiz) -> timedelta:
    """How long past its deadline an attempt still takes saves under the quiz's policy."""
    if quiz.overdue_policy == OverduePolicy.GRACE:
        return timedelta(seconds=max(0, quiz.overdue_grace_seconds))
    return timedelta(0)


def accept_until(deadline: datetime | None, quiz: TimedQuiz) -> datetime | None:
    """The last moment (before the network grace) a save or submit is in time."""
    return None if deadline is None else deadline + overdue_grace(quiz)


def accepts(receive_time: datetime, deadline: datetime | None) -> bool:
    """In time iff received at or before deadline + grace (no deadline: always)."""
    return deadline is None or receive_time <= deadline + GRACE


def remaining_seconds(now: datetime, deadline: datetime | None) -> float | None:
    """Seconds left until the deadline (never negative; None without a deadline)."""
    if deadline is None:
        return None
    return max(0.0, (deadline - now).total_seconds())


def recompute_open_attempt(
    attempt: OpenAttempt, *, quiz: TimedQuiz, accommodation: Allowance | None
) -> bool:
    """Move an attempt in progress to the deadline its (changed) accommodation or quiz gives
    it; True when it moved. Submitted or abandoned attempts keep theirs."""
    if attempt.status != AttemptStatus.IN_PROGRESS:
        return False
    deadline = deadline_for(
        attempt.started_at,
        quiz.time_limit_seconds,
        accommodation,
        closes_for(quiz, accommodation),
    )
    if deadline == attempt.deadline:
        return False
    attempt.deadline = deadline
    return True
