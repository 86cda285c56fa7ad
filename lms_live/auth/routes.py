"""HTTP endpoints of identity and access: /auth, /users/me, /admin/users.

Every handler: parse, open the unit of work, call the service, commit, then the effects
(emails, revocations published to every instance, sockets dropped).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from lms_live import keys
from lms_live.auth import service
from lms_live.auth.effects import end_sessions, send_mail
from lms_live.auth.exceptions import InvalidCredentials, RefreshTokenReused, WrongPassword
from lms_live.auth.models import AuthSession, User
from lms_live.auth.schemas import (
    AcceptedOut,
    ChallengeOut,
    ChangePasswordIn,
    EmailIn,
    EmailMfaConfirmIn,
    EmailMfaOut,
    LinkTokenIn,
    LoginIn,
    LoginOut,
    MeOut,
    MePatchIn,
    MfaCodeIn,
    OAuthTokenForm,
    OAuthTokenOut,
    PasswordIn,
    RecoveryCodesOut,
    RefreshIn,
    RegisterIn,
    ResetPasswordIn,
    RevokedOut,
    SessionOut,
    SessionPath,
    SessionsOut,
    TokenPairOut,
    TotpConfirmIn,
    TotpSetupOut,
    UserOut,
    UserPatchIn,
    UserPath,
    UsersPage,
    UsersQuery,
)
from lms_live.core.errors import BadRequest
from lms_live.core.http import RouteTable, require_principal
from lms_live.core.middleware import client_ip
from lms_live.core.security import Principal
from lms_live.core.uow import UnitOfWork, unit_of_work

routes = RouteTable()
AUTH = ["auth"]
ME = ["account"]
ADMIN = ["admin"]

ACCEPTED = AcceptedOut(
    message="If the address can be used, an email is on its way. Check your inbox."
)


# --------------------------------------------------------------------------- helpers


def _client(request: web.Request, via: str = "api") -> service.Client:
    return service.Client(
        via=via, user_agent=request.headers.get("User-Agent"), ip=client_ip(request)
    )


def _mail(request: web.Request, work: UnitOfWork, mail: service.Mail | None) -> None:
    send_mail(request.app, work, mail)


def _end_sessions(
    request: web.Request,
    work: UnitOfWork,
    *,
    user_id: uuid.UUID,
    session_ids: list[uuid.UUID],
    reason: str,
    jti: str | None = None,
) -> None:
    end_sessions(
        request.app, work, user_id=user_id, session_ids=session_ids, reason=reason, jti=jti
    )


async def _check_password(
    request: web.Request, principal: Principal, password: str
) -> service.Owner:
    """The signed-in user's current password (403 when wrong), checked outside transactions."""
    owner = await service.password_owner(
        request.app[keys.DATABASE], user_id=principal.user_id, password=password
    )
    if owner is None:
        raise WrongPassword()
    return owner


def _pair(pair: service.TokenPair) -> TokenPairOut:
    return TokenPairOut(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
        session_id=pair.session_id,
    )


def _challenge(
    request: web.Request, work: UnitOfWork, challenge: service.Challenge
) -> ChallengeOut:
    if challenge.code is not None:
        _mail(
            request,
            work,
            service.Mail(
                "mfa_code",
                challenge.user.email,
                {
                    "full_name": challenge.user.full_name,
                    "code": challenge.code,
                    "minutes": challenge.expires_in // 60,
                },
            ),
        )
    return ChallengeOut(
        challenge_id=challenge.id,
        method=challenge.method,
        expires_in=challenge.expires_in,
    )


async def _sign_in(
    request: web.Request, *, email: str, password: str, via: str
) -> service.TokenPair | ChallengeOut:
    """Throttle, check the password (no connection held during bcrypt), then open the
    session or the second-factor challenge in one transaction."""
    throttle = request.app[keys.LOGIN_THROTTLE]
    ip = client_ip(request)
    await throttle.check(email, ip)
    owner = await service.password_owner(request.app[keys.DATABASE], email=email, password=password)
    try:
        async with unit_of_work(request.app) as work:
            outcome = await service.sign_in(
                work.session,
                kit=request.app[keys.AUTH],
                owner=owner,
                client=_client(request, via),
            )
            result = (
                _challenge(request, work, outcome)
                if isinstance(outcome, service.Challenge)
                else outcome
            )
    except InvalidCredentials:
        await throttle.failed(email, ip)
        raise
    await throttle.succeeded(email)
    return result


# --------------------------------------------------------------------------- /auth


