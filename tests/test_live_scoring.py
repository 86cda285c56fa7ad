"""Live quiz scoring: exact points under each policy and streaks, the bounds and the speed
monotony over random answers, and under CAPPED_BONUS, over random whole sessions, that one
more right answer always ranks higher whatever the speeds and streaks (hypothesis)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lms_live.live.scoring import (
    Award,
    Judged,
    Policy,
    Rules,
    award,
    bonus_cap,
    max_question_points,
    max_total,
    rank,
)

LIMIT = 20_000


def right(elapsed_ms: int, limit_ms: int = LIMIT) -> Judged:
    return Judged(fraction=1.0, elapsed_ms=elapsed_ms, limit_ms=limit_ms)


def points_of_run(rules: Rules, answers: Sequence[Judged | None]) -> list[int]:
    """The points of each answer of one learner, carrying the streak along."""
    streak, points = 0, []
    for judged in answers:
        got = award(rules, judged, streak_before=streak)
        streak = got.streak
        points.append(got.points)
    return points


def test_speed_gives_full_points_at_once_and_half_at_the_limit() -> None:
    rules = Rules(Policy.SPEED, points=1000, streaks=False, question_count=10)
    assert award(rules, right(0), streak_before=0) == Award(points=1000, streak=1, correct=True)
    assert award(rules, right(LIMIT // 2), streak_before=0).points == 750
    assert award(rules, right(LIMIT), streak_before=0).points == 500
    assert award(rules, right(LIMIT * 3), streak_before=0).points == 500
    assert award(rules, right(-250), streak_before=0).points == 1000  # clock skew: clamped


def test_speed_uses_the_learners_own_limit() -> None:
    rules = Rules(Policy.SPEED, points=1000, streaks=False, question_count=10)
    # 20 s into a 40 s accommodated limit is half way, not the end.
    assert award(rules, right(20_000, limit_ms=40_000), streak_before=0).points == 750


def test_speed_partial_credit_scales_the_speed_points() -> None:
    rules = Rules(Policy.SPEED, points=1000, streaks=True, question_count=10)
    half = Judged(fraction=0.5, elapsed_ms=0, limit_ms=LIMIT)
    assert award(rules, half, streak_before=3) == Award(points=500, streak=0, correct=False)
    late_half = Judged(fraction=0.5, elapsed_ms=LIMIT, limit_ms=LIMIT)
    assert award(rules, late_half, streak_before=0).points == 250


def test_speed_streak_bonus_adds_to_the_speed_points() -> None:
    rules = Rules(Policy.SPEED, points=1000, streaks=True, question_count=10)
    assert points_of_run(rules, [right(0), right(0), right(LIMIT)]) == [1000, 1100, 700]


def test_correctness_streaks_add_ten_percent_per_answer_up_to_fifty() -> None:
    rules = Rules(Policy.CORRECTNESS, points=1000, streaks=True, question_count=12)
    wrong = Judged(fraction=0.0, elapsed_ms=1, limit_ms=LIMIT)
    run = [right(LIMIT)] * 8 + [wrong, right(0), right(0), None, right(0)]
    assert points_of_run(rules, run) == [
        1000, 1100, 1200, 1300, 1400, 1500, 1500, 1500, 0, 1000, 1100, 0, 1000,
    ]  # fmt: skip


def test_correctness_without_streaks_ignores_speed_and_streak() -> None:
    rules = Rules(Policy.CORRECTNESS, points=1000, streaks=False, question_count=5)
    assert points_of_run(rules, [right(0), right(LIMIT), right(5)]) == [1000, 1000, 1000]


def test_correctness_partial_credit_rounds_the_share() -> None:
    rules = Rules(Policy.CORRECTNESS, points=1000, streaks=True, question_count=5)
    third = Judged(fraction=0.3333, elapsed_ms=0, limit_ms=LIMIT)
    assert award(rules, third, streak_before=4) == Award(points=333, streak=0, correct=False)
    assert award(rules, Judged(0.5, 0, LIMIT), streak_before=0).points == 500


def test_unanswered_earns_nothing_and_breaks_the_streak() -> None:
    for policy in Policy:
        rules = Rules(policy, points=1000, streaks=True, question_count=5)
        assert award(rules, None, streak_before=4) == Award(points=0, streak=0, correct=False)


def test_capped_bonus_speed_only() -> None:
    rules = Rules(Policy.CAPPED_BONUS, points=1000, streaks=False, question_count=10)
    assert bonus_cap(rules) == 99
    assert award(rules, right(0), streak_before=0).points == 1099
    assert award(rules, right(LIMIT // 2), streak_before=0).points == 1049
    assert award(rules, right(LIMIT), streak_before=5).points == 1000
    assert award(rules, Judged(0.5, 0, LIMIT), streak_before=0).points == 500  # no bonus


def test_capped_bonus_with_streaks_shares_the_cap_between_speed_and_streak() -> None:
    rules = Rules(Policy.CAPPED_BONUS, points=1000, streaks=True, question_count=10)
    run = [right(0)] * 7 + [right(LIMIT)]
    # floor(99 * (1 + min(streak - 1, 5) / 5) / 2); the last one is slow but on a full streak.
    assert points_of_run(rules, run) == [1049, 1059, 1069, 1079, 1089, 1099, 1099, 1049]


def test_capped_bonus_has_no_room_when_the_points_are_few() -> None:
    rules = Rules(Policy.CAPPED_BONUS, points=5, streaks=True, question_count=10)
    assert bonus_cap(rules) == 0
    assert points_of_run(rules, [right(0)] * 3) == [5, 5, 5]


def test_maxima_per_policy() -> None:
    assert max_question_points(Rules(Policy.SPEED, 1000, True, 10)) == 1500
    assert max_question_points(Rules(Policy.SPEED, 1000, False, 10)) == 1000
    assert max_question_points(Rules(Policy.CORRECTNESS, 1000, True, 10)) == 1500
    assert max_question_points(Rules(Policy.CAPPED_BONUS, 1000, True, 10)) == 1099
    assert max_total(Rules(Policy.CORRECTNESS, 1000, True, 10)) == 15000
    assert max_total(Rules(Policy.CAPPED_BONUS, 1000, False, 10)) == 10990
    assert max_total(Rules(Policy.CAPPED_BONUS, 1, True, 3)) == 3


@pytest.mark.parametrize(
    ("points", "question_count"), [(0, 1), (10001, 1), (-5, 1), (1000, 0), (1000, -1)]
)
def test_rules_are_validated(points: int, question_count: int) -> None:
    with pytest.raises(ValueError):
        Rules(Policy.SPEED, points=points, streaks=True, question_count=question_count)


@pytest.mark.parametrize(
    ("fraction", "limit_ms"), [(1.5, 1000), (-0.1, 1000), (float("nan"), 1000), (1.0, 0)]
)
def test_judged_is_validated(fraction: float, limit_ms: int) -> None:
    with pytest.raises(ValueError):
        Judged(fraction=fraction, elapsed_ms=0, limit_ms=limit_ms)


def test_a_negative_streak_is_refused() -> None:
    with pytest.raises(ValueError):
        award(Rules(Policy.SPEED, 1000, True, 1), right(0), streak_before=-1)


def test_rank_ties_share_a_rank_and_the_next_skips() -> None:
    assert rank({"a": 10, "b": 10, "c": 5}) == {"a": 1, "b": 1, "c": 3}
    assert rank({1: 5, 2: 7, 3: 7, 4: 7, 5: 1, 6: 0}) == {1: 4, 2: 1, 3: 1, 4: 1, 5: 5, 6: 6}
    assert rank({"solo": 0}) == {"solo": 1}
    assert rank({}) == {}


rules_st = st.builds(
    Rules,
    policy=st.sampled_from(Policy),
    points=st.integers(1, 10_000),
    streaks=st.booleans(),
    question_count=st.integers(1, 50),
)
judged_st = st.builds(
    Judged,
    fraction=st.one_of(st.just(1.0), st.just(0.0), st.floats(0, 1)),
    elapsed_ms=st.integers(-5_000, 1_000_000),
    limit_ms=st.integers(1, 1_000_000),
)


@given(rules=rules_st, judged=st.none() | judged_st, streak_before=st.integers(0, 100))
def test_points_stay_within_the_maximum(
    rules: Rules, judged: Judged | None, streak_before: int
) -> None:
    got = award(rules, judged, streak_before=streak_before)
    assert 0 <= got.points <= max_question_points(rules)
    assert got.correct == (judged is not None and judged.fraction >= 1)
    assert got.streak == (streak_before + 1 if got.correct else 0)


@given(
    points=st.integers(1, 10_000),
    streaks=st.booleans(),
    fraction=st.floats(0, 1),
    limit_ms=st.integers(1, 600_000),
    elapsed=st.lists(st.integers(-1_000, 1_200_000), min_size=2, max_size=2),
    streak_before=st.integers(0, 10),
)
def test_speed_points_never_grow_with_time(
    points: int,
    streaks: bool,
    fraction: float,
    limit_ms: int,
    elapsed: list[int],
    streak_before: int,
) -> None:
    rules = Rules(Policy.SPEED, points=points, streaks=streaks, question_count=1)
    sooner, later = sorted(elapsed)
    first = award(rules, Judged(fraction, sooner, limit_ms), streak_before=streak_before)
    second = award(rules, Judged(fraction, later, limit_ms), streak_before=streak_before)
    assert first.points >= second.points


@st.composite
def capped_session(draw: st.DrawFn) -> tuple[Rules, list[list[Judged | None]]]:
    """A CAPPED_BONUS session and two learners' answers: each right, wrong or unanswered."""
    rules = Rules(
        Policy.CAPPED_BONUS,
        points=draw(st.integers(1, 10_000)),
        streaks=draw(st.booleans()),
        question_count=draw(st.integers(1, 40)),
    )
    answer = st.none() | st.builds(
        Judged,
        fraction=st.sampled_from([0.0, 1.0]),
        elapsed_ms=st.integers(-1_000, 100_000),
        limit_ms=st.integers(1, 60_000),
    )
    n = rules.question_count
    learners = [draw(st.lists(answer, min_size=n, max_size=n)) for _ in range(2)]
    return rules, learners


