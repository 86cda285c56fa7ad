"""Unit of work: one transaction; emits and tasks only after the commit, never after a rollback."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import BaseModel
from sqlalchemy import select

from lms_live import keys
from lms_live.app import create_app
from lms_live.auth.models import User
from lms_live.core.db import Database
from lms_live.core.errors import Conflict
from lms_live.core.http import RouteTable
from lms_live.core.uow import unit_of_work
from lms_live.emails.tasks import SEND_EMAIL
from tests.conftest import make_settings

NS = "/notifications"
routes = RouteTable()


class SignUp(BaseModel):
    email: str
    fail: bool = False


@routes.post("/api/v1/probe/sign-up", summary="probe", body=SignUp, status=201)
async def sign_up(request: web.Request, body: SignUp) -> None:
    user_id = request.headers["X-Probe-User"]
    async with unit_of_work(request.app) as work:
        work.session.add(User(email=body.email, full_name="P", password_hash="h"))
        work.emit("notification", {"signed_up": body.email}, room=f"user:{user_id}", namespace=NS)
        work.enqueue(
            SEND_EMAIL,
            template="test",
            to=body.email,
            context={"public_url": "x", "environment": "test"},
        )
        await work.session.flush()
        if body.fail:
            raise Conflict("Rolled back on purpose.")


async def test_effects_run_after_commit_and_never_after_rollback(
    aiohttp_server: Any, tmp_path: Path, worker_id: str, pg_url: str, database: Database
) -> None:
    settings = make_settings(tmp_path, worker_id, pg_url=pg_url, redis_url=None)
    app = create_app(settings, database=database)
    routes.install(app)
    server: TestServer = await aiohttp_server(app)
    user = uuid.uuid4()
    received: asyncio.Queue[Any] = asyncio.Queue()
    client = socketio.AsyncClient(reconnection=False)
    client.on("notification", received.put_nowait, namespace=NS)
    token = app[keys.TOKENS].issue(user_id=user, role="student")
    await client.connect(
        str(server.make_url("/")), namespaces=[NS], auth={"token": token}, transports=["websocket"]
    )
    try:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            url = str(server.make_url("/api/v1/probe/sign-up"))
            failed = await http.post(
                url, json={"email": "no@x.test", "fail": True}, headers={"X-Probe-User": str(user)}
            )
            assert failed.status == 409
            ok = await http.post(
                url, json={"email": "yes@x.test"}, headers={"X-Probe-User": str(user)}
            )
            assert ok.status == 201
        assert await asyncio.wait_for(received.get(), 5) == {"signed_up": "yes@x.test"}
        await app[keys.BROKER].wait_all()  # type: ignore[attr-defined]
    finally:
        await client.disconnect()

    assert received.empty(), "the rolled-back request must emit nothing"
    emails = list(settings.effective_outbox_dir.glob("*.eml"))
    assert len(emails) == 1
    assert "yes@x.test" in emails[0].read_text()
    async with database.sessions() as session:
        emails_in_db = set(
            await session.scalars(select(User.email).where(User.email.like("%@x.test")))
        )
    assert emails_in_db == {"yes@x.test"}
