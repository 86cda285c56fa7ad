"""Socket.IO plumbing shared by every namespace: server factory, connect-time auth, acks, emits.

- `make_sio`: an `AsyncServer` on the aiohttp app; `AsyncRedisManager` (health-checked, no
  socket timeout) when REDIS_URL is set so emits reach clients of every instance; both
  managers broadcast without a task per recipient (`core/fanout.py`).
- `Emitter`: emit to a room from anywhere (the web app's server or a worker's write-only
  manager); never to everyone.
- `acked`: wraps an event handler so it always answers `{"ok": true, ...}` or
  `{"ok": false, "error": {...}}`, whatever happens inside.
- `authenticate_socket`: one connect-time check for every namespace (Origin, access token).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit

import socketio
from pydantic import ValidationError

from lms_live.core.authz import require_role
from lms_live.core.db import utcnow
from lms_live.core.errors import Forbidden, LmsError, Unauthorized, ValidationFailed
from lms_live.core.fanout import (
    FanoutManager,
    FanoutRedisManager,
    patch_engineio_socket,
    use_websocket_driver,
)
from lms_live.core.http import validation_details
from lms_live.core.metrics import Metrics
from lms_live.core.redis import PubSub, driver_options
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
        return FanoutManager()
    return FanoutRedisManager(
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
            **driver_options(),
        },
    )


def make_sio(settings: Settings) -> socketio.AsyncServer:
    """The Socket.IO server; attach it to the app with `sio.attach(app)`."""
    patch_engineio_socket()
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=make_client_manager(settings),
        cors_allowed_origins=allowed_origins(settings),
        max_http_buffer_size=settings.socket_max_message_bytes,
        logger=False,
        engineio_logger=False,
    )
    use_websocket_driver(sio, compress=settings.socket_compression)
    return sio


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


def bearer_from(auth: Any) -> str | None:
    """The access token of a Socket.IO `auth` payload ({"token": ...})."""
    if isinstance(auth, Mapping):
        token = auth.get("token")
        if isinstance(token, str) and token:
            return token.removeprefix("Bearer ").strip()
    return None


def check_origin(environ: Mapping[str, Any], settings: Settings) -> None:
    """Refuse sockets opened from a page of another origin."""
    origin = environ.get("HTTP_ORIGIN")
    if origin and origin not in allowed_origins(settings):
        raise Forbidden("This origin may not open sockets here.")


class SocketAuth(Protocol):
    """Who is connecting (raises an LmsError with the reason to refuse)."""

    async def connect(self, environ: Mapping[str, Any], auth: Any) -> Principal: ...

    async def token(self, token: str) -> Principal: ...


class TokenSocketAuth:
    """Access token in `auth`, Origin checked (the auth domain adds revocation and cookies)."""

    def __init__(self, settings: Settings, tokens: TokenCodec) -> None:
        self.settings = settings
        self.tokens = tokens

    async def connect(self, environ: Mapping[str, Any], auth: Any) -> Principal:
        check_origin(environ, self.settings)
        token = bearer_from(auth)
        if token is None:
            raise Unauthorized('Send an access token as auth={"token": ...} to connect.')
        return await self.token(token)

    async def token(self, token: str) -> Principal:
        return self.tokens.decode(token)


def refusal(exc: LmsError) -> socketio.exceptions.ConnectionRefusedError:
    """The refusal a namespace raises; the client's connect_error gets
    `{"message": <text>, "data": {"code": <error code>}}` (browser: err.message, err.data.code)."""
    return socketio.exceptions.ConnectionRefusedError(exc.text, {"code": exc.code})


class SocketKicker:
    """Drops a user's sockets on every instance: publishes on `<SOCKETIO_CHANNEL>:kick` (one
    channel per deployment: Redis pub/sub ignores database numbers), and every instance
    listens and drops its own matching sockets."""

    def __init__(self, pubsub: PubSub, *, channel: str) -> None:
        self.pubsub = pubsub
        self.channel = channel

    async def kick(
        self, *, user_id: str, reason: str, session_ids: list[str] | None = None
    ) -> None:
        """Ask every instance to drop this user's sockets (of these sessions only, if given)."""
        message = {"user_id": user_id, "reason": reason, "session_ids": session_ids}
        await self.pubsub.publish(self.channel, json.dumps(message))

    async def listen(self, sio: socketio.AsyncServer, stop: asyncio.Event) -> None:
        """Until `stop`: apply every instance's kicks to this instance's sockets. Kicks
        published during an outage of the pub/sub are lost, but the sessions' tokens are
        refused anyway and sockets drop at token expiry."""

        async def apply(raw: bytes) -> None:
            await _apply_kick(sio, raw)

        await follow_channel(self.pubsub, self.channel, apply, stop)


async def follow_channel(
    pubsub: PubSub,
    channel: str,
    handle: Callable[[bytes], Awaitable[None]],
    stop: asyncio.Event,
) -> None:
    """Until `stop`: pass every message of a pub/sub channel to `handle`, resubscribing with
    backoff when the pub/sub is unavailable."""
    backoff = 1.0
    while not stop.is_set():
        try:
            async for raw in pubsub.subscribe(channel, stop=stop):
                backoff = 1.0
                await handle(raw)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "channel %s unavailable (%s); retrying in %.0fs",
                channel,
                type(exc).__name__,
                backoff,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 30.0)


