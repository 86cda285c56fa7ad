"""Token-bucket rate limiting: atomic in Redis (Lua, Redis's clock, batched calls), or in memory.

A bucket holds `capacity` tokens and refills at `capacity / period` per second; each request
takes one. Redis keys: `lms:rl:<bucket>:<identity>` (a hash of tokens and timestamp) with a
TTL of the time to refill, so idle buckets vanish.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import MutableMapping, Sequence
from typing import Any, NamedTuple, Protocol, cast

import redis.exceptions
from redis.asyncio import Redis

# For each request i, in order: ARGV[i] holds its bucket's capacity, rate and how many keys to
# check (n), as "capacity rate n" (one argument instead of three: redis-py packs each argument
# in Python); KEYS holds its bucket, then those n keys. Takes one token from the bucket (a
# bucket repeated in one call is taken in turn, exactly as separate calls would) and reports
# which of the checked keys exist (a bitmask), so a caller can read other state in the same
# round trip (the middleware reads the token's revocation keys this way).
_BUCKET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
local k = 1
for i = 1, #ARGV do
  local key = KEYS[k]
  local c, r, n = string.match(ARGV[i], '^(%S+) (%S+) (%S+)$')
  local capacity = tonumber(c)
  local rate = tonumber(r)
  local checks = tonumber(n)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil or ts == nil then
    tokens = capacity
    ts = now
  end
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
  local allowed = 0
  if tokens >= 1 then
    tokens = tokens - 1
    allowed = 1
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((capacity - tokens) / rate * 1000) + 1000)
  local found = 0
  for j = 1, checks do
    if redis.call('EXISTS', KEYS[k + j]) == 1 then
      found = found + 2 ^ (j - 1)
    end
  end
  k = k + 1 + checks
  out[3 * i - 2] = allowed
  out[3 * i - 1] = tostring(tokens)
  out[3 * i] = found
end
return out
"""