@routes.post(
    "/api/v1/auth/register",
    summary="Create a student account",
    tags=AUTH,
    body=RegisterIn,
    response=AcceptedOut,
    status=202,
    rate_limit="auth",
)
async def register(request: web.Request, body: RegisterIn) -> AcceptedOut:
    """Always 202 with the same answer: whether the address was free is told only by email."""
    kit = request.app[keys.AUTH]
    password_hash = await service.new_password_hash(kit, body.password, email=str(body.email))
    async with unit_of_work(request.app) as work:
        mail = await service.register(
            work.session,
            kit=kit,
            email=str(body.email),
            full_name=body.full_name,
            password_hash=password_hash,
        )
        _mail(request, work, mail)
    return ACCEPTED


@routes.post(
    "/api/v1/auth/verify-email",
    summary="Confirm an email address",
    tags=AUTH,
    body=LinkTokenIn,
    rate_limit="auth",
    errors=[400],
)
async def verify_email(request: web.Request, body: LinkTokenIn) -> None:
    async with unit_of_work(request.app) as work:
        await service.verify_email(work.session, token=body.token)


@routes.post(
    "/api/v1/auth/verify-email/resend",
    summary="Send the verification link again",
    tags=AUTH,
    body=EmailIn,
    response=AcceptedOut,
    status=202,
    rate_limit="auth",
)
async def resend_verification(request: web.Request, body: EmailIn) -> AcceptedOut:
    """At most one email per address per EMAIL_RESEND_COOLDOWN_SECONDS; same answer always."""
    settings = request.app[keys.SETTINGS]
    cooldown = f"lms:auth:resend:{service.normalise_email(str(body.email))}"
    if settings.email_resend_cooldown_seconds and not await request.app[keys.KV].set_if_absent(
        cooldown, b"1", ttl=settings.email_resend_cooldown_seconds
    ):
        return ACCEPTED
    async with unit_of_work(request.app) as work:
        mail = await service.resend_verification(
            work.session, kit=request.app[keys.AUTH], email=str(body.email)
        )
        _mail(request, work, mail)
    return ACCEPTED


@routes.post(
    "/api/v1/auth/login",
    summary="Sign in with email and password",
    tags=AUTH,
    body=LoginIn,
    response=LoginOut,
    rate_limit="auth",
    errors=[401, 403],
)
async def login(request: web.Request, body: LoginIn) -> LoginOut:
    """Tokens, or `{"mfa_required": true, "challenge_id", "method"}` when two-step
    verification is on (finish with POST /api/v1/auth/mfa/verify)."""
    outcome = await _sign_in(request, email=str(body.email), password=body.password, via="api")
    if isinstance(outcome, ChallengeOut):
        return LoginOut(outcome)
    return LoginOut(_pair(outcome))


@routes.post(
    "/api/v1/auth/mfa/verify",
    summary="Finish signing in with the second factor",
    tags=AUTH,
    body=MfaCodeIn,
    response=TokenPairOut,
    rate_limit="auth",
    errors=[401],
)
async def verify_mfa(request: web.Request, body: MfaCodeIn) -> TokenPairOut:
    """The emailed code, the authenticator app's code, or an unused recovery code. Five wrong
    codes end the challenge."""
    async with unit_of_work(request.app) as work:
        pair = await service.complete_sign_in(
            work.session,
            kit=request.app[keys.AUTH],
            challenge_id=body.challenge_id,
            code=body.code,
        )
    return _pair(pair)


@routes.post(
    "/api/v1/auth/refresh",
    summary="Rotate a refresh token",
    tags=AUTH,
    body=RefreshIn,
    response=TokenPairOut,
    rate_limit="auth",
    errors=[401],
)
async def refresh(request: web.Request, body: RefreshIn) -> TokenPairOut:
    """A new token pair; the old refresh token stops working. Sending an already-used refresh
    token ends the whole session (reuse detection)."""
    return _pair(await _refresh(request, body.refresh_token))


async def _refresh(request: web.Request, token: str) -> service.TokenPair:
    try:
        async with unit_of_work(request.app) as work:
            return await service.refresh(
                work.session, kit=request.app[keys.AUTH], refresh_token=token
            )
    except RefreshTokenReused as exc:  # the revocation is committed: publish it, then fail
        await request.app[keys.REVOCATIONS].revoke([exc.session_id])
        await request.app[keys.KICKER].kick(
            user_id=str(exc.user_id), reason="refresh_reuse", session_ids=[str(exc.session_id)]
        )
        raise


