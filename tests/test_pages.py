"""Sign-in pages end to end: real PostgreSQL, Redis and SMTP; HTML forms with CSRF tokens."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from redis.asyncio import Redis
from sqlalchemy import select

from lms_live import keys
from lms_live.app import create_app
from lms_live.auth import service
from lms_live.auth.models import AuthSession, User
from lms_live.core.db import Database, utcnow
from lms_live.core.middleware import content_security_policy
from lms_live.paths import TEMPLATES
from lms_live.web.session import principal_from_cookie
from tests.authkit import PASSWORD, Api, body_of, code_in, token_in
from tests.conftest import SmtpInbox, make_settings

COOKIE = "lms_session"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
STRICT_CSP = content_security_policy()
# Inline code the CSP forbids; scripts loaded from our origin (`<script src=...>`) are fine.
INLINE_CODE = re.compile(
    r"<script(?![^>]*\ssrc=)|<style|\sstyle=|\son[a-z]+=|javascript:", re.IGNORECASE
)


def build_app(settings: Any, database: Database | None) -> web.Application:
    """The app (create_app wires sessions, then pages)."""
    return create_app(settings, database=database)


@pytest.fixture
async def pages(
    request: pytest.FixtureRequest,
    aiohttp_client: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Redis,
    database: Database | None,
    smtp: tuple[SmtpInbox, int],
) -> Api:
    """The `api` fixture's app with the pages wired; page sessions in Redis, or in an
    encrypted cookie when parametrised with "cookie" (REDIS_URL unset), or settings overrides
    when parametrised with a dict."""
    inbox, port = smtp
    param = getattr(request, "param", "redis")
    overrides: dict[str, Any] = param if isinstance(param, dict) else {}
    settings = make_settings(
        tmp_path,
        worker_id,
        pg_url=pg_url,
        redis_url=None if param == "cookie" else redis_url,
        task_broker="memory",
        smtp_host="127.0.0.1",
        smtp_port=port,
        email_resend_cooldown_seconds=0,
        **overrides,
    )
    client = await aiohttp_client(build_app(settings, database))
    return Api(client, inbox)


def strict(response: ClientResponse) -> ClientResponse:
    """Every page answers with the app's strict CSP (no 'unsafe-inline')."""
    policy = response.headers["Content-Security-Policy"]
    assert policy == STRICT_CSP
    assert "unsafe-inline" not in policy
    return response


async def get(api: Api, path: str, status: int = 200) -> str:
    response = strict(await api.client.get(path, allow_redirects=False))
    assert response.status == status, await response.text()
    if status < 300:
        assert response.content_type == "text/html"
    return await response.text()


async def csrf_of(api: Api, path: str) -> str:
    found = CSRF.search(await get(api, path))
    assert found, path
    return found.group(1)


FROM_FORM = "the token of the form at the same path"


async def post(
    api: Api, path: str, data: dict[str, str], *, csrf: str | None = FROM_FORM, **kw: Any
) -> ClientResponse:
    """POST a page form with the token its GET rendered (or `csrf`: a token, or None)."""
    if csrf is FROM_FORM:
        csrf = await csrf_of(api, path)
    fields = dict(data)
    if csrf is not None:
        fields["csrf_token"] = csrf
    response = strict(await api.client.post(path, data=fields, allow_redirects=False, **kw))
    if response.status != 303:
        assert response.content_type == "text/html"
    return response


async def sign_in(api: Api, email: str, password: str = PASSWORD) -> None:
    response = await post(api, "/login", {"email": email, "password": password})
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/"


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def link_in(body: str, path: str) -> str:
    found = re.search(rf"https?://\S+{re.escape(path)}\?token=[\w-]+", body)
    assert found, body
    return path_of(found.group(0))


def session_cookie(api: Api) -> str:
    """The page-session cookie as a browser would send it (`name=value`)."""
    morsel = api.client.session.cookie_jar.filter_cookies(api.client.make_url("/")).get(COOKIE)
    assert morsel is not None
    return f"{COOKIE}={morsel.coded_value}"


