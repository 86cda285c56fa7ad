"""Redis client factory and the small interfaces other modules use instead of Redis itself.

`KeyValueStore` (values with a TTL, counters) and `PubSub` (fan-out between instances) each
have a Redis implementation and an in-process one for the embedded default (REDIS_URL unset),
so callers never branch on the deployment. Keys follow `lms:<domain>:<id>:<part>` and every
key written through `KeyValueStore` carries a TTL.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, Protocol

import redis as redis_py
from redis.asyncio import BlockingConnectionPool, Redis

from lms_live.settings import Settings


def driver_options() -> dict[str, Any]:
    """Connection options naming redis-py's version for CLIENT SETINFO. Left to itself,
    redis-py looks its version up with `importlib.metadata` for every new connection (a scan
    of the installed distributions: 5-60 ms on the event loop, seen when a burst grows a
    pool); the module's `__version__` is the same string, read once."""
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # redis-py before DriverInfo: the older keywords
        return {"lib_name": "redis-py", "lib_version": redis_py.__version__}
    return {"driver_info": DriverInfo(lib_version=redis_py.__version__)}


def make_redis(settings: Settings, *, url: str | None = None) -> Redis | None:
    """A Redis client for REDIS_URL (None when unset). Connects lazily, health-checked."""
    target = url or settings.redis_url
    if not target:
        return None
    # A blocking pool: a burst waits for a connection instead of failing (redis-py's default
    # pool raises MaxConnectionsError, which would switch rate limiting off mid-flood).
    pool = BlockingConnectionPool.from_url(
        target,
        max_connections=settings.redis_pool_size,
        timeout=5,
        health_check_interval=settings.redis_health_check_interval,
        socket_connect_timeout=5,
        retry_on_timeout=True,
        **driver_options(),
    )
    return Redis.from_pool(pool)


class KeyValueStore(Protocol):
    """Values with a time to live, and TTL'd counters."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes | str, *, ttl: float) -> None: ...

    async def set_if_absent(self, key: str, value: bytes | str, *, ttl: float) -> bool: ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, *, ttl: float) -> int: ...

    async def mget(self, keys: list[str]) -> list[bytes | None]: ...

    async def ttl(self, key: str) -> float | None: ...

    async def ping(self) -> None: ...


class PubSub(Protocol):
    """At-most-once broadcast between instances (callers carry their own `seq`)."""

    async def publish(self, channel: str, message: bytes | str) -> None: ...

    def subscribe(
        self, channel: str, *, stop: asyncio.Event | None = None
    ) -> AsyncIterator[bytes]: ...


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


class RedisKeyValue:
    """`KeyValueStore` on Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, key: str) -> bytes | None:
        value = await self.redis.get(key)
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes | str, *, ttl: float) -> None:
        await self.redis.set(key, value, px=_ms(ttl))

    async def set_if_absent(self, key: str, value: bytes | str, *, ttl: float) -> bool:
        return bool(await self.redis.set(key, value, px=_ms(ttl), nx=True))

    async def delete(self, key: str) -> None:
        await self.redis.delete(key)

    async def incr(self, key: str, *, ttl: float) -> int:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.pexpire(key, _ms(ttl), nx=True)
            count, _ = await pipe.execute()
        return int(count)

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        values = await self.redis.mget(keys)
        return [v.encode() if isinstance(v, str) else v for v in values]

    async def ttl(self, key: str) -> float | None:
        """Seconds the key has left (None when absent or without expiry)."""
        left = await self.redis.pttl(key)
        return left / 1000 if left and left > 0 else None

    async def ping(self) -> None:
        await self.redis.ping()


class MemoryKeyValue:
    """`KeyValueStore` in this process's memory (embedded default: one instance only)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float]] = {}
        self._writes = 0

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item[0]

    def _store(self, key: str, value: bytes, ttl: float) -> None:
        self._data[key] = (value, time.monotonic() + ttl)
        self._writes += 1
        if self._writes % 1024 == 0:
            now = time.monotonic()
            for stale in [k for k, (_, exp) in self._data.items() if exp <= now]:
                del self._data[stale]

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes | str, *, ttl: float) -> None:
        self._store(key, value.encode() if isinstance(value, str) else value, ttl)

    async def set_if_absent(self, key: str, value: bytes | str, *, ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        await self.set(key, value, ttl=ttl)
        return True

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, *, ttl: float) -> int:
        current = self._live(key)
        count = int(current) + 1 if current is not None else 1
        expires = self._data[key][1] if current is not None else time.monotonic() + ttl
        self._data[key] = (str(count).encode(), expires)
        return count

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        return [self._live(key) for key in keys]

    def has(self, key: str) -> bool:
        """Whether `key` holds a live value, without a coroutine (this store never waits)."""
        item = self._data.get(key)
        return item is not None and self._live(key) is not None

    async def ttl(self, key: str) -> float | None:
        if self._live(key) is None:
            return None
        return self._data[key][1] - time.monotonic()

    async def ping(self) -> None:
        return None


class RedisPubSub:
    """`PubSub` on Redis channels."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def publish(self, channel: str, message: bytes | str) -> None:
        await self.redis.publish(channel, message)

    async def subscribe(
        self, channel: str, *, stop: asyncio.Event | None = None
    ) -> AsyncIterator[bytes]:
        """Messages of `channel` until `stop` is set (polled every 0.2 s: a blocked read is
        never cancelled, which Python 3.11's asyncio.wait_for in redis-py can swallow)."""
        async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(channel)
            while stop is None or not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                if message is not None and message["type"] == "message":
                    yield message["data"]


class MemoryPubSub:
    """`PubSub` between subscribers in this process."""

    def __init__(self) -> None:
        self._queues: defaultdict[str, set[asyncio.Queue[bytes]]] = defaultdict(set)

    async def publish(self, channel: str, message: bytes | str) -> None:
        data = message.encode() if isinstance(message, str) else message
        for queue in self._queues.get(channel, ()):
            queue.put_nowait(data)

    async def subscribe(
        self, channel: str, *, stop: asyncio.Event | None = None
    ) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._queues[channel].add(queue)
        stopped = asyncio.ensure_future((stop or asyncio.Event()).wait())
        try:
            while not stopped.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
        finally:
            stopped.cancel()
            self._queues[channel].discard(queue)


class MgetBatcher:
    """`mget`s from concurrent callers sharing one round trip.

    A call goes out at once when none is in flight; calls arriving meanwhile go together in
    the next one (natural batching: no added delay when idle, one round trip for many
    requests under load, as the rate limiter does)."""

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv
        self._waiting: list[tuple[list[str], asyncio.Future[list[bytes | None]]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        found: asyncio.Future[list[bytes | None]] = asyncio.get_running_loop().create_future()
        self._waiting.append((keys, found))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
        return await found

    async def _send(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            every = [key for keys, _ in batch for key in keys]
            try:
                values = await self.kv.mget(every)
            except Exception as exc:  # each caller gets the failure and decides
                for _, found in batch:
                    if not found.done():
                        found.set_exception(exc)
                continue
            start = 0
            for keys, found in batch:
                if not found.done():
                    found.set_result(values[start : start + len(keys)])
                start += len(keys)
