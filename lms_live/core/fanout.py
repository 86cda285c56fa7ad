"""Room broadcasts without a task per recipient.

python-socketio's `AsyncManager.emit` encodes a room broadcast once, then creates one asyncio
task per recipient, each of which only looks the Engine.IO socket up and puts the packet on
its (unbounded) send queue; the socket's writer task does the actual write. With thousands
of sockets in a room the tasks are most of the broadcast's cost: creating, scheduling and
collecting them. The managers here put the packet on each socket's queue directly, in one
pass (same packet, same order, same skip rules); emits with a callback (a packet per
recipient) keep the library's path.

Engine.IO 4.x's socket waits for its send queue with `asyncio.wait_for`, which on Python
3.11 wraps every wait in one more task (and a timer). `patch_engineio_poll` replaces that
wait: a websocket's writer waits on the queue alone (its reader loop, which has the ping
timeout, queues the end marker whenever the connection ends, so the writer's own timeout
never decided anything); a long-polling GET keeps its timeout, through `asyncio.timeout`.

Measured with bench/live_quiz.py: see bench/README.md ("Broadcasts without a task per
recipient").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import socketio
from engineio import async_socket
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from socketio import packet as sio_packet

BroadcastHook = Callable[[str, str, str | None], None]  # (event, namespace, room)


def fan_out(
    manager: socketio.AsyncManager,
    event: str,
    data: Any,
    *,
    namespace: str,
    room: str | None,
    skip_sid: Any = None,
) -> int:
    """Queue one event for every participant of a room (or the namespace) on this process;
    how many sockets it was queued for. Synchronous: no await between recipients. The
    manager's `before_broadcast` hooks (event, namespace, room) run first."""
    for hook in getattr(manager, "before_broadcast", ()):
        hook(event, namespace, room)
    if namespace not in manager.rooms:
        return 0
    if isinstance(data, tuple):
        args = list(data)
    elif data is not None:
        args = [data]
    else:
        args = []
    skipped = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
    server = manager.server
    encoded = server.packet_class(
        sio_packet.EVENT, namespace=namespace, data=[event, *args]
    ).encode()
    packets = [
        eio_packet.Packet(eio_packet.MESSAGE, p)
        for p in (encoded if isinstance(encoded, list) else [encoded])
    ]
    return _queue(server.eio, manager.get_participants(namespace, room), skipped, packets)


def _queue(
    eio: Any, participants: Iterable[tuple[str, str]], skipped: set[Any], packets: list[Any]
) -> int:
    sockets = eio.sockets
    ping_timeout = eio.ping_timeout
    now = time.time()
    queued = 0
    for sid, eio_sid in participants:
        if sid in skipped:
            continue
        socket = sockets.get(eio_sid)
        if socket is None or socket.closed:
            continue  # gone meanwhile: the library's send would drop it too
        last_ping = socket.last_ping
        if last_ping and now - last_ping > ping_timeout:
            # Silent client: the library's send closes the socket; let it.
            for pkt in packets:
                _background(socket.send(pkt))
            continue
        for pkt in packets:
            socket.queue.put_nowait(pkt)
        queued += 1
    return queued


_pending: set[asyncio.Future[Any]] = set()


def _background(coroutine: Any) -> None:
    task = asyncio.ensure_future(coroutine)
    _pending.add(task)
    task.add_done_callback(_finished)


def _finished(task: asyncio.Future[Any]) -> None:
    _pending.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a socket closed meanwhile is not an error here


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """The in-process manager, broadcasting through `fan_out`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_broadcast: list[BroadcastHook] = []

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: str | None = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: str | None = None,
        **kwargs: Any,
    ) -> None:
        if callback is not None:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to
            )
            return
        fan_out(self, event, data, namespace=namespace, room=to or room, skip_sid=skip_sid)


class FanoutRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """The Redis manager: what reaches this process (its own emits and other instances'
    messages) is broadcast through `fan_out`; publishing is unchanged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_broadcast: list[BroadcastHook] = []

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        remote_callback = message.get("callback")
        if remote_callback is not None or message.get("binary") or self.server is None:
            await super()._handle_emit(message)
            return
        data = message["data"]
        if isinstance(data, list):
            data = data[0] if len(data) == 1 else tuple(data)
        fan_out(
            self,
            message["event"],
            data,
            namespace=message.get("namespace") or "/",
            room=message.get("room"),
            skip_sid=message.get("skip_sid"),
        )


async def _poll(self: Any) -> list[Any]:
    """`engineio.async_socket.AsyncSocket.poll` without a task per wait (see the module
    docstring); otherwise the same."""
    queue = self.queue
    try:
        if not queue.empty():
            first = queue.get_nowait()
        elif self.upgraded:
            first = await queue.get()
        else:
            async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
                first = await queue.get()
        queue.task_done()
    except (TimeoutError, asyncio.CancelledError):
        raise eio_exceptions.QueueEmpty() from None
    if first is None:
        return []
    packets = [first]
    while not queue.empty():
        pkt = queue.get_nowait()
        queue.task_done()
        if pkt is None:
            queue.put_nowait(None)
            break
        packets.append(pkt)
    return packets


def patch_engineio_poll() -> None:
    """Install `_poll` on Engine.IO's asyncio socket (idempotent)."""
    async_socket.AsyncSocket.poll = _poll


__all__ = [
    "BroadcastHook",
    "FanoutManager",
    "FanoutRedisManager",
    "fan_out",
    "patch_engineio_poll",
]
