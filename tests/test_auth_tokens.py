"""Access tokens that must be refused, long passwords, the OAuth2 token endpoint."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import bcrypt
import jwt
import pytest

from lms_live import keys
from lms_live.core.security import _prehash, hash_password, verify_password
from tests.authkit import PASSWORD, Api


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(api: Api, user_id: uuid.UUID, **changes: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": str(user_id),
        "role": "admin",
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "iss": api.app[keys.SETTINGS].public_url,
        "aud": "lms_live",
        "typ": "access",
    }
    claims.update(changes)
    return claims


def _sign(
    api: Api,
    claims: dict[str, object],
    *,
    key: bytes | None = None,
    alg: str = "HS256",
    kid: str | None = None,
) -> str:
    codec = api.app[keys.TOKENS]
    kid = kid or codec.signing_kid
    return jwt.encode(claims, key or codec.keys[codec.signing_kid], alg, headers={"kid": kid})


async def _status(api: Api, token: str) -> tuple[int, str]:
    response = await api.client.get(
        "/api/v1/system/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status, (await response.json()).get("error", "")


async def test_a_well_formed_token_is_accepted(api: Api) -> None:
    assert (await _status(api, _sign(api, _claims(api, uuid.uuid4()))))[0] == 200


@pytest.mark.parametrize(
    ("case", "changes"),
    [
        ("expired", {"exp": int((datetime.now(UTC) - timedelta(seconds=5)).timestamp())}),
        ("wrong audience", {"aud": "someone-else"}),
        ("wrong issuer", {"iss": "https://evil.example"}),
        ("refresh typ", {"typ": "refresh"}),
        ("no jti", {"jti": None}),
    ],
)
async def test_bad_claims_are_refused(api: Api, case: str, changes: dict[str, object]) -> None:
    claims = {k: v for k, v in _claims(api, uuid.uuid4(), **changes).items() if v is not None}
    assert await _status(api, _sign(api, claims)) == (401, "invalid_token"), case


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_forged_and_unsigned_tokens_are_refused(api: Api) -> None:
    claims = _claims(api, uuid.uuid4())
    forged = _sign(api, claims, key=b"x" * 32)
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    none_with_kid = (
        f"{_b64({'alg': 'none', 'kid': api.app[keys.TOKENS].signing_kid})}.{_b64(claims)}."
    )
    other_alg = _sign(api, claims, alg="HS512")
    unknown_kid = _sign(api, claims, kid="nope")
    tampered = _sign(api, claims)[:-4] + "AAAA"
    for token in (forged, unsigned, none_with_kid, other_alg, unknown_kid, tampered, "garbage"):
        assert await _status(api, token) == (401, "invalid_token"), token


async def test_keys_rotate_without_signing_everyone_out(api: Api, tmp_path: object) -> None:
    from lms_live.core.security import TokenCodec
    from lms_live.settings import Settings

    old = Settings(
        _env_file=None, secret_key="o" * 40, public_url=api.app[keys.SETTINGS].public_url
    )
    new = Settings(
        _env_file=None, secret_key="n" * 40, secret_key_previous="o" * 40, public_url=old.public_url
    )
    token = TokenCodec.from_settings(old).issue(user_id=uuid.uuid4(), role="student")
    assert TokenCodec.from_settings(new).decode(token).role == "student"
    fresh = TokenCodec.from_settings(new).issue(user_id=uuid.uuid4(), role="student")
    assert jwt.get_unverified_header(fresh)["kid"] != jwt.get_unverified_header(token)["kid"]


async def test_a_100_character_password_is_never_truncated() -> None:
    long = "x" * 100
    stored = await hash_password(long, rounds=4)
    assert await verify_password(long, stored)
    # differs only after byte 72, where bare bcrypt stops reading
    assert not await verify_password("x" * 72 + "y" * 28, stored)
    with pytest.raises(ValueError, match="72"):
        bcrypt.hashpw(long.encode(), bcrypt.gensalt(4))  # why the pre-hash exists
    assert len(_prehash(long)) == 44


async def test_registration_accepts_100_characters_and_refuses_129(api: Api) -> None:
    ok = await api.client.post(
        "/api/v1/auth/register",
        json={"email": "long@example.org", "full_name": "Long", "password": "p4ss " * 20},
    )
    assert ok.status == 202
    too_long = await api.client.post(
        "/api/v1/auth/register",
        json={"email": "longer@example.org", "full_name": "Long", "password": "y" * 129},
    )
    assert too_long.status == 422
    assert (await too_long.json())["details"][0]["loc"] == ["body", "password"]


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least 8"),
        ("password1", "common"),
        ("iloveyou", "common"),
        ("Qwertyuiop", "common"),
    ],
)
async def test_weak_passwords_are_refused_with_the_reason(
    api: Api, password: str, reason: str
) -> None:
    response = await api.client.post(
        "/api/v1/auth/register",
        json={"email": "weak@example.org", "full_name": "Weak", "password": password},
    )
    assert response.status == 422
    assert reason in json.dumps(await response.json())


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@b.org", "a b@c.org", ""])
async def test_bad_emails_are_422(api: Api, email: str) -> None:
    response = await api.client.post("/api/v1/auth/login", json={"email": email, "password": "x"})
    assert response.status == 422


async def test_oauth2_password_and_refresh_grants(api: Api) -> None:
    user = await api.user()
    form = {"grant_type": "password", "username": user.email, "password": PASSWORD}
    granted = await api.client.post("/api/v1/auth/token", data=form)
    assert granted.status == 200
    body = await granted.json()
    assert body["token_type"] == "bearer"
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    renewed = await api.client.post(
        "/api/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
    )
    assert renewed.status == 200
    bad = await api.client.post("/api/v1/auth/token", data=form | {"password": "wrong!!"})
    assert bad.status == 400
    assert (await bad.json())["error"] == "invalid_grant"
    missing = await api.client.post("/api/v1/auth/token", data={"grant_type": "password"})
    assert missing.status == 400
    assert (await missing.json())["error"] == "invalid_request"
    as_json = await api.client.post("/api/v1/auth/token", json=form)
    assert as_json.status == 415
    unknown = await api.client.post("/api/v1/auth/token", data={"grant_type": "client_credentials"})
    assert unknown.status == 422


async def test_expired_reset_link_is_refused(api: Api) -> None:
    from sqlalchemy import update

    from lms_live.auth.models import EmailToken

    user = await api.user()
    await api.client.post("/api/v1/auth/password/forgot", json={"email": user.email})
    [mail] = await api.mails(1)
    async with api.app[keys.DATABASE].transaction() as session:
        await session.execute(
            update(EmailToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    from tests.authkit import token_in

    late = await api.client.post(
        "/api/v1/auth/password/reset",
        json={"token": token_in(mail), "password": "a fine new phrase"},
    )
    assert late.status == 400
    assert (await late.json())["error"] == "invalid_token"


async def test_unknown_email_reset_gets_the_same_answer_and_no_mail(api: Api) -> None:
    user = await api.user()
    known = await api.client.post("/api/v1/auth/password/forgot", json={"email": user.email})
    unknown = await api.client.post(
        "/api/v1/auth/password/forgot", json={"email": "ghost@example.org"}
    )
    assert known.status == unknown.status == 202
    assert await known.json() == await unknown.json()
    mails = await api.mails(1)
    assert [m["To"] for m in mails] == [user.email]


def test_demo_accounts_have_addresses_sign_in_accepts() -> None:
    from lms_live.auth.schemas import LoginIn
    from lms_live.seed import DEMO_DOMAIN

    assert LoginIn(email=f"learner001@{DEMO_DOMAIN}", password="x").email
