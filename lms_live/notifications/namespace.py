"""`/notifications`: per-user push.

Protocol (so far): connect with `auth={"token": <access token>}`; a refused connection's
`connect_error` carries `{"message": ..., "data": {"code": ...}}`. A connected socket is in
room `user:<id>`; the server pushes `notification` events to that room from any instance or
worker. `clock` -> server time ack.
"""

from __future__ import annotations

from lms_live.core.realtime import LmsNamespace

NAMESPACE = "/notifications"


class NotificationsNamespace(LmsNamespace):
    """Per-user push; all behaviour so far comes from LmsNamespace."""