async def page_sessions(api: Api, user_id: uuid.UUID) -> list[AuthSession]:
    async with api.app[keys.DATABASE].sessions() as session:
        rows = await session.scalars(select(AuthSession).where(AuthSession.user_id == user_id))
        return list(rows)


@pytest.mark.parametrize("pages", ["redis", "cookie"], indirect=True)
async def test_register_verify_sign_in_and_landing(pages: Api) -> None:
    api = pages
    assert "You are not signed in." in await get(api, "/")
    response = await post(
        api,
        "/register",
        {"full_name": "Ada Lovelace", "email": "Ada@Example.org", "password": PASSWORD},
    )
    assert response.status == 303
    assert response.headers["Location"] == "/login"
    assert "an email is on its way" in await get(api, "/login")

    [mail] = await api.mails(1)
    assert mail["To"] == "ada@example.org"
    assert mail["Subject"] == "Confirm your email address"
    early = await post(api, "/login", {"email": "ada@example.org", "password": PASSWORD})
    assert early.status == 403
    assert "Verify your email address first" in await early.text()

    link = link_in(body_of(mail), "/verify-email")
    confirmed = await get(api, link)
    assert "Your email address is confirmed" in confirmed
    assert 'href="/login"' in confirmed
    assert "This link is invalid" in await get(api, link, status=400)

    await sign_in(api, "ADA@example.org")
    landing = await get(api, "/")
    assert "Signed in as Ada Lovelace (student)" in landing
    assert 'action="/logout"' in landing
    assert await get(api, "/login", status=303) == ""  # signed in: sent home

    async with api.app[keys.DATABASE].sessions() as session:
        user = await service.get_by_email(session, email="ada@example.org")
    assert user is not None
    [auth] = await page_sessions(api, user.id)
    assert auth.via == "page"
    assert auth.revoked_at is None


async def test_wrong_password_and_unknown_email_get_the_same_generic_error(pages: Api) -> None:
    user = await pages.user()
    wrong = await post(pages, "/login", {"email": user.email, "password": "not the password"})
    unknown = await post(pages, "/login", {"email": "nobody@example.org", "password": PASSWORD})
    assert wrong.status == unknown.status == 401
    for response in (wrong, unknown):
        html = await response.text()
        assert "The email or password is incorrect." in html
        assert 'role="alert"' in html
        assert "not the password" not in html
        assert PASSWORD not in html
    assert f'value="{user.email}"' in await wrong.text()
    assert await page_sessions(pages, user.id) == []

    invalid = await post(pages, "/login", {"email": "not-an-email", "password": ""})
    assert invalid.status == 400
    html = await invalid.text()
    assert 'id="email-error"' in html
    assert 'id="password-error"' in html
    assert 'aria-describedby="email-error" aria-invalid="true"' in html
    assert '<label class="label" for="email">' in html


async def test_failed_sign_ins_are_throttled_like_the_api(pages: Api) -> None:
    user = await pages.user()
    limit = pages.app[keys.SETTINGS].login_max_failures
    for _ in range(limit):
        failed = await post(pages, "/login", {"email": user.email, "password": "wrong-wrong"})
        assert failed.status == 401
    refused = await post(pages, "/login", {"email": user.email, "password": PASSWORD})
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in await refused.text()
    api_refused = await pages.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert api_refused.status == 429  # one throttle for pages and API


@pytest.mark.parametrize("pages", [{"rate_limit_auth": "3/hour"}], indirect=True)
async def test_page_posts_share_the_api_auth_rate_limit(pages: Api) -> None:
    forgot = "/api/v1/auth/password/forgot"
    for _ in range(2):
        api_call = await pages.client.post(forgot, json={"email": "someone@example.org"})
        assert api_call.status == 202
    accepted = await post(pages, "/forgot-password", {"email": "someone@example.org"})
    assert accepted.status == 303
    refused = await post(pages, "/forgot-password", {"email": "someone@example.org"})
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many attempts" in await refused.text()


