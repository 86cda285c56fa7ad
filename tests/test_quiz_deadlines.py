"""The time rules of quiz attempts, as properties (hypothesis): a save is accepted iff it is
received at or before deadline + grace; a deadline is the time limit x multiplier + extra
seconds, never past the learner's close; windows and accommodation dates; an accommodation
changed mid-attempt moves only attempts in progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lms_live.quizzes.deadlines import (
    GRACE,
    GRACE_SECONDS,
    accept_until,
    accepts,
    closes_for,
    deadline_for,
    opens_for,
    recompute_open_attempt,
    remaining_seconds,
    window_open,
)


@dataclass
class FakeQuiz:
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    time_limit_seconds: int | None = None
    overdue_policy: str = "auto_submit"
    overdue_grace_seconds: int = 0


@dataclass
class FakeAccommodation:
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    extra_seconds: int = 0
    time_multiplier: float = 1.0


@dataclass
class FakeAttempt:
    status: str
    started_at: datetime
    deadline: datetime | None


BASE = datetime(2030, 1, 1, tzinfo=UTC)
moments = st.integers(min_value=-(10**12), max_value=10**12).map(
    lambda us: BASE + timedelta(microseconds=us)
)
maybe_moments = st.none() | moments
limits = st.none() | st.integers(min_value=1, max_value=7 * 86400)
accommodations = st.none() | st.builds(
    FakeAccommodation,
    opens_at=maybe_moments,
    closes_at=maybe_moments,
    extra_seconds=st.integers(min_value=0, max_value=86400),
    time_multiplier=st.floats(min_value=1.0, max_value=4.0),
)


def test_the_grace_is_two_seconds() -> None:
    assert GRACE_SECONDS == 2
    assert timedelta(seconds=2) == GRACE


@given(deadline=moments, offset_us=st.integers(min_value=-(10**9), max_value=10**9))
def test_accepted_iff_received_by_deadline_plus_grace(deadline: datetime, offset_us: int) -> None:
    receive = deadline + timedelta(microseconds=offset_us)
    assert accepts(receive, deadline) == (offset_us <= GRACE_SECONDS * 1_000_000)


@given(deadline=moments)
def test_the_edge_is_inclusive_and_a_millisecond_later_is_late(deadline: datetime) -> None:
    assert accepts(deadline + GRACE, deadline)
    assert not accepts(deadline + GRACE + timedelta(milliseconds=1), deadline)


@given(receive=moments)
def test_without_a_deadline_everything_is_in_time(receive: datetime) -> None:
    assert accepts(receive, None)


@given(deadline=moments, grace=st.integers(min_value=0, max_value=3600), offset=st.integers(-5, 5))
def test_the_grace_policy_extends_acceptance_by_its_seconds(
    deadline: datetime, grace: int, offset: int
) -> None:
    quiz = FakeQuiz(overdue_policy="grace", overdue_grace_seconds=grace)
    receive = deadline + timedelta(seconds=grace + GRACE_SECONDS + offset)
    assert accepts(receive, accept_until(deadline, quiz)) == (offset <= 0)
    auto = FakeQuiz(overdue_policy="auto_submit", overdue_grace_seconds=grace)
    assert accept_until(deadline, auto) == deadline


@given(started=moments, limit=limits, accommodation=accommodations, close=maybe_moments)
def test_a_deadline_is_the_limit_with_extra_time_capped_by_the_close(
    started: datetime,
    limit: int | None,
    accommodation: FakeAccommodation | None,
    close: datetime | None,
) -> None:
    deadline = deadline_for(started, limit, accommodation, close)
    if limit is None:
        assert deadline == close
        return
    assert deadline is not None
    multiplier = accommodation.time_multiplier if accommodation else 1.0
    extra = accommodation.extra_seconds if accommodation else 0
    full = started + timedelta(seconds=limit * multiplier + extra)
    assert deadline == (min(full, close) if close is not None else full)
    if close is not None:
        assert deadline <= close
    if close is None or close >= started + timedelta(seconds=limit):
        assert deadline >= started + timedelta(seconds=limit)  # extra time never shortens


@given(
    started=moments,
    limit=st.integers(min_value=1, max_value=86400),
    extra=st.integers(min_value=0, max_value=3600),
    more=st.integers(min_value=0, max_value=3600),
)
def test_more_extra_time_never_moves_a_deadline_earlier(
    started: datetime, limit: int, extra: int, more: int
) -> None:
    less_time = deadline_for(started, limit, FakeAccommodation(extra_seconds=extra), None)
    more_time = deadline_for(started, limit, FakeAccommodation(extra_seconds=extra + more), None)
    assert less_time is not None
    assert more_time is not None
    assert more_time - less_time == timedelta(seconds=more)


@given(now=moments, quiz_open=maybe_moments, quiz_close=maybe_moments, acc=accommodations)
def test_the_window_is_open_from_opens_until_before_closes(
    now: datetime,
    quiz_open: datetime | None,
    quiz_close: datetime | None,
    acc: FakeAccommodation | None,
) -> None:
    quiz = FakeQuiz(opens_at=quiz_open, closes_at=quiz_close)
    opens = acc.opens_at if acc and acc.opens_at else quiz_open
    closes = acc.closes_at if acc and acc.closes_at else quiz_close
    assert opens_for(quiz, acc) == opens
    assert closes_for(quiz, acc) == closes
    expected = (opens is None or opens <= now) and (closes is None or now < closes)
    assert window_open(now, quiz, acc) == expected


@given(now=moments, deadline=maybe_moments)
def test_remaining_time_is_never_negative(now: datetime, deadline: datetime | None) -> None:
    left = remaining_seconds(now, deadline)
    if deadline is None:
        assert left is None
    else:
        assert left is not None
        assert left >= 0
        assert left == max(0.0, (deadline - now).total_seconds())


@given(
    started=moments,
    limit=st.integers(min_value=60, max_value=7200),
    extra=st.integers(min_value=1, max_value=3600),
    status=st.sampled_from(["in_progress", "submitted", "abandoned"]),
)
def test_an_accommodation_changed_mid_attempt_moves_only_open_attempts(
    started: datetime, limit: int, extra: int, status: str
) -> None:
    quiz = FakeQuiz(time_limit_seconds=limit)
    first = deadline_for(started, limit, None, None)
    attempt = FakeAttempt(status=status, started_at=started, deadline=first)
    moved = recompute_open_attempt(
        attempt, quiz=quiz, accommodation=FakeAccommodation(extra_seconds=extra)
    )
    assert moved == (status == "in_progress")
    if moved:
        assert attempt.deadline == started + timedelta(seconds=limit + extra)
    else:
        assert attempt.deadline == first
    assert not recompute_open_attempt(
        attempt, quiz=quiz, accommodation=FakeAccommodation(extra_seconds=extra)
    )
