"""Room broadcasts without a task per recipient (core/fanout.py), seen from real clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from socket import SO_RCVBUF, SO_SNDBUF, SOL_SOCKET
from types import SimpleNamespace
from typing import Any

import aiohttp
import engineio
import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import generate_latest
from redis.asyncio import Redis

from lms_live.core.fanout import (
    DIRECT_BUFFER_LIMIT,
    FanoutManager,
    FanoutRedisManager,
    FrameStats,
    _poll,
    patch_engineio_socket,
    text_frame,
    use_websocket_driver,
    write_now,
)
from lms_live.core.metrics import Metrics
from lms_live.core.realtime import close_manager

NS = "/room"
SIO = web.AppKey("sio", socketio.AsyncServer)


class Rooms(socketio.AsyncNamespace):  # type: ignore[misc]
    """Each client names its room on connect; `ask` makes the server call the client back."""

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await self.enter_room(sid, auth["room"])

    async def on_ask(self, sid: str, data: Any) -> None:
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self.emit("question", data, to=sid, callback=reply.set_result)
        await self.emit("answer", await asyncio.wait_for(reply, 5), to=sid)


async def _server(
    aiohttp_server: Any, manager: socketio.AsyncManager, *, compress: bool = False
) -> TestServer:
    patch_engineio_socket()
    # Short ping window: a pending long-poll GET would hold the server's shutdown for 30 s.
    sio = socketio.AsyncServer(
        async_mode="aiohttp", client_manager=manager, ping_interval=1, ping_timeout=1
    )
    use_websocket_driver(sio, compress=compress)
    sio.register_namespace(Rooms(NS))
    app = web.Application()
    sio.attach(app)
    app[SIO] = sio
    return await aiohttp_server(app)  # type: ignore[no-any-return]


class Clients:
    def __init__(self) -> None:
        self.opened: list[socketio.AsyncClient] = []

    async def open(
        self, server: TestServer, room: str, *, transport: str = "websocket"
    ) -> tuple[socketio.AsyncClient, asyncio.Queue[Any]]:
        client = socketio.AsyncClient(reconnection=False)
        got: asyncio.Queue[Any] = asyncio.Queue()

        @client.on("news", namespace=NS)  # type: ignore[untyped-decorator]
        async def on_news(*args: Any) -> None:
            got.put_nowait(args if len(args) != 1 else args[0])

        self.opened.append(client)
        await client.connect(
            str(server.make_url("/")),
            namespaces=[NS],
            auth={"room": room},
            transports=[transport],
            wait_timeout=5,
        )
        return client, got


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    opened = Clients()
    yield opened
    for client in opened.opened:
        await client.disconnect()


async def _drain(queue: asyncio.Queue[Any], count: int) -> list[Any]:
    return [await asyncio.wait_for(queue.get(), 5) for _ in range(count)]


async def test_a_room_gets_every_broadcast_in_order_and_nobody_else(
    aiohttp_server: Any, clients: Clients
) -> None:
    server = await _server(aiohttp_server, FanoutManager())
    sio = server.app[SIO]
    members = [await clients.open(server, "a") for _ in range(3)]
    polling = await clients.open(server, "a", transport="polling")
    _, outsider = await clients.open(server, "b")

    # 12: python-engineio's client refuses a polling payload of more than 16 packets, and
    # broadcasts queued without a yield between them go out in one.
    direct, queued = FrameStats.direct, FrameStats.queued
    for n in range(12):
        await sio.emit("news", {"n": n}, room="a", namespace=NS)
    for _, got in [*members, polling]:
        assert await _drain(got, 12) == [{"n": n} for n in range(12)]
    await asyncio.sleep(0.1)
    assert outsider.empty()
    # The idle websockets got each broadcast as one prepared frame; the long-poll queued it.
    assert FrameStats.direct - direct == 3 * 12
    assert FrameStats.queued - queued == 12
    scraped = set(generate_latest(Metrics().registry).decode().splitlines())
    assert f'lms_socket_frames_total{{path="direct"}} {float(FrameStats.direct)}' in scraped
    assert f'lms_socket_frames_total{{path="queued"}} {float(FrameStats.queued)}' in scraped


async def _raw_client(
    http: aiohttp.ClientSession, server: TestServer, room: str, *, compress: int
) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    """Engine.IO / Socket.IO by hand over aiohttp's websocket client (which, unlike
    python-socketio's, can offer per-message deflate), joined to `room`; its Socket.IO sid."""
    url = server.make_url("/socket.io/").with_query(EIO="4", transport="websocket")
    ws = await http.ws_connect(url, compress=compress)
    assert (await ws.receive_str(timeout=5)).startswith("0")
    await ws.send_str(f'40{NS},{{"room": "{room}"}}')
    connected = await ws.receive_str(timeout=5)
    assert connected.startswith(f"40{NS},")
    return ws, json.loads(connected[len(f"40{NS},") :])["sid"]


async def _event(ws: aiohttp.ClientWebSocketResponse) -> str:
    while True:
        data = await ws.receive_str(timeout=5)
        if data != "2":  # an Engine.IO ping
            return data


