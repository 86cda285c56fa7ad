"""The live loops' pace: an instance with no live session polls the database about once a
second per loop (not 10-20 times), and whatever happens in a session on an instance wakes its
loops at once, so nothing waits for the idle poll."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event

from lms_live import keys
from lms_live.live import runtime
from tests.livekit import (
    LiveWorld,
    label_of,
    world_fixture,  # noqa: F401 (the `world` fixture)
)

pytestmark = pytest.mark.shared_db


def count_statements(world: LiveWorld) -> list[int]:
    """A live count of the SQL statements each instance sends from now on."""
    counts = [0] * len(world.servers)
    for index, server in enumerate(world.servers):
        engine = server.app[keys.DATABASE].engine.sync_engine

        def seen(*_: Any, index: int = index) -> None:
            counts[index] += 1

        event.listen(engine, "before_cursor_execute", seen)
    return counts


async def test_idle_instances_barely_query_the_database(world: LiveWorld) -> None:
    # The test instances sweep every 0.05 s and conduct every 0.1 s: 30 queries a second
    # each if the loops kept that pace with nothing to watch.
    await asyncio.sleep(0.3)  # the loops' first passes
    counts = count_statements(world)
    await asyncio.sleep(2.0)
    assert all(count <= 6 for count in counts), counts  # two loops, ~1 pass a second each


@pytest.fixture
def slow_idle_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle poll far longer than the test: only waking can make the loops run."""
    monkeypatch.setattr(runtime, "IDLE_POLL_SECONDS", 60.0)


async def test_a_session_wakes_the_loops_of_its_instance(
    slow_idle_poll: None, world: LiveWorld
) -> None:
    await asyncio.sleep(0.3)  # both instances idle, next poll in a minute
    made = await world.quiz(learners=2)
    live = await world.session(made)
    host = await world.host(made, live)
    ann = await world.player(live, made.learners[0], server=1)
    bob = await world.player(live, made.learners[1], server=1)
    await host.call("start")  # wakes instance 0's sweeper: a question is open
    opened = await ann.socket.next("question_opened")
    await bob.socket.next("question_opened")
    label = label_of(opened["question"], "Paris")
    for index, player in enumerate((ann, bob)):
        ack = await player.socket.call(
            "answer", {"question": 0, "answer_id": f"a{index}", "response": {"choice": label}}
        )
        assert ack["ok"] is True, ack
    # Answered on instance 1 (idle, not woken); instance 0's sweeper closes it.
    closed = await ann.socket.next("question_closed")
    assert closed["reason"] == "all_answered"
    assert closed["answered"] == 2


async def test_a_wake_ends_an_idle_wait_at_once_and_busy_passes_keep_their_interval(
    slow_idle_poll: None,
) -> None:
    """`_paced` alone: idle, the next pass comes only when woken (the idle poll is a minute
    here); busy, passes follow each other at the interval; `stop` ends it."""
    passes: list[float] = []
    busy = False

    async def work() -> bool:
        passes.append(time.monotonic())
        return busy

    live = SimpleNamespace(wakers=[])
    stop = asyncio.Event()
    loop = asyncio.create_task(runtime._paced(live, 0.05, stop, work))  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    assert len(passes) == 1  # idle: no second pass without a wake
    busy = True
    runtime.LiveRuntime.wake(live)  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    assert 3 <= len(passes) <= 8  # woken at once, then every 0.05 s while busy
    stop.set()
    await asyncio.wait_for(loop, 1)
    assert live.wakers == []
