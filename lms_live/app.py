"""`create_app(settings)`: wires routes, middleware, Socket.IO and resources; connects nothing.

Resources (database, Redis, storage, task broker, Socket.IO manager) are opened in
`cleanup_ctx` generators, in dependency order, and closed in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import aiohttp_cors
from aiohttp import web
from taskiq import InMemoryBroker

from lms_live import __version__, keys
from lms_live.auth import routes as auth_routes
from lms_live.auth.revocation import Revocations
from lms_live.auth.service import AuthKit
from lms_live.auth.sockets import AppSocketAuth
from lms_live.auth.throttle import LoginThrottle
from lms_live.certificates import routes as certificate_routes
from lms_live.certificates.pages import setup_certificate_pages
from lms_live.core.db import Database, make_engine
from lms_live.core.http import RouteTable
from lms_live.core.loopwatch import LoopWatch
from lms_live.core.mail import EmailTemplates, make_mailer
from lms_live.core.metrics import Metrics
from lms_live.core.middleware import drop_current_app_layer, make_pipeline, security_headers
from lms_live.core.openapi import build_openapi
from lms_live.core.presence import MemoryPresence, RedisPresence
from lms_live.core.ratelimit import MemoryRateLimiter, RedisRateLimiter
from lms_live.core.realtime import (
    Emitter,
    ManagerEmitter,
    ServerEmitter,
    SocketKicker,
    close_manager,
    make_client_manager,
    make_sio,
)
from lms_live.core.redis import (
    MemoryKeyValue,
    MemoryPubSub,
    RedisKeyValue,
    RedisPubSub,
    make_redis,
)
from lms_live.core.security import TokenCodec
from lms_live.core.storage import open_storage
from lms_live.core.streams import MemoryStreamLog, RedisStreamLog
from lms_live.courses import outline_routes
from lms_live.courses import routes as course_routes
from lms_live.enrollments import routes as enrollment_routes
from lms_live.enrollments.namespace import ProgressNamespace, keep_presence
from lms_live.live import routes as live_routes
from lms_live.live.answers import AnswerWriter
from lms_live.live.hot import MemoryLiveHot, RedisLiveHot
from lms_live.live.namespace import LiveNamespace
from lms_live.live.runtime import GcSteward, LiveRuntime
from lms_live.live.runtime import run as run_live
from lms_live.live.tokens import PlayerTokens
from lms_live.notifications.namespace import NAMESPACE as NOTIFICATIONS
from lms_live.notifications.namespace import NotificationsNamespace
from lms_live.paths import STATIC
from lms_live.quizzes import analysis_routes, attempt_routes, bank_routes
from lms_live.settings import Settings
from lms_live.system import docs
from lms_live.system import routes as system_routes
from lms_live.web.auth_pages import setup_pages
from lms_live.web.live_pages import setup_live_pages
from lms_live.web.session import setup_sessions
from lms_live.worker.broker import TaskResources, make_broker, run_periodic

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


def api_routes() -> RouteTable:
    """Every REST operation of the app."""
    table = RouteTable()
    for module in (
        system_routes,
        auth_routes,
        course_routes,
        outline_routes,
        enrollment_routes,
        certificate_routes,
        bank_routes,
        attempt_routes,
        analysis_routes,
        live_routes,
        docs,
    ):
        table.extend(module.routes)
    return table


def _database_ctx(database: Database | None) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if database is not None:
            app[keys.DATABASE] = database
            yield
            return
        engine = make_engine(app[keys.SETTINGS])
        app[keys.DATABASE] = Database.from_engine(engine)
        yield
        await engine.dispose()

    return ctx


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    redis = make_redis(app[keys.SETTINGS])
    app[keys.REDIS] = redis
    if redis is None:
        app[keys.STREAMS] = MemoryStreamLog()
        app[keys.PRESENCE] = MemoryPresence()
        app[keys.KV] = MemoryKeyValue()
        app[keys.PUBSUB] = MemoryPubSub()
        app[keys.RATE_LIMITER] = MemoryRateLimiter()
        yield
        return
    app[keys.STREAMS] = RedisStreamLog(redis)
    app[keys.PRESENCE] = RedisPresence(redis)
    app[keys.KV] = RedisKeyValue(redis)
    app[keys.PUBSUB] = RedisPubSub(redis)
    app[keys.RATE_LIMITER] = RedisRateLimiter(redis)
    yield
    await redis.aclose()


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    storage = await open_storage(app[keys.SETTINGS])
    app[keys.STORAGE] = storage
    yield
    await storage.close()


async def _broker_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    broker = make_broker(settings)
    broker.state.resources = TaskResources(
        settings=settings,
        database=app[keys.DATABASE],
        kv=app[keys.KV],
        mailer=app[keys.MAILER],
        email_templates=EmailTemplates(),
        storage=app[keys.STORAGE],
        emitter=ServerEmitter(app[keys.SIO]),
        metrics=app[keys.METRICS],
        streams=app[keys.STREAMS],
    )
    app[keys.BROKER] = broker
    await broker.startup()
    # No Redis, no scheduler process: this process sends the periodic tasks (the quiz
    # sweeper, the heartbeat) itself.
    stop = asyncio.Event()
    periodic = (
        asyncio.create_task(run_periodic(broker, stop))
        if settings.redis_url is None and isinstance(broker, InMemoryBroker)
        else None
    )
    yield
    stop.set()
    if periodic is not None:
        await periodic
    wait_all = getattr(broker, "wait_all", None)
    if wait_all is not None:  # in-process tasks already accepted must finish
        await wait_all()
    await broker.shutdown()


async def _auth_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    app[keys.REVOCATIONS] = Revocations(
        app[keys.KV],
        app[keys.DATABASE],
        access_ttl=timedelta(minutes=settings.access_token_minutes),
        fail_closed=settings.is_production,
    )
    app[keys.LOGIN_THROTTLE] = LoginThrottle(app[keys.KV], settings)
    app[keys.KICKER] = SocketKicker(app[keys.PUBSUB], channel=f"{settings.socketio_channel}:kick")
    yield


async def _socketio_ctx(app: web.Application) -> AsyncIterator[None]:
    sio = app[keys.SIO]
    stop = asyncio.Event()
    background = [
        asyncio.create_task(app[keys.KICKER].listen(sio, stop)),
        asyncio.create_task(keep_presence(sio, app, stop)),
    ]
    yield
    stop.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(asyncio.gather(*background)), 5)
    await sio.shutdown()
    await close_manager(sio.manager)


def _live_ctx(loops: bool) -> CleanupCtx:
    """Live sessions' runtime; `loops` off when the database is one shared test connection
    (the writer, sweeper and conductor would use it concurrently)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async for _ in _live(app, loops=loops):
            yield

    return ctx


