"""The GC steward's policy: freeze while this instance's lobbies fill or questions are open,
release pinned garbage between quizzes, after a while without an open question, and after an
hour in any case."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from lms_live.live import runtime
from lms_live.live.runtime import GcSteward


class FakeGc:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.automatic = True  # gc.isenabled()

    def isenabled(self) -> bool:
        return self.automatic

    def disable(self) -> None:
        self.automatic = False

    def enable(self) -> None:
        self.automatic = True

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def collect(self) -> int:
        self.calls.append("collect")
        return 0


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeGc:
    made = FakeGc()
    monkeypatch.setattr(runtime, "gc", made)
    return made


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    made = Clock()
    monkeypatch.setattr(time, "monotonic", made)
    return made


def observe(steward: GcSteward, **view: Any) -> None:
    steward.observe(
        running=view.get("running", True),
        busy=view.get("busy", False),
        question_open=view.get("question_open", False),
        playing=view.get("playing", view.get("question_open", False)),
    )


def test_disabled_does_nothing(fake: FakeGc, clock: Clock) -> None:
    steward = GcSteward(enabled=False)
    observe(steward, busy=True, question_open=True)
    observe(steward, running=False)
    assert fake.calls == []


async def test_freezes_while_busy_and_cycles_once_nothing_runs(fake: FakeGc, clock: Clock) -> None:
    steward = GcSteward(enabled=True)
    observe(steward, busy=True)  # a lobby filling
    observe(steward, busy=True, question_open=True)
    assert fake.calls == ["freeze", "freeze"]
    observe(steward)  # question closed: too soon to pause
    assert fake.calls == ["freeze", "freeze"]
    observe(steward, running=False)  # between quizzes
    assert fake.calls[2:] == ["unfreeze", "collect", "freeze"]
    observe(steward, running=False)  # nothing pinned since: nothing to do
    assert len(fake.calls) == 5


async def test_garbage_is_released_between_questions_and_after_an_hour_at_most(
    fake: FakeGc, clock: Clock
) -> None:
    steward = GcSteward(enabled=True)
    observe(steward, busy=True, question_open=True)
    clock.now += GcSteward.CYCLE_SECONDS
    observe(steward, busy=True, question_open=True)  # never during an open question
    assert "collect" not in fake.calls
    observe(steward, busy=True)  # a lobby only: a moment's pause is fine
    assert fake.calls[-4:] == ["unfreeze", "collect", "freeze", "freeze"]
    fake.calls.clear()
    clock.now += GcSteward.MAX_PINNED_SECONDS
    observe(steward, busy=True, question_open=True)  # questions open all day: still bounded
    assert fake.calls == ["unfreeze", "collect", "freeze", "freeze"]


async def test_automatic_collection_is_off_only_while_a_quiz_is_played(fake: FakeGc) -> None:
    steward = GcSteward(enabled=True)
    observe(steward, busy=True)  # a lobby: the young generation is still collected
    assert fake.automatic
    observe(steward, busy=True, question_open=True)
    assert not fake.automatic
    observe(steward, busy=True, question_open=True)
    assert not fake.automatic
    observe(steward, busy=False, playing=True)  # the reveal, a leaderboard: still off
    assert not fake.automatic
    observe(steward)  # ended
    assert fake.automatic


async def test_the_collector_comes_back_by_itself_when_the_passes_stop(
    fake: FakeGc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(GcSteward, "HOLD_SECONDS", 0.05)
    steward = GcSteward(enabled=True)
    observe(steward, busy=True, question_open=True)
    assert not fake.automatic
    await asyncio.sleep(0.2)  # no pass since
    assert fake.automatic


async def test_a_collector_switched_off_by_someone_else_stays_off(fake: FakeGc) -> None:
    fake.automatic = False
    steward = GcSteward(enabled=True)
    observe(steward, busy=True, question_open=True)
    observe(steward)
    assert not fake.automatic


async def test_a_question_broadcast_holds_the_collector_at_once(fake: FakeGc) -> None:
    steward = GcSteward(enabled=True)
    steward.on_broadcast("leaderboard", "/live", "live:x")
    steward.on_broadcast("question_opened", "/other", "x")
    assert fake.automatic
    steward.on_broadcast("question_opened", "/live", "live:x")
    assert not fake.automatic
    steward.release()
    assert fake.automatic
