"""Authorization helpers every domain uses: roles, ownership, enrollment.

Routes declare roles (`roles=[...]` on the route, `roles` on a namespace); services check
objects: `ensure_owner` for things a user owns, `ensure_enrolled` for course content (the
course's domain looks up the facts, this decides). Admins pass both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from lms_live.core.errors import EnrollmentRequired, Forbidden, NotFound
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


def ensure_enrolled(principal: Principal, *, enrolled: bool, teaches: bool = False) -> None:
    """Course content: learners must be enrolled; the course's instructors and admins pass."""
    if enrolled or teaches or principal.role == ADMIN:
        return
    raise EnrollmentRequired()
