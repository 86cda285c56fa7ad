"""Socket.IO: connect-time auth, acks, message cap, and fan-out between instances via Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from lms_live import keys
from lms_live.app import create_app
from lms_live.core.realtime import ManagerEmitter, ServerEmitter, close_manager, make_client_manager
from lms_live.settings import Settings
from tests.conftest import make_settings

NS = "/notifications"
Connect = Callable[..., Awaitable[socketio.AsyncClient]]


@pytest.fixture
def socket_settings(
    tmp_path: Path, worker_id: str, pg_url: str, redis_url: str, redis: Redis
) -> Settings:
    return make_settings(
        tmp_path, worker_id, pg_url=pg_url, redis_url=redis_url, socket_max_message_bytes=4096
    )


@pytest.fixture
async def servers(
    aiohttp_server: Any, socket_settings: Settings, database: Any
) -> list[TestServer]:
    """Two app instances sharing one Redis."""
    return [await aiohttp_server(create_app(socket_settings, database=database)) for _ in range(2)]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    clients: list[socketio.AsyncClient] = []

    async def open_client(
        server: TestServer, *, token: str | None, headers: dict[str, str] | None = None
    ) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        clients.append(client)
        await client.connect(
            str(server.make_url("/")),
            namespaces=[NS],
            auth={"token": token} if token else None,
            headers=headers or {},
            transports=["websocket"],
            wait_timeout=5,
        )
        return client

    yield open_client
    for client in clients:
        await client.disconnect()


def token(server: TestServer, user_id: uuid.UUID, role: str = "student") -> str:
    return server.app[keys.TOKENS].issue(user_id=user_id, role=role)


async def _refusal(server: TestServer, auth: Any, headers: dict[str, str] | None = None) -> Any:
    client = socketio.AsyncClient(reconnection=False)
    refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @client.on("connect_error", namespace=NS)  # type: ignore[untyped-decorator]
    async def on_error(data: Any) -> None:
        if not refused.done():
            refused.set_result(data)

    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            str(server.make_url("/")),
            namespaces=[NS],
            auth=auth,
            headers=headers or {},
            transports=["websocket"],
            wait_timeout=5,
        )
    await client.disconnect()
    return await asyncio.wait_for(refused, 5) if refused.done() else None


async def test_connect_with_token_and_ask_the_clock(
    servers: list[TestServer], connect: Connect
) -> None:
    server = servers[0]
    client = await connect(server, token=token(server, uuid.uuid4()))
    ack = await client.call("clock", namespace=NS, timeout=5)
    assert ack["ok"] is True
    server_now = datetime.fromisoformat(ack["server_now"])
    assert abs(server_now - datetime.now(UTC)) < timedelta(seconds=5)
    assert abs(ack["epoch_ms"] - server_now.timestamp() * 1000) < 1


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        (None, "unauthorized"),
        ({"token": ""}, "unauthorized"),
        ({"token": "not-a-jwt"}, "invalid_token"),
        ({"token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."}, "invalid_token"),
    ],
)
async def test_connections_without_a_valid_token_are_refused_with_a_reason(
    servers: list[TestServer], auth: Any, code: str
) -> None:
    refusal = await _refusal(servers[0], auth)
    assert refusal is not None
    assert refusal["data"]["code"] == code
    assert refusal["message"]


async def test_expired_token_is_refused(servers: list[TestServer]) -> None:
    server = servers[0]
    old = server.app[keys.TOKENS].issue(
        user_id=uuid.uuid4(), role="student", now=datetime.now(UTC) - timedelta(hours=1)
    )
    refusal = await _refusal(server, {"token": old})
    assert refusal["data"]["code"] == "invalid_token"


async def test_foreign_origin_is_refused(servers: list[TestServer], connect: Connect) -> None:
    server = servers[0]
    good = token(server, uuid.uuid4())
    await _refusal(server, {"token": good}, headers={"Origin": "https://evil.example"})
    client = await connect(server, token=good, headers={"Origin": "http://127.0.0.1"})
    assert client.connected


async def test_fan_out_reaches_a_client_of_the_other_instance(
    servers: list[TestServer], connect: Connect, redis: Redis, socket_settings: Settings
) -> None:
    first, second = servers
    user = uuid.uuid4()
    received: asyncio.Queue[Any] = asyncio.Queue()
    client = await connect(first, token=token(first, user))
    client.on("notification", received.put_nowait, namespace=NS)
    await _subscribed(redis, socket_settings.socketio_channel, count=1)

    await ServerEmitter(second.app[keys.SIO]).emit(
        "notification", {"n": 1}, room=f"user:{user}", namespace=NS
    )
    assert await asyncio.wait_for(received.get(), 5) == {"n": 1}

    manager = make_client_manager(socket_settings, write_only=True)
    try:
        await ManagerEmitter(manager).emit(
            "notification", {"n": 2}, room=f"user:{user}", namespace=NS
        )
        assert await asyncio.wait_for(received.get(), 5) == {"n": 2}
    finally:
        await close_manager(manager)


async def test_emits_only_reach_their_room(
    servers: list[TestServer], connect: Connect, redis: Redis, socket_settings: Settings
) -> None:
    first, second = servers
    alice, bob = uuid.uuid4(), uuid.uuid4()
    got_alice: asyncio.Queue[Any] = asyncio.Queue()
    got_bob: asyncio.Queue[Any] = asyncio.Queue()
    (await connect(first, token=token(first, alice))).on(
        "notification", got_alice.put_nowait, namespace=NS
    )
    (await connect(second, token=token(second, bob))).on(
        "notification", got_bob.put_nowait, namespace=NS
    )
    await _subscribed(redis, socket_settings.socketio_channel, count=2)
    await ServerEmitter(second.app[keys.SIO]).emit(
        "notification", "for alice", room=f"user:{alice}", namespace=NS
    )
    assert await asyncio.wait_for(got_alice.get(), 5) == "for alice"
    await ServerEmitter(first.app[keys.SIO]).emit(
        "notification", "for bob", room=f"user:{bob}", namespace=NS
    )
    assert await asyncio.wait_for(got_bob.get(), 5) == "for bob"
    assert got_alice.empty()


async def test_oversized_message_drops_only_that_socket(
    servers: list[TestServer], connect: Connect
) -> None:
    server = servers[0]
    big = await connect(server, token=token(server, uuid.uuid4()))
    small = await connect(server, token=token(server, uuid.uuid4()))
    dropped = asyncio.Event()
    big.on("disconnect", lambda *args: dropped.set(), namespace=NS)
    await big.emit("clock", "x" * 10_000, namespace=NS)
    await asyncio.wait_for(dropped.wait(), 10)
    ack = await small.call("clock", namespace=NS, timeout=5)
    assert ack["ok"] is True


async def test_connected_sockets_are_counted(servers: list[TestServer], connect: Connect) -> None:
    server = servers[0]
    gauge = server.app[keys.METRICS].sockets_connected.labels(NS)
    before = gauge._value.get()
    client = await connect(server, token=token(server, uuid.uuid4()))
    assert gauge._value.get() == before + 1
    await client.disconnect()
    for _ in range(50):
        if gauge._value.get() == before:
            break
        await asyncio.sleep(0.05)
    assert gauge._value.get() == before


async def _subscribed(redis: Redis, channel: str, *, count: int) -> None:
    """Wait until `count` instances listen on the Socket.IO channel (pub/sub is not queued)."""
    for _ in range(100):
        subscribers = dict(await redis.pubsub_numsub(channel))
        if subscribers.get(channel.encode(), 0) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} subscribers on {channel}")


def test_app_is_an_aiohttp_application(socket_settings: Settings) -> None:
    assert isinstance(create_app(socket_settings), web.Application)