async def test_posts_without_the_right_csrf_token_or_origin_are_refused(pages: Api) -> None:
    form = {"full_name": "Mallory", "email": "mallory@example.org", "password": PASSWORD}
    await csrf_of(pages, "/register")  # the victim's session has a token
    missing = await post(pages, "/register", form, csrf=None)
    wrong = await post(pages, "/register", form, csrf="x" * 43)
    other_site = await post(pages, "/register", form, headers={"Origin": "https://evil.example"})
    other_referer = await post(
        pages, "/register", form, headers={"Referer": "https://evil.example/form"}
    )
    null_origin = await post(pages, "/register", form, headers={"Origin": "null"})
    for response in (missing, wrong, other_site, other_referer, null_origin):
        assert response.status == 403
        assert "did not come from this site" in await response.text()
    async with pages.app[keys.DATABASE].sessions() as session:
        assert await service.get_by_email(session, email="mallory@example.org") is None
    await pages.app[keys.BROKER].wait_all()  # type: ignore[attr-defined]
    assert pages.inbox.messages == []

    user = await pages.user()
    refused = await post(pages, "/login", {"email": user.email, "password": PASSWORD}, csrf="")
    assert refused.status == 403
    assert await page_sessions(pages, user.id) == []

    ours = await post(
        pages,
        "/login",
        {"email": user.email, "password": PASSWORD},
        headers={"Origin": "http://127.0.0.1", "Referer": "http://127.0.0.1/login"},
    )
    assert ours.status == 303
    # A token from another browser's session does not work in this one.
    stolen = await csrf_of(pages, "/")
    pages.client.session.cookie_jar.clear()
    assert (await post(pages, "/logout", {}, csrf=stolen)).status == 403


async def test_cookie_flags_and_lifetimes(pages: Api) -> None:
    response = strict(await pages.client.get("/login"))
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert not cookie["secure"]
    assert cookie["max-age"] == str(24 * 3600)  # anonymous: a form token only

    user = await pages.user()
    signed = await post(pages, "/login", {"email": user.email, "password": PASSWORD})
    assert signed.cookies[COOKIE]["max-age"] == str(90 * 86400)
    assert signed.cookies[COOKIE].value != cookie.value  # a new session on sign-in

    health = await pages.client.get("/api/v1/health")
    assert COOKIE not in health.cookies  # the API never touches page sessions


async def test_the_cookie_is_secure_in_production(
    aiohttp_client: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Redis,
    database: Database | None,
) -> None:
    settings = make_settings(
        tmp_path,
        worker_id,
        pg_url=pg_url,
        redis_url=redis_url,
        task_broker="memory",
        environment="production",
        secret_key="p" * 40,
        trusted_hosts=["127.0.0.1"],
    )
    client = await aiohttp_client(build_app(settings, database))
    response = strict(await client.get("/login"))
    assert response.status == 200
    cookie = response.cookies[COOKIE]
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


@pytest.mark.parametrize("pages", ["redis", "cookie"], indirect=True)
async def test_logout_revokes_the_auth_session(pages: Api) -> None:
    user = await pages.user()
    await sign_in(pages, user.email)
    signed_in_cookie = session_cookie(pages)
    [auth] = await page_sessions(pages, user.id)

    response = await post(pages, "/logout", {}, csrf=await csrf_of(pages, "/"))
    assert response.status == 303
    assert response.headers["Location"] == "/login"
    [auth] = await page_sessions(pages, user.id)
    assert auth.revoked_at is not None
    assert auth.revoke_reason == "logout"
    assert await pages.app[keys.KV].get(f"lms:auth:sid:{auth.id}") is not None
    assert "You have signed out." in await get(pages, "/login")
    assert "You are not signed in." in await get(pages, "/")

    # The signed-in cookie, replayed, is signed out on its next page request.
    name, _, value = signed_in_cookie.partition("=")
    pages.client.session.cookie_jar.update_cookies({name: value.strip('"')})
    assert "You are not signed in." in await get(pages, "/")


