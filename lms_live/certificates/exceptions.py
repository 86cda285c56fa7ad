"""Failures of certificates, one class per failure mode."""

from __future__ import annotations

from lms_live.core.errors import Conflict, NotFound


class CertificateNotFound(NotFound):
    """Unknown number, not yet issued, or not the caller's to see (never says which)."""

    code = "certificate_not_found"
    message = "No certificate has this number."


class CertificateAlreadyRevoked(Conflict):
    code = "certificate_already_revoked"
    message = "This certificate is already revoked."


class NumbersExhausted(RuntimeError):
    """Every drawn certificate number was taken (practically impossible; the task retries)."""
