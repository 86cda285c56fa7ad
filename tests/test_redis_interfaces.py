"""`KeyValueStore` and `PubSub`: the Redis and in-process implementations behave the same."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import redis as redis_py
from redis import utils as redis_utils
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from lms_live.core.redis import (
    KeyValueStore,
    MemoryKeyValue,
    MemoryPubSub,
    MgetBatcher,
    PubSub,
    RedisKeyValue,
    RedisPubSub,
    make_redis,
)
from lms_live.settings import Settings
from tests.conftest import free_port

WAIT = 2.0  # seconds to wait for an expected message


@pytest.fixture(params=["redis", "memory"])
def kv(request: pytest.FixtureRequest, redis: Redis) -> KeyValueStore:
    if request.param == "redis":
        return RedisKeyValue(redis)
    return MemoryKeyValue()


def key() -> str:
    return f"lms:test:{uuid.uuid4().hex}:kv"


# --- KeyValueStore -----------------------------------------------------------------------------


async def test_get_missing_key_is_none(kv: KeyValueStore) -> None:
    assert await kv.get(key()) is None


async def test_set_then_get_returns_bytes(kv: KeyValueStore) -> None:
    k1, k2 = key(), key()
    await kv.set(k1, "héllo", ttl=10)
    await kv.set(k2, b"\x00\xffraw", ttl=10)
    assert await kv.get(k1) == "héllo".encode()
    assert await kv.get(k2) == b"\x00\xffraw"


async def test_set_overwrites_value(kv: KeyValueStore) -> None:
    k = key()
    await kv.set(k, "one", ttl=10)
    await kv.set(k, "two", ttl=10)
    assert await kv.get(k) == b"two"


async def test_values_and_counters_expire_after_their_ttl(kv: KeyValueStore) -> None:
    plain, absent, counter, renewed = key(), key(), key(), key()
    await kv.set(plain, "v", ttl=1.0)
    assert await kv.set_if_absent(absent, "v", ttl=1.0) is True
    await kv.incr(counter, ttl=1.0)
    await kv.incr(counter, ttl=1.0)
    await kv.set(renewed, "short", ttl=1.0)
    await kv.set(renewed, "long", ttl=10)  # set replaces the TTL
    assert await kv.get(plain) == b"v"
    assert await kv.get(absent) == b"v"
    assert await kv.get(counter) == b"2"
    await asyncio.sleep(1.3)
    assert await kv.get(plain) is None
    assert await kv.get(absent) is None
    assert await kv.get(counter) is None
    assert await kv.get(renewed) == b"long"
    assert await kv.set_if_absent(absent, "again", ttl=10) is True
    assert await kv.get(absent) == b"again"


async def test_set_if_absent_only_sets_missing_keys(kv: KeyValueStore) -> None:
    k = key()
    assert await kv.set_if_absent(k, "first", ttl=10) is True
    assert await kv.set_if_absent(k, "second", ttl=10) is False
    assert await kv.get(k) == b"first"
    await kv.delete(k)
    assert await kv.set_if_absent(k, "third", ttl=10) is True
    assert await kv.get(k) == b"third"


async def test_delete_removes_and_tolerates_missing(kv: KeyValueStore) -> None:
    k = key()
    await kv.set(k, "v", ttl=10)
    await kv.delete(k)
    assert await kv.get(k) is None
    await kv.delete(k)  # no error on a missing key
    assert await kv.get(k) is None


async def test_incr_counts_from_one(kv: KeyValueStore) -> None:
    k = key()
    assert [await kv.incr(k, ttl=10) for _ in range(3)] == [1, 2, 3]
    assert await kv.get(k) == b"3"
    assert await kv.incr(key(), ttl=10) == 1


async def test_incr_keeps_the_first_ttl(kv: KeyValueStore) -> None:
    k = key()
    assert await kv.incr(k, ttl=1.0) == 1
    assert await kv.incr(k, ttl=30) == 2  # must not extend the window
    await asyncio.sleep(1.3)
    assert await kv.get(k) is None
    assert await kv.incr(k, ttl=30) == 1  # a new window starts from one


async def test_ping_succeeds(kv: KeyValueStore) -> None:
    await kv.ping()


async def test_new_connections_do_not_look_up_the_library_version(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py would read its version from the installed distributions for every new
    connection (importlib.metadata, tens of ms on the event loop); make_redis gives it."""

    def scan() -> str:
        raise AssertionError("importlib.metadata lookup on connect")

    monkeypatch.setattr(redis_utils, "get_lib_version", scan)
    client = make_redis(Settings(redis_url=redis_url))
    assert client is not None
    try:
        await asyncio.gather(*(client.ping() for _ in range(5)))  # several new connections
        assert client.connection_pool.connection_kwargs["driver_info"].lib_version == (
            redis_py.__version__
        )
    finally:
        await client.aclose()


async def test_redis_ping_fails_when_redis_is_down() -> None:
    client = Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(RedisConnectionError):
            await RedisKeyValue(client).ping()
    finally:
        await client.aclose()


async def test_redis_every_written_key_has_a_ttl(redis: Redis) -> None:
    store = RedisKeyValue(redis)
    await store.set("lms:test:a", "v", ttl=5)
    await store.set_if_absent("lms:test:b", "v", ttl=5)
    await store.incr("lms:test:c", ttl=5)
    await store.incr("lms:test:c", ttl=5)
    assert sorted(await redis.keys("*")) == [b"lms:test:a", b"lms:test:b", b"lms:test:c"]
    for name in ("lms:test:a", "lms:test:b", "lms:test:c"):
        pttl = await redis.pttl(name)
        assert 4000 < pttl <= 5000, (name, pttl)
    await store.set("lms:test:d", "v", ttl=0.0001)  # rounds up to 1 ms, never "no TTL"
    assert await redis.pttl("lms:test:d") in (-2, 0, 1)  # expired or about to, never -1


