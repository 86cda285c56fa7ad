"""Administration of users: find, page, change roles, deactivate; the last admin stays."""

from __future__ import annotations

from typing import Any

import pytest

from lms_live.auth.models import Role
from tests.authkit import PASSWORD, Api


async def test_search_filter_and_paginate(api: Api) -> None:
    _, admin, _ = await api.signed_in(Role.ADMIN)
    for n in range(5):
        await api.user(email=f"findme{n}@school.example")
    await api.user(Role.INSTRUCTOR, email="teacher@school.example")
    page = await (
        await api.client.get("/api/v1/admin/users?q=FINDME&limit=2&offset=0", headers=admin)
    ).json()
    assert page["total"] == 5
    assert len(page["items"]) == 2
    rest = await (
        await api.client.get("/api/v1/admin/users?q=findme&limit=2&offset=2", headers=admin)
    ).json()
    seen = {u["email"] for u in page["items"]} | {u["email"] for u in rest["items"]}
    assert len(seen) == 4
    teachers = await (
        await api.client.get("/api/v1/admin/users?role=instructor&q=school", headers=admin)
    ).json()
    assert [u["email"] for u in teachers["items"]] == ["teacher@school.example"]
    too_big = await api.client.get("/api/v1/admin/users?limit=1000", headers=admin)
    assert too_big.status == 422
    bad_role = await api.client.get("/api/v1/admin/users?role=king", headers=admin)
    assert bad_role.status == 422
    # LIKE wildcards are literal: "%" and "_" match only themselves ("d_r" would match "der").
    await api.user(email="under_score@school.example")
    for q, expected in (("%25", 0), ("_", 1), ("r_s", 1), ("d_r", 0)):
        found = await (await api.client.get(f"/api/v1/admin/users?q={q}", headers=admin)).json()
        assert found["total"] == expected, q


async def test_role_change_takes_effect_and_ends_old_tokens(api: Api) -> None:
    _, admin, _ = await api.signed_in(Role.ADMIN)
    student = await api.user()
    tokens = await api.login(student.email)
    promoted = await api.client.patch(
        f"/api/v1/admin/users/{student.id}", headers=admin, json={"role": "instructor"}
    )
    assert promoted.status == 200
    assert (await promoted.json())["role"] == "instructor"
    stale = await api.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert stale.status == 401
    fresh = await api.login(student.email)
    me = await (
        await api.client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {fresh['access_token']}"}
        )
    ).json()
    assert me["role"] == "instructor"


async def test_deactivate_and_reactivate(api: Api) -> None:
    _, admin, _ = await api.signed_in(Role.ADMIN)
    student = await api.user()
    tokens = await api.login(student.email)
    off = await api.client.patch(
        f"/api/v1/admin/users/{student.id}", headers=admin, json={"is_active": False}
    )
    assert off.status == 200
    assert (
        await api.client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
    ).status == 401
    assert (
        await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
    ).status == 401
    login = await api.client.post(
        "/api/v1/auth/login", json={"email": student.email, "password": PASSWORD}
    )
    assert login.status == 401
    on = await api.client.patch(
        f"/api/v1/admin/users/{student.id}", headers=admin, json={"is_active": True}
    )
    assert on.status == 200
    assert "access_token" in await api.login(student.email)


async def test_the_last_admin_cannot_be_demoted_or_deactivated(api: Api) -> None:
    me, admin, _ = await api.signed_in(Role.ADMIN)
    for change in ({"role": "student"}, {"is_active": False}):
        response = await api.client.patch(
            f"/api/v1/admin/users/{me.id}", headers=admin, json=change
        )
        assert response.status == 409
        assert (await response.json())["error"] == "last_admin"
    await api.user(Role.ADMIN)
    demoted = await api.client.patch(
        f"/api/v1/admin/users/{me.id}", headers=admin, json={"role": "instructor"}
    )
    assert demoted.status == 200


async def test_unknown_user_and_bad_input(api: Api) -> None:
    _, admin, _ = await api.signed_in(Role.ADMIN)
    missing = await api.client.get(
        "/api/v1/admin/users/00000000-0000-0000-0000-000000000000", headers=admin
    )
    assert missing.status == 404
    assert (await missing.json())["error"] == "user_not_found"
    bad_id = await api.client.get("/api/v1/admin/users/not-a-uuid", headers=admin)
    assert bad_id.status == 422
    student = await api.user()
    for body in ({"role": "emperor"}, {"is_active": "yes"}, {"is_active": 0}, {"extra": 1}):
        response = await api.client.patch(
            f"/api/v1/admin/users/{student.id}", headers=admin, json=body
        )
        assert response.status == 422, body


async def test_patching_the_same_role_changes_nothing_and_keeps_sessions(api: Api) -> None:
    _, admin, _ = await api.signed_in(Role.ADMIN)
    student = await api.user()
    tokens = await api.login(student.email)
    same = await api.client.patch(
        f"/api/v1/admin/users/{student.id}",
        headers=admin,
        json={"role": "student", "is_active": True},
    )
    assert same.status == 200
    still = await api.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert still.status == 200


@pytest.mark.shared_db
async def test_two_admins_demoting_each_other_at_once_leave_one_admin(api: Any) -> None:
    """Both requests lock the active admins' rows before counting: one wins, one gets 409."""
    import asyncio

    first, first_auth, _ = await api.signed_in(Role.ADMIN)
    second, second_auth, _ = await api.signed_in(Role.ADMIN)
    results = await asyncio.gather(
        api.client.patch(
            f"/api/v1/admin/users/{second.id}", headers=first_auth, json={"role": "student"}
        ),
        api.client.patch(
            f"/api/v1/admin/users/{first.id}", headers=second_auth, json={"role": "student"}
        ),
    )
    statuses = sorted(r.status for r in results)
    assert statuses in ([200, 401], [200, 409]), statuses
