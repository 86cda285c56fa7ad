"""Domain errors: one root `LmsError` carrying its HTTP status and a stable error code.

Services raise these; the error middleware (HTTP) and the Socket.IO ack helper render them as
`{"error": code, "message": ..., "details": [...]}`. Subclass per failure mode.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LmsError(Exception):
    """Root of every expected failure; `status` and `code` are part of the public API."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    message: ClassVar[str] = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.text = message or self.message
        self.details = details or []
        self.headers = headers or {}
        super().__init__(self.text)

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error": self.code, "message": self.text, "details": self.details}


class BadRequest(LmsError):
    status = 400
    code = "bad_request"


class MalformedJson(BadRequest):
    code = "malformed_json"
    message = "The request body is not valid JSON."


class BadHost(BadRequest):
    code = "bad_host"
    message = "The Host header names a host this server does not serve."


class Unauthorized(LmsError):
    status = 401
    code = "unauthorized"
    message = "Authentication is required."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class InvalidToken(Unauthorized):
    code = "invalid_token"
    message = "The access token is invalid or expired."


class TokenRevoked(Unauthorized):
    code = "token_revoked"
    message = "This sign-in has ended (signed out, password changed or account disabled)."


class PaymentRequired(LmsError):
    status = 402
    code = "payment_required"
    message = "Payment is required."


class Forbidden(LmsError):
    status = 403
    code = "forbidden"
    message = "You are not allowed to do this."


class EnrollmentRequired(Forbidden):
    code = "enrollment_required"
    message = "Enroll in this course first."


class NotFound(LmsError):
    status = 404
    code = "not_found"
    message = "Not found."


class MethodNotAllowed(LmsError):
    status = 405
    code = "method_not_allowed"
    message = "This method is not allowed here."


class Conflict(LmsError):
    status = 409
    code = "conflict"
    message = "The request conflicts with the current state."


class ConcurrentUpdate(Conflict):
    code = "concurrent_update"
    message = "Someone changed this at the same moment; nothing was saved. Try again."


class PayloadTooLarge(LmsError):
    status = 413
    code = "payload_too_large"
    message = "The request body is too large."


class UnsupportedMediaType(LmsError):
    status = 415
    code = "unsupported_media_type"
    message = "The request body must be application/json."


class ValidationFailed(LmsError):
    status = 422
    code = "validation_failed"
    message = "The request is not valid."


class RateLimited(LmsError):
    status = 429
    code = "rate_limited"
    message = "Too many requests; slow down."

    def __init__(self, retry_after: float, message: str | None = None, **kwargs: Any) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        headers = kwargs.pop("headers", {}) | {"Retry-After": str(self.retry_after)}
        super().__init__(message, headers=headers, **kwargs)


class ServiceUnavailable(LmsError):
    status = 503
    code = "service_unavailable"
    message = "A service this request needs is unavailable; try again shortly."


class KeepsChanges(LmsError):
    """Base of errors whose transaction must still commit (a counted failed attempt, a
    refresh-token family revoked on reuse): the unit of work commits, runs the effects, and
    then raises the error."""
