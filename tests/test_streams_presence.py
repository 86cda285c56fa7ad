"""Numbered replayable streams and cross-instance presence, on Redis and in memory."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from lms_live.core.presence import MemoryPresence, Presence, RedisPresence
from lms_live.core.streams import MemoryStreamLog, RedisStreamLog, StreamLog


@pytest.fixture(params=["redis", "memory"])
def log(request: pytest.FixtureRequest) -> StreamLog:
    if request.param == "memory":
        return MemoryStreamLog(keep=5)
    redis: Redis = request.getfixturevalue("redis")
    return RedisStreamLog(redis, keep=5)


@pytest.fixture(params=["redis", "memory"])
def presence(request: pytest.FixtureRequest) -> Presence:
    if request.param == "memory":
        return MemoryPresence()
    redis: Redis = request.getfixturevalue("redis")
    return RedisPresence(redis, ttl=30)


async def test_events_are_numbered_per_stream_and_replayed(log: StreamLog) -> None:
    name = f"course:{uuid.uuid4()}"
    other = f"course:{uuid.uuid4()}"
    first = await log.append(name, "a", {"n": 1})
    await log.append(other, "x", {})
    second = await log.append(name, "b", {"n": 2, "when": "now"})
    assert (first.seq, second.seq) == (1, 2)
    assert second.payload() == {"seq": 2, "n": 2, "when": "now"}
    assert await log.head(name) == 2
    assert await log.head(f"course:{uuid.uuid4()}") == 0
    replay = await log.since(name, 0)
    assert replay is not None
    assert [(e.seq, e.event, e.data) for e in replay] == [
        (1, "a", {"n": 1}),
        (2, "b", {"n": 2, "when": "now"}),
    ]
    assert await log.since(name, 2) == []
    after_one = await log.since(name, 1)
    assert after_one is not None
    assert [e.wire() for e in after_one] == [
        {"event": "b", "data": {"seq": 2, "n": 2, "when": "now"}}
    ]


async def test_a_gap_or_a_future_seq_means_reset(log: StreamLog) -> None:
    name = f"course:{uuid.uuid4()}"
    for n in range(8):  # keep=5: seq 1..3 are gone
        await log.append(name, "e", {"n": n})
    assert await log.since(name, 1) is None
    kept = await log.since(name, 3)
    assert kept is not None
    assert [e.seq for e in kept] == [4, 5, 6, 7, 8]
    assert await log.since(name, 99) is None


async def test_several_tabs_are_one_person(presence: Presence) -> None:
    user = str(uuid.uuid4())
    assert await presence.join(user, "tab-1") is True
    assert await presence.join(user, "tab-2") is False
    assert await presence.online([user, str(uuid.uuid4())]) == {user}
    assert await presence.leave(user, "tab-1") is False
    assert await presence.online([user]) == {user}
    assert await presence.leave(user, "tab-2") is True
    assert await presence.online([user]) == set()
    assert await presence.leave(user, "tab-2") is False


async def test_connections_of_a_dead_instance_stop_counting(redis: Any) -> None:
    import asyncio

    presence = RedisPresence(redis, ttl=0.5)
    user = str(uuid.uuid4())
    assert await presence.join(user, "crashed-instance:sid") is True
    await asyncio.sleep(0.8)
    assert await presence.online([user]) == set()
    assert await presence.join(user, "fresh:sid") is True  # online again: a real transition
    await presence.refresh({user: {"fresh:sid"}})
    await asyncio.sleep(0.3)
    await presence.refresh({user: {"fresh:sid"}})
    await asyncio.sleep(0.3)
    assert await presence.online([user]) == {user}
