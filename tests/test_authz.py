"""The shared authorization helpers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from lms_live.core.authz import ensure_enrolled, ensure_owner, require_role
from lms_live.core.errors import EnrollmentRequired, Forbidden, NotFound
from lms_live.core.security import Principal


def who(role: str) -> Principal:
    return Principal(user_id=uuid.uuid4(), role=role, jti="j", expires_at=datetime.now(UTC))


def test_require_role() -> None:
    require_role(who("instructor"), ["instructor", "admin"])
    require_role(who("student"), [])
    with pytest.raises(Forbidden):
        require_role(who("student"), ["instructor", "admin"])


def test_ensure_owner() -> None:
    owner = who("instructor")
    ensure_owner(owner, owner.user_id)
    ensure_owner(who("admin"), owner.user_id)
    with pytest.raises(Forbidden):
        ensure_owner(who("instructor"), owner.user_id)
    with pytest.raises(Forbidden):
        ensure_owner(who("admin"), owner.user_id, admins_pass=False)
    with pytest.raises(NotFound):
        ensure_owner(who("student"), owner.user_id, hide=True)


def test_ensure_enrolled() -> None:
    ensure_enrolled(who("student"), enrolled=True)
    ensure_enrolled(who("instructor"), enrolled=False, teaches=True)
    ensure_enrolled(who("admin"), enrolled=False)
    with pytest.raises(EnrollmentRequired):
        ensure_enrolled(who("student"), enrolled=False)
    with pytest.raises(EnrollmentRequired):
        ensure_enrolled(who("instructor"), enrolled=False, teaches=False)