async def test_a_page_session_ends_when_its_auth_session_is_revoked_elsewhere(pages: Api) -> None:
    user = await pages.user()
    await sign_in(pages, user.email)
    async with pages.app[keys.DATABASE].transaction() as session:
        await service.revoke_sessions(session, user_id=user.id, reason="revoked_by_user")
    response = strict(await pages.client.get("/"))
    assert "You are not signed in." in await response.text()
    assert response.cookies[COOKIE].value == ""  # the dead session's cookie is deleted
    logout = await post(pages, "/logout", {}, csrf=await csrf_of(pages, "/login"))
    assert logout.status == 303  # signing out a dead session is harmless


async def _enable_email_mfa(api: Api, user: User) -> None:
    kit = api.app[keys.AUTH]
    async with api.app[keys.DATABASE].transaction() as session:
        challenge = await service.begin_email_mfa(session, kit=kit, user_id=user.id)
        assert challenge.code is not None
        await service.confirm_email_mfa(
            session, kit=kit, user_id=user.id, challenge_id=challenge.id, code=challenge.code
        )


async def test_sign_in_with_an_emailed_code(pages: Api) -> None:
    user = await pages.user()
    await _enable_email_mfa(pages, user)

    response = await post(pages, "/login", {"email": user.email, "password": PASSWORD})
    assert response.status == 303
    assert response.headers["Location"] == "/login/verify"  # the challenge stays in the session
    [mail] = await pages.mails(1)
    assert mail["To"] == user.email
    form = await get(pages, "/login/verify")
    assert "We have emailed you a 6-digit code" in form
    assert 'autocomplete="one-time-code"' in form
    assert "You are not signed in." in await get(pages, "/")

    code = code_in(mail)
    wrong_code = "000000" if code != "000000" else "111111"
    wrong = await post(
        pages, "/login/verify", {"code": wrong_code}, csrf=await csrf_of(pages, "/login/verify")
    )
    assert wrong.status == 401
    html = await wrong.text()
    assert "The code is incorrect; 4 attempts left." in html
    assert 'id="code-error"' in html

    right = await post(
        pages, "/login/verify", {"code": code}, csrf=await csrf_of(pages, "/login/verify")
    )
    assert right.status == 303
    assert right.headers["Location"] == "/"
    assert "Signed in as Test student (student)" in await get(pages, "/")
    assert await get(pages, "/login/verify", status=303) == ""  # the challenge is gone
    [auth] = await page_sessions(pages, user.id)
    assert auth.via == "page"


async def test_forgot_and_reset_password_by_the_emailed_link(pages: Api) -> None:
    user = await pages.user()
    await sign_in(pages, user.email)
    response = await post(pages, "/forgot-password", {"email": user.email.upper()})
    assert response.status == 303
    assert "an email is on its way" in await get(pages, "/forgot-password")
    unknown = await post(pages, "/forgot-password", {"email": "nobody@example.org"})
    assert unknown.status == 303  # the same answer

    [mail] = await pages.mails(1)
    link = link_in(body_of(mail), "/reset-password")
    form = await get(pages, link)
    assert f'name="token" value="{token_in(mail)}"' in form

    weak = await post(pages, link, {"token": token_in(mail), "password": "password"})
    assert weak.status == 400
    assert 'id="password-error"' in await weak.text()

    new_password = "a brand new passphrase"
    done = await post(pages, link, {"token": token_in(mail), "password": new_password})
    assert done.status == 303
    assert done.headers["Location"] == "/login"
    assert "Your password has been changed" in await get(pages, "/login")
    [_, changed] = await pages.mails(2)
    assert changed["To"] == user.email
    [auth] = await page_sessions(pages, user.id)
    assert auth.revoke_reason == "password_reset"

    again = await post(pages, link, {"token": token_in(mail), "password": new_password})
    assert again.status == 400
    assert "This link is invalid" in await again.text()
    old = await post(pages, "/login", {"email": user.email, "password": PASSWORD})
    assert old.status == 401
    await sign_in(pages, user.email, new_password)


