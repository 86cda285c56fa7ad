"""Identity and access rules: accounts, sign-in sessions, tokens, second factors, admin.

Every function takes the session first and keyword arguments after it; it changes rows and
returns what the caller must do after the commit (send an email, publish revocations, drop
sockets), never doing those itself.
"""

from __future__ import annotations

import base64
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.auth import passwords
from lms_live.auth.exceptions import (
    ChallengeExpired,
    EmailNotVerified,
    InvalidChallenge,
    InvalidCredentials,
    InvalidLink,
    InvalidRefreshToken,
    LastAdmin,
    MfaAlreadyEnabled,
    MfaNotPending,
    RefreshTokenReused,
    SessionNotFound,
    UserNotFound,
    WrongCode,
    WrongConfirmationCode,
)
from lms_live.auth.models import (
    AuthSession,
    EmailToken,
    EmailTokenPurpose,
    MfaChallenge,
    MfaMethod,
    RecoveryCode,
    RefreshToken,
    Role,
    User,
)
from lms_live.core.db import Database, like_contains, utcnow
from lms_live.core.errors import Conflict, TokenRevoked
from lms_live.core.security import (
    CodeHasher,
    SecretBox,
    TokenCodec,
    hash_password,
    sha256_hex,
    verify_password,
)
from lms_live.settings import Settings

log = logging.getLogger("lms_live.auth")

REFRESH_PREFIX = "lms_rt_"
RECOVERY_CODES = 10


@dataclass(frozen=True, slots=True)
class AuthKit:
    """What the rules need besides the database: settings and the key-derived helpers."""

    settings: Settings
    tokens: TokenCodec
    codes: CodeHasher
    box: SecretBox

    @classmethod
    def from_settings(cls, settings: Settings, tokens: TokenCodec | None = None) -> AuthKit:
        return cls(
            settings,
            tokens or TokenCodec.from_settings(settings),
            CodeHasher(settings),
            SecretBox(settings),
        )


@dataclass(frozen=True, slots=True)
class Client:
    """Where a sign-in comes from (shown in the session list)."""

    via: str = "api"
    user_agent: str | None = None
    ip: str | None = None


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    session_id: uuid.UUID
    user_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Challenge:
    """A sign-in waiting for its second factor; `code` is to be emailed (email method)."""

    id: uuid.UUID
    method: str
    expires_in: int
    user: User
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Mail:
    """An email to send once the transaction has committed."""

    template: str
    to: str
    context: dict[str, object] = field(default_factory=dict)


# --------------------------------------------------------------------------- accounts


def normalise_email(email: str) -> str:
    """The stored form of an email address: trimmed and lower-case."""
    return email.strip().lower()


async def get_by_email(session: AsyncSession, *, email: str) -> User | None:
    """The user with this email, if any."""
    found: User | None = await session.scalar(
        select(User).where(User.email == normalise_email(email))
    )
    return found