async def _live(app: web.Application, *, loops: bool) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    redis = app[keys.REDIS]
    emitter: Emitter
    if redis is not None:
        # Live broadcasts only publish: every instance (this one too) fans out to its own
        # clients in parallel, instead of this one fanning out before publishing.
        emitter = ManagerEmitter(make_client_manager(settings, write_only=True))
    else:
        emitter = ServerEmitter(app[keys.SIO])
    runtime = LiveRuntime(
        settings=settings,
        database=app[keys.DATABASE],
        streams=app[keys.STREAMS],
        hot=RedisLiveHot(redis) if redis is not None else MemoryLiveHot(),
        emitter=emitter,
        writer=AnswerWriter(
            app[keys.DATABASE],
            linger=settings.live_answer_linger_ms / 1000,
            batch_max=settings.live_answer_batch_max,
            metrics=app[keys.METRICS],
        ),
        tokens=PlayerTokens(settings),
        pubsub=app[keys.PUBSUB],
        metrics=app[keys.METRICS],
        instance_id=app[keys.INSTANCE_ID],
        kick_channel=f"{settings.socketio_channel}:live-kick",
        gc=GcSteward(enabled=settings.live_gc_freeze and loops),
    )
    app[keys.LIVE] = runtime
    hooks = getattr(app[keys.SIO].manager, "before_broadcast", None)
    if hooks is not None and loops:
        hooks.append(runtime.gc.on_broadcast)
    stop = asyncio.Event()
    running = asyncio.create_task(run_live(runtime, app[keys.SIO], stop)) if loops else None
    yield
    stop.set()
    if running is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(running), 10)
    if isinstance(emitter, ManagerEmitter):
        await close_manager(emitter.manager)