def right_count(answers: Sequence[Judged | None]) -> int:
    return sum(1 for a in answers if a is not None and a.fraction >= 1)


@given(capped_session())
def test_capped_bonus_one_more_right_answer_always_wins(
    session: tuple[Rules, list[list[Judged | None]]],
) -> None:
    rules, (a, b) = session
    assume(right_count(a) != right_count(b))
    more, fewer = (a, b) if right_count(a) > right_count(b) else (b, a)
    total_more, total_fewer = sum(points_of_run(rules, more)), sum(points_of_run(rules, fewer))
    assert total_more > total_fewer
    assert total_more <= max_total(rules)
    bonuses = total_more - rules.points * right_count(more)
    assert 0 <= bonuses <= bonus_cap(rules) * rules.question_count <= rules.points - 1


@given(st.dictionaries(st.integers(), st.integers(0, 20)))
def test_rank_is_one_plus_the_number_of_higher_scores(scores: dict[int, int]) -> None:
    ranks = rank(scores)
    assert ranks.keys() == scores.keys()
    for key, score in scores.items():
        assert ranks[key] == 1 + sum(1 for s in scores.values() if s > score)


def reference_award(rules: Rules, judged: Judged | None, *, streak_before: int) -> Award:
    """The scoring rules of the module docstring, written with `fractions.Fraction` (the way
    `award` was first written): `award` computes the same in integers."""
    if judged is None:
        return Award(points=0, streak=0, correct=False)
    correct = judged.fraction >= 1
    streak = streak_before + 1 if correct else 0
    share = Fraction(judged.fraction)
    late = Fraction(min(max(judged.elapsed_ms, 0), judged.limit_ms), judged.limit_ms)
    steps = min(streak - 1, 5)
    if rules.policy is Policy.CAPPED_BONUS:
        points = round(rules.points * share)
        if correct:
            cap, speed = bonus_cap(rules), 1 - late
            if not rules.streaks:
                points += min(cap, math.floor(cap * speed))
            else:
                streak_share = Fraction(steps, 5) if streak >= 2 else 0
                points += min(cap, math.floor(cap * (speed + streak_share) / 2))
        return Award(points=points, streak=streak, correct=correct)
    if rules.policy is Policy.SPEED:
        points = round(rules.points * share * (1 - late / 2))
    else:
        points = round(rules.points * share)
    if rules.streaks and correct and streak >= 2:
        points += round(Fraction(rules.points * steps, 10))
    return Award(points=points, streak=streak, correct=correct)


@given(
    rules=rules_st,
    judged=st.none()
    | judged_st
    | st.builds(  # halves and exact limits: where rounding ties and floors are decided
        Judged,
        fraction=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 1 / 3]),
        elapsed_ms=st.integers(0, 40),
        limit_ms=st.sampled_from([1, 2, 4, 10, 20, 40]),
    ),
    streak_before=st.integers(0, 100),
)
def test_award_equals_the_rules_in_exact_rationals(
    rules: Rules, judged: Judged | None, streak_before: int
) -> None:
    assert award(rules, judged, streak_before=streak_before) == reference_award(
        rules, judged, streak_before=streak_before
    )