class Decision(NamedTuple):
    """The outcome of taking one token (a named tuple: built on every limited request, and
    a frozen dataclass's constructor costs four times as much)."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float

    def headers(self) -> dict[str, str]:
        """The `X-RateLimit-*` headers describing this bucket."""
        headers: dict[str, str] = {}
        self.put(headers)
        return headers

    def put(self, headers: MutableMapping[str, str]) -> None:
        """Set the `X-RateLimit-*` headers in `headers` (a response's, directly: a third of
        the cost of building a dict and extending by it, on every limited request)."""
        headers["X-RateLimit-Limit"] = str(self.limit)
        headers["X-RateLimit-Remaining"] = str(self.remaining)
        headers["X-RateLimit-Reset"] = str(math.ceil(self.reset_after))


def _decide(allowed: bool, tokens: float, capacity: int, rate: float) -> Decision:
    # Positional (keywords cost a third more); tokens are never negative, so int() floors.
    return Decision(
        allowed,
        capacity,
        int(tokens) if tokens > 0 else 0,
        0.0 if allowed else (1 - tokens) / rate,
        (capacity - tokens) / rate,
    )


class RateLimiter(Protocol):
    """Takes one token from a named bucket."""

    async def hit(self, key: str, *, capacity: int, period: float) -> Decision: ...


class RedisRateLimiter:
    """Buckets shared by every instance, updated atomically by a Lua script.

    Natural batching: a hit is sent at once when no call is in flight; hits arriving while one
    is in flight go together in the next call. Idle, that costs no delay; under load, one
    round trip serves many requests (one round trip per request cost ~370 us of CPU each).
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_BUCKET_SCRIPT)
        self._waiting: list[tuple[str, int, float, int, asyncio.Future[tuple[Decision, int]]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._checks: list[str] = []  # the keys to check of the waiting hits, in order
        self._specs: dict[tuple[int, float, int], bytes] = {}

    async def hit(self, key: str, *, capacity: int, period: float) -> Decision:
        decision, _ = await self.submit(key, capacity=capacity, period=period, keys=())
        return decision

    async def hit_checking(
        self, key: str, *, capacity: int, period: float, keys: Sequence[str]
    ) -> tuple[Decision, list[bool]]:
        """Take a token, and learn in the same round trip which of `keys` exist."""
        decision, mask = await self.submit(key, capacity=capacity, period=period, keys=keys)
        return decision, [bool(mask >> j & 1) for j in range(len(keys))]

    def submit(
        self, key: str, *, capacity: int, period: float, keys: Sequence[str]
    ) -> asyncio.Future[tuple[Decision, int]]:
        """`hit_checking` as a future (awaited by the request middleware itself: no coroutine
        frames to resume per request) whose result holds which keys exist as a bitmask (bit
        j set when `keys[j]` exists)."""
        found: asyncio.Future[tuple[Decision, int]] = asyncio.get_running_loop().create_future()
        self._waiting.append((f"lms:rl:{key}", capacity, capacity / period, len(keys), found))
        if keys:
            self._checks.extend(keys)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
        return found

    def _spec(self, capacity: int, rate: float, checks: int) -> bytes:
        spec = self._specs.get((capacity, rate, checks))
        if spec is None:
            spec = self._specs[(capacity, rate, checks)] = f"{capacity} {rate!r} {checks}".encode()
        return spec

    async def _send(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            checks, self._checks = self._checks, []
            keys: list[str] = []
            args: list[bytes] = []
            at = 0
            for bucket, capacity, rate, count, _ in batch:
                keys.append(bucket)
                if count:
                    keys += checks[at : at + count]
                    at += count
                args.append(self._spec(capacity, rate, count))
            try:
                result = await self._evalsha(keys, args)
            except Exception as exc:  # every waiter gets the failure (the caller decides)
                for *_, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for index, (_, capacity, rate, _, waiter) in enumerate(batch):
                if not waiter.done():
                    allowed, tokens, mask = result[3 * index : 3 * index + 3]
                    decision = _decide(bool(allowed), float(tokens), capacity, rate)
                    waiter.set_result((decision, int(mask)))

    async def _evalsha(self, keys: list[str], args: list[bytes]) -> list[Any]:
        """The script over these keys and arguments: EVALSHA packed here and sent on a
        connection of the client's pool (health-checked as every other), loading the script
        when Redis answers NOSCRIPT. redis-py's generic command path (argument encoding,
        retry wrapper, timing hooks, response callbacks) cost 30-40 µs of CPU per call; a
        hit of a signed-in request has five items to pack. Connection failures disconnect
        the connection and reach the caller, whose separate checks decide."""
        pool = self._redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        command = _evalsha_command(self._script.sha, keys, args)
        try:
            await connection.send_packed_command(command)
            try:
                return cast(list[Any], await connection.read_response())
            except redis.exceptions.NoScriptError:  # Redis restarted or flushed its scripts
                await self._redis.script_load(_BUCKET_SCRIPT)
            await connection.send_packed_command(command)
            return cast(list[Any], await connection.read_response())
        finally:
            await pool.release(connection)


def _bulk(item: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(item), item)


def _evalsha_command(sha: str, keys: list[str], args: list[bytes]) -> bytes:
    """`EVALSHA sha numkeys key... arg...` in RESP, as redis-py would pack it."""
    count = str(len(keys)).encode()
    parts = [
        b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + len(keys) + len(args)),
        _bulk(sha.encode()),
        _bulk(count),
    ]
    parts += [_bulk(key.encode()) for key in keys]
    parts += [_bulk(arg) for arg in args]
    return b"".join(parts)


class MemoryRateLimiter:
    """Buckets in this process (embedded default)."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._buckets: dict[str, tuple[float, float, float, int]] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, *, capacity: int, period: float) -> Decision:
        return self.take(key, capacity, period)

    def take(self, key: str, capacity: int, period: float) -> Decision:
        """`hit` without a coroutine (the request middleware calls this directly)."""
        rate = capacity / period
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            tokens = float(capacity)
            if len(self._buckets) >= self._max_keys:
                self._evict_full(now)
        else:  # refilled since its last hit (the monotonic clock never goes back)
            tokens = min(float(capacity), bucket[0] + (now - bucket[1]) * rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[key] = (tokens, now, rate, capacity)
        return _decide(allowed, tokens, capacity, rate)

    def _evict_full(self, now: float) -> None:
        """Make room: drop refilled buckets, then the fullest; throttled ones go last."""
        level = {
            key: min(cap, tok + (now - ts) * r) / cap
            for key, (tok, ts, r, cap) in self._buckets.items()
        }
        for key in [k for k, full in level.items() if full >= 1]:
            del self._buckets[key]
        excess = len(self._buckets) - int(self._max_keys * 0.9)
        if excess > 0:
            for key in sorted(self._buckets, key=lambda k: level[k], reverse=True)[:excess]:
                del self._buckets[key]
