"""Refusing the access tokens of ended sessions, on every instance, on every request.

Access tokens are stateless JWTs; a session ended by logout, password change or reset,
deactivation or refresh-token reuse must stop them at once. Redis (or memory on the embedded
default) holds the hot set; PostgreSQL (`auth_session.revoked_at`) holds the truth.

Redis keys (each with a TTL of the access-token lifetime plus a minute, after which every
token of that session has expired anyway):
  lms:auth:sid:<session id>       the session is revoked
  lms:auth:jti:<token id>         this access token is revoked (logout)
  lms:auth:revocations:loaded     marker: the keys were rebuilt from PostgreSQL since this Redis
                                  (or process) started; when missing, the first check rebuilds
                                  them, so a revoked token stays revoked across a Redis restart.
If the store cannot be reached, checks fail closed (503) in production, open elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import select

from lms_live.auth.models import AuthSession
from lms_live.core.db import Database, utcnow
from lms_live.core.errors import ServiceUnavailable
from lms_live.core.redis import KeyValueStore, MemoryKeyValue, MgetBatcher, RedisKeyValue
from lms_live.core.security import Principal

log = logging.getLogger("lms_live.auth")

MARKER = "lms:auth:revocations:loaded"
_FOREVER = 10 * 365 * 86400.0


def session_key(session_id: uuid.UUID | str) -> str:
    return f"lms:auth:sid:{session_id}"


def token_key(jti: str) -> str:
    return f"lms:auth:jti:{jti}"


_KEYS: dict[str, tuple[str, ...]] = {}
_KEYS_MAX = 8192


def _keys_for(jti: str, session_id: uuid.UUID | None) -> tuple[str, ...]:
    """Built once per token (read on every authenticated request), remembered by the token
    id alone: a token's session is part of what its signature covers."""
    keys = _KEYS.get(jti)
    if keys is None:
        if session_id is None:
            keys = (MARKER, token_key(jti))
        else:
            keys = (MARKER, token_key(jti), session_key(session_id))
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        _KEYS[jti] = keys
    return keys


class Revocations:
    """The revoked-session and revoked-token sets, checked on every authenticated request."""

    def __init__(
        self,
        kv: KeyValueStore,
        database: Database,
        *,
        access_ttl: timedelta,
        fail_closed: bool,
    ) -> None:
        self.kv = kv
        # Every authenticated request reads these keys: concurrent reads share a round trip.
        self.lookup = MgetBatcher(kv) if isinstance(kv, RedisKeyValue) else kv
        self.database = database
        self.ttl = access_ttl.total_seconds() + 60
        self.access_ttl = access_ttl
        self.fail_closed = fail_closed
        self._reloading = asyncio.Lock()

    async def revoke(self, session_ids: Iterable[uuid.UUID], *, jti: str | None = None) -> None:
        """Publish revocations already committed to PostgreSQL."""
        for session_id in session_ids:
            await self.kv.set(session_key(session_id), b"1", ttl=self.ttl)
        if jti is not None:
            await self.kv.set(token_key(jti), b"1", ttl=self.ttl)

    @staticmethod
    def keys_for(principal: Principal) -> list[str]:
        """The keys whose presence decides a token: the marker, the token's, its session's."""
        return list(_keys_for(principal.jti, principal.session_id))

    @staticmethod
    def checked_keys(principal: Principal) -> tuple[str, ...]:
        """`keys_for` as the tuple kept per token (not to be changed)."""
        return _keys_for(principal.jti, principal.session_id)

    @staticmethod
    def judge_mask(mask: int) -> bool | None:
        """Revoked or not from which of `keys_for` exist (a bitmask, bit j: key j); None
        when the marker is missing (the hot set must be rebuilt: ask `is_revoked`)."""
        if not mask & 1:
            return None
        return mask > 1

    def revoked_now(self, principal: Principal) -> bool | None:
        """`is_revoked` without waiting, when the store is this process's memory and the
        hot set is loaded; None otherwise (then ask `is_revoked`)."""
        kv = self.kv
        if type(kv) is not MemoryKeyValue:
            return None
        keys = _keys_for(principal.jti, principal.session_id)
        if not kv.has(keys[0]):
            return None
        return kv.has(keys[1]) or (len(keys) > 2 and kv.has(keys[2]))

    async def is_revoked(self, principal: Principal) -> bool:
        """Whether this token's session or the token itself was revoked."""
        keys = self.keys_for(principal)
        try:
            values = await self.lookup.mget(keys)
            if values[0] is None:
                await self._reload()
                values = await self.kv.mget(keys)
        except Exception as exc:
            if self.fail_closed:
                log.warning(
                    "revocation store unavailable: refusing tokens (%s)", type(exc).__name__
                )
                raise ServiceUnavailable(
                    "Sign-in checks are unavailable right now; try again shortly."
                ) from exc
            log.warning("revocation store unavailable: accepting tokens (%s)", type(exc).__name__)
            return False
        return any(value is not None for value in values[1:])

    async def _reload(self) -> None:
        """Rebuild the hot set from PostgreSQL (after a Redis restart, or at process start)."""
        async with self._reloading:
            if await self.kv.get(MARKER) is not None:
                return
            since = utcnow() - self.access_ttl - timedelta(minutes=1)
            async with self.database.reads() as session:
                ids = list(
                    await session.scalars(
                        select(AuthSession.id).where(AuthSession.revoked_at >= since)
                    )
                )
            await self.revoke(ids)
            await self.kv.set(MARKER, b"1", ttl=_FOREVER)
            log.info("revocations rebuilt from the database: %d recent sessions", len(ids))
