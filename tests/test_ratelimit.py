"""Token buckets: the Redis (Lua, shared) and in-memory limiters behave the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from lms_live.core.ratelimit import (
    Decision,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    _evalsha_command,
)
from lms_live.core.redis import make_redis
from tests.conftest import make_settings


@pytest.fixture(params=["redis", "memory"])
def limiter(request: pytest.FixtureRequest, redis: Redis) -> RateLimiter:
    if request.param == "redis":
        return RedisRateLimiter(redis)
    return MemoryRateLimiter()


def bucket() -> str:
    return f"test:{uuid.uuid4().hex}"


async def hits(
    limiter: RateLimiter, key: str, n: int, *, capacity: int, period: float
) -> list[Decision]:
    return [await limiter.hit(key, capacity=capacity, period=period) for _ in range(n)]


async def test_capacity_allows_exactly_n_then_refuses(limiter: RateLimiter) -> None:
    decisions = await hits(limiter, bucket(), 7, capacity=5, period=60)
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]
    assert all(d.limit == 5 for d in decisions)
    assert all(d.retry_after == 0 for d in decisions[:5])
    for refused in decisions[5:]:
        assert refused.retry_after == pytest.approx(60 / 5, abs=0.05)  # period / capacity


async def test_headers_describe_the_bucket(limiter: RateLimiter) -> None:
    key = bucket()
    first = await limiter.hit(key, capacity=10, period=60)
    assert first.headers() == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "9",
        "X-RateLimit-Reset": "6",  # one token back after 60 / 10 seconds
    }
    second = await limiter.hit(key, capacity=10, period=60)
    assert second.headers()["X-RateLimit-Remaining"] == "8"
    assert second.headers()["X-RateLimit-Reset"] == "12"
    assert second.reset_after == pytest.approx(12, abs=0.05)


async def test_headers_of_an_empty_bucket(limiter: RateLimiter) -> None:
    *_, refused = await hits(limiter, bucket(), 4, capacity=3, period=30)
    assert not refused.allowed
    assert refused.headers() == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "30",
    }
    assert refused.retry_after == pytest.approx(10, abs=0.05)


async def test_bucket_refills_over_time(limiter: RateLimiter) -> None:
    key = bucket()
    decisions = await hits(limiter, key, 5, capacity=4, period=0.4)  # 10 tokens per second
    assert [d.allowed for d in decisions] == [True] * 4 + [False]
    retry = decisions[-1].retry_after
    assert 0.05 < retry <= 0.1 + 1e-9  # one token's time, less what trickled in meanwhile
    await asyncio.sleep(retry + 0.03)
    again = await limiter.hit(key, capacity=4, period=0.4)
    assert again.allowed
    await asyncio.sleep(0.45)  # longer than the period: full again, never more than capacity
    decisions = await hits(limiter, key, 5, capacity=4, period=0.4)
    assert [d.allowed for d in decisions] == [True] * 4 + [False]
    assert decisions[0].remaining == 3


async def test_partial_refill_gives_back_proportional_tokens(limiter: RateLimiter) -> None:
    key = bucket()
    await hits(limiter, key, 10, capacity=10, period=1)  # 10 tokens per second
    await asyncio.sleep(0.25)
    allowed = sum(d.allowed for d in await hits(limiter, key, 10, capacity=10, period=1))
    assert 2 <= allowed <= 4  # about 2.5 tokens came back, far from a full bucket


async def test_keys_are_independent(limiter: RateLimiter) -> None:
    a, b = bucket(), bucket()
    await hits(limiter, a, 3, capacity=3, period=60)
    assert not (await limiter.hit(a, capacity=3, period=60)).allowed
    other = await limiter.hit(b, capacity=3, period=60)
    assert other.allowed
    assert other.remaining == 2


# --- Redis -------------------------------------------------------------------------------------


@pytest.fixture
async def second_client(redis_url: str, redis: Redis) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_redis_concurrent_hits_allow_exactly_capacity(redis_url: str, redis: Redis) -> None:
    client = Redis.from_url(redis_url, max_connections=250)  # 200 truly concurrent calls
    try:
        limiter = RedisRateLimiter(client)
        key = bucket()
        decisions = await asyncio.gather(
            *(limiter.hit(key, capacity=50, period=3600) for _ in range(200))
        )
    finally:
        await client.aclose()
    assert sum(d.allowed for d in decisions) == 50
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(50))


async def test_redis_limiter_on_the_app_client_survives_a_burst(
    tmp_path: Path, worker_id: str, redis_url: str, redis: Redis
) -> None:
    # The app's own client (make_redis): a burst of 200 concurrent requests must be limited,
    # not fail with "Too many connections".
    client = make_redis(make_settings(tmp_path, worker_id, pg_url=None, redis_url=redis_url))
    assert client is not None
    try:
        limiter = RedisRateLimiter(client)
        key = bucket()
        decisions = await asyncio.gather(
            *(limiter.hit(key, capacity=50, period=3600) for _ in range(200))
        )
    finally:
        await client.aclose()
    assert sum(d.allowed for d in decisions) == 50


async def test_redis_two_instances_share_one_bucket(redis: Redis, second_client: Redis) -> None:
    one, two = RedisRateLimiter(redis), RedisRateLimiter(second_client)
    key = bucket()
    decisions = []
    for i in range(10):
        decisions.append(await (one if i % 2 else two).hit(key, capacity=6, period=3600))
    assert [d.allowed for d in decisions] == [True] * 6 + [False] * 4
    assert [d.remaining for d in decisions[:6]] == [5, 4, 3, 2, 1, 0]
    concurrent = await asyncio.gather(
        *(lim.hit(f"{key}:c", capacity=20, period=3600) for lim in (one, two) * 30)
    )
    assert sum(d.allowed for d in concurrent) == 20


async def test_redis_bucket_key_has_a_ttl(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    await limiter.hit("user:42", capacity=10, period=60)
    assert await redis.keys("*") == [b"lms:rl:user:42"]
    assert await redis.type("lms:rl:user:42") == b"hash"
    pttl = await redis.pttl("lms:rl:user:42")
    # time to refill one token (6 s) plus one second of slack
    assert 6000 < pttl <= 7000


async def test_redis_bucket_ttl_covers_a_full_refill(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    await hits(limiter, "user:43", 12, capacity=10, period=60)
    pttl = await redis.pttl("lms:rl:user:43")
    assert 60000 < pttl <= 61000


# --- memory ------------------------------------------------------------------------------------


async def test_memory_eviction_drops_refilled_buckets_and_keeps_throttled_ones() -> None:
    limiter = MemoryRateLimiter(max_keys=8)
    await limiter.hit("victim", capacity=1, period=3600)
    assert not (await limiter.hit("victim", capacity=1, period=3600)).allowed
    for i in range(20):  # buckets that refill at once, so carry no state
        await limiter.hit(f"idle:{i}", capacity=1000, period=0.001)
    assert len(limiter._buckets) <= 8
    assert not (await limiter.hit("victim", capacity=1, period=3600)).allowed


async def test_memory_eviction_keeps_throttled_buckets_when_others_are_partly_used() -> None:
    limiter = MemoryRateLimiter(max_keys=8)
    await limiter.hit("victim", capacity=1, period=3600)
    assert not (await limiter.hit("victim", capacity=1, period=3600)).allowed
    for i in range(20):  # each spray key used once: not full, not throttled either
        await limiter.hit(f"spray:{i}", capacity=100, period=3600)
    assert len(limiter._buckets) <= 8
    # Flooding the table with fresh keys must not reset someone's throttle.
    assert not (await limiter.hit("victim", capacity=1, period=3600)).allowed


async def test_memory_buckets_below_max_keys_are_never_evicted() -> None:
    limiter = MemoryRateLimiter(max_keys=50)
    for i in range(10):
        await hits(limiter, f"k{i}", 2, capacity=2, period=3600)
    for i in range(10):
        assert not (await limiter.hit(f"k{i}", capacity=2, period=3600)).allowed


def test_decision_headers_round_reset_up() -> None:
    decision = Decision(allowed=True, limit=7, remaining=6, retry_after=0, reset_after=8.2)
    assert decision.headers() == {
        "X-RateLimit-Limit": "7",
        "X-RateLimit-Remaining": "6",
        "X-RateLimit-Reset": "9",
    }


async def test_a_hit_reports_which_keys_exist_in_the_same_call(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    present = f"lms:test:exists:{uuid.uuid4().hex}"
    absent = f"lms:test:absent:{uuid.uuid4().hex}"
    await redis.set(present, b"1", ex=30)
    bucket = f"check:{uuid.uuid4().hex}"
    results = await asyncio.gather(
        limiter.hit_checking(bucket, capacity=2, period=60, keys=[present, absent, present]),
        limiter.hit_checking(bucket, capacity=2, period=60, keys=[absent]),
        limiter.hit_checking(bucket, capacity=2, period=60, keys=[]),
    )
    assert [found for _, found in results] == [[True, False, True], [False], []]
    assert [decision.allowed for decision, _ in results] == [True, True, False]


def test_the_packed_evalsha_is_what_redis_py_would_send() -> None:
    from redis.asyncio.connection import Connection

    keys = ["lms:rl:default:user:1", "lms:auth:revocations:loaded", "lms:auth:jti:é"]
    args = [b"100 1.6666666666666667 2"]
    packed = b"".join(Connection().pack_command("EVALSHA", "a" * 40, len(keys), *keys, *args))
    assert _evalsha_command("a" * 40, keys, args) == packed


async def test_hits_go_on_after_redis_forgets_the_script(redis: Redis) -> None:
    """SCRIPT FLUSH (as after a Redis restart): the next call loads the script again."""
    limiter = RedisRateLimiter(redis)
    bucket = f"flush:{uuid.uuid4().hex}"
    assert (await limiter.hit(bucket, capacity=2, period=60)).remaining == 1
    await redis.script_flush()
    assert (await limiter.hit(bucket, capacity=2, period=60)).remaining == 0
    assert not (await limiter.hit(bucket, capacity=2, period=60)).allowed