@routes.post(
    "/api/v1/auth/token",
    summary="OAuth2 token endpoint (password, refresh_token)",
    tags=AUTH,
    form=OAuthTokenForm,
    response=OAuthTokenOut,
    rate_limit="auth",
    errors=[400, 401],
)
async def oauth_token(request: web.Request, form: OAuthTokenForm) -> OAuthTokenOut:
    """RFC 6749 section 4.3 and 6, form-encoded, for tools. Errors use the RFC's codes in
    `error` (`invalid_grant`, `invalid_request`)."""
    if form.grant_type == "refresh_token":
        if not form.refresh_token:
            raise OAuthError("invalid_request", "refresh_token is required.")
        pair = await _refresh(request, form.refresh_token)
    else:
        if not form.username or not form.password:
            raise OAuthError("invalid_request", "username and password are required.")
        try:
            outcome = await _sign_in(
                request, email=form.username, password=form.password, via="token"
            )
        except InvalidCredentials as exc:
            raise OAuthError("invalid_grant", exc.text) from exc
        if isinstance(outcome, ChallengeOut):
            raise OAuthError(
                "mfa_required",
                "Two-step verification is on: finish with POST /api/v1/auth/mfa/verify.",
                details=[{"challenge_id": str(outcome.challenge_id), "method": outcome.method}],
            )
        pair = outcome
    return OAuthTokenOut(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
    )