@pytest.mark.parametrize("pages", ["redis", "cookie"], indirect=True)
async def test_principal_from_cookie(pages: Api) -> None:
    app = pages.app
    user = await pages.user()
    assert await principal_from_cookie(app, {}) is None
    await csrf_of(pages, "/login")
    assert await principal_from_cookie(app, {"HTTP_COOKIE": session_cookie(pages)}) is None

    await sign_in(pages, user.email)
    cookie = session_cookie(pages)
    [auth] = await page_sessions(pages, user.id)
    principal = await principal_from_cookie(app, {"HTTP_COOKIE": f"theme=dark; {cookie}; a=b"})
    assert principal is not None
    assert principal.user_id == user.id
    assert principal.role == "student"
    assert principal.session_id == auth.id
    assert principal.expires_at <= utcnow() + timedelta(minutes=15)
    assert not await app[keys.REVOCATIONS].is_revoked(principal)
    from_header = await principal_from_cookie(app, cookie)  # a Cookie header works too
    assert from_header is not None
    assert from_header.session_id == auth.id

    name, _, value = cookie.partition("=")
    forged = value.strip('"')[:-6] + "AAAAAA"
    assert await principal_from_cookie(app, f"{name}={forged}") is None
    assert await principal_from_cookie(app, f"{name}={uuid.uuid4().hex}") is None

    await post(pages, "/logout", {}, csrf=await csrf_of(pages, "/"))
    assert await principal_from_cookie(app, {"HTTP_COOKIE": session_cookie(pages)}) is None
    replayed = await principal_from_cookie(app, cookie)
    if app[keys.SETTINGS].redis_url:
        assert replayed is None  # the server-side session is gone
    else:  # the old encrypted cookie still decodes: the caller's revocation check refuses it
        assert replayed is not None
        assert await app[keys.REVOCATIONS].is_revoked(replayed)


async def test_every_page_keeps_the_strict_csp_and_has_no_inline_code(pages: Api) -> None:
    reset = "/reset-password?token=" + "t" * 20
    for path in ("/", "/login", "/register", "/forgot-password", reset):
        assert not INLINE_CODE.search(await get(pages, path)), path
    assert not INLINE_CODE.search(await get(pages, "/verify-email?token=short", status=400))
    await get(pages, "/login/verify", status=303)
    user = await pages.user()
    await sign_in(pages, user.email)
    assert not INLINE_CODE.search(await get(pages, "/"))
    for template in (TEMPLATES / "pages").glob("*.html"):
        assert not INLINE_CODE.search(template.read_text()), template


async def test_a_signed_in_page_opens_sockets_with_its_cookie(pages: Api) -> None:
    import socketio

    user = await pages.user()
    await sign_in(pages, user.email)
    cookie = session_cookie(pages)
    url = str(pages.client.make_url("/"))

    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        url,
        namespaces=["/notifications"],
        headers={"Cookie": cookie},
        transports=["websocket"],
        wait_timeout=5,
    )
    ack = await client.call("clock", namespace="/notifications", timeout=5)
    assert ack["ok"] is True
    await client.disconnect()

    csrf = await csrf_of(pages, "/")
    assert (await post(pages, "/logout", {}, csrf=csrf)).status == 303
    refused = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    refused.on("connect_error", errors.append, namespace="/notifications")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(
            url,
            namespaces=["/notifications"],
            headers={"Cookie": cookie},
            transports=["websocket"],
            wait_timeout=5,
        )
    await refused.disconnect()
    assert errors
    assert errors[0]["data"]["code"] in {"token_revoked", "unauthorized"}