async def drop_sockets(
    sio: socketio.AsyncServer, *, user_id: str, reason: str, session_ids: list[str] | None
) -> int:
    """Disconnect this instance's sockets of a user, telling each why (`session_ended`)."""
    dropped = 0
    for namespace in list(sio.namespace_handlers):
        participants = list(sio.manager.get_participants(namespace, user_room(user_id)))
        for sid, _ in participants:
            if session_ids is not None:
                data = await sio.get_session(sid, namespace=namespace)
                if data.get("session_id") not in session_ids:
                    continue
            await sio.emit("session_ended", {"reason": reason}, to=sid, namespace=namespace)
            await sio.disconnect(sid, namespace=namespace)
            dropped += 1
    return dropped


async def _apply_kick(sio: socketio.AsyncServer, raw: bytes) -> None:
    try:
        message = json.loads(raw)
        await drop_sockets(
            sio,
            user_id=message["user_id"],
            reason=message["reason"],
            session_ids=message.get("session_ids"),
        )
    except Exception:
        log.exception("could not apply a socket kick")


class LmsNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Base of every namespace: authenticates on connect, joins `user:<id>`, counts sockets,
    drops the socket when its access token expires unless it re-authenticates first.

    Per-client data lives in the Socket.IO session (`get_session`), never on `self`.
    Events common to all namespaces:
    - `clock` -> ack `{"ok": true, "server_now": ISO, "epoch_ms": int}` (clock offset);
    - `reauthenticate` `{"token": <new access token>}` -> ack `{"ok": true, "expires_at"}`;
      sent before the current token expires, it keeps the socket open;
    - server -> client `token_expiring` `{"expires_at"}` a minute before, `session_ended`
      `{"reason"}` just before the server disconnects the socket (expired, logout,
      password change, deactivation).
    """

    roles: tuple[str, ...] = ()  # who may connect; empty: any signed-in user

    def __init__(self, namespace: str, *, auth: SocketAuth, metrics: Metrics) -> None:
        super().__init__(namespace)
        self.auth = auth
        self.metrics = metrics
        self._tasks: set[asyncio.Future[Any]] = set()  # timers' work in flight, not client state

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            principal = await self.auth.connect(environ, auth)
            require_role(principal, self.roles)
        except LmsError as exc:
            raise refusal(exc) from exc
        await self.save_session(
            sid,
            {
                "user_id": str(principal.user_id),
                "role": principal.role,
                "session_id": str(principal.session_id) if principal.session_id else None,
            },
        )
        await self._watch_expiry(sid, principal)
        await self.enter_room(sid, user_room(str(principal.user_id)))
        self.metrics.sockets_connected.labels(self.namespace).inc()
        await self.joined(sid, principal)

    async def joined(self, sid: str, principal: Principal) -> None:
        """Hook for namespaces: the socket is authenticated and in its user room."""

    async def on_disconnect(self, sid: str, reason: str | None = None) -> None:
        self.metrics.sockets_connected.labels(self.namespace).dec()
        session = await self.get_session(sid)
        for timer in session.get("timers", ()):
            timer.cancel()

    async def _watch_expiry(self, sid: str, principal: Principal) -> None:
        session = await self.get_session(sid)
        for timer in session.get("timers", ()):
            timer.cancel()
        loop = asyncio.get_running_loop()
        left = (principal.expires_at - utcnow()).total_seconds()
        notice = {"expires_at": principal.expires_at.isoformat()}
        warn = loop.call_later(
            max(0.0, left - 60), lambda: self._spawn(self.emit("token_expiring", notice, to=sid))
        )
        expire = loop.call_later(max(0.0, left), lambda: self._spawn(self._expired(sid)))
        session["timers"] = (warn, expire)
        session["expires_at"] = principal.expires_at.isoformat()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expired(self, sid: str) -> None:
        await self.emit("session_ended", {"reason": "token_expired"}, to=sid)
        await self.disconnect(sid)

    @acked
    async def on_reauthenticate(self, sid: str, data: Any = None) -> dict[str, Any]:
        token = bearer_from(data)
        if token is None:
            raise ValidationFailed('Send {"token": <access token>}.')
        principal = await self.auth.token(token)
        session = await self.get_session(sid)
        if str(principal.user_id) != session["user_id"]:
            raise Forbidden("That token belongs to someone else.")
        session["role"] = principal.role
        session["session_id"] = str(principal.session_id) if principal.session_id else None
        await self._watch_expiry(sid, principal)
        return ack_ok(expires_at=principal.expires_at.isoformat())

    @acked
    async def on_clock(self, sid: str, data: Any = None) -> dict[str, Any]:
        now = utcnow()
        return ack_ok(server_now=now.isoformat(), epoch_ms=int(now.timestamp() * 1000))


def user_room(user_id: str) -> str:
    """The room of every socket of one user, in every namespace."""
    return f"user:{user_id}"
