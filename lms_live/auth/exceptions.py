"""Failures of identity and access, one class per failure mode."""

from __future__ import annotations

import uuid

from lms_live.core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    KeepsChanges,
    NotFound,
    Unauthorized,
)


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "The email or password is incorrect."


class EmailNotVerified(Forbidden):
    code = "email_not_verified"
    message = "Verify your email address first; we can send the link again."


class InvalidLink(BadRequest):
    code = "invalid_token"
    message = "This link is invalid, already used or expired."


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    message = "The refresh token is invalid, expired or revoked; sign in again."


class RefreshTokenReused(KeepsChanges):
    """An already-rotated refresh token came back: the whole session is revoked (committed)."""

    status = 401
    code = "refresh_token_reused"
    message = "This refresh token was already used; the session has been ended. Sign in again."

    def __init__(self, *, session_id: uuid.UUID, user_id: uuid.UUID) -> None:
        super().__init__()
        self.session_id = session_id
        self.user_id = user_id


class InvalidChallenge(Unauthorized):
    code = "mfa_challenge_invalid"
    message = "This verification step is invalid, expired or used up; sign in again."


class WrongCode(KeepsChanges):
    """A wrong second-factor code: the attempt is counted (committed)."""

    status = 401
    code = "mfa_code_invalid"
    message = "The code is incorrect."


class WrongPassword(Forbidden):
    """403, not 401: the caller is signed in; a 401 would tell clients to sign in again."""

    code = "wrong_password"
    message = "The current password is incorrect."


class WrongConfirmationCode(KeepsChanges):
    """A wrong code while switching MFA on (signed in: 403, not 401); the attempt counts."""

    status = 403
    code = "mfa_code_invalid"
    message = "The code is incorrect."


class ChallengeExpired(Forbidden):
    code = "mfa_challenge_invalid"
    message = "This verification step is invalid, expired or used up; start again."


class MfaNotPending(Conflict):
    code = "mfa_not_pending"
    message = "Start setting up this method first."


class MfaAlreadyEnabled(Conflict):
    code = "mfa_already_enabled"
    message = "Two-step verification is already on; turn it off first to change the method."


class UserNotFound(NotFound):
    code = "user_not_found"
    message = "No such user."


class SessionNotFound(NotFound):
    code = "session_not_found"
    message = "No such session."


class LastAdmin(Conflict):
    code = "last_admin"
    message = "This would leave the platform without an active administrator."