async def test_redis_incr_does_not_extend_pttl(redis: Redis) -> None:
    store = RedisKeyValue(redis)
    await store.incr("lms:test:n", ttl=2)
    first = await redis.pttl("lms:test:n")
    await store.incr("lms:test:n", ttl=60)
    assert await redis.pttl("lms:test:n") <= first
    assert await redis.get("lms:test:n") == b"2"


async def test_redis_set_if_absent_does_not_touch_existing_ttl(redis: Redis) -> None:
    store = RedisKeyValue(redis)
    await store.set("lms:test:x", "v", ttl=2)
    assert await store.set_if_absent("lms:test:x", "w", ttl=60) is False
    assert 0 < await redis.pttl("lms:test:x") <= 2000


# --- PubSub ------------------------------------------------------------------------------------


@dataclass
class Bus:
    pubsub: PubSub
    subscribers: Callable[[str], Awaitable[int]]


@pytest.fixture(params=["redis", "memory"])
def bus(request: pytest.FixtureRequest, redis: Redis) -> Bus:
    if request.param == "redis":

        async def redis_count(channel: str) -> int:
            rows = await redis.pubsub_numsub(channel)
            return int(rows[0][1])

        return Bus(RedisPubSub(redis), redis_count)

    memory = MemoryPubSub()

    async def memory_count(channel: str) -> int:
        return len(memory._queues.get(channel, ()))

    return Bus(memory, memory_count)


@pytest.fixture
def channel(worker_id: str) -> str:
    # Redis channels are shared by every database: keep them unique per worker and test.
    return f"lms:test:{worker_id}:{uuid.uuid4().hex}"


class Subscriber:
    """Consumes one subscription into a queue in a background task."""

    def __init__(self, pubsub: PubSub, channel: str) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.task = asyncio.create_task(self._consume(pubsub.subscribe(channel)))

    async def _consume(self, messages: AsyncIterator[bytes]) -> None:
        async for message in messages:
            await self.received.put(message)

    async def next(self) -> bytes:
        return await asyncio.wait_for(self.received.get(), WAIT)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def wait_for_subscribers(bus: Bus, channel: str, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while await bus.subscribers(channel) < count:
        assert time.monotonic() < deadline, f"{count} subscribers never joined {channel}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def subscribed(bus: Bus, channel: str, count: int) -> AsyncIterator[list[Subscriber]]:
    subs = [Subscriber(bus.pubsub, channel) for _ in range(count)]
    try:
        await wait_for_subscribers(bus, channel, count)
        yield subs
    finally:
        for sub in subs:
            await sub.stop()


async def test_two_subscribers_each_receive_every_message_in_order(bus: Bus, channel: str) -> None:
    async with subscribed(bus, channel, 2) as subs:
        await bus.pubsub.publish(channel, "one")
        await bus.pubsub.publish(channel, b"two")
        for sub in subs:
            assert await sub.next() == b"one"
            assert await sub.next() == b"two"


async def test_messages_on_other_channels_are_not_delivered(bus: Bus, channel: str) -> None:
    async with subscribed(bus, channel, 1) as [sub]:
        await bus.pubsub.publish(f"{channel}:other", "elsewhere")
        await bus.pubsub.publish(channel + "x", "prefix-sibling")
        await bus.pubsub.publish(channel, "mine")
        # Delivery is in publication order: anything leaked would arrive before "mine".
        assert await sub.next() == b"mine"
        assert sub.received.empty()


async def test_publish_without_subscribers_is_harmless(bus: Bus, channel: str) -> None:
    await bus.pubsub.publish(channel, "nobody listens")
    async with subscribed(bus, channel, 1) as [sub]:
        await bus.pubsub.publish(channel, "later")
        assert await sub.next() == b"later"  # the earlier message was not queued


async def test_stopped_subscriber_is_unsubscribed(bus: Bus, channel: str) -> None:
    async with subscribed(bus, channel, 2) as subs:
        await subs[0].stop()
        deadline = time.monotonic() + WAIT
        while await bus.subscribers(channel) != 1:
            assert time.monotonic() < deadline, "cancelled subscriber stayed subscribed"
            await asyncio.sleep(0.01)
        await bus.pubsub.publish(channel, "still here")
        assert await subs[1].next() == b"still here"
        assert subs[0].received.empty()


async def test_concurrent_mgets_share_round_trips_and_each_gets_its_own_values(
    redis: Redis,
) -> None:
    kv = RedisKeyValue(redis)
    sent: list[int] = []
    real_mget = kv.mget

    async def counting_mget(keys: list[str]) -> list[bytes | None]:
        sent.append(len(keys))
        return await real_mget(keys)

    kv.mget = counting_mget  # type: ignore[method-assign]
    names = [f"lms:test:batch:{uuid.uuid4().hex}" for _ in range(40)]
    for n, name in enumerate(names[::2]):
        await kv.set(name, str(n), ttl=30)
    batcher = MgetBatcher(kv)
    answers = await asyncio.gather(*(batcher.mget([name, name + ":none"]) for name in names))
    assert [a[1] for a in answers] == [None] * 40
    assert [a[0] for a in answers] == [
        str(n // 2).encode() if n % 2 == 0 else None for n in range(40)
    ]
    assert sum(sent) == 80
    assert len(sent) <= 2  # one at once, the rest together in the next


async def test_a_failed_batched_mget_fails_every_caller() -> None:
    down = Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    batcher = MgetBatcher(RedisKeyValue(down))
    results = await asyncio.gather(*(batcher.mget(["a"]) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RedisConnectionError | OSError) for r in results), results
    await down.aclose()