@pytest.mark.parametrize("server_compress", [False, True])
async def test_a_socket_with_per_message_deflate_gets_its_frames_compressed(
    aiohttp_server: Any, server_compress: bool
) -> None:
    server = await _server(aiohttp_server, FanoutManager(), compress=server_compress)
    sio = server.app[SIO]
    async with aiohttp.ClientSession() as http:
        deflating, _ = await _raw_client(http, server, "a", compress=15)
        plain, _ = await _raw_client(http, server, "a", compress=0)
        assert deflating.compress == (15 if server_compress else 0)
        direct, queued = FrameStats.direct, FrameStats.queued
        big = "x" * 70_000  # a 64-bit frame length
        for data in ("small", "y" * 300, big):
            await sio.emit("news", data, room="a", namespace=NS)
            expected = f'42{NS},["news","{data}"]'
            assert await _event(deflating) == expected
            assert await _event(plain) == expected
        # Only the uncompressed socket's frames were written as prepared frames.
        assert FrameStats.direct - direct == (3 if server_compress else 6)
        assert FrameStats.queued - queued == (3 if server_compress else 0)
        await deflating.close()
        await plain.close()


async def test_a_slow_reader_falls_back_to_its_queue_in_order(
    aiohttp_server: Any, clients: Clients
) -> None:
    server = await _server(aiohttp_server, FanoutManager())
    sio = server.app[SIO]
    async with aiohttp.ClientSession() as http:
        slow, sid = await _raw_client(http, server, "a", compress=0)
        _, quick = await clients.open(server, "a")
        client_side = slow._response.connection.transport  # type: ignore[union-attr]
        assert client_side is not None
        client_side.get_extra_info("socket").setsockopt(SOL_SOCKET, SO_RCVBUF, 4096)
        client_side.pause_reading()  # the client reads nothing: the server's buffer fills
        socket = sio.eio.sockets[sio.manager.eio_sid_from_sid(sid, NS)]
        server_side = socket.lms_ws._writer.transport
        server_side.get_extra_info("socket").setsockopt(SOL_SOCKET, SO_SNDBUF, 4096)

        payload = "z" * 2_000
        sent, queued = 0, FrameStats.queued
        while server_side.get_write_buffer_size() <= DIRECT_BUFFER_LIMIT and sent < 2_000:
            await sio.emit("news", f"{sent:05d}{payload}", room="a", namespace=NS)
            sent += 1
            await asyncio.sleep(0.001)
        assert server_side.get_write_buffer_size() > DIRECT_BUFFER_LIMIT, sent
        for _ in range(5):  # these take the slow socket's queue, behind what is buffered
            await sio.emit("news", f"{sent:05d}{payload}", room="a", namespace=NS)
            sent += 1
        assert FrameStats.queued - queued >= 5
        assert [m[:5] for m in await _drain(quick, sent)] == [f"{n:05d}" for n in range(sent)]
        client_side.get_extra_info("socket").setsockopt(SOL_SOCKET, SO_RCVBUF, 1 << 20)
        server_side.get_extra_info("socket").setsockopt(SOL_SOCKET, SO_SNDBUF, 1 << 20)
        client_side.resume_reading()
        for _ in range(40):  # while its backlog drains: still behind it, never ahead
            await sio.emit("news", f"{sent:05d}{payload}", room="a", namespace=NS)
            sent += 1
            await asyncio.sleep(0)
        prefix = len(f'42{NS},["news","')
        got = [(await _event(slow))[prefix : prefix + 5] for _ in range(sent)]
        assert got == [f"{n:05d}" for n in range(sent)]
        await slow.close()


async def test_skip_sid_tuples_and_callbacks(aiohttp_server: Any, clients: Clients) -> None:
    server = await _server(aiohttp_server, FanoutManager())
    sio = server.app[SIO]
    (first, got_first), (_, got_second) = [await clients.open(server, "a") for _ in range(2)]

    await sio.emit("news", ("two", "args"), room="a", namespace=NS, skip_sid=first.get_sid(NS))
    assert await _drain(got_second, 1) == [("two", "args")]
    await sio.emit("news", None, room="a", namespace=NS)
    assert await _drain(got_first, 1) == [()]
    assert await _drain(got_second, 1) == [()]
    assert got_first.empty()

    # An emit with a callback (one packet per recipient) keeps the library's path.
    answered: asyncio.Queue[Any] = asyncio.Queue()
    first.on("question", lambda data: f"re: {data}", namespace=NS)
    first.on("answer", answered.put_nowait, namespace=NS)
    await first.emit("ask", "hello", namespace=NS)
    assert await asyncio.wait_for(answered.get(), 5) == "re: hello"


async def test_a_closed_socket_is_skipped_and_the_rest_still_served(
    aiohttp_server: Any, clients: Clients
) -> None:
    server = await _server(aiohttp_server, FanoutManager())
    sio = server.app[SIO]
    (leaving, _), (_, staying) = [await clients.open(server, "a") for _ in range(2)]
    eio_sid = sio.manager.eio_sid_from_sid(leaving.get_sid(NS), NS)
    sio.eio.sockets[eio_sid].closed = True  # closed, not yet out of the room
    await sio.emit("news", "still here", room="a", namespace=NS)
    assert await _drain(staying, 1) == ["still here"]


