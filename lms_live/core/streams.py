"""Event streams with sequence numbers, so a client never depends on a message it may miss.

Redis pub/sub is at-most-once and Socket.IO has no connection-state recovery. Every event of a
stream (a course dashboard, a learner's progress, a live session) therefore gets the stream's
next `seq` and is kept for replay for a while; a client that reconnects sends the last `seq`
it saw and receives the events after it, or learns that the log no longer reaches back and
must take a fresh snapshot (`reset`).

Redis keys (TTL `ttl`, refreshed on every append):
  lms:stream:<name>:seq   the last seq given out (INCR)
  lms:stream:<name>:log   sorted set of "<seq>:<json event>" scored by seq, trimmed to the
                          last `keep` events
Appends are atomic (one Lua script), so any instance may publish to any stream.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

_APPEND = """
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, seq .. ':' .. ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return seq
"""


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of a stream, as sent to clients: `{"seq": n, **data}` under `event`."""

    seq: int
    event: str
    data: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {"seq": self.seq, **self.data}

    def wire(self) -> dict[str, Any]:
        """The event as a replay item: `{"event": name, "data": {...with seq}}`."""
        return {"event": self.event, "data": self.payload()}


class StreamLog(Protocol):
    """Numbered, replayable events per stream name."""

    async def append(self, name: str, event: str, data: dict[str, Any]) -> StreamEvent: ...

    async def since(self, name: str, seq: int) -> list[StreamEvent] | None:
        """Events after `seq`, oldest first; None when some are no longer kept (reset)."""
        ...

    async def head(self, name: str) -> int:
        """The last seq given out (0 for a new stream)."""
        ...


def _encode(event: str, data: dict[str, Any]) -> str:
    return json.dumps({"e": event, "d": data}, separators=(",", ":"), default=str)


def _decode(member: bytes | str) -> StreamEvent:
    text = member.decode() if isinstance(member, bytes) else member
    seq, _, body = text.partition(":")
    doc = json.loads(body)
    return StreamEvent(int(seq), doc["e"], doc["d"])


class RedisStreamLog:
    """Streams in Redis, shared by every instance."""

    def __init__(self, redis: Redis, *, keep: int = 500, ttl: float = 86400.0) -> None:
        self.redis = redis
        self.keep = keep
        self.ttl_ms = int(ttl * 1000)
        self._append = redis.register_script(_APPEND)

    @staticmethod
    def _keys(name: str) -> tuple[str, str]:
        return f"lms:stream:{name}:seq", f"lms:stream:{name}:log"

    async def append(self, name: str, event: str, data: dict[str, Any]) -> StreamEvent:
        seq = await self._append(
            keys=list(self._keys(name)), args=[_encode(event, data), self.keep, self.ttl_ms]
        )
        return StreamEvent(int(seq), event, data)

    async def since(self, name: str, seq: int) -> list[StreamEvent] | None:
        seq_key, log_key = self._keys(name)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(seq_key)
            pipe.zrangebyscore(log_key, f"({seq}", "+inf")
            head_raw, members = await pipe.execute()
        head = int(head_raw or 0)
        events = [_decode(m) for m in members]
        return _complete(events, seq, head)

    async def head(self, name: str) -> int:
        value = await self.redis.get(self._keys(name)[0])
        return int(value or 0)


def _complete(events: list[StreamEvent], seq: int, head: int) -> list[StreamEvent] | None:
    """The events after `seq` if none is missing, else None."""
    if seq > head:
        return None  # the client is ahead of us: the stream was reset (expired, Redis lost it)
    if seq == head:
        return []
    if not events or events[0].seq != seq + 1 or events[-1].seq != head:
        return None
    return events


class MemoryStreamLog:
    """Streams in this process (embedded default)."""

    def __init__(self, *, keep: int = 500, ttl: float = 86400.0) -> None:
        self.keep = keep
        self.ttl = ttl
        self._streams: dict[str, tuple[int, deque[StreamEvent], float]] = {}

    def _live(self, name: str) -> tuple[int, deque[StreamEvent]]:
        found = self._streams.get(name)
        if found is None or found[2] < time.monotonic():
            return 0, deque(maxlen=self.keep)
        return found[0], found[1]

    async def append(self, name: str, event: str, data: dict[str, Any]) -> StreamEvent:
        head, log = self._live(name)
        item = StreamEvent(head + 1, event, data)
        log.append(item)
        self._streams[name] = (item.seq, log, time.monotonic() + self.ttl)
        return item

    async def since(self, name: str, seq: int) -> list[StreamEvent] | None:
        head, log = self._live(name)
        return _complete([e for e in log if e.seq > seq], seq, head)

    async def head(self, name: str) -> int:
        return self._live(name)[0]


async def publish(
    log: StreamLog,
    emitter: Any,
    *,
    stream: str,
    event: str,
    data: dict[str, Any],
    room: str,
    namespace: str,
) -> StreamEvent:
    """Number an event in its stream, then emit it (with its `seq`) to the stream's room."""
    item = await log.append(stream, event, data)
    await emitter.emit(event, item.payload(), room=room, namespace=namespace)
    return item
