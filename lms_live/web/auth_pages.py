"""Sign-in pages: /, /login (+ /login/verify for the second factor), /logout, /register,
/verify-email, /forgot-password, /reset-password.

The same rules as the API (`auth.routes`): the same service calls in one unit of work, the
same throttling and generic errors, emails and revocations sent after the commit. A page
sign-in opens a real `auth_session` (via="page") whose id the page session keeps; its tokens
are never shown (its refresh token is unusable). Successful POSTs redirect (303); expected
failures render the form again with the message next to the field (400/401/403/429).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import aiohttp_session
from aiohttp import web

from lms_live import keys
from lms_live.auth import service
from lms_live.auth.effects import end_sessions, send_mail
from lms_live.auth.exceptions import (
    EmailNotVerified,
    InvalidChallenge,
    InvalidCredentials,
    InvalidLink,
    WrongCode,
)
from lms_live.auth.models import AuthSession
from lms_live.auth.schemas import (
    EmailIn,
    LinkTokenIn,
    LoginIn,
    MfaCodeIn,
    RegisterIn,
    ResetPasswordIn,
)
from lms_live.core.errors import RateLimited, TokenRevoked, ValidationFailed
from lms_live.core.http import Handler, RouteTable
from lms_live.core.middleware import client_ip
from lms_live.core.uow import UnitOfWork, unit_of_work
from lms_live.web.pages import (
    current_user,
    flash,
    page,
    read_form,
    redirect,
    render,
    setup_templates,
    validate,
)
from lms_live.web.session import PageUser, fresh_session, sign_in_session

routes = RouteTable()

ACCEPTED = "If the address can be used, an email is on its way. Check your inbox."
EMAIL = "Enter an email address, like name@example.org."
POLICY_MESSAGE = "Choose a password of 8 to 128 characters."
LOGIN_MESSAGES = {"email": EMAIL, "password": "Enter your password."}
REGISTER_MESSAGES = {
    "full_name": "Enter your name (up to 200 characters).",
    "email": EMAIL,
    "password": POLICY_MESSAGE,
}
CODE_MESSAGES = {"code": "Enter the code (up to 20 characters)."}


def _page(method: str, path: str, summary: str) -> Callable[[Handler], Handler]:
    return routes.route(
        method,
        path,
        summary=summary,
        tags=["pages"],
        media_type="text/html",
        in_schema=False,
        rate_limit=None,  # POSTs take the "auth" bucket in `web.pages.page` (429 as a page)
    )


def setup_pages(app: web.Application) -> None:
    """Templates and the sign-in pages (after `setup_sessions(app)`, before the app starts)."""
    if keys.PAGE_SESSIONS not in app:
        raise RuntimeError("call lms_live.web.session.setup_sessions(app) first")
    setup_templates(app)
    routes.install(app)


def _client(request: web.Request) -> service.Client:
    return service.Client(
        via="page", user_agent=request.headers.get("User-Agent"), ip=client_ip(request)
    )


async def _page_user(work: UnitOfWork, pair: service.TokenPair) -> PageUser:
    user = await service.get_user(work.session, user_id=pair.user_id)
    auth = await work.session.get(AuthSession, pair.session_id)
    assert auth is not None  # just created in this transaction
    return PageUser(user.id, user.role, auth.id, auth.expires_at)


def _mail_code(app: web.Application, work: UnitOfWork, challenge: service.Challenge) -> None:
    if challenge.code is None:
        return
    context = {
        "full_name": challenge.user.full_name,
        "code": challenge.code,
        "minutes": challenge.expires_in // 60,
    }
    send_mail(app, work, service.Mail("mfa_code", challenge.user.email, context))


async def _invalid_link(request: web.Request) -> web.Response:
    return await render(
        request,
        "message.html",
        status=400,
        title="This link does not work",
        message=InvalidLink.message,
        link_href="/forgot-password",
        link_text="Ask for a new password reset link",
    )


# --------------------------------------------------------------------------- home, sign-in


@_page("GET", "/", "Home: who is signed in")
@page
async def home_page(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    if user is None:
        return await render(request, "index.html", full_name=None, role=None)
    async with request.app[keys.DATABASE].reads() as session:
        try:
            me = await service.get_me(session, user_id=user.user_id)
        except TokenRevoked:
            await fresh_session(request)
            request[keys.PAGE_USER] = None
            return await render(request, "index.html", full_name=None, role=None)
    return await render(request, "index.html", full_name=me.full_name, role=me.role)


@_page("GET", "/login", "Sign-in form")
@page
async def login_page(request: web.Request) -> web.StreamResponse:
    if current_user(request) is not None:
        return redirect("/")
    return await render(request, "login.html")


@_page("POST", "/login", "Sign in")
@page
async def login_submit(request: web.Request) -> web.StreamResponse:
    if current_user(request) is not None:  # sign out first: no orphaned auth_session
        return redirect("/")
    data = await read_form(request, "email", "password")
    values = {"email": data["email"]}
    body, errors = validate(LoginIn, data, LOGIN_MESSAGES)
    if body is None:
        return await render(request, "login.html", status=400, errors=errors, values=values)
    app = request.app
    email = str(body.email)
    throttle = app[keys.LOGIN_THROTTLE]
    ip = client_ip(request)
    challenge: service.Challenge | None = None
    signed: PageUser | None = None
    try:
        await throttle.check(email, ip)
        owner = await service.password_owner(
            app[keys.DATABASE], email=email, password=body.password
        )
        try:
            async with unit_of_work(app) as work:
                outcome = await service.sign_in(
                    work.session, kit=app[keys.AUTH], owner=owner, client=_client(request)
                )
                if isinstance(outcome, service.Challenge):
                    challenge = outcome
                    _mail_code(app, work, outcome)
                else:
                    signed = await _page_user(work, outcome)
        except InvalidCredentials:
            await throttle.failed(email, ip)
            raise
        await throttle.succeeded(email)
    except RateLimited as exc:
        response = await render(
            request, "login.html", status=429, errors={"form": exc.text}, values=values
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except (InvalidCredentials, EmailNotVerified) as exc:
        return await render(
            request, "login.html", status=exc.status, errors={"form": exc.text}, values=values
        )
    if challenge is not None:
        session = await aiohttp_session.get_session(request)
        session["mfa_challenge"] = str(challenge.id)
        session["mfa_method"] = challenge.method
        return redirect("/login/verify")
    assert signed is not None
    await sign_in_session(request, signed)
    return redirect("/")


async def _pending_challenge(request: web.Request) -> tuple[uuid.UUID, str] | None:
    session = await aiohttp_session.get_session(request)
    try:
        challenge_id = uuid.UUID(str(session["mfa_challenge"]))
    except (KeyError, ValueError):
        return None
    return challenge_id, str(session.get("mfa_method", "email"))


@_page("GET", "/login/verify", "Second-factor form")
@page
async def mfa_page(request: web.Request) -> web.StreamResponse:
    pending = await _pending_challenge(request)
    if pending is None:
        return redirect("/login")
    return await render(request, "login_verify.html", method=pending[1])


@_page("POST", "/login/verify", "Finish signing in with the second factor")
@page
async def mfa_submit(request: web.Request) -> web.StreamResponse:
    pending = await _pending_challenge(request)
    if pending is None:
        return redirect("/login")
    challenge_id, method = pending
    data = await read_form(request, "code")
    body, errors = validate(
        MfaCodeIn, {"challenge_id": challenge_id, "code": data["code"]}, CODE_MESSAGES
    )
    if body is None:
        return await render(request, "login_verify.html", status=400, errors=errors, method=method)
    try:
        async with unit_of_work(request.app) as work:
            pair = await service.complete_sign_in(
                work.session, kit=request.app[keys.AUTH], challenge_id=challenge_id, code=body.code
            )
            signed = await _page_user(work, pair)
    except WrongCode as exc:  # the attempt is counted (committed)
        return await render(
            request, "login_verify.html", status=401, errors={"code": exc.text}, method=method
        )
    except InvalidChallenge as exc:
        session = await aiohttp_session.get_session(request)
        session.pop("mfa_challenge", None)
        session.pop("mfa_method", None)
        return await render(request, "login.html", status=401, errors={"form": exc.text})
    await sign_in_session(request, signed)
    return redirect("/")


@_page("POST", "/logout", "Sign out")
@page
async def logout_submit(request: web.Request) -> web.StreamResponse:
    """Ends the page's auth_session: refused on every instance, its sockets dropped."""
    user = current_user(request)
    if user is not None:
        app = request.app
        async with unit_of_work(app) as work:
            ended = await service.revoke_session(
                work.session,
                user_id=user.user_id,
                session_id=user.auth_session_id,
                reason="logout",
            )
            end_sessions(app, work, user_id=user.user_id, session_ids=[ended], reason="logout")
    await fresh_session(request)
    await flash(request, "You have signed out.")
    return redirect("/login")