class OAuthError(BadRequest):
    """RFC 6749 section 5.2 errors (400) in our error shape."""

    def __init__(self, code: str, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code  # type: ignore[misc]


@routes.post(
    "/api/v1/auth/logout", summary="Sign out this session", tags=AUTH, roles=[], rate_limit="auth"
)
async def logout(request: web.Request) -> None:
    """Ends the session of the access token used: its refresh tokens and access tokens stop
    working at once on every instance, and its sockets are disconnected."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        ended: list[uuid.UUID] = []
        if principal.session_id is not None:
            ended = [
                await service.revoke_session(
                    work.session,
                    user_id=principal.user_id,
                    session_id=principal.session_id,
                    reason="logout",
                )
            ]
        _end_sessions(
            request,
            work,
            user_id=principal.user_id,
            session_ids=ended,
            reason="logout",
            jti=principal.jti,
        )


@routes.post(
    "/api/v1/auth/password/forgot",
    summary="Email a password reset link",
    tags=AUTH,
    body=EmailIn,
    response=AcceptedOut,
    status=202,
    rate_limit="auth",
)
async def forgot_password(request: web.Request, body: EmailIn) -> AcceptedOut:
    """Same answer whether or not the address has an account."""
    settings = request.app[keys.SETTINGS]
    cooldown = f"lms:auth:reset:{service.normalise_email(str(body.email))}"
    if settings.email_resend_cooldown_seconds and not await request.app[keys.KV].set_if_absent(
        cooldown, b"1", ttl=settings.email_resend_cooldown_seconds
    ):
        return ACCEPTED
    async with unit_of_work(request.app) as work:
        mail = await service.request_password_reset(
            work.session, kit=request.app[keys.AUTH], email=str(body.email)
        )
        _mail(request, work, mail)
    return ACCEPTED


@routes.post(
    "/api/v1/auth/password/reset",
    summary="Set a new password from a reset link",
    tags=AUTH,
    body=ResetPasswordIn,
    rate_limit="auth",
    errors=[400],
)
async def reset_password(request: web.Request, body: ResetPasswordIn) -> None:
    """Every session of the account ends (tokens refused, sockets dropped)."""
    password_hash = await service.new_password_hash(request.app[keys.AUTH], body.password)
    async with unit_of_work(request.app) as work:
        user, ended = await service.reset_password(
            work.session, token=body.token, password_hash=password_hash
        )
        _end_sessions(request, work, user_id=user.id, session_ids=ended, reason="password_reset")
        _mail(
            request,
            work,
            service.Mail("password_changed", user.email, {"full_name": user.full_name}),
        )


# --------------------------------------------------------------------------- /users/me


def _me(user: User, recovery_left: int) -> MeOut:
    return MeOut(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=user.role,
        email_verified=user.email_verified_at is not None,
        mfa_method=user.mfa_method,
        recovery_codes_left=recovery_left,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


@routes.get("/api/v1/users/me", summary="My account", tags=ME, response=MeOut, roles=[])
async def me(request: web.Request) -> MeOut:
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        user, left = await service.me_with_codes_left(session, user_id=principal.user_id)
    return _me(user, left)


@routes.patch(
    "/api/v1/users/me", summary="Change my name", tags=ME, body=MePatchIn, response=MeOut, roles=[]
)
async def update_me(request: web.Request, body: MePatchIn) -> MeOut:
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        user = await service.update_profile(
            work.session, user_id=principal.user_id, full_name=body.full_name
        )
        left = await service.recovery_codes_left(work.session, user_id=user.id)
    return _me(user, left)


@routes.post(
    "/api/v1/users/me/password",
    summary="Change my password",
    tags=ME,
    body=ChangePasswordIn,
    roles=[],
    rate_limit="auth",
    errors=[403],
)
async def change_password(request: web.Request, body: ChangePasswordIn) -> None:
    """Needs the current password; every other session ends, this one stays."""
    principal = require_principal(request)
    owner = await _check_password(request, principal, body.current_password)
    password_hash = await service.new_password_hash(
        request.app[keys.AUTH], body.new_password, email=owner.email
    )
    async with unit_of_work(request.app) as work:
        user, ended = await service.change_password(
            work.session,
            user_id=principal.user_id,
            password_hash=password_hash,
            keep=principal.session_id,
        )
        _end_sessions(request, work, user_id=user.id, session_ids=ended, reason="password_changed")
        _mail(
            request,
            work,
            service.Mail("password_changed", user.email, {"full_name": user.full_name}),
        )


def _session_out(auth: AuthSession, principal: Principal) -> SessionOut:
    return SessionOut(
        id=auth.id,
        created_at=auth.created_at,
        last_used_at=auth.last_used_at,
        expires_at=auth.expires_at,
        via=auth.via,
        user_agent=auth.user_agent,
        ip=auth.ip,
        current=auth.id == principal.session_id,
    )


@routes.get(
    "/api/v1/users/me/sessions",
    summary="My signed-in sessions",
    tags=ME,
    response=SessionsOut,
    roles=[],
)
async def my_sessions(request: web.Request) -> SessionsOut:
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        rows = await service.list_sessions(session, user_id=principal.user_id)
    return SessionsOut(items=[_session_out(row, principal) for row in rows])


@routes.delete(
    "/api/v1/users/me/sessions/{session_id}",
    summary="End one of my sessions",
    tags=ME,
    path_model=SessionPath,
    roles=[],
)
async def end_my_session(request: web.Request, path: SessionPath) -> None:
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        ended = await service.revoke_session(
            work.session,
            user_id=principal.user_id,
            session_id=path.session_id,
            reason="revoked_by_user",
        )
        _end_sessions(
            request, work, user_id=principal.user_id, session_ids=[ended], reason="revoked_by_user"
        )


@routes.delete(
    "/api/v1/users/me/sessions",
    summary="End all my sessions",
    tags=ME,
    response=RevokedOut,
    roles=[],
)
async def end_my_sessions(request: web.Request) -> RevokedOut:
    """This one included: sign in again afterwards."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        ended = await service.revoke_sessions(
            work.session, user_id=principal.user_id, reason="revoked_by_user"
        )
        _end_sessions(
            request,
            work,
            user_id=principal.user_id,
            session_ids=ended,
            reason="revoked_by_user",
            jti=principal.jti,
        )
    return RevokedOut(revoked=len(ended))


@routes.post(
    "/api/v1/users/me/mfa/email",
    summary="Start turning on email codes",
    tags=ME,
    response=EmailMfaOut,
    roles=[],
    rate_limit="auth",
    errors=[409],
)
async def start_email_mfa(request: web.Request) -> EmailMfaOut:
    """Emails a code; confirm it with POST /api/v1/users/me/mfa/email/confirm."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        challenge = await service.begin_email_mfa(
            work.session, kit=request.app[keys.AUTH], user_id=principal.user_id
        )
        _challenge(request, work, challenge)
    return EmailMfaOut(challenge_id=challenge.id, expires_in=challenge.expires_in)


@routes.post(
    "/api/v1/users/me/mfa/email/confirm",
    summary="Turn on email codes",
    tags=ME,
    body=EmailMfaConfirmIn,
    response=RecoveryCodesOut,
    roles=[],
    rate_limit="auth",
    errors=[403, 409],
)
async def confirm_email_mfa(request: web.Request, body: EmailMfaConfirmIn) -> RecoveryCodesOut:
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        codes = await service.confirm_email_mfa(
            work.session,
            kit=request.app[keys.AUTH],
            user_id=principal.user_id,
            challenge_id=body.challenge_id,
            code=body.code,
        )
    return RecoveryCodesOut(recovery_codes=codes)


@routes.post(
    "/api/v1/users/me/mfa/totp",
    summary="Start turning on an authenticator app",
    tags=ME,
    response=TotpSetupOut,
    roles=[],
    rate_limit="auth",
    errors=[409],
)
async def start_totp(request: web.Request) -> TotpSetupOut:
    """A new secret (and otpauth:// URI for a QR code); confirm with a code from the app."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        secret, uri = await service.begin_totp(
            work.session, kit=request.app[keys.AUTH], user_id=principal.user_id
        )
    return TotpSetupOut(secret=secret, otpauth_uri=uri)


