"""Accounts, sign-in sessions and their tokens, one-time codes.

Invariants:
- emails are stored normalised (trimmed, lower-case) and unique;
- every secret is stored hashed: refresh tokens and email links with SHA-256 (they are long
  random values), short codes (6-digit, recovery) with HMAC-SHA256 under a server key (so a
  database leak does not let anyone brute-force them offline); TOTP seeds are encrypted;
- a sign-in session (`auth_session`) is one refresh-token family: every refresh rotates the
  token, and presenting a rotated one (outside the grace for the previous token) revokes the
  session. Revoking a session also refuses its outstanding access tokens (they carry `sid`).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from lms_live.core.db import Base, IdMixin, TimestampMixin


class Role(enum.StrEnum):
    ADMIN = "admin"
    INSTRUCTOR = "instructor"
    STUDENT = "student"


class MfaMethod(enum.StrEnum):
    EMAIL = "email"
    TOTP = "totp"


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "user"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'instructor', 'student')", name="role"),
        CheckConstraint("mfa_method IN ('email', 'totp')", name="mfa_method"),
    )

    email: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20), default=Role.STUDENT.value)
    is_active: Mapped[bool] = mapped_column(default=True)
    email_verified_at: Mapped[datetime | None]
    mfa_method: Mapped[str | None] = mapped_column(String(10))
    totp_secret: Mapped[str | None] = mapped_column(String(300))
    totp_pending_secret: Mapped[str | None] = mapped_column(String(300))
    totp_last_step: Mapped[int | None]
    password_changed_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]

    @property
    def mfa_enabled(self) -> bool:
        return self.mfa_method is not None


class AuthSession(IdMixin, TimestampMixin, Base):
    """One sign-in (a device or tool); its refresh tokens form one family."""

    __tablename__ = "auth_session"
    __table_args__ = (Index("ix_auth_session_user_id_revoked_at", "user_id", "revoked_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(index=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(40))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    ip: Mapped[str | None] = mapped_column(String(64))
    via: Mapped[str] = mapped_column(String(20))  # api, page, token (OAuth2 form)


class RefreshToken(IdMixin, Base):
    """A refresh token, stored as the SHA-256 of its value."""

    __tablename__ = "refresh_token"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_session.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]


class EmailTokenPurpose(enum.StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 (a purpose name, not a secret)


class EmailToken(IdMixin, Base):
    """A single-use link sent by email (verification, password reset)."""

    __tablename__ = "email_token"
    __table_args__ = (Index("ix_email_token_user_id_purpose", "user_id", "purpose"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class MfaChallenge(IdMixin, Base):
    """A pending second factor: a sign-in waiting for its code, or MFA being switched on."""

    __tablename__ = "mfa_challenge"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(20))  # login, enable_email
    method: Mapped[str] = mapped_column(String(10))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    via: Mapped[str] = mapped_column(String(20), default="api")
    user_agent: Mapped[str | None] = mapped_column(String(300))
    ip: Mapped[str | None] = mapped_column(String(64))


class RecoveryCode(IdMixin, Base):
    """A one-time MFA recovery code, stored as an HMAC."""

    __tablename__ = "recovery_code"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
