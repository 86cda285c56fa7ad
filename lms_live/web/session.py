"""Page sessions: who is signed in on the server-rendered pages, kept with aiohttp-session.

Storage: an encrypted cookie (Fernet, key derived from SECRET_KEY for "page-session") when
REDIS_URL is unset; aiohttp-session's `RedisStorage` on the app's Redis when it is set, the
cookie then holding only a random key. Redis keys (aiohttp-session's fixed format; TTL = the
session's max age):
  <SESSION_COOKIE_NAME>_<random hex key>    one page session, JSON

A page session holds `csrf` (the form token, `web.csrf`), perhaps `flash` (a one-time notice)
or `mfa_challenge`/`mfa_method` (a sign-in waiting for its code), and once signed in `user_id`,
`role`, `auth_session_id` (a real `auth_session` row, via="page") and `auth_expires_at` (epoch
seconds). Invariants: signing in or out starts a new session (new key, new CSRF token); a
session whose auth_session has ended is signed out on its next page request (`web.pages`);
anonymous sessions live a day, signed-in ones SESSION_MAX_DAYS. The cookie is HttpOnly,
SameSite=Lax, path "/", and Secure in production.
"""

from __future__ import annotations

import base64
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import aiohttp_session
from aiohttp import web
from aiohttp_session import AbstractStorage, Session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from aiohttp_session.redis_storage import RedisStorage
from cryptography.fernet import Fernet
from redis.asyncio import Redis

from lms_live import keys
from lms_live.core.db import utcnow
from lms_live.core.security import Principal, derive_key
from lms_live.settings import Settings

ANONYMOUS_MAX_AGE = 24 * 3600
_MAX_COOKIE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class PageUser:
    """The signed-in user of a page session."""

    user_id: uuid.UUID
    role: str
    auth_session_id: uuid.UUID
    auth_expires_at: datetime


class AppRedisStorage(AbstractStorage):
    """aiohttp-session's RedisStorage on `app[keys.REDIS]`, found on first use (the client
    exists only once the app has started). An emptied session deletes its key and cookie."""

    def __init__(self, app: web.Application, **params: Any) -> None:
        super().__init__(**params)
        self._app = app
        self._params = params
        self._inner: RedisStorage | None = None
        self._client: Redis | None = None

    def _redis(self) -> Redis:
        client = self._app[keys.REDIS]
        if client is None:
            raise RuntimeError("REDIS_URL is set but the app has no Redis client yet")
        return client

    def _storage(self) -> RedisStorage:
        client = self._redis()
        if self._inner is None or self._client is not client:
            self._inner = RedisStorage(client, **self._params)
            self._client = client
        return self._inner

    def redis_key(self, identity: str) -> str:
        return f"{self.cookie_name}_{identity}"

    async def forget(self, identity: str) -> None:
        """Delete a session's server-side copy."""
        await self._redis().delete(self.redis_key(identity))

    async def load_session(self, request: web.Request) -> Session:
        return await self._storage().load_session(request)

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        if session.empty:
            if session.identity is not None:
                await self.forget(str(session.identity))
            self.save_cookie(response, "", max_age=session.max_age)
            return
        await self._storage().save_session(request, response, session)


def make_storage(app: web.Application) -> AbstractStorage:
    """The page-session storage for the app's settings (Redis when REDIS_URL is set)."""
    settings = app[keys.SETTINGS]
    params: dict[str, Any] = {
        "cookie_name": settings.session_cookie_name,
        "max_age": settings.session_max_days * 86400,
        "path": "/",
        "secure": settings.is_production,
        "httponly": True,
        "samesite": "Lax",
    }
    if settings.redis_url:
        return AppRedisStorage(app, **params)
    key = derive_key(settings.secret_key.get_secret_value(), "page-session")
    return EncryptedCookieStorage(Fernet(base64.urlsafe_b64encode(key)), **params)