@routes.post(
    "/api/v1/users/me/mfa/totp/confirm",
    summary="Turn on the authenticator app",
    tags=ME,
    body=TotpConfirmIn,
    response=RecoveryCodesOut,
    roles=[],
    rate_limit="auth",
    errors=[403, 409],
)
async def confirm_totp(request: web.Request, body: TotpConfirmIn) -> RecoveryCodesOut:
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        codes = await service.confirm_totp(
            work.session, kit=request.app[keys.AUTH], user_id=principal.user_id, code=body.code
        )
    return RecoveryCodesOut(recovery_codes=codes)


@routes.post(
    "/api/v1/users/me/mfa/disable",
    summary="Turn two-step verification off",
    tags=ME,
    body=PasswordIn,
    roles=[],
    rate_limit="auth",
    errors=[403],
)
async def disable_mfa(request: web.Request, body: PasswordIn) -> None:
    principal = require_principal(request)
    await _check_password(request, principal, body.password)
    async with unit_of_work(request.app) as work:
        await service.disable_mfa(work.session, user_id=principal.user_id)


@routes.post(
    "/api/v1/users/me/mfa/recovery-codes",
    summary="Replace my recovery codes",
    tags=ME,
    body=PasswordIn,
    response=RecoveryCodesOut,
    roles=[],
    rate_limit="auth",
    errors=[403, 409],
)
async def new_recovery_codes(request: web.Request, body: PasswordIn) -> RecoveryCodesOut:
    principal = require_principal(request)
    await _check_password(request, principal, body.password)
    async with unit_of_work(request.app) as work:
        codes = await service.regenerate_recovery_codes(
            work.session, kit=request.app[keys.AUTH], user_id=principal.user_id
        )
    return RecoveryCodesOut(recovery_codes=codes)


# --------------------------------------------------------------------------- /admin/users


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=user.role,
        is_active=user.is_active,
        email_verified=user.email_verified_at is not None,
        mfa_enabled=user.mfa_method is not None,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


@routes.get(
    "/api/v1/admin/users",
    summary="Find users",
    tags=ADMIN,
    query=UsersQuery,
    response=UsersPage,
    roles=["admin"],
)
async def list_users(request: web.Request, query: UsersQuery) -> UsersPage:
    async with request.app[keys.DATABASE].reads() as session:
        rows, total = await service.list_users(
            session,
            search=query.q,
            role=query.role,
            active=query.active,
            limit=query.limit,
            offset=query.offset,
        )
    return UsersPage(
        items=[_user_out(u) for u in rows], total=total, limit=query.limit, offset=query.offset
    )


@routes.get(
    "/api/v1/admin/users/{user_id}",
    summary="One user",
    tags=ADMIN,
    path_model=UserPath,
    response=UserOut,
    roles=["admin"],
)
async def get_user(request: web.Request, path: UserPath) -> UserOut:
    async with request.app[keys.DATABASE].reads() as session:
        user = await service.get_user(session, user_id=path.user_id)
    return _user_out(user)


@routes.patch(
    "/api/v1/admin/users/{user_id}",
    summary="Change a user's role or active flag",
    tags=ADMIN,
    path_model=UserPath,
    body=UserPatchIn,
    response=UserOut,
    roles=["admin"],
    errors=[409],
)
async def update_user(request: web.Request, path: UserPath, body: UserPatchIn) -> UserOut:
    """Deactivating ends every session at once (tokens refused, sockets dropped everywhere);
    a role change ends them too, so no token keeps the old role."""
    async with unit_of_work(request.app) as work:
        user, ended = await service.update_user(
            work.session, user_id=path.user_id, role=body.role, active=body.is_active
        )
        reason = "deactivated" if body.is_active is False else "role_changed"
        _end_sessions(request, work, user_id=user.id, session_ids=ended, reason=reason)
    return _user_out(user)
