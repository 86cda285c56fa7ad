"""Authorization helpers every domain uses: roles, and object-level ownership.

Routes declare roles (`roles=[...]` on the route, `roles` on a namespace); services check
objects: `ensure_owner` for things a user owns (admins pass). Enrollment checks
(`ensure_enrolled`) arrive with the enrollments domain.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from lms_live.core.errors import Forbidden, NotFound
from lms_live.core.security import Principal

ADMIN = "admin"


def require_role(principal: Principal, roles: Iterable[str]) -> None:
    """403 unless the caller has one of `roles`."""
    allowed = tuple(roles)
    if allowed and principal.role not in allowed:
        raise Forbidden()


def ensure_owner(
    principal: Principal,
    owner_id: uuid.UUID | None,
    *,
    admins_pass: bool = True,
    hide: bool = False,
) -> None:
    """The caller owns the object (or is an admin). `hide=True` answers 404 instead of 403,
    for objects whose existence is itself private."""
    if principal.user_id == owner_id or (admins_pass and principal.role == ADMIN):
        return
    raise NotFound() if hide else Forbidden()