async def test_broadcasts_cross_instances_through_redis(
    aiohttp_server: Any, clients: Clients, redis_url: str, redis: Redis, worker_id: str
) -> None:
    channel = f"lms-fanout-test-{worker_id}"
    managers = [FanoutRedisManager(redis_url, channel=channel) for _ in range(2)]
    first, second = [await _server(aiohttp_server, manager) for manager in managers]
    _, here = await clients.open(first, "a")
    _, there = await clients.open(second, "a")
    for _ in range(100):
        if dict(await redis.pubsub_numsub(channel)).get(channel.encode(), 0) >= 2:
            break
        await asyncio.sleep(0.05)

    for n in range(10):
        await first.app[SIO].emit("news", ("n", n), room="a", namespace=NS)
    assert await _drain(here, 10) == [("n", n) for n in range(10)]
    assert await _drain(there, 10) == [("n", n) for n in range(10)]

    writer = FanoutRedisManager(redis_url, channel=channel, write_only=True)
    try:
        await writer.emit("news", {"from": "worker"}, namespace=NS, room="a")
        assert await _drain(here, 1) == [{"from": "worker"}]
        assert await _drain(there, 1) == [{"from": "worker"}]
    finally:
        await close_manager(writer)
        for manager in managers:
            await close_manager(manager)


async def test_poll_returns_queued_packets_and_times_out_only_long_polls() -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    socket = SimpleNamespace(
        queue=queue,
        server=SimpleNamespace(ping_interval=0.05, ping_timeout=0.05),
        upgraded=False,
    )
    for item in ("a", "b", None, "c"):
        queue.put_nowait(item)
    assert await _poll(socket) == ["a", "b"]  # stops at the end marker, queued again
    assert await _poll(socket) == ["c"]
    assert await _poll(socket) == []

    waiting = asyncio.ensure_future(_poll(socket))
    await asyncio.sleep(0.01)
    queue.put_nowait("late")
    assert await waiting == ["late"]
    with pytest.raises(engineio.exceptions.QueueEmpty):
        await _poll(socket)  # a long poll: nothing within ping_interval + ping_timeout

    # A websocket's writer waits as long as it takes: its reader loop ends it.
    socket.upgraded = True
    waiting = asyncio.ensure_future(_poll(socket))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    queue.put_nowait(None)
    assert await waiting == []


class _Transport:
    def __init__(self, buffered: int = 0, closing: bool = False) -> None:
        self.buffered, self.closing, self.written = buffered, closing, []  # type: ignore[var-annotated]

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.written.append(data)


def _socket(**changes: Any) -> SimpleNamespace:
    transport = _Transport(changes.pop("buffered", 0), changes.pop("transport_closing", False))
    ws = SimpleNamespace(
        _writer=SimpleNamespace(compress=changes.pop("compress", 0), transport=transport),
        _closing=changes.pop("ws_closing", False),
        closed=changes.pop("ws_closed", False),
    )
    queue: asyncio.Queue[Any] = asyncio.Queue()
    if changes.pop("queued", False):
        queue.put_nowait("earlier")
    return SimpleNamespace(
        **{"lms_idle": True, "closing": False, "queue": queue, "lms_ws": ws, **changes}
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"lms_idle": False},  # the writer holds packets it has not written yet
        {"queued": True},  # packets wait in the queue
        {"closing": True},
        {"lms_ws": None},  # long-polling
        {"compress": 15},  # per-message deflate negotiated
        {"ws_closing": True},
        {"ws_closed": True},
        {"transport_closing": True},
        {"buffered": DIRECT_BUFFER_LIMIT + 1},
    ],
)
async def test_a_frame_is_written_at_once_only_when_nothing_can_be_ahead_of_it(
    changes: dict[str, Any],
) -> None:
    frame = text_frame(engineio.packet.Packet(engineio.packet.MESSAGE, "hi"))
    assert frame == b"\x81\x034hi"
    ready = _socket()
    assert write_now(ready, frame)
    assert ready.lms_ws._writer.transport.written == [frame]
    held = _socket(**changes)
    assert not write_now(held, frame)
    if held.lms_ws is not None:
        assert held.lms_ws._writer.transport.written == []


def test_text_frames_carry_their_length_in_the_right_size_of_field() -> None:
    for size, header in [(125, b"\x81\x7d"), (126, b"\x81\x7e\x00\x7e"), (65_536, None)]:
        frame = text_frame(engineio.packet.Packet(engineio.packet.MESSAGE, "m" * (size - 1)))
        assert frame is not None
        if header is None:
            assert frame[:10] == b"\x81\x7f" + size.to_bytes(8, "big")
        else:
            assert frame.startswith(header)
        assert frame.endswith(b"4" + b"m" * (size - 1))
    assert text_frame(engineio.packet.Packet(engineio.packet.MESSAGE, b"\x00")) is None
