"""Points of one live quiz answer under the session's scoring policy, and the ranking.

Pure and deterministic (no clock, database or I/O). Policies, for a question of `points`:
- CORRECTNESS: `round(points * fraction)` (all, or the partial share);
- SPEED: `round(points * fraction * (1 - t / 2))` with `t = min(1, elapsed / limit)`: a right
  answer earns 50-100% of the points, faster is more;
- CAPPED_BONUS: `round(points * fraction)`, plus for a right answer a bonus of at most
  `cap = (points - 1) // question_count`: `floor(cap * speed)` with `speed = 1 - t`, or with
  streaks `floor(cap * (speed + streak) / 2)` with `streak = min(streak_after - 1, 5) / 5`.

Invariants:
- an answer is right when its fraction is 1; the streak after a question is the one before
  plus one for a right answer, else 0 (unanswered included, 0 points);
- with streaks, SPEED and CORRECTNESS add `round(points * min(streak_after - 1, 5) / 10)` to a
  right answer from the second in a row: +10% per answer, at most +50%;
- every award is within [0, max_question_points], a session total within [0, max_total];
- SPEED points never grow with the elapsed time;
- CAPPED_BONUS: a whole session's bonuses sum to at most `cap * question_count <= points - 1`,
  so whatever the speeds and streaks, one more right answer (over wrong ones) ranks higher;
- the elapsed time is measured against the learner's own limit (accommodations included);
  arithmetic is exact (integer ratios), so the same answer always earns the same points.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

MAX_POINTS = 10000
STREAK_STEPS = 5  # a streak stops adding after its 6th right answer in a row

K = TypeVar("K", bound=Hashable)


class Policy(enum.StrEnum):
    SPEED = "speed"
    CORRECTNESS = "correctness"
    CAPPED_BONUS = "capped_bonus"


@dataclass(frozen=True, slots=True)
class Rules:
    """How a session scores: its policy, points per question, streaks and length."""

    policy: Policy
    points: int
    streaks: bool
    question_count: int

    def __post_init__(self) -> None:
        if not 1 <= self.points <= MAX_POINTS:
            raise ValueError(f"points must be within 1..{MAX_POINTS}, not {self.points}")
        if self.question_count < 1:
            raise ValueError(f"question_count must be at least 1, not {self.question_count}")


@dataclass(frozen=True, slots=True)
class Judged:
    """One stored answer: its correct share and how long the learner took of their limit."""

    fraction: float
    elapsed_ms: int
    limit_ms: int

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:  # also refuses NaN
            raise ValueError(f"fraction must be within 0..1, not {self.fraction}")
        if self.limit_ms <= 0:
            raise ValueError(f"limit_ms must be positive, not {self.limit_ms}")


@dataclass(frozen=True, slots=True)
class Award:
    """The points of one answer and the learner's streak after it."""

    points: int
    streak: int
    correct: bool


def award(rules: Rules, judged: Judged | None, *, streak_before: int) -> Award:
    """Score one learner's answer (None when they did not answer) under the session's rules.

    Exact, in integers: the fraction is a float, so `p / q` exactly (q a power of two), and
    the elapsed share `e / limit`; `round` is Python's (half to even) on those ratios, as it
    is on `fractions.Fraction` (an order of magnitude slower: a close scores every answer)."""
    if streak_before < 0:
        raise ValueError(f"streak_before must not be negative, not {streak_before}")
    if judged is None:
        return Award(points=0, streak=0, correct=False)
    correct = judged.fraction >= 1
    streak = streak_before + 1 if correct else 0
    p, q = judged.fraction.as_integer_ratio()
    limit = judged.limit_ms
    elapsed = min(max(judged.elapsed_ms, 0), limit)
    if rules.policy is Policy.CAPPED_BONUS:
        points = _round(rules.points * p, q)
        if correct:
            points += _capped_bonus(rules, left=limit - elapsed, limit=limit, streak=streak)
        return Award(points=points, streak=streak, correct=correct)
    if rules.policy is Policy.SPEED:
        # points * share * (1 - t / 2), t = elapsed / limit
        points = _round(rules.points * p * (2 * limit - elapsed), q * 2 * limit)
    else:
        points = _round(rules.points * p, q)
    if rules.streaks and correct and streak >= 2:
        points += _streak_bonus(rules.points, streak)
    return Award(points=points, streak=streak, correct=correct)


def _round(numerator: int, denominator: int) -> int:
    """round(numerator / denominator) for numerator >= 0 < denominator, ties to even."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def max_question_points(rules: Rules) -> int:
    """The most one question can give under these rules."""
    if rules.policy is Policy.CAPPED_BONUS:
        return rules.points + bonus_cap(rules)
    if rules.streaks:
        return rules.points + _streak_bonus(rules.points, STREAK_STEPS + 1)
    return rules.points


def max_total(rules: Rules) -> int:
    """The most a whole session can give under these rules."""
    return max_question_points(rules) * rules.question_count


def bonus_cap(rules: Rules) -> int:
    """The largest CAPPED_BONUS bonus of one question: the session's bonuses stay below `points`."""
    return (rules.points - 1) // rules.question_count


def rank(scores: Mapping[K, int]) -> dict[K, int]:
    """Competition ranking, highest score first: ties share a rank and the next skips (1, 1, 3)."""
    ordered = sorted(scores.values(), reverse=True)
    first_place: dict[int, int] = {}
    for place, score in enumerate(ordered, start=1):
        first_place.setdefault(score, place)
    return {key: first_place[score] for key, score in scores.items()}


def _streak_bonus(points: int, streak: int) -> int:
    return _round(points * min(streak - 1, STREAK_STEPS), 10)


def _capped_bonus(rules: Rules, *, left: int, limit: int, streak: int) -> int:
    """floor(cap * speed), or with streaks floor(cap * (speed + streak share) / 2), where
    speed = left / limit and the streak share min(streak - 1, 5) / 5 from the second on."""
    cap = bonus_cap(rules)
    if not rules.streaks:
        return min(cap, cap * left // limit)
    steps = min(streak - 1, STREAK_STEPS) if streak >= 2 else 0
    # (left / limit + steps / 5) / 2 = (5 * left + steps * limit) / (10 * limit)
    return min(cap, cap * (STREAK_STEPS * left + steps * limit) // (2 * STREAK_STEPS * limit))
