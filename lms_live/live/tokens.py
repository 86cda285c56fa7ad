"""Player tokens: what a `/live` socket presents to be a player of one session.

Issued by `POST /api/v1/live/join` (and the join page); HS256 with a key derived from
SECRET_KEY for this purpose only (previous secrets still verify), audience `lms_live:live`,
type `live_player`. A token names the player, its session and, for players bound to an
account, the user (whose own credentials the socket must present as well).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt

from lms_live.core.db import utcnow
from lms_live.core.errors import Unauthorized
from lms_live.core.security import ALGORITHM, derive_key, secrets_of
from lms_live.settings import Settings

AUDIENCE = "lms_live:live"
TOKEN_HOURS = 12


class InvalidPlayerToken(Unauthorized):
    code = "invalid_player_token"
    message = "The player token is invalid or has expired; join again."


@dataclass(frozen=True, slots=True)
class PlayerClaims:
    player_id: uuid.UUID
    session_id: uuid.UUID
    user_id: uuid.UUID | None


class PlayerTokens:
    """Issues and verifies player tokens."""

    def __init__(self, settings: Settings) -> None:
        self.keys: dict[str, bytes] = {}
        for secret in secrets_of(settings):
            key = derive_key(secret, "live-player")
            self.keys[hashlib.sha256(key).hexdigest()[:8]] = key
        self.signing_kid = next(iter(self.keys))
        self.issuer = settings.public_url

    def issue(self, claims: PlayerClaims, *, hours: int = TOKEN_HOURS) -> str:
        """A signed token for this player."""
        now = utcnow()
        body: dict[str, Any] = {
            "sub": str(claims.player_id),
            "lsid": str(claims.session_id),
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(hours=hours)).timestamp()),
            "iss": self.issuer,
            "aud": AUDIENCE,
            "typ": "live_player",
        }
        if claims.user_id is not None:
            body["uid"] = str(claims.user_id)
        return jwt.encode(
            body, self.keys[self.signing_kid], ALGORITHM, headers={"kid": self.signing_kid}
        )

    def decode(self, token: Any) -> PlayerClaims:
        """Verify a token; raise InvalidPlayerToken."""
        if not isinstance(token, str) or not token or len(token) > 2048:
            raise InvalidPlayerToken()
        try:
            key = self.keys.get(str(jwt.get_unverified_header(token).get("kid")))
            if key is None:
                raise InvalidPlayerToken()
            body = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self.issuer,
                options={"require": ["sub", "lsid", "exp", "iss", "aud", "typ"]},
            )
            if body["typ"] != "live_player":
                raise InvalidPlayerToken()
            uid = body.get("uid")
            return PlayerClaims(
                player_id=uuid.UUID(body["sub"]),
                session_id=uuid.UUID(body["lsid"]),
                user_id=uuid.UUID(uid) if uid else None,
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise InvalidPlayerToken() from exc
