"""Sockets follow the sign-in: refused when revoked, dropped on every instance at logout and
deactivation, dropped at token expiry unless re-authenticated."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from lms_live import keys
from lms_live.app import create_app
from lms_live.auth import service
from lms_live.auth.models import Role
from lms_live.core.db import utcnow
from tests.authkit import PASSWORD
from tests.conftest import make_settings

pytestmark = pytest.mark.shared_db
NS = "/notifications"


class Instances:
    def __init__(self, servers: list[TestServer], http: ClientSession) -> None:
        self.servers = servers
        self.http = http
        self.sockets: list[socketio.AsyncClient] = []

    def url(self, index: int, path: str) -> str:
        return str(self.servers[index].make_url(path))

    async def user(self, role: Role = Role.STUDENT) -> tuple[str, str]:
        email = f"{uuid.uuid4().hex[:10]}@example.org"
        async with self.servers[0].app[keys.DATABASE].transaction() as session:
            await service.create_user(
                session,
                email=email,
                full_name="S",
                password=PASSWORD,
                role=role,
                verified=True,
                bcrypt_rounds=4,
            )
        async with self.http.post(
            self.url(0, "/api/v1/auth/login"), json={"email": email, "password": PASSWORD}
        ) as response:
            assert response.status == 200
            return email, str((await response.json())["access_token"])

    async def connect(
        self, index: int, token: str
    ) -> tuple[socketio.AsyncClient, asyncio.Queue[Any]]:
        events: asyncio.Queue[Any] = asyncio.Queue()
        client = socketio.AsyncClient(reconnection=False)
        client.on(
            "session_ended", lambda data: events.put_nowait(("session_ended", data)), namespace=NS
        )
        client.on(
            "token_expiring", lambda data: events.put_nowait(("token_expiring", data)), namespace=NS
        )
        client.on("disconnect", lambda *a: events.put_nowait(("disconnect", None)), namespace=NS)
        await client.connect(
            self.url(index, "/"),
            namespaces=[NS],
            auth={"token": token},
            transports=["websocket"],
            wait_timeout=5,
        )
        self.sockets.append(client)
        return client, events


@pytest.fixture
async def instances(
    aiohttp_server: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Redis,
    database: None,
) -> AsyncIterator[Instances]:
    settings = make_settings(
        tmp_path, worker_id, pg_url=pg_url, redis_url=redis_url, task_broker="memory"
    )
    servers = [await aiohttp_server(create_app(settings)) for _ in range(2)]
    async with ClientSession() as http:
        result = Instances(servers, http)
        yield result
        for client in result.sockets:
            await client.disconnect()


async def _next(events: asyncio.Queue[Any], kind: str) -> Any:
    async with asyncio.timeout(10):
        while True:
            name, data = await events.get()
            if name == kind:
                return data


async def test_logout_on_one_instance_drops_the_socket_on_the_other(instances: Instances) -> None:
    _, token = await instances.user()
    _, other_token = await instances.user()
    socket, events = await instances.connect(0, token)
    bystander, bystander_events = await instances.connect(0, other_token)
    async with instances.http.post(
        instances.url(1, "/api/v1/auth/logout"), headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 204
    assert await _next(events, "session_ended") == {"reason": "logout"}
    await _next(events, "disconnect")
    assert not socket.connected
    ack = await bystander.call("clock", namespace=NS, timeout=5)
    assert ack["ok"] is True
    assert bystander_events.empty()


async def test_deactivation_drops_every_socket_and_refuses_reconnects(instances: Instances) -> None:
    _, admin_token = await instances.user(Role.ADMIN)
    email, token = await instances.user()
    _first, first_events = await instances.connect(0, token)
    _second, second_events = await instances.connect(1, token)
    async with instances.servers[0].app[keys.DATABASE].sessions() as session:
        user = await service.get_by_email(session, email=email)
    assert user is not None
    async with instances.http.patch(
        instances.url(1, f"/api/v1/admin/users/{user.id}"),
        json={"is_active": False},
        headers={"Authorization": f"Bearer {admin_token}"},
    ) as response:
        assert response.status == 200
    assert await _next(first_events, "session_ended") == {"reason": "deactivated"}
    assert await _next(second_events, "session_ended") == {"reason": "deactivated"}
    refused = socketio.AsyncClient(reconnection=False)
    errors: asyncio.Queue[Any] = asyncio.Queue()
    refused.on("connect_error", errors.put_nowait, namespace=NS)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(
            instances.url(0, "/"),
            namespaces=[NS],
            auth={"token": token},
            transports=["websocket"],
            wait_timeout=5,
        )
    assert (await asyncio.wait_for(errors.get(), 5))["data"]["code"] == "token_revoked"
    await refused.disconnect()


async def test_sockets_drop_at_token_expiry_unless_reauthenticated(instances: Instances) -> None:
    app = instances.servers[0].app
    user_id = uuid.uuid4()
    ttl = app[keys.TOKENS].ttl
    soon = app[keys.TOKENS].issue(
        user_id=user_id, role="student", now=utcnow() - ttl + timedelta(seconds=2)
    )
    _, events = await instances.connect(0, soon)
    assert "expires_at" in await _next(events, "token_expiring")
    assert await _next(events, "session_ended") == {"reason": "token_expired"}

    kept, _kept_events = await instances.connect(
        0,
        app[keys.TOKENS].issue(
            user_id=user_id, role="student", now=utcnow() - ttl + timedelta(seconds=2)
        ),
    )
    fresh = app[keys.TOKENS].issue(user_id=user_id, role="student")
    ack = await kept.call("reauthenticate", {"token": fresh}, namespace=NS, timeout=5)
    assert ack["ok"] is True
    await asyncio.sleep(3)
    assert kept.connected
    stranger = app[keys.TOKENS].issue(user_id=uuid.uuid4(), role="student")
    refused = await kept.call("reauthenticate", {"token": stranger}, namespace=NS, timeout=5)
    assert refused["ok"] is False
    assert refused["error"]["code"] == "forbidden"
