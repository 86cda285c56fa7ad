"""Credentials: password hashing (bcrypt, off the event loop) and access-token codec (JWT).

Passwords are pre-hashed with HMAC-SHA256 before bcrypt so long passwords are neither
truncated at 72 bytes nor rejected by bcrypt 5. Access tokens are HS256 JWTs with `kid`,
`iss`, `aud`, `typ`; the algorithm is pinned on decode and old keys still verify during a
rotation (JWT_KEYS lists the signing key first).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import unicodedata
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import jwt

from lms_live.core.db import utcnow
from lms_live.core.errors import InvalidToken
from lms_live.settings import Settings

ALGORITHM = "HS256"
AUDIENCE = "lms_live"
_PREHASH_KEY = b"lms_live/bcrypt-prehash/v1"
_DUMMY_HASH = bcrypt.hashpw(b"timing-equaliser", bcrypt.gensalt(rounds=4))


def _prehash(password: str) -> bytes:
    normalised = unicodedata.normalize("NFKC", password)  # the same password however typed
    digest = hmac.new(_PREHASH_KEY, normalised.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest)


async def hash_password(password: str, *, rounds: int = 12) -> str:
    """bcrypt hash of a password of any length, computed in a worker thread."""
    hashed = await asyncio.to_thread(bcrypt.hashpw, _prehash(password), bcrypt.gensalt(rounds))
    return hashed.decode("ascii")


async def verify_password(password: str, hashed: str | None) -> bool:
    """Constant-time check; with no hash it still spends the time of one (no enumeration)."""
    target = hashed.encode("ascii") if hashed else _DUMMY_HASH
    ok = await asyncio.to_thread(bcrypt.checkpw, _prehash(password), target)
    return ok and hashed is not None


def derive_key(secret: str, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from a SECRET_KEY (keys never share a use)."""
    return hmac.new(secret.encode(), f"lms_live/{purpose}/v1".encode(), hashlib.sha256).digest()


def secrets_of(settings: Settings) -> list[str]:
    """SECRET_KEY first, then SECRET_KEY_PREVIOUS (still accepted while rotating)."""
    return [settings.secret_key.get_secret_value()] + [
        s.get_secret_value() for s in settings.secret_key_previous
    ]


def sha256_hex(value: str) -> str:
    """Digest of a long random token (links, refresh tokens): enough against offline search."""
    return hashlib.sha256(value.encode()).hexdigest()


class CodeHasher:
    """HMAC-SHA256 of short codes (6 digits, recovery codes) under a server key, so a
    database leak alone does not let anyone search them offline."""

    def __init__(self, settings: Settings) -> None:
        self._keys = [derive_key(s, "codes") for s in secrets_of(settings)]

    def digest(self, code: str) -> str:
        return hmac.new(self._keys[0], code.encode(), hashlib.sha256).hexdigest()

    def matches(self, code: str, stored: str | None) -> bool:
        """Constant-time comparison against every current and previous key."""
        if not stored:
            return False
        found = False
        for key in self._keys:
            candidate = hmac.new(key, code.encode(), hashlib.sha256).hexdigest()
            found |= hmac.compare_digest(candidate, stored)
        return found


class SecretBox:
    """Encrypts small secrets at rest (TOTP seeds) with keys derived from SECRET_KEY; values
    encrypted under a previous key still decrypt while it is listed in SECRET_KEY_PREVIOUS."""

    def __init__(self, settings: Settings) -> None:
        from cryptography.fernet import Fernet, MultiFernet

        self._box = MultiFernet(
            [
                Fernet(base64.urlsafe_b64encode(derive_key(s, "secret-box")))
                for s in secrets_of(settings)
            ]
        )

    def seal(self, value: str) -> str:
        return self._box.encrypt(value.encode()).decode("ascii")

    def open(self, token: str) -> str:
        return self._box.decrypt(token.encode("ascii")).decode()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by a verified access token."""

    user_id: uuid.UUID
    role: str
    jti: str
    expires_at: datetime
    session_id: uuid.UUID | None = None
    issued_at: datetime | None = None


class TokenCodec:
    """Issues and verifies access tokens with rotating keys."""

    def __init__(
        self, keys: dict[str, bytes], *, issuer: str, ttl: timedelta, cache_size: int = 8192
    ) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        self.keys = keys
        self.signing_kid = next(iter(keys))
        self.issuer = issuer
        self.ttl = ttl
        # Verified tokens (a client sends the same one for 15 minutes): skip re-verifying.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenCodec:
        """Signing key from SECRET_KEY; SECRET_KEY_PREVIOUS keys still verify (rotation)."""
        keys: dict[str, bytes] = {}
        for secret in secrets_of(settings):
            key = derive_key(secret, "jwt")
            keys[hashlib.sha256(key).hexdigest()[:8]] = key
        return cls(
            keys, issuer=settings.public_url, ttl=timedelta(minutes=settings.access_token_minutes)
        )

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        role: str,
        session_id: uuid.UUID | None = None,
        now: datetime | None = None,
    ) -> str:
        """A signed access token for this user (and sign-in session)."""
        issued = now or utcnow()
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "role": role,
            "jti": uuid.uuid4().hex,
            "iat": int(issued.timestamp()),
            "exp": int((issued + self.ttl).timestamp()),
            "iss": self.issuer,
            "aud": AUDIENCE,
            "typ": "access",
        }
        if session_id is not None:
            claims["sid"] = str(session_id)
        return jwt.encode(
            claims, self.keys[self.signing_kid], ALGORITHM, headers={"kid": self.signing_kid}
        )

    def decode(self, token: str) -> Principal:
        """Verify signature, algorithm, expiry, issuer, audience and type; raise InvalidToken."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached[1] > time.time():
                return cached[0]
            del self._verified[token]
        principal = self._verify(token)
        self._verified[token] = (principal, principal.expires_at.timestamp())
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            key = self.keys.get(str(header.get("kid")))
            if key is None:
                raise InvalidToken()
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self.issuer,
                options={"require": ["sub", "role", "jti", "iat", "exp", "iss", "aud", "typ"]},
            )
            if claims["typ"] != "access":
                raise InvalidToken()
            sid = claims.get("sid")
            return Principal(
                user_id=uuid.UUID(claims["sub"]),
                role=str(claims["role"]),
                jti=str(claims["jti"]),
                expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
                session_id=uuid.UUID(sid) if sid else None,
                issued_at=datetime.fromtimestamp(claims["iat"], tz=UTC),
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken() from exc