async def _metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    metrics = app[keys.METRICS]
    metrics.watch_gc()
    watch = LoopWatch(metrics.loop_lag, stall_ms=app[keys.SETTINGS].loop_stall_log_ms)
    watch.start()
    yield
    watch.stop()
    metrics.unwatch_gc()


async def openapi_document(request: web.Request) -> web.Response:
    """GET /api/v1/openapi.json (built on first use, then cached). Building it takes 70-130
    ms of CPU: it runs in a thread, so the loop keeps serving meanwhile (the GIL is handed
    back every few ms), and concurrent first requests share one build."""
    cache = request.app[keys.OPENAPI]
    building = cache.get("body")
    if building is None:
        app = request.app
        building = cache["body"] = asyncio.ensure_future(
            asyncio.to_thread(
                _openapi_body,
                app[keys.ROUTES],
                envelope=app[keys.SETTINGS].response_envelope,
            )
        )

        def forget_a_failure(done: asyncio.Future[bytes]) -> None:
            if done.cancelled() or done.exception() is not None:
                cache.pop("body", None)  # the next request tries again

        building.add_done_callback(forget_a_failure)
    assert isinstance(building, asyncio.Future)
    body: bytes = await asyncio.shield(building)
    return web.Response(body=body, content_type="application/json")


def _openapi_body(routes: RouteTable, *, envelope: bool) -> bytes:
    document = build_openapi(routes, title="lms_live API", version=__version__, envelope=envelope)
    return json.dumps(document).encode()


def _setup_cors(app: web.Application, settings: Settings) -> None:
    if not settings.cors_origins:
        return
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
        allow_credentials=True,
        expose_headers=(
            "X-Request-ID",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            "Retry-After",
        ),
        allow_headers=("Authorization", "Content-Type", "X-Request-ID"),
        allow_methods=("GET", "POST", "PUT", "PATCH", "DELETE"),
        max_age=600,
    )
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(settings.cors_origins, options))
    for route in list(app.router.routes()):
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/"):
            cors.add(route)


def create_app(
    settings: Settings | None = None, *, database: Database | None = None
) -> web.Application:
    """The lms_live web application for these settings (`database` overrides the engine)."""
    settings = settings or Settings()
    app = web.Application(client_max_size=settings.max_body_bytes)
    app.middlewares.append(make_pipeline(app))
    app.on_startup.append(drop_current_app_layer)
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[keys.SECURITY_HEADERS] = security_headers(settings)
    app[keys.TOKENS] = TokenCodec.from_settings(settings)
    app[keys.AUTH] = AuthKit.from_settings(settings, tokens=app[keys.TOKENS])
    app[keys.MAILER] = make_mailer(settings)
    app[keys.INSTANCE_ID] = uuid.uuid4().hex[:12]
    app[keys.STARTED_AT] = time.time()
    app[keys.OPENAPI] = {}

    routes = api_routes()
    app[keys.ROUTES] = routes
    routes.install(app)
    app.router.add_get("/api/v1/openapi.json", openapi_document, name="openapi")
    app.router.add_static("/static/", STATIC, name="static", append_version=False)
    setup_sessions(app)
    setup_pages(app)
    setup_certificate_pages(app)
    setup_live_pages(app)

    sio = make_sio(settings)
    socket_auth = AppSocketAuth(app)
    sio.register_namespace(
        NotificationsNamespace(NOTIFICATIONS, auth=socket_auth, metrics=app[keys.METRICS])
    )
    sio.register_namespace(ProgressNamespace(app, auth=socket_auth))
    sio.register_namespace(LiveNamespace(app, auth=socket_auth))
    sio.attach(app)
    app[keys.SIO] = sio

    _setup_cors(app, settings)
    app.cleanup_ctx.extend(
        [
            _metrics_ctx,
            _database_ctx(database),
            _redis_ctx,
            _storage_ctx,
            _broker_ctx,
            _auth_ctx,
            _socketio_ctx,
            _live_ctx(loops=database is None),
        ]
    )
    return app
