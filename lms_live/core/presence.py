"""Who is online, across instances, counting each connection (several tabs are one person).

Redis key per user (TTL `ttl`): `lms:presence:<user id>`, a sorted set of connection ids
scored by when they stop counting. Each instance refreshes its own connections every
`ttl / 3` seconds, so the connections of a crashed instance stop counting after `ttl`.
Joining and leaving are atomic (Lua) and report the transitions that matter: the first
connection of a user (came online) and the last one gone (went offline).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Protocol

from redis.asyncio import Redis

_JOIN = """
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000))
return before
"""

_LEAVE = """
local now = tonumber(ARGV[2])
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {removed, redis.call('ZCARD', KEYS[1])}
"""


class Presence(Protocol):
    async def join(self, user_id: str, connection: str) -> bool:
        """Count a connection; True when it is the user's first (they came online)."""
        ...

    async def leave(self, user_id: str, connection: str) -> bool:
        """Stop counting it; True when it was the user's last (they went offline)."""
        ...

    async def refresh(self, connections: dict[str, set[str]]) -> None:
        """Keep these connections (user -> connection ids) counted for another `ttl`."""
        ...

    async def online(self, user_ids: list[str]) -> set[str]:
        """Which of these users have at least one live connection."""
        ...


def _key(user_id: str) -> str:
    return f"lms:presence:{user_id}"


class RedisPresence:
    def __init__(self, redis: Redis, *, ttl: float = 60.0) -> None:
        self.redis = redis
        self.ttl = ttl
        self._join = redis.register_script(_JOIN)
        self._leave = redis.register_script(_LEAVE)

    async def join(self, user_id: str, connection: str) -> bool:
        before = await self._join(keys=[_key(user_id)], args=[connection, time.time(), self.ttl])
        return int(before) == 0

    async def leave(self, user_id: str, connection: str) -> bool:
        removed, left = await self._leave(keys=[_key(user_id)], args=[connection, time.time()])
        return int(removed) == 1 and int(left) == 0

    async def refresh(self, connections: dict[str, set[str]]) -> None:
        until = time.time() + self.ttl
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id, ids in connections.items():
                pipe.zadd(_key(user_id), dict.fromkeys(ids, until), xx=True)
                pipe.pexpire(_key(user_id), int(self.ttl * 1000))
            await pipe.execute()

    async def online(self, user_ids: list[str]) -> set[str]:
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.zcount(_key(user_id), f"({now}", "+inf")
            counts = await pipe.execute()
        return {u for u, count in zip(user_ids, counts, strict=True) if int(count) > 0}


class MemoryPresence:
    """Presence in this process (embedded default: one instance)."""

    def __init__(self) -> None:
        self._connections: defaultdict[str, set[str]] = defaultdict(set)

    async def join(self, user_id: str, connection: str) -> bool:
        first = not self._connections[user_id]
        self._connections[user_id].add(connection)
        return first

    async def leave(self, user_id: str, connection: str) -> bool:
        held = self._connections.get(user_id)
        if not held or connection not in held:
            return False
        held.discard(connection)
        if not held:
            del self._connections[user_id]
            return True
        return False

    async def refresh(self, connections: dict[str, set[str]]) -> None:
        return None

    async def online(self, user_ids: list[str]) -> set[str]:
        return {u for u in user_ids if self._connections.get(u)}