async def get_user(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    """The user, or UserNotFound."""
    user = await session.get(User, user_id)
    if user is None:
        raise UserNotFound()
    return user


async def get_me(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    """The signed-in user; a token whose account is gone or disabled is refused (401)."""
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise TokenRevoked()
    return user


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    full_name: str,
    password: str,
    role: Role = Role.STUDENT,
    verified: bool = False,
    bcrypt_rounds: int = 12,
) -> User:
    """Create an account; Conflict if the email is taken (admin and seeding paths)."""
    passwords.check(password, email=email)
    if await get_by_email(session, email=email) is not None:
        raise Conflict("An account with this email already exists.")
    now = utcnow()
    user = User(
        email=normalise_email(email),
        full_name=full_name.strip(),
        password_hash=await hash_password(password, rounds=bcrypt_rounds),
        role=role.value,
        email_verified_at=now if verified else None,
        password_changed_at=now,
    )
    session.add(user)
    await session.flush()
    return user


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose password was just checked."""

    id: uuid.UUID
    email: str


async def new_password_hash(kit: AuthKit, password: str, *, email: str | None = None) -> str:
    """Check the policy, then hash. Called before opening a transaction: bcrypt takes ~0.3 s
    at cost 12 and must not hold a database connection meanwhile."""
    passwords.check(password, email=email)
    return await hash_password(password, rounds=kit.settings.bcrypt_rounds)


async def password_owner(
    database: Database,
    *,
    password: str,
    email: str | None = None,
    user_id: uuid.UUID | None = None,
) -> Owner | None:
    """The account (by email or id) whose password this is, or None. The connection is
    released before the bcrypt check; an unknown account costs the same time."""
    async with database.reads() as session:
        if email is not None:
            user = await get_by_email(session, email=email)
        else:
            user = await session.get(User, user_id) if user_id is not None else None
        stored = user.password_hash if user is not None else None
        owner = Owner(user.id, user.email) if user is not None else None
    valid = await verify_password(password, stored)
    return owner if valid else None


def _link_token() -> str:
    return secrets.token_urlsafe(32)


async def _email_token(
    session: AsyncSession, *, user: User, purpose: EmailTokenPurpose, lifetime: timedelta
) -> str:
    """A new single-use link token (earlier unused ones of the same purpose stop working)."""
    now = utcnow()
    await session.execute(
        update(EmailToken)
        .where(
            EmailToken.user_id == user.id,
            EmailToken.purpose == purpose.value,
            EmailToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
    raw = _link_token()
    session.add(
        EmailToken(
            user_id=user.id,
            purpose=purpose.value,
            token_hash=sha256_hex(raw),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return raw


async def _use_email_token(
    session: AsyncSession, *, token: str, purpose: EmailTokenPurpose
) -> User:
    row = await session.scalar(
        select(EmailToken).where(EmailToken.token_hash == sha256_hex(token)).with_for_update()
    )
    now = utcnow()
    if (
        row is None
        or row.purpose != purpose.value
        or row.used_at is not None
        or row.expires_at <= now
    ):
        raise InvalidLink()
    row.used_at = now
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise InvalidLink()
    return user


async def register(
    session: AsyncSession, *, kit: AuthKit, email: str, full_name: str, password_hash: str
) -> Mail:
    """Create a student account and the verification email. For an address already in use,
    the same work is done and the owner is told instead: the caller's answer is identical.
    `password_hash` comes from `new_password_hash` (computed outside the transaction)."""
    existing = await get_by_email(session, email=email)
    if existing is not None:
        return Mail("account_exists", existing.email, {"full_name": existing.full_name})
    now = utcnow()
    user = User(
        email=normalise_email(email),
        full_name=full_name.strip(),
        password_hash=password_hash,
        role=Role.STUDENT.value,
        password_changed_at=now,
    )
    session.add(user)
    await session.flush()
    raw = await _email_token(
        session,
        user=user,
        purpose=EmailTokenPurpose.VERIFY_EMAIL,
        lifetime=timedelta(hours=kit.settings.email_verification_hours),
    )
    return Mail("verify_email", user.email, {"full_name": user.full_name, "token": raw})


async def verify_email(session: AsyncSession, *, token: str) -> User:
    """Mark the address verified (single-use link)."""
    user = await _use_email_token(session, token=token, purpose=EmailTokenPurpose.VERIFY_EMAIL)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    return user


async def resend_verification(session: AsyncSession, *, kit: AuthKit, email: str) -> Mail | None:
    """A new verification email for an unverified account (None otherwise: same answer)."""
    user = await get_by_email(session, email=email)
    if user is None or user.email_verified_at is not None or not user.is_active:
        return None
    raw = await _email_token(
        session,
        user=user,
        purpose=EmailTokenPurpose.VERIFY_EMAIL,
        lifetime=timedelta(hours=kit.settings.email_verification_hours),
    )
    return Mail("verify_email", user.email, {"full_name": user.full_name, "token": raw})


async def update_profile(session: AsyncSession, *, user_id: uuid.UUID, full_name: str) -> User:
    """Change what a user may change about themselves."""
    user = await get_me(session, user_id=user_id)
    user.full_name = full_name.strip()
    return user


# --------------------------------------------------------------------------- sessions


async def open_session(
    session: AsyncSession, *, kit: AuthKit, user: User, client: Client
) -> TokenPair:
    """Start a sign-in session and issue its first token pair."""
    now = utcnow()
    auth = AuthSession(
        user_id=user.id,
        expires_at=now + timedelta(days=kit.settings.session_max_days),
        last_used_at=now,
        via=client.via,
        user_agent=(client.user_agent or "")[:300] or None,
        ip=client.ip,
    )
    session.add(auth)
    await session.flush()
    user.last_login_at = now
    return await _issue(session, kit=kit, user=user, auth=auth, parent=None, now=now)


async def _issue(
    session: AsyncSession,
    *,
    kit: AuthKit,
    user: User,
    auth: AuthSession,
    parent: RefreshToken | None,
    now: datetime,
) -> TokenPair:
    raw = REFRESH_PREFIX + secrets.token_urlsafe(32)
    expires = min(now + timedelta(days=kit.settings.refresh_token_days), auth.expires_at)
    session.add(
        RefreshToken(
            session_id=auth.id,
            token_hash=sha256_hex(raw),
            parent_id=parent.id if parent else None,
            created_at=now,
            expires_at=expires,
        )
    )
    access = kit.tokens.issue(user_id=user.id, role=user.role, session_id=auth.id, now=now)
    return TokenPair(
        access_token=access,
        refresh_token=raw,
        expires_in=int(kit.tokens.ttl.total_seconds()),
        refresh_expires_in=int((expires - now).total_seconds()),
        session_id=auth.id,
        user_id=user.id,
    )


async def sign_in(
    session: AsyncSession, *, kit: AuthKit, owner: Owner | None, client: Client
) -> TokenPair | Challenge:
    """After `password_owner` checked the password: tokens, or a second-factor challenge when
    MFA is on. One generic error for unknown accounts, wrong passwords and disabled ones."""
    user = await session.get(User, owner.id) if owner is not None else None
    if user is None or not user.is_active:
        raise InvalidCredentials()
    if user.email_verified_at is None:
        raise EmailNotVerified()
    if user.mfa_method is None:
        return await open_session(session, kit=kit, user=user, client=client)
    return await _login_challenge(session, kit=kit, user=user, client=client)


async def _login_challenge(
    session: AsyncSession, *, kit: AuthKit, user: User, client: Client
) -> Challenge:
    now = utcnow()
    lifetime = timedelta(minutes=kit.settings.mfa_code_minutes)
    code = f"{secrets.randbelow(10**6):06d}" if user.mfa_method == MfaMethod.EMAIL else None
    challenge = MfaChallenge(
        user_id=user.id,
        purpose="login",
        method=str(user.mfa_method),
        code_hash=kit.codes.digest(code) if code else None,
        created_at=now,
        expires_at=now + lifetime,
        via=client.via,
        user_agent=client.user_agent,
        ip=client.ip,
    )
    session.add(challenge)
    await session.flush()
    return Challenge(challenge.id, challenge.method, int(lifetime.total_seconds()), user, code)


async def _open_challenge(
    session: AsyncSession, *, kit: AuthKit, challenge_id: uuid.UUID, purpose: str
) -> MfaChallenge:
    challenge = await session.get(MfaChallenge, challenge_id, with_for_update=True)
    if (
        challenge is None
        or challenge.purpose != purpose
        or challenge.used_at is not None
        or challenge.expires_at <= utcnow()
        or challenge.attempts >= kit.settings.mfa_max_attempts
    ):
        raise InvalidChallenge()
    return challenge


def _wrong(
    kit: AuthKit,
    challenge: MfaChallenge,
    kind: type[WrongCode | WrongConfirmationCode] = WrongCode,
) -> WrongCode | WrongConfirmationCode:
    challenge.attempts += 1
    left = kit.settings.mfa_max_attempts - challenge.attempts
    if left <= 0:
        challenge.used_at = utcnow()
        return kind("The code is incorrect; this step is used up, start again.")
    return kind(f"The code is incorrect; {left} attempts left.", details=[{"attempts_left": left}])


async def complete_sign_in(
    session: AsyncSession, *, kit: AuthKit, challenge_id: uuid.UUID, code: str
) -> TokenPair:
    """Finish a sign-in with its second factor (email code, TOTP or a recovery code)."""
    challenge = await _open_challenge(session, kit=kit, challenge_id=challenge_id, purpose="login")
    user = await get_user(session, user_id=challenge.user_id)
    if not user.is_active:
        raise InvalidChallenge()
    code = code.strip().replace(" ", "")
    if challenge.method == MfaMethod.EMAIL:
        ok = kit.codes.matches(code, challenge.code_hash)
    else:
        ok = _check_totp(kit, user, code)
    if not ok:
        ok = await _use_recovery_code(session, kit=kit, user=user, code=code)
    if not ok:
        raise _wrong(kit, challenge)
    challenge.used_at = utcnow()
    client = Client(via=challenge.via, user_agent=challenge.user_agent, ip=challenge.ip)
    return await open_session(session, kit=kit, user=user, client=client)


async def refresh(session: AsyncSession, *, kit: AuthKit, refresh_token: str) -> TokenPair:
    """Rotate a refresh token. A token already rotated is tolerated only if it is the
    immediately previous one, within REFRESH_REUSE_GRACE_SECONDS, and its successor is
    unused; otherwise the whole session is revoked (RefreshTokenReused, committed)."""
    row = await session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == sha256_hex(refresh_token))
        .with_for_update()
    )
    if row is None:
        raise InvalidRefreshToken()
    auth = await session.get(AuthSession, row.session_id, with_for_update=True)
    now = utcnow()
    if auth is None or auth.revoked_at is not None:
        raise InvalidRefreshToken()
    if row.rotated_at is not None:
        successor = await session.scalar(
            select(RefreshToken)
            .where(RefreshToken.parent_id == row.id)
            .order_by(RefreshToken.created_at.desc())
            .limit(1)
        )
        grace = timedelta(seconds=kit.settings.refresh_reuse_grace_seconds)
        if successor is None or successor.rotated_at is not None or now - row.rotated_at > grace:
            auth.revoked_at = now
            auth.revoke_reason = "refresh_reuse"
            log.warning("refresh token reuse: session %s of user %s revoked", auth.id, auth.user_id)
            raise RefreshTokenReused(session_id=auth.id, user_id=auth.user_id)
        successor.rotated_at = now  # the double-submit's first answer stops working
    if row.expires_at <= now or auth.expires_at <= now:
        raise InvalidRefreshToken()
    user = await session.get(User, auth.user_id)
    if user is None or not user.is_active:
        raise InvalidRefreshToken()
    row.rotated_at = row.rotated_at or now
    auth.last_used_at = now
    return await _issue(session, kit=kit, user=user, auth=auth, parent=row, now=now)


async def revoke_session(
    session: AsyncSession, *, user_id: uuid.UUID, session_id: uuid.UUID, reason: str
) -> uuid.UUID:
    """End one of this user's sessions (SessionNotFound if it is not theirs)."""
    auth = await session.get(AuthSession, session_id)
    if auth is None or auth.user_id != user_id:
        raise SessionNotFound()
    if auth.revoked_at is None:
        auth.revoked_at = utcnow()
        auth.revoke_reason = reason
    return auth.id


async def revoke_sessions(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    reason: str,
    keep: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """End every live session of a user (except `keep`); their ids."""
    query = select(AuthSession).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(AuthSession.id != keep)
    now = utcnow()
    ended = []
    for auth in await session.scalars(query.with_for_update()):
        auth.revoked_at = now
        auth.revoke_reason = reason
        ended.append(auth.id)
    return ended


async def list_sessions(session: AsyncSession, *, user_id: uuid.UUID) -> list[AuthSession]:
    """A user's live sessions, most recently used first."""
    now = utcnow()
    rows = await session.scalars(
        select(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
        )
        .order_by(AuthSession.last_used_at.desc())
    )
    return list(rows)


async def session_alive(session: AsyncSession, *, session_id: uuid.UUID) -> bool:
    """Whether a sign-in session exists and is neither revoked nor expired."""
    auth = await session.get(AuthSession, session_id)
    return auth is not None and auth.revoked_at is None and auth.expires_at > utcnow()


# --------------------------------------------------------------------------- passwords


async def request_password_reset(session: AsyncSession, *, kit: AuthKit, email: str) -> Mail | None:
    """The reset email for an active account (None otherwise; the caller answers the same)."""
    user = await get_by_email(session, email=email)
    if user is None or not user.is_active:
        return None
    raw = await _email_token(
        session,
        user=user,
        purpose=EmailTokenPurpose.RESET_PASSWORD,
        lifetime=timedelta(minutes=kit.settings.password_reset_minutes),
    )
    return Mail(
        "reset_password",
        user.email,
        {"full_name": user.full_name, "token": raw, "minutes": kit.settings.password_reset_minutes},
    )


def _set_password(user: User, password_hash: str) -> None:
    user.password_hash = password_hash
    user.password_changed_at = utcnow()


async def reset_password(
    session: AsyncSession, *, token: str, password_hash: str
) -> tuple[User, list[uuid.UUID]]:
    """Set a new password (hashed by `new_password_hash`) from a reset link; every session of
    the user ends."""
    user = await _use_email_token(session, token=token, purpose=EmailTokenPurpose.RESET_PASSWORD)
    _set_password(user, password_hash)
    if user.email_verified_at is None:  # the link proved the address
        user.email_verified_at = utcnow()
    ended = await revoke_sessions(session, user_id=user.id, reason="password_reset")
    return user, ended


async def change_password(
    session: AsyncSession, *, user_id: uuid.UUID, password_hash: str, keep: uuid.UUID | None
) -> tuple[User, list[uuid.UUID]]:
    """Store a new password (the caller checked the current one); every other session ends."""
    user = await get_me(session, user_id=user_id)
    _set_password(user, password_hash)
    ended = await revoke_sessions(session, user_id=user.id, reason="password_changed", keep=keep)
    return user, ended


# --------------------------------------------------------------------------- second factors


async def begin_email_mfa(session: AsyncSession, *, kit: AuthKit, user_id: uuid.UUID) -> Challenge:
    """Send a code to confirm switching email MFA on."""
    user = await get_me(session, user_id=user_id)
    if user.mfa_method is not None:
        raise MfaAlreadyEnabled()
    now = utcnow()
    lifetime = timedelta(minutes=kit.settings.mfa_code_minutes)
    code = f"{secrets.randbelow(10**6):06d}"
    challenge = MfaChallenge(
        user_id=user.id,
        purpose="enable_email",
        method=MfaMethod.EMAIL.value,
        code_hash=kit.codes.digest(code),
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(challenge)
    await session.flush()
    return Challenge(challenge.id, challenge.method, int(lifetime.total_seconds()), user, code)


async def confirm_email_mfa(
    session: AsyncSession,
    *,
    kit: AuthKit,
    user_id: uuid.UUID,
    challenge_id: uuid.UUID,
    code: str,
) -> list[str]:
    """Switch email MFA on with the emailed code; returns fresh recovery codes."""
    try:
        challenge = await _open_challenge(
            session, kit=kit, challenge_id=challenge_id, purpose="enable_email"
        )
    except InvalidChallenge as exc:
        raise ChallengeExpired() from exc
    if challenge.user_id != user_id:
        raise ChallengeExpired()
    if not kit.codes.matches(code.strip(), challenge.code_hash):
        raise _wrong(kit, challenge, WrongConfirmationCode)
    challenge.used_at = utcnow()
    user = await get_me(session, user_id=user_id)
    if user.mfa_method is not None:
        raise MfaAlreadyEnabled()
    user.mfa_method = MfaMethod.EMAIL.value
    return await _new_recovery_codes(session, kit=kit, user=user)


async def begin_totp(session: AsyncSession, *, kit: AuthKit, user_id: uuid.UUID) -> tuple[str, str]:
    """A new TOTP secret, pending until confirmed with a code: (secret, otpauth URI)."""
    user = await get_me(session, user_id=user_id)
    if user.mfa_method is not None:
        raise MfaAlreadyEnabled()
    secret = pyotp.random_base32()
    user.totp_pending_secret = kit.box.seal(secret)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name="lms_live")
    return secret, uri


def _check_totp(kit: AuthKit, user: User, code: str, *, sealed: str | None = None) -> bool:
    """A current TOTP code, each time step usable once (no replay)."""
    secret = sealed or user.totp_secret
    if not secret or not code.isdigit() or len(code) != 6:
        return False
    totp = pyotp.TOTP(kit.box.open(secret))
    now = utcnow()
    step = totp.timecode(now)
    for offset in (0, -1, 1):
        if secrets.compare_digest(totp.generate_otp(step + offset), code):
            if user.totp_last_step is not None and step + offset <= user.totp_last_step:
                return False
            user.totp_last_step = step + offset
            return True
    return False


async def confirm_totp(
    session: AsyncSession, *, kit: AuthKit, user_id: uuid.UUID, code: str
) -> list[str]:
    """Switch TOTP on with a code from the app; returns fresh recovery codes."""
    user = await get_me(session, user_id=user_id)
    if user.mfa_method is not None:
        raise MfaAlreadyEnabled()
    if user.totp_pending_secret is None:
        raise MfaNotPending()
    if not _check_totp(kit, user, code.strip(), sealed=user.totp_pending_secret):
        raise WrongConfirmationCode()
    user.totp_secret, user.totp_pending_secret = user.totp_pending_secret, None
    user.mfa_method = MfaMethod.TOTP.value
    return await _new_recovery_codes(session, kit=kit, user=user)


async def disable_mfa(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    """Switch MFA off (the caller checked the password); recovery codes are deleted."""
    user = await get_me(session, user_id=user_id)
    user.mfa_method = None
    user.totp_secret = user.totp_pending_secret = None
    user.totp_last_step = None
    for code in await session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        await session.delete(code)
    return user


async def regenerate_recovery_codes(
    session: AsyncSession, *, kit: AuthKit, user_id: uuid.UUID
) -> list[str]:
    """Replace the recovery codes (the caller checked the password; MFA must be on)."""
    user = await get_me(session, user_id=user_id)
    if user.mfa_method is None:
        raise MfaNotPending("Turn two-step verification on first.")
    return await _new_recovery_codes(session, kit=kit, user=user)


def _recovery_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(5)).decode().lower()
    return f"{raw[:4]}-{raw[4:]}"


async def _new_recovery_codes(session: AsyncSession, *, kit: AuthKit, user: User) -> list[str]:
    for old in await session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        await session.delete(old)
    now = utcnow()
    codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
    session.add_all(
        RecoveryCode(user_id=user.id, code_hash=kit.codes.digest(code), created_at=now)
        for code in codes
    )
    return codes


async def _use_recovery_code(session: AsyncSession, *, kit: AuthKit, user: User, code: str) -> bool:
    candidate = code.lower()
    if len(candidate) == 8:
        candidate = f"{candidate[:4]}-{candidate[4:]}"
    rows = await session.scalars(
        select(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        .with_for_update()
    )
    for row in rows:
        if kit.codes.matches(candidate, row.code_hash):
            row.used_at = utcnow()
            return True
    return False


async def me_with_codes_left(session: AsyncSession, *, user_id: uuid.UUID) -> tuple[User, int]:
    """The signed-in user and their unused recovery codes, in one query (GET /users/me)."""
    left = (
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == User.id, RecoveryCode.used_at.is_(None))
        .correlate(User)
        .scalar_subquery()
    )
    row = (await session.execute(select(User, left).where(User.id == user_id))).one_or_none()
    if row is None or not row[0].is_active:
        raise TokenRevoked()
    return row[0], int(row[1])


async def recovery_codes_left(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )
    return int(count or 0)


# --------------------------------------------------------------------------- administration


async def list_users(
    session: AsyncSession,
    *,
    search: str | None,
    role: str | None,
    active: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[User], int]:
    """A page of users (stable order: newest first, then id) and the total matching."""
    query = select(User)
    if search:
        pattern = like_contains(search.strip().lower())
        query = query.where(
            or_(
                func.lower(User.email).like(pattern, escape="\\"),
                func.lower(User.full_name).like(pattern, escape="\\"),
            )
        )
    if role:
        query = query.where(User.role == role)
    if active is not None:
        query = query.where(User.is_active.is_(active))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(User.created_at.desc(), User.id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def update_user(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    role: Role | None = None,
    active: bool | None = None,
) -> tuple[User, list[uuid.UUID]]:
    """Change a user's role or active flag. Deactivating, or a real role change, ends every
    session (no token keeps the old role). The last active admin can be neither demoted nor
    deactivated: the active admins' rows are locked while counting, so two admins demoting
    each other at once cannot both succeed."""
    admins: list[uuid.UUID] = []
    if role is not None or active is False:
        # Lock the active admins first, always in id order, then the target: two admins
        # demoting each other take the locks in the same order (no deadlock), and the count
        # below cannot change under us.
        admins = list(
            await session.scalars(
                select(User.id)
                .where(User.role == Role.ADMIN.value, User.is_active.is_(True))
                .order_by(User.id)
                .with_for_update()
            )
        )
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise UserNotFound()
    new_role = role.value if role is not None and role.value != user.role else None
    deactivate = active is False and user.is_active
    losing_admin = user.role == Role.ADMIN and user.is_active and (new_role or deactivate)
    if losing_admin and len(admins) <= 1:
        raise LastAdmin()
    ended: list[uuid.UUID] = []
    if new_role is not None:
        user.role = new_role
    if active is not None and active != user.is_active:
        user.is_active = active
    if deactivate:
        ended = await revoke_sessions(session, user_id=user.id, reason="deactivated")
    elif new_role is not None:
        ended = await revoke_sessions(session, user_id=user.id, reason="role_changed")
    return user, ended
