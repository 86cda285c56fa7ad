"""Room broadcasts without a task per recipient (core/fanout.py), seen from real clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import engineio
import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from lms_live.core.fanout import FanoutManager, FanoutRedisManager, _poll, patch_engineio_poll
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


async def _server(aiohttp_server: Any, manager: socketio.AsyncManager) -> TestServer:
    patch_engineio_poll()
    # Short ping window: a pending long-poll GET would hold the server's shutdown for 30 s.
    sio = socketio.AsyncServer(
        async_mode="aiohttp", client_manager=manager, ping_interval=1, ping_timeout=1
    )
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
    for n in range(12):
        await sio.emit("news", {"n": n}, room="a", namespace=NS)
    for _, got in [*members, polling]:
        assert await _drain(got, 12) == [{"n": n} for n in range(12)]
    await asyncio.sleep(0.1)
    assert outsider.empty()


async def test_broadcast_hooks_see_each_broadcast_first(
    aiohttp_server: Any, clients: Clients
) -> None:
    manager = FanoutManager()
    server = await _server(aiohttp_server, manager)
    _, got = await clients.open(server, "a")
    seen: list[tuple[str, str, str | None, int]] = []
    manager.before_broadcast.append(
        lambda event, namespace, room: seen.append((event, namespace, room, got.qsize()))
    )
    await server.app[SIO].emit("news", "one", room="a", namespace=NS)
    assert await _drain(got, 1) == ["one"]
    assert seen == [("news", NS, "a", 0)]


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
