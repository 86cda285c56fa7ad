"""Who may open a socket: one check for every namespace.

An access token in the Socket.IO `auth` payload, or else the page session cookie (pages use
sockets without handling tokens); the Origin must
be ours or listed in CORS_ORIGINS; the token (or the cookie's session) must not be revoked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from lms_live import keys
from lms_live.core.errors import TokenRevoked, Unauthorized
from lms_live.core.realtime import bearer_from, check_origin
from lms_live.core.security import Principal
from lms_live.web.session import principal_from_cookie


class AppSocketAuth:
    """`SocketAuth` of the app: token or cookie, Origin, revocation."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def connect(self, environ: Mapping[str, Any], auth: Any) -> Principal:
        check_origin(environ, self.app[keys.SETTINGS])
        token = bearer_from(auth)
        if token is not None:
            return await self.token(token)
        principal = await principal_from_cookie(self.app, environ)
        if principal is None:
            raise Unauthorized(
                'Send an access token as auth={"token": ...}, or sign in on the pages first.'
            )
        if await self.app[keys.REVOCATIONS].is_revoked(principal):
            raise TokenRevoked()
        return principal

    async def token(self, token: str) -> Principal:
        principal = self.app[keys.TOKENS].decode(token)
        if await self.app[keys.REVOCATIONS].is_revoked(principal):
            raise TokenRevoked()
        return principal
