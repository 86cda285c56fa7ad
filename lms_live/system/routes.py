"""System endpoints: liveness, readiness, the server clock, instance info, a test email."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime

from aiohttp import web
from redis.asyncio import Redis
from taskiq_redis.redis_broker import BaseRedisBroker

from lms_live import __version__, keys
from lms_live.core.db import utcnow
from lms_live.core.http import RouteTable, json_response, require_principal
from lms_live.emails.tasks import SEND_EMAIL
from lms_live.system.schemas import (
    CheckState,
    ClockOut,
    HealthOut,
    InfoOut,
    QueuedOut,
    ReadyOut,
    TestEmailIn,
    WhoAmIOut,
)
from lms_live.system.tasks import HEARTBEAT_KEY
from lms_live.worker.broker import enqueue

routes = RouteTable()
CHECK_TIMEOUT = 2.0


@routes.get(
    "/api/v1/health",
    summary="Liveness: the process answers (no I/O)",
    tags=["system"],
    response=HealthOut,
    rate_limit=None,
)
async def health(request: web.Request) -> HealthOut:
    return HealthOut()


async def _check(probe: Awaitable[object]) -> CheckState:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception:
        return "down"
    return "up"


async def _broker_ping(app: web.Application) -> None:
    broker = app[keys.BROKER]
    if isinstance(broker, BaseRedisBroker):
        async with Redis(connection_pool=broker.connection_pool) as redis:
            await redis.ping()


@routes.get(
    "/api/v1/ready",
    summary="Readiness: database, Redis and task broker reachable",
    tags=["system"],
    response=ReadyOut,
    responses={503: ReadyOut},
    rate_limit=None,
)
async def ready(request: web.Request) -> web.Response:
    """200 when every dependency answers within 2 s; 503 naming the ones that are `down`."""
    app = request.app
    names = ("database", "redis", "broker")
    states = await asyncio.gather(
        _check(app[keys.DATABASE].ping()),
        _check(app[keys.KV].ping()),
        _check(_broker_ping(app)),
    )
    checks = dict(zip(names, states, strict=True))
    ok = all(state == "up" for state in checks.values())
    body = ReadyOut(status="ready" if ok else "unavailable", checks=checks)
    return json_response(request, body.model_dump_json().encode(), status=200 if ok else 503)


@routes.get(
    "/api/v1/system/clock",
    summary="The server clock, to correct client countdowns",
    tags=["system"],
    response=ClockOut,
)
async def clock(request: web.Request) -> ClockOut:
    now = utcnow()
    return ClockOut(server_now=now, epoch_ms=int(now.timestamp() * 1000))


@routes.get(
    "/api/v1/system/info",
    summary="This instance: version, uptime, background pipeline",
    tags=["system"],
    response=InfoOut,
    roles=["admin"],
)
async def info(request: web.Request) -> InfoOut:
    app = request.app
    settings = app[keys.SETTINGS]
    beat = await app[keys.KV].get(HEARTBEAT_KEY)
    started = app[keys.STARTED_AT]
    return InfoOut(
        version=__version__,
        environment=settings.environment,
        instance_id=app[keys.INSTANCE_ID],
        started_at=datetime.fromtimestamp(started, UTC),
        uptime_seconds=round(time.time() - started, 3),
        redis=settings.redis_url is not None,
        broker=type(app[keys.BROKER]).__name__,
        last_heartbeat_at=datetime.fromisoformat(beat.decode()) if beat else None,
    )


@routes.get(
    "/api/v1/system/whoami",
    summary="Who the access token says the caller is",
    tags=["system"],
    response=WhoAmIOut,
    roles=[],
)
async def whoami(request: web.Request) -> WhoAmIOut:
    """The caller as proven by the token alone (no database read); when it expires."""
    principal = require_principal(request)
    return WhoAmIOut(
        user_id=principal.user_id, role=principal.role, token_expires_at=principal.expires_at
    )


@routes.post(
    "/api/v1/system/test-email",
    summary="Queue a test email (checks mail delivery)",
    tags=["system"],
    body=TestEmailIn,
    response=QueuedOut,
    status=202,
    roles=["admin"],
)
async def test_email(request: web.Request, body: TestEmailIn) -> QueuedOut:
    settings = request.app[keys.SETTINGS]
    await enqueue(
        request.app[keys.BROKER],
        SEND_EMAIL,
        template="test",
        to=str(body.to),
        context={"public_url": settings.public_url, "environment": settings.environment},
    )
    return QueuedOut()
