"""Second factors: email codes and TOTP, recovery codes, attempts, single use."""

from __future__ import annotations

from typing import Any

import pyotp

from lms_live.auth.models import Role
from tests.authkit import PASSWORD, Api, code_in


async def _enable_email_mfa(api: Api, auth: dict[str, str]) -> list[str]:
    start = await api.client.post("/api/v1/users/me/mfa/email", headers=auth)
    assert start.status == 200
    challenge = await start.json()
    [mail] = await api.mails(1)
    api.inbox.messages.clear()
    confirm = await api.client.post(
        "/api/v1/users/me/mfa/email/confirm",
        headers=auth,
        json={"challenge_id": challenge["challenge_id"], "code": code_in(mail)},
    )
    assert confirm.status == 200, await confirm.text()
    codes: list[str] = (await confirm.json())["recovery_codes"]
    return codes


async def test_email_mfa_login_needs_the_emailed_code(api: Api) -> None:
    user, auth, _ = await api.signed_in()
    recovery = await _enable_email_mfa(api, auth)
    assert len(recovery) == 10
    assert len(set(recovery)) == 10

    first = await api.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert first.status == 200
    challenge = await first.json()
    assert challenge["mfa_required"] is True
    assert challenge["method"] == "email"
    assert "access_token" not in challenge
    [mail] = await api.mails(1)
    code = code_in(mail)
    wrong = "000000" if code != "000000" else "111111"
    bad = await api.client.post(
        "/api/v1/auth/mfa/verify", json={"challenge_id": challenge["challenge_id"], "code": wrong}
    )
    assert bad.status == 401
    assert (await bad.json())["details"] == [{"attempts_left": 4}]
    ok = await api.client.post(
        "/api/v1/auth/mfa/verify", json={"challenge_id": challenge["challenge_id"], "code": code}
    )
    assert ok.status == 200
    tokens = await ok.json()
    me = await api.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert (await me.json())["mfa_method"] == "email"
    replay = await api.client.post(
        "/api/v1/auth/mfa/verify", json={"challenge_id": challenge["challenge_id"], "code": code}
    )
    assert replay.status == 401
    assert (await replay.json())["error"] == "mfa_challenge_invalid"


async def test_five_wrong_codes_kill_the_challenge(api: Api) -> None:
    user, auth, _ = await api.signed_in()
    await _enable_email_mfa(api, auth)
    challenge = await (
        await api.client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
        )
    ).json()
    [mail] = await api.mails(1)
    code = code_in(mail)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        response = await api.client.post(
            "/api/v1/auth/mfa/verify",
            json={"challenge_id": challenge["challenge_id"], "code": wrong},
        )
        assert response.status == 401
    dead = await api.client.post(
        "/api/v1/auth/mfa/verify", json={"challenge_id": challenge["challenge_id"], "code": code}
    )
    assert dead.status == 401
    assert (await dead.json())["error"] == "mfa_challenge_invalid"


async def test_totp_setup_login_recovery_codes_and_disable(api: Api) -> None:
    user, auth, _ = await api.signed_in(Role.INSTRUCTOR)
    setup = await (await api.client.post("/api/v1/users/me/mfa/totp", headers=auth)).json()
    assert setup["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(setup["secret"])
    bad = await api.client.post(
        "/api/v1/users/me/mfa/totp/confirm",
        headers=auth,
        json={"code": "000000" if totp.now() != "000000" else "111111"},
    )
    assert bad.status == 403
    confirm = await api.client.post(
        "/api/v1/users/me/mfa/totp/confirm", headers=auth, json={"code": totp.now()}
    )
    assert confirm.status == 200
    recovery: list[str] = (await confirm.json())["recovery_codes"]

    challenge = await (
        await api.client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
        )
    ).json()
    assert challenge["method"] == "totp"
    # the confirming code's time step is spent: the same code cannot sign in (no replay)
    replayed = await api.client.post(
        "/api/v1/auth/mfa/verify",
        json={"challenge_id": challenge["challenge_id"], "code": totp.now()},
    )
    assert replayed.status == 401
    by_recovery = await api.client.post(
        "/api/v1/auth/mfa/verify",
        json={"challenge_id": challenge["challenge_id"], "code": recovery[0].upper()},
    )
    assert by_recovery.status == 200

    second = await (
        await api.client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
        )
    ).json()
    reused = await api.client.post(
        "/api/v1/auth/mfa/verify",
        json={"challenge_id": second["challenge_id"], "code": recovery[0]},
    )
    assert reused.status == 401
    me = await (await api.client.get("/api/v1/users/me", headers=auth)).json()
    assert me["recovery_codes_left"] == 9

    wrong_password = await api.client.post(
        "/api/v1/users/me/mfa/disable", headers=auth, json={"password": "not my password"}
    )
    assert wrong_password.status == 403
    off = await api.client.post(
        "/api/v1/users/me/mfa/disable", headers=auth, json={"password": PASSWORD}
    )
    assert off.status == 204
    plain = await api.login(user.email)
    assert "access_token" in plain


async def test_recovery_codes_are_per_user_and_regenerated(api: Api) -> None:
    _, auth_a, _ = await api.signed_in()
    _, auth_b, _ = await api.signed_in()
    codes_a = await _enable_email_mfa(api, auth_a)
    codes_b = await _enable_email_mfa(api, auth_b)
    assert not set(codes_a) & set(codes_b)
    fresh = await api.client.post(
        "/api/v1/users/me/mfa/recovery-codes", headers=auth_a, json={"password": PASSWORD}
    )
    assert fresh.status == 200
    new_codes = (await fresh.json())["recovery_codes"]
    assert not set(new_codes) & set(codes_a)


async def test_enabling_twice_is_a_conflict(api: Api) -> None:
    _, auth, _ = await api.signed_in()
    await _enable_email_mfa(api, auth)
    again: Any = await api.client.post("/api/v1/users/me/mfa/totp", headers=auth)
    assert again.status == 409
    assert (await again.json())["error"] == "mfa_already_enabled"
