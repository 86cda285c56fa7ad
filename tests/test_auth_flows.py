"""Identity flows end to end: emails really received, tokens really refused."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from lms_live import keys
from lms_live.app import create_app
from lms_live.auth.models import AuthSession, User
from lms_live.core.db import Database
from lms_live.core.redis import MemoryKeyValue
from tests.authkit import PASSWORD, Api, token_in
from tests.conftest import SmtpInbox, make_settings


async def test_register_verify_login_me(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/auth/register",
        json={"email": "Ada@Example.org", "full_name": "Ada Lovelace", "password": PASSWORD},
    )
    assert response.status == 202
    [mail] = await api.mails(1)
    assert mail["To"] == "ada@example.org"
    assert mail["Subject"] == "Confirm your email address"

    early = await api.client.post(
        "/api/v1/auth/login", json={"email": "ada@example.org", "password": PASSWORD}
    )
    assert early.status == 403
    assert (await early.json())["error"] == "email_not_verified"

    verified = await api.client.post("/api/v1/auth/verify-email", json={"token": token_in(mail)})
    assert verified.status == 204
    again = await api.client.post("/api/v1/auth/verify-email", json={"token": token_in(mail)})
    assert again.status == 400
    assert (await again.json())["error"] == "invalid_token"

    tokens = await api.login("ADA@example.org")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    me = await api.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status == 200
    body = await me.json()
    assert body["email"] == "ada@example.org"
    assert body["role"] == "student"
    assert body["email_verified"] is True


async def test_registering_a_taken_address_answers_the_same_and_tells_the_owner(api: Api) -> None:
    owner = await api.user()
    response = await api.client.post(
        "/api/v1/auth/register",
        json={"email": owner.email, "full_name": "Intruder", "password": PASSWORD},
    )
    fresh = await api.client.post(
        "/api/v1/auth/register",
        json={"email": "new@example.org", "full_name": "New", "password": PASSWORD},
    )
    assert response.status == fresh.status == 202
    assert await response.json() == await fresh.json()
    mails = await api.mails(2)
    subjects = {m["To"]: m["Subject"] for m in mails}
    assert subjects[owner.email] == "Someone tried to sign up with your address"
    async with api.app[keys.DATABASE].sessions() as session:
        count = len(list(await session.scalars(select(User).where(User.email == owner.email))))
    assert count == 1


async def test_refresh_rotates_and_reuse_kills_the_family(api: Api) -> None:
    user = await api.user()
    first = await api.login(user.email)
    rotated = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert rotated.status == 200
    second = await rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["session_id"] == first["session_id"]

    third = await (
        await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
        )
    ).json()
    # first's successor has itself been used: presenting first again is reuse
    reuse = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reuse.status == 401
    assert (await reuse.json())["error"] == "refresh_token_reused"
    dead = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": third["refresh_token"]}
    )
    assert dead.status == 401
    access = await api.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {third['access_token']}"}
    )
    assert access.status == 401
    assert (await access.json())["error"] == "token_revoked"
    async with api.app[keys.DATABASE].sessions() as session:
        auth = await session.get(AuthSession, uuid.UUID(first["session_id"]))
    assert auth is not None
    assert auth.revoke_reason == "refresh_reuse"


async def test_immediate_double_submit_is_tolerated(api: Api) -> None:
    user = await api.user()
    first = await api.login(user.email)
    one = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    two = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert one.status == two.status == 200
    winner = await two.json()
    loser = await one.json()
    assert (
        await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": winner["refresh_token"]}
        )
    ).status == 200
    assert (
        await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": loser["refresh_token"]}
        )
    ).status == 401


async def test_logout_refuses_the_access_token_and_the_refresh_token(api: Api) -> None:
    _, auth, tokens = await api.signed_in()
    assert (await api.client.post("/api/v1/auth/logout", headers=auth)).status == 204
    after = await api.client.get("/api/v1/users/me", headers=auth)
    assert after.status == 401
    assert (await after.json())["error"] == "token_revoked"
    refreshed = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status == 401


async def test_logout_refuses_the_access_token_with_revocations_in_memory(
    aiohttp_client: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    database: Database | None,
    smtp: tuple[SmtpInbox, int],
) -> None:
    """Without Redis the revocations live in the process's memory and are read without a
    coroutine (the middleware's fast path); a revoked token is refused all the same, and a
    token of the same user that was not revoked still works."""
    inbox, port = smtp
    settings = make_settings(
        tmp_path, worker_id, pg_url=pg_url, redis_url=None, smtp_host="127.0.0.1", smtp_port=port
    )
    api = Api(await aiohttp_client(create_app(settings, database=database)), inbox)
    assert isinstance(api.app[keys.KV], MemoryKeyValue)
    user, auth, _ = await api.signed_in()
    other = {"Authorization": f"Bearer {(await api.login(user.email))['access_token']}"}
    for _ in range(2):  # the first check loads the hot set, the second reads it directly
        assert (await api.client.get("/api/v1/system/whoami", headers=auth)).status == 200
    assert (await api.client.post("/api/v1/auth/logout", headers=auth)).status == 204
    after = await api.client.get("/api/v1/system/whoami", headers=auth)
    assert after.status == 401
    assert (await after.json())["error"] == "token_revoked"
    assert (await api.client.get("/api/v1/system/whoami", headers=other)).status == 200


async def test_logout_survives_a_redis_flush(api: Api, redis: Any) -> None:
    _, auth, _ = await api.signed_in()
    assert (await api.client.post("/api/v1/auth/logout", headers=auth)).status == 204
    await redis.flushdb()  # as after a Redis restart: the hot set is gone
    after = await api.client.get("/api/v1/users/me", headers=auth)
    assert after.status == 401
    assert (await after.json())["error"] == "token_revoked"


async def test_wrong_password_and_unknown_email_look_the_same(api: Api) -> None:
    user = await api.user()
    wrong = await api.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": "not the password"}
    )
    unknown = await api.client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.org", "password": PASSWORD}
    )
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()


async def test_five_failures_lock_the_account_for_a_while(api: Api) -> None:
    user = await api.user()
    for _ in range(5):
        bad = await api.client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": "wrong password!"}
        )
        assert bad.status == 401
    locked = await api.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert locked.status == 429
    assert 800 <= int(locked.headers["Retry-After"]) <= 900
    other = await api.user()
    assert (
        await api.client.post(
            "/api/v1/auth/login", json={"email": other.email, "password": PASSWORD}
        )
    ).status == 200


async def test_password_reset_ends_every_session(api: Api) -> None:
    user = await api.user()
    laptop = await api.login(user.email)
    phone = await api.login(user.email)
    assert (
        await api.client.post("/api/v1/auth/password/forgot", json={"email": user.email})
    ).status == 202
    [mail] = await api.mails(1)
    new = "a brand new passphrase"
    reset = await api.client.post(
        "/api/v1/auth/password/reset", json={"token": token_in(mail), "password": new}
    )
    assert reset.status == 204
    for tokens in (laptop, phone):
        me = await api.client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.status == 401
    old = await api.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert old.status == 401
    assert (await api.login(user.email, new))["access_token"]
    reused = await api.client.post(
        "/api/v1/auth/password/reset",
        json={"token": token_in(mail), "password": "yet another one!"},
    )
    assert reused.status == 400


async def test_change_password_keeps_this_session_only(api: Api) -> None:
    user = await api.user()
    other = await api.login(user.email)
    this = await api.login(user.email)
    auth = {"Authorization": f"Bearer {this['access_token']}"}
    wrong = await api.client.post(
        "/api/v1/users/me/password",
        headers=auth,
        json={"current_password": "nope nope", "new_password": "x" * 12},
    )
    assert wrong.status == 403
    changed = await api.client.post(
        "/api/v1/users/me/password",
        headers=auth,
        json={"current_password": PASSWORD, "new_password": "a completely new one"},
    )
    assert changed.status == 204
    assert (await api.client.get("/api/v1/users/me", headers=auth)).status == 200
    stale = {"Authorization": f"Bearer {other['access_token']}"}
    assert (await api.client.get("/api/v1/users/me", headers=stale)).status == 401


async def test_production_fails_closed_when_redis_is_gone(
    aiohttp_client: Any,
    tmp_path: Any,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Any,
    database: Any,
) -> None:
    from lms_live.app import create_app
    from tests.conftest import make_settings
    from tests.netproxy import TcpProxy

    proxy = await TcpProxy("127.0.0.1", 6379).start()
    try:
        db = redis_url.rsplit("/", 1)[1]
        settings = make_settings(
            tmp_path,
            worker_id,
            pg_url=pg_url,
            redis_url=f"redis://127.0.0.1:{proxy.port}/{db}",
            environment="production",
            secret_key="p" * 40,
            trusted_hosts=["127.0.0.1"],
            task_broker="memory",
        )
        app = create_app(settings, database=database)
        client = await aiohttp_client(app)
        token = app[keys.TOKENS].issue(user_id=uuid.uuid4(), role="student")
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/api/v1/system/whoami", headers=auth)).status == 200
        await proxy.cut()
        closed = await client.get("/api/v1/system/whoami", headers=auth)
        assert closed.status == 503
        assert (await closed.json())["error"] == "service_unavailable"
        assert (await client.get("/api/v1/health")).status == 200
    finally:
        await proxy.close()