def setup_sessions(app: web.Application) -> AbstractStorage:
    """Choose the page-session storage (call in create_app, before the app starts). Only page
    handlers (`web.pages.page`) run the session middleware: API, socket and static requests
    never load or set a page session."""
    # aiohttp-session 2.12 keys requests with plain strings; the warning says nothing to us.
    warnings.filterwarnings("ignore", category=web.NotAppKeyWarning, module="aiohttp_session")
    storage = make_storage(app)
    app[keys.PAGE_SESSIONS] = storage
    app[keys.SESSION_MIDDLEWARE] = aiohttp_session.session_middleware(storage)
    return storage


def signed_in_user(session: Mapping[str, Any]) -> PageUser | None:
    """The user a page session is signed in as, if any."""
    try:
        return PageUser(
            user_id=uuid.UUID(str(session["user_id"])),
            role=str(session["role"]),
            auth_session_id=uuid.UUID(str(session["auth_session_id"])),
            auth_expires_at=datetime.fromtimestamp(float(session["auth_expires_at"]), tz=UTC),
        )
    except (KeyError, ValueError, TypeError, OverflowError):
        return None


def max_age_of(session: Session, settings: Settings) -> int:
    """Signed-in sessions live SESSION_MAX_DAYS, anonymous ones (a form token) a day."""
    if signed_in_user(session) is not None:
        return settings.session_max_days * 86400
    return ANONYMOUS_MAX_AGE


async def fresh_session(request: web.Request) -> Session:
    """Drop the current page session (with its server-side copy) and start an empty one."""
    storage = request.app[keys.PAGE_SESSIONS]
    old = await aiohttp_session.get_session(request)
    if isinstance(storage, AppRedisStorage) and old.identity is not None:
        await storage.forget(str(old.identity))
    session = await aiohttp_session.new_session(request)
    session.changed()  # saved even if left empty: the old cookie is deleted
    return session


async def sign_in_session(request: web.Request, user: PageUser) -> Session:
    """A new page session signed in as `user` (a fresh key and CSRF token: no fixation)."""
    session = await fresh_session(request)
    session["user_id"] = str(user.user_id)
    session["role"] = user.role
    session["auth_session_id"] = str(user.auth_session_id)
    session["auth_expires_at"] = user.auth_expires_at.timestamp()
    return session


def cookie_value(header: str, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header (surrounding quotes removed)."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None
    return None


class _CookieCarrier:
    """Stands in for a request when loading a session: both storages read only `cookies`."""

    def __init__(self, cookies: Mapping[str, str]) -> None:
        self.cookies = cookies


async def principal_from_cookie(
    app: web.Application, environ_or_cookie_header: Mapping[str, Any] | str | None
) -> Principal | None:
    """The signed-in user of the page-session cookie in a WSGI-style environ (HTTP_COOKIE) or
    a Cookie header; None when there is none or it is forged or expired. The caller checks
    revocation (the principal's session_id is the page's auth_session)."""
    source = environ_or_cookie_header
    header = source.get("HTTP_COOKIE") if isinstance(source, Mapping) else source
    if not isinstance(header, str) or not header:
        return None
    storage = app[keys.PAGE_SESSIONS]
    value = cookie_value(header, storage.cookie_name)
    if value is None or len(value) > _MAX_COOKIE_CHARS:
        return None
    carrier = _CookieCarrier({storage.cookie_name: value})
    session = await storage.load_session(cast(web.Request, carrier))
    user = signed_in_user(session)
    now = utcnow()
    if user is None or user.auth_expires_at <= now:
        return None
    minutes = app[keys.SETTINGS].access_token_minutes
    return Principal(
        user_id=user.user_id,
        role=user.role,
        jti=f"page:{user.auth_session_id}",
        expires_at=min(user.auth_expires_at, now + timedelta(minutes=minutes)),
        session_id=user.auth_session_id,
        issued_at=now,
    )
