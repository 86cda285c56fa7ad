"""Requests and responses of the identity and access endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, RootModel, StrictBool

from lms_live.auth.models import Role

# A password being set: the policy's length (the common-password check is done by the service).
NewPassword = Annotated[str, Field(min_length=8, max_length=128)]
# A password being checked: any length up to a bound, so nothing about the policy leaks.
Password = Annotated[str, Field(min_length=1, max_length=1024)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class RegisterIn(_In):
    email: EmailStr
    full_name: str = Field(min_length=1, max_length=200)
    password: NewPassword


class AcceptedOut(BaseModel):
    message: str


class LinkTokenIn(_In):
    token: str = Field(min_length=10, max_length=200)


class EmailIn(_In):
    email: EmailStr


class LoginIn(_In):
    email: EmailStr
    password: Password


class TokenPairOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type)
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds the refresh token is valid.")
    session_id: uuid.UUID


class ChallengeOut(BaseModel):
    mfa_required: Literal[True] = True
    challenge_id: uuid.UUID
    method: Literal["email", "totp"]
    expires_in: int = Field(description="Seconds left to send the code.")


class LoginOut(RootModel[TokenPairOut | ChallengeOut]):
    """Tokens, or a second-factor challenge when two-step verification is on."""


class MfaCodeIn(_In):
    challenge_id: uuid.UUID
    code: str = Field(
        min_length=1, max_length=20, description="Emailed or TOTP code, or a recovery code."
    )


class RefreshIn(_In):
    refresh_token: str = Field(min_length=1, max_length=200)


class OAuthTokenForm(_In):
    """RFC 6749 password and refresh_token grants (form-encoded)."""

    grant_type: Literal["password", "refresh_token"]
    username: str | None = Field(None, max_length=320)
    password: str | None = Field(None, max_length=1024)
    refresh_token: str | None = Field(None, max_length=200)
    scope: str | None = Field(None, max_length=200)


class OAuthTokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type)
    expires_in: int
    refresh_token: str


class ResetPasswordIn(_In):
    token: str = Field(min_length=10, max_length=200)
    password: NewPassword


class ChangePasswordIn(_In):
    current_password: Password
    new_password: NewPassword


class PasswordIn(_In):
    password: Password


class MeOut(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    email_verified: bool
    mfa_method: Literal["email", "totp"] | None
    recovery_codes_left: int
    created_at: datetime
    last_login_at: datetime | None


class MePatchIn(_In):
    full_name: str = Field(min_length=1, max_length=200)


class SessionOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    via: str
    user_agent: str | None
    ip: str | None
    current: bool


class SessionsOut(BaseModel):
    items: list[SessionOut]


class SessionPath(BaseModel):
    session_id: uuid.UUID


class RevokedOut(BaseModel):
    revoked: int


class EmailMfaOut(BaseModel):
    challenge_id: uuid.UUID
    expires_in: int


class EmailMfaConfirmIn(_In):
    challenge_id: uuid.UUID
    code: str = Field(min_length=1, max_length=20)


class TotpSetupOut(BaseModel):
    secret: str = Field(description="Base32 secret for the authenticator app.")
    otpauth_uri: str


class TotpConfirmIn(_In):
    code: str = Field(min_length=6, max_length=6, pattern=r"^\d{6}$")


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Shown once; each works one time.")


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    email_verified: bool
    mfa_enabled: bool
    created_at: datetime
    last_login_at: datetime | None


class UsersQuery(BaseModel):
    q: str | None = Field(None, max_length=200, description="Matches email or name.")
    role: Role | None = None
    active: bool | None = None
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1_000_000)


class UsersPage(BaseModel):
    items: list[UserOut]
    total: int
    limit: int
    offset: int


class UserPath(BaseModel):
    user_id: uuid.UUID


class UserPatchIn(_In):
    role: Role | None = None
    is_active: StrictBool | None = None  # JSON true/false only, not 0/1 or "yes"
