"""The hot copy of live session state, shared by every instance (Redis; in-process when the
app runs on the embedded default). PostgreSQL stays the truth: everything here can be lost
and is rebuilt from it (player states on the next close or on a miss, presence on the next
refresh, the lease on the next tick).

Redis keys (TTL `ttl`, refreshed on write):
  lms:live:<id>:online     sorted set: player id -> when its presence expires (epoch s)
  lms:live:<id>:players    hash: player id -> PlayerState JSON (written when a question closes)
  lms:live:<id>:conductor  the instance emitting this session's dashboard (lease, PX)
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol, cast

import orjson
from redis.asyncio import Redis

TTL = 12 * 3600.0
PRESENCE_TTL = 30.0  # an instance refreshes its players every PRESENCE_TTL / 3

_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


def _key(session_id: str, part: str) -> str:
    return f"lms:live:{session_id}:{part}"


class LiveHot(Protocol):
    async def online_add(self, session_id: str, player_ids: list[str]) -> None: ...

    async def online_remove(self, session_id: str, player_id: str) -> None: ...

    async def online_count(self, session_id: str) -> int: ...

    async def online_players(self, session_id: str) -> set[str]: ...

    async def put_players(self, session_id: str, states: dict[str, dict[str, Any]]) -> None: ...

    async def get_player(self, session_id: str, player_id: str) -> dict[str, Any] | None: ...

    async def lease(self, session_id: str, holder: str, *, ttl: float) -> bool:
        """Take or extend this session's conductor lease; False if another holds it."""
        ...


class RedisLiveHot:
    def __init__(self, redis: Redis, *, ttl: float = TTL) -> None:
        self.redis = redis
        self.ttl_ms = int(ttl * 1000)
        self._lease = redis.register_script(_LEASE)

    async def online_add(self, session_id: str, player_ids: list[str]) -> None:
        if not player_ids:
            return
        key = _key(session_id, "online")
        until = time.time() + PRESENCE_TTL
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, dict.fromkeys(player_ids, until))
            pipe.pexpire(key, self.ttl_ms)
            await pipe.execute()

    async def online_remove(self, session_id: str, player_id: str) -> None:
        await self.redis.zrem(_key(session_id, "online"), player_id)

    async def online_count(self, session_id: str) -> int:
        return int(await self.redis.zcount(_key(session_id, "online"), time.time(), "+inf"))

    async def online_players(self, session_id: str) -> set[str]:
        members = await self.redis.zrangebyscore(_key(session_id, "online"), time.time(), "+inf")
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    async def put_players(self, session_id: str, states: dict[str, dict[str, Any]]) -> None:
        if not states:
            return
        key = _key(session_id, "players")
        # orjson: a close writes every player's state (5,000 at once), on the event loop.
        mapping = {pid: orjson.dumps(state) for pid, state in states.items()}
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=cast(Any, mapping))  # redis-py's Mapping is invariant
            pipe.pexpire(key, self.ttl_ms)
            await pipe.execute()

    async def get_player(self, session_id: str, player_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(_key(session_id, "players"), player_id)
        if raw is None:
            return None
        state: dict[str, Any] = json.loads(raw)
        return state

    async def lease(self, session_id: str, holder: str, *, ttl: float) -> bool:
        won = await self._lease(
            keys=[_key(session_id, "conductor")], args=[holder, int(ttl * 1000)]
        )
        return bool(won)


class MemoryLiveHot:
    """The same in this process (embedded default: one instance)."""

    def __init__(self) -> None:
        self._online: dict[str, dict[str, float]] = {}
        self._players: dict[str, dict[str, dict[str, Any]]] = {}
        self._leases: dict[str, tuple[str, float]] = {}

    async def online_add(self, session_id: str, player_ids: list[str]) -> None:
        until = time.time() + PRESENCE_TTL
        self._online.setdefault(session_id, {}).update(dict.fromkeys(player_ids, until))

    async def online_remove(self, session_id: str, player_id: str) -> None:
        self._online.get(session_id, {}).pop(player_id, None)

    async def online_count(self, session_id: str) -> int:
        return len(await self.online_players(session_id))

    async def online_players(self, session_id: str) -> set[str]:
        now = time.time()
        return {p for p, until in self._online.get(session_id, {}).items() if until > now}

    async def put_players(self, session_id: str, states: dict[str, dict[str, Any]]) -> None:
        self._players.setdefault(session_id, {}).update(states)

    async def get_player(self, session_id: str, player_id: str) -> dict[str, Any] | None:
        return self._players.get(session_id, {}).get(player_id)

    async def lease(self, session_id: str, holder: str, *, ttl: float) -> bool:
        now = time.monotonic()
        current = self._leases.get(session_id)
        if current is None or current[0] == holder or current[1] < now:
            self._leases[session_id] = (holder, now + ttl)
            return True
        return False
