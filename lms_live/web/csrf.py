"""Forgery protection for page forms.

A synchronizer token: a random value kept in the page session (`csrf`), rendered as the hidden
field `csrf_token` of every form and compared in constant time on every POST. Independently,
a POST that carries an Origin (else a Referer) header must come from PUBLIC_URL or one of
CORS_ORIGINS. SameSite=Lax on the session cookie is a third, browser-side layer.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from lms_live.core.realtime import allowed_origins
from lms_live.settings import Settings

CSRF_FIELD = "csrf_token"
_SESSION_KEY = "csrf"


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's form token, created on first use."""
    token = session.get(_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[_SESSION_KEY] = token
    return token


def csrf_valid(session: Mapping[str, Any], sent: object) -> bool:
    """Whether a submitted token is the session's (constant-time comparison)."""
    expected = session.get(_SESSION_KEY)
    if not isinstance(expected, str) or not expected or not isinstance(sent, str) or not sent:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(headers: Mapping[str, str], settings: Settings) -> bool:
    """False when the Origin (or, lacking it, the Referer) names another site; True when the
    browser sent neither. An opaque `Origin: null` is refused."""
    origin = headers.get("Origin")
    if origin is None:
        referer = headers.get("Referer")
        if not referer:
            return True
        origin = _origin_of(referer)
    allowed = {_origin_of(o) for o in allowed_origins(settings)}
    return origin.strip().lower().rstrip("/") in allowed