# --------------------------------------------------------------------------- accounts


@_page("GET", "/register", "Sign-up form")
@page
async def register_page(request: web.Request) -> web.StreamResponse:
    if current_user(request) is not None:
        return redirect("/")
    return await render(request, "register.html")


@_page("POST", "/register", "Create a student account")
@page
async def register_submit(request: web.Request) -> web.StreamResponse:
    """The same answer whether or not the address was free (told only by email)."""
    data = await read_form(request, "full_name", "email", "password")
    values = {"full_name": data["full_name"], "email": data["email"]}
    body, errors = validate(RegisterIn, data, REGISTER_MESSAGES)
    if body is None:
        return await render(request, "register.html", status=400, errors=errors, values=values)
    app = request.app
    try:
        password_hash = await service.new_password_hash(
            app[keys.AUTH], body.password, email=str(body.email)
        )
        async with unit_of_work(app) as work:
            mail = await service.register(
                work.session,
                kit=app[keys.AUTH],
                email=str(body.email),
                full_name=body.full_name,
                password_hash=password_hash,
            )
            send_mail(app, work, mail)
    except ValidationFailed as exc:  # the password policy
        return await render(
            request, "register.html", status=400, errors={"password": exc.text}, values=values
        )
    await flash(request, ACCEPTED)
    return redirect("/login")


