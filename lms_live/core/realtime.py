"""Socket.IO plumbing shared by every namespace: server factory, connect-time auth, acks, emits.

- `make_sio`: an `AsyncServer` on the aiohttp app; `AsyncRedisManager` (health-checked, no
  socket timeout) when REDIS_URL is set so emits reach clients of every instance.
- `Emitter`: emit to a room from anywhere (the web app's server or a worker's write-only
  manager); never to everyone.
- `acked`: wraps an event handler so it always answers `{"ok": true, ...}` or
  `{"ok": false, "error": {...}}`, whatever happens inside.
- `authenticate_socket`: one connect-time check for every namespace (Origin, access token).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit

import socketio
from pydantic import ValidationError

from lms_live.core.db import utcnow
from lms_live.core.errors import Forbidden, LmsError, Unauthorized, ValidationFailed
from lms_live.core.http import validation_details
from lms_live.core.metrics import Metrics
from lms_live.core.security import Principal, TokenCodec
from lms_live.settings import Settings

log = logging.getLogger("lms_live.realtime")

P = ParamSpec("P")
T = TypeVar("T")


def allowed_origins(settings: Settings) -> list[str]:
    """Origins allowed to open sockets: our own public URL plus CORS_ORIGINS."""
    own = urlsplit(settings.public_url)
    return [f"{own.scheme}://{own.netloc}", *settings.cors_origins]


def make_client_manager(settings: Settings, *, write_only: bool = False) -> socketio.AsyncManager:
    """Redis fan-out manager when REDIS_URL is set, else the in-process one."""
    if not settings.redis_url:
        return socketio.AsyncManager()
    return socketio.AsyncRedisManager(
        settings.redis_url,
        channel=settings.socketio_channel,
        write_only=write_only,
        # No socket_timeout: the listener blocks on pub/sub for as long as it is idle (a read
        # timeout would drop and resubscribe, losing what was published meanwhile); the
        # health check detects dead connections instead.
        redis_options={
            "health_check_interval": settings.redis_health_check_interval,
            "socket_timeout": None,
            "socket_connect_timeout": 5,
        },
    )


def make_sio(settings: Settings) -> socketio.AsyncServer:
    """The Socket.IO server; attach it to the app with `sio.attach(app)`."""
    return socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=make_client_manager(settings),
        cors_allowed_origins=allowed_origins(settings),
        max_http_buffer_size=settings.socket_max_message_bytes,
        logger=False,
        engineio_logger=False,
    )


async def close_manager(manager: socketio.AsyncManager) -> None:
    """Stop a manager's Redis listener and close its connection."""
    listener = getattr(manager, "thread", None)
    if listener is not None:
        listener.cancel()
    redis = getattr(manager, "redis", None)
    if redis is not None:
        await redis.aclose()


class Emitter(Protocol):
    """Sends an event to a room of a namespace, on every instance."""

    async def emit(self, event: str, data: Any, *, room: str, namespace: str) -> None: ...


class ServerEmitter:
    """Emitter backed by this process's Socket.IO server (web app)."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio

    async def emit(self, event: str, data: Any, *, room: str, namespace: str) -> None:
        await self.sio.emit(event, data, room=room, namespace=namespace)


class ManagerEmitter:
    """Emitter backed by a write-only manager (workers: publish only, no clients)."""

    def __init__(self, manager: socketio.AsyncManager) -> None:
        self.manager = manager

    async def emit(self, event: str, data: Any, *, room: str, namespace: str) -> None:
        await self.manager.emit(event, data, namespace=namespace, room=room)


def ack_ok(**data: Any) -> dict[str, Any]:
    """A successful ack."""
    return {"ok": True, **data}


def ack_error(exc: LmsError) -> dict[str, Any]:
    """A failed ack carrying the error's code and message."""
    return {
        "ok": False,
        "error": {"code": exc.code, "message": exc.text, "details": exc.details},
    }


def acked(
    handler: Callable[P, Awaitable[dict[str, Any]]],
) -> Callable[P, Awaitable[dict[str, Any]]]:
    """Turn any failure of an event handler into an error ack (never an unanswered event)."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        try:
            return await handler(*args, **kwargs)
        except LmsError as exc:
            return ack_error(exc)
        except ValidationError as exc:
            return ack_error(ValidationFailed(details=validation_details(exc, "payload")))
        except Exception:
            log.exception("unhandled error in socket event %s", handler.__name__)
            error = LmsError("An unexpected error occurred.")
            return {"ok": False, "error": {"code": "internal_error", "message": error.text}}

    return wrapper


def _bearer_from(auth: Any) -> str | None:
    if isinstance(auth, Mapping):
        token = auth.get("token")
        if isinstance(token, str) and token:
            return token.removeprefix("Bearer ").strip()
    return None


def authenticate_socket(
    environ: Mapping[str, Any], auth: Any, *, settings: Settings, tokens: TokenCodec
) -> Principal:
    """Check the Origin and the access token of a connecting socket; raise with the reason."""
    origin = environ.get("HTTP_ORIGIN")
    if origin and origin not in allowed_origins(settings):
        raise Forbidden("This origin may not open sockets here.")
    token = _bearer_from(auth)
    if token is None:
        raise Unauthorized('Send an access token as auth={"token": ...} to connect.')
    return tokens.decode(token)


def refusal(exc: LmsError) -> socketio.exceptions.ConnectionRefusedError:
    """The refusal a namespace raises; the client's connect_error gets
    `{"message": <text>, "data": {"code": <error code>}}` (browser: err.message, err.data.code)."""
    return socketio.exceptions.ConnectionRefusedError(exc.text, {"code": exc.code})


class LmsNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Base of every namespace: authenticates on connect, joins `user:<id>`, counts sockets.

    Per-client data lives in the Socket.IO session (`get_session`), never on `self`.
    Events common to all namespaces: `clock` -> ack `{"ok": true, "server_now": ISO,
    "epoch_ms": int}`, for NTP-style clock offset estimates.
    """

    def __init__(
        self, namespace: str, *, settings: Settings, tokens: TokenCodec, metrics: Metrics
    ) -> None:
        super().__init__(namespace)
        self.settings = settings
        self.tokens = tokens
        self.metrics = metrics

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            principal = authenticate_socket(
                environ, auth, settings=self.settings, tokens=self.tokens
            )
        except LmsError as exc:
            raise refusal(exc) from exc
        await self.save_session(
            sid,
            {
                "user_id": str(principal.user_id),
                "role": principal.role,
                "expires_at": principal.expires_at.isoformat(),
            },
        )
        await self.enter_room(sid, user_room(str(principal.user_id)))
        self.metrics.sockets_connected.labels(self.namespace).inc()
        await self.joined(sid, principal)

    async def joined(self, sid: str, principal: Principal) -> None:
        """Hook for namespaces: the socket is authenticated and in its user room."""

    async def on_disconnect(self, sid: str, reason: str | None = None) -> None:
        self.metrics.sockets_connected.labels(self.namespace).dec()

    @acked
    async def on_clock(self, sid: str, data: Any = None) -> dict[str, Any]:
        now = utcnow()
        return ack_ok(server_now=now.isoformat(), epoch_ms=int(now.timestamp() * 1000))


def user_room(user_id: str) -> str:
    """The room of every socket of one user, in every namespace."""
    return f"user:{user_id}"
