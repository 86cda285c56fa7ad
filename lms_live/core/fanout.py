"""Room broadcasts without a task per recipient.

python-socketio's `AsyncManager.emit` encodes a room broadcast once, then creates one asyncio
task per recipient, each of which only looks the Engine.IO socket up and puts the packet on
its (unbounded) send queue; the socket's writer task does the actual write. With thousands
of sockets in a room the tasks are most of the broadcast's cost: creating, scheduling and
collecting them. The managers here put the packet on each socket's queue directly, in one
pass (same packet, same order, same skip rules); emits with a callback (a packet per
recipient) keep the library's path.

Engine.IO 4.x's socket waits for its send queue with `asyncio.wait_for`, which on Python
3.11 wraps every wait in one more task (and a timer). `patch_engineio_socket` replaces that
wait: a websocket's writer waits on the queue alone (its reader loop, which has the ping
timeout, queues the end marker whenever the connection ends, so the writer's own timeout
never decided anything); a long-polling GET keeps its timeout, through `asyncio.timeout`.

Frames written now. Even queued, every packet still costs a wake-up of the socket's writer
task, an encode and aiohttp's frame assembly per recipient. When a websocket's writer is
idle (waiting on an empty queue: nothing taken and not yet written), a text packet is
written straight to its transport instead, as a frame built once: server frames are not
masked, so one broadcast is the same bytes for every uncompressed websocket. Order is kept
(nothing of that socket is pending); anything else takes the queue as before: long-polling
sockets, a busy writer, a negotiated per-message deflate, a closing socket, or a transport
with more than `DIRECT_BUFFER_LIMIT` bytes still waiting (a slow reader gets aiohttp's flow
control). `patch_engineio_socket` installs this on `AsyncSocket.send` too (acks and emits to
one socket), and `use_websocket_driver` gives a server the websocket driver that records
each socket's aiohttp websocket and decides on compression (`SOCKET_COMPRESSION`).

Measured with bench/live_quiz.py: see bench/README.md ("Broadcasts without a task per
recipient").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import socketio
from aiohttp import web
from engineio import async_socket
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from socketio import packet as sio_packet

BroadcastHook = Callable[[str, str, str | None], None]  # (event, namespace, room)
DIRECT_BUFFER_LIMIT = 64 * 1024  # bytes waiting in a transport: beyond, packets are queued


class FrameStats:
    """Packets written straight to a transport vs put on a socket's queue (this process)."""

    direct = 0
    queued = 0


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
    frame = text_frame(packets[0]) if len(packets) == 1 else None
    return _queue(server.eio, manager.get_participants(namespace, room), skipped, packets, frame)


def _queue(
    eio: Any,
    participants: Iterable[tuple[str, str]],
    skipped: set[Any],
    packets: list[Any],
    frame: bytes | None,
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
        queued += 1
        if frame is not None and write_now(socket, frame):
            continue
        for pkt in packets:
            socket.queue.put_nowait(pkt)
        FrameStats.queued += 1
    return queued


def text_frame(pkt: Any) -> bytes | None:
    """The websocket frame (server side: unmasked, uncompressed) carrying one Engine.IO
    packet; None for a binary packet."""
    if pkt.binary:
        return None
    data: bytes = pkt.encode().encode()
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + data
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + data


def write_now(socket: Any, frame: bytes) -> bool:
    """Write `frame` straight to an idle, uncompressed websocket's transport (see the module
    docstring); False when the packet must take the socket's queue."""
    if not getattr(socket, "lms_idle", False) or socket.closing or not socket.queue.empty():
        return False
    # aiohttp's private attributes, read defensively: if a release renames them, every
    # packet takes the queue (tests/test_fanout.py then fails on the counts, not the data).
    ws: Any = getattr(socket, "lms_ws", None)
    writer = getattr(ws, "_writer", None)
    if writer is None or getattr(writer, "compress", True) or getattr(ws, "_closing", True):
        return False
    transport = getattr(writer, "transport", None)
    if (
        ws.closed
        or transport is None
        or transport.is_closing()
        or transport.get_write_buffer_size() > DIRECT_BUFFER_LIMIT
    ):
        return False
    transport.write(frame)
    FrameStats.direct += 1
    return True


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
            self.lms_idle = True  # nothing taken and unwritten: `write_now` may write
            try:
                first = await queue.get()
            finally:
                self.lms_idle = False
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


async def _send(self: Any, pkt: Any) -> None:
    """`engineio.async_socket.AsyncSocket.send`, writing at once when `write_now` can."""
    if not await self.check_ping_timeout():
        return
    frame = text_frame(pkt) if getattr(self, "lms_idle", False) else None
    if frame is not None and write_now(self, frame):
        return
    await self.queue.put(pkt)
    FrameStats.queued += 1


def patch_engineio_socket() -> None:
    """Install `_poll` and `_send` on Engine.IO's asyncio socket (idempotent)."""
    async_socket.AsyncSocket.poll = _poll
    async_socket.AsyncSocket.send = _send


class _WebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    """Engine.IO's aiohttp websocket driver, with per-message deflate as the server says,
    the aiohttp websocket recorded on the Engine.IO socket (for `write_now`), and no
    coroutine-function check per message."""

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size,
            compress=getattr(self.server, "lms_ws_compress", True),
        )
        await self._sock.prepare(request)
        self.environ = environ
        socket = getattr(self.handler, "__self__", None)
        if socket is not None:
            socket.lms_ws = self._sock
        await self.handler(self)
        return self._sock

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self._sock.send_bytes(message)
        else:
            await self._sock.send_str(message)


def use_websocket_driver(sio: socketio.AsyncServer, *, compress: bool) -> None:
    """Give this server's Engine.IO `_WebSocket` (compression offered or not)."""
    eio = sio.eio
    eio.lms_ws_compress = compress
    eio._async = {**eio._async, "websocket": _WebSocket}


__all__ = [
    "BroadcastHook",
    "FanoutManager",
    "FanoutRedisManager",
    "FrameStats",
    "fan_out",
    "patch_engineio_socket",
    "text_frame",
    "use_websocket_driver",
    "write_now",
]