@_page("GET", "/verify-email", "Confirm an email address from its link")
@page
async def verify_email_page(request: web.Request) -> web.StreamResponse:
    body, _ = validate(LinkTokenIn, {"token": request.query.get("token", "")}, {})
    if body is None:
        return await _invalid_link(request)
    try:
        async with unit_of_work(request.app) as work:
            await service.verify_email(work.session, token=body.token)
    except InvalidLink:
        return await _invalid_link(request)
    return await render(
        request,
        "message.html",
        title="Email address confirmed",
        message="Your email address is confirmed. You can sign in now.",
        link_href="/login",
        link_text="Sign in",
    )


@_page("GET", "/forgot-password", "Password reset request form")
@page
async def forgot_password_page(request: web.Request) -> web.StreamResponse:
    return await render(request, "forgot_password.html")


@_page("POST", "/forgot-password", "Email a password reset link")
@page
async def forgot_password_submit(request: web.Request) -> web.StreamResponse:
    """The same answer whether or not the address has an account."""
    data = await read_form(request, "email")
    body, errors = validate(EmailIn, data, {"email": EMAIL})
    if body is None:
        return await render(request, "forgot_password.html", status=400, errors=errors, values=data)
    app = request.app
    settings = app[keys.SETTINGS]
    cooldown = f"lms:auth:reset:{service.normalise_email(str(body.email))}"
    if not settings.email_resend_cooldown_seconds or await app[keys.KV].set_if_absent(
        cooldown, b"1", ttl=settings.email_resend_cooldown_seconds
    ):
        async with unit_of_work(app) as work:
            mail = await service.request_password_reset(
                work.session, kit=app[keys.AUTH], email=str(body.email)
            )
            send_mail(app, work, mail)
    await flash(request, ACCEPTED)
    return redirect("/forgot-password")


@_page("GET", "/reset-password", "New password form (from the emailed link)")
@page
async def reset_password_page(request: web.Request) -> web.StreamResponse:
    token = request.query.get("token", "")
    if validate(LinkTokenIn, {"token": token}, {})[0] is None:
        return await _invalid_link(request)
    return await render(request, "reset_password.html", token=token)


@_page("POST", "/reset-password", "Set a new password")
@page
async def reset_password_submit(request: web.Request) -> web.StreamResponse:
    """Every session of the account ends (this browser's too): sign in again."""
    data = await read_form(request, "token", "password")
    body, errors = validate(ResetPasswordIn, data, {"password": POLICY_MESSAGE})
    if "token" in errors:
        return await _invalid_link(request)
    if body is None:
        return await render(
            request, "reset_password.html", status=400, errors=errors, token=data["token"]
        )
    app = request.app
    try:
        password_hash = await service.new_password_hash(app[keys.AUTH], body.password)
        async with unit_of_work(app) as work:
            user, ended = await service.reset_password(
                work.session, token=body.token, password_hash=password_hash
            )
            end_sessions(app, work, user_id=user.id, session_ids=ended, reason="password_reset")
            mail = service.Mail("password_changed", user.email, {"full_name": user.full_name})
            send_mail(app, work, mail)
    except InvalidLink:
        return await _invalid_link(request)
    except ValidationFailed as exc:  # the password policy
        return await render(
            request,
            "reset_password.html",
            status=400,
            errors={"password": exc.text},
            token=body.token,
        )
    await fresh_session(request)
    await flash(request, "Your password has been changed. Sign in with the new one.")
    return redirect("/login")
