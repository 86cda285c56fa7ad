"""Every typed key under which the app or a request stores shared state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import socketio
    from aiohttp.typedefs import Middleware
    from aiohttp_session import AbstractStorage
    from multidict import CIMultiDict
    from redis.asyncio import Redis
    from taskiq import AsyncBroker

    from lms_live.auth.revocation import Revocations
    from lms_live.auth.service import AuthKit
    from lms_live.auth.throttle import LoginThrottle
    from lms_live.core.db import Database
    from lms_live.core.errors import LmsError
    from lms_live.core.http import RouteTable
    from lms_live.core.mail import Mailer
    from lms_live.core.metrics import Metrics
    from lms_live.core.presence import Presence
    from lms_live.core.ratelimit import RateLimiter
    from lms_live.core.realtime import SocketKicker
    from lms_live.core.redis import KeyValueStore, PubSub
    from lms_live.core.security import Principal, TokenCodec
    from lms_live.core.storage import Storage
    from lms_live.core.streams import StreamLog
    from lms_live.live.runtime import LiveRuntime
    from lms_live.settings import Settings
    from lms_live.web.session import PageUser

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
DATABASE: web.AppKey[Database] = web.AppKey("database")
REDIS: web.AppKey[Redis | None] = web.AppKey("redis")
KV: web.AppKey[KeyValueStore] = web.AppKey("kv")
STREAMS: web.AppKey[StreamLog] = web.AppKey("streams")
PRESENCE: web.AppKey[Presence] = web.AppKey("presence")
PUBSUB: web.AppKey[PubSub] = web.AppKey("pubsub")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
SIO: web.AppKey[socketio.AsyncServer] = web.AppKey("sio")
BROKER: web.AppKey[AsyncBroker] = web.AppKey("broker")
MAILER: web.AppKey[Mailer] = web.AppKey("mailer")
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
# The security headers added to every response (core.middleware.security_headers).
SECURITY_HEADERS: web.AppKey[CIMultiDict[str]] = web.AppKey("security_headers")
TOKENS: web.AppKey[TokenCodec] = web.AppKey("tokens")
ROUTES: web.AppKey[RouteTable] = web.AppKey("routes")
AUTH: web.AppKey[AuthKit] = web.AppKey("auth")
REVOCATIONS: web.AppKey[Revocations] = web.AppKey("revocations")
LOGIN_THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("login_throttle")
KICKER: web.AppKey[SocketKicker] = web.AppKey("kicker")
OPENAPI: web.AppKey[dict[str, object]] = web.AppKey("openapi")
INSTANCE_ID: web.AppKey[str] = web.AppKey("instance_id")
STARTED_AT: web.AppKey[float] = web.AppKey("started_at")
LIVE: web.AppKey[LiveRuntime] = web.AppKey("live")

PAGE_SESSIONS: web.AppKey[AbstractStorage] = web.AppKey("page_sessions")
SESSION_MIDDLEWARE: web.AppKey[Middleware] = web.AppKey("page_session_middleware")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
PAGE_USER: web.RequestKey[PageUser | None] = web.RequestKey("page_user")
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal")
CLIENT_IP: web.RequestKey[str] = web.RequestKey("client_ip")
AUTH_PROBLEM: web.RequestKey[LmsError] = web.RequestKey("auth_problem")
