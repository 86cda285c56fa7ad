"""Requests and responses of the certificate endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints

from lms_live.certificates.models import CertificateStatus

# `LMS-<year>-XXXX-XXXX`, the groups in Crockford base32 (no I, L, O, U).
NUMBER_PATTERN = r"^LMS-[0-9]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$"
NUMBER_EXAMPLE = "LMS-2026-7K3Q-9XWM"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class CertificatePath(BaseModel):
    number: str = Field(
        pattern=NUMBER_PATTERN,
        max_length=18,
        description="The certificate number, as printed.",
        examples=[NUMBER_EXAMPLE],
    )


class ValidCertificateOut(BaseModel):
    status: Literal["valid"] = "valid"
    number: str
    learner_name: str
    course_title: str
    completed_at: datetime


class RevokedCertificateOut(BaseModel):
    status: Literal["revoked"] = "revoked"
    number: str
    learner_name: str
    course_title: str
    completed_at: datetime
    revoked_at: datetime


class VerificationOut(
    RootModel[Annotated[ValidCertificateOut | RevokedCertificateOut, Field(discriminator="status")]]
):
    """What anyone holding the number may learn: whether it is valid, whom and what it names."""


class CertificateOut(BaseModel):
    number: str
    status: CertificateStatus
    course_id: uuid.UUID
    course_title: str
    learner_name: str
    instructor_name: str
    completed_at: datetime
    issued_at: datetime
    reissued_at: datetime | None
    revoked_at: datetime | None
    sha256: str = Field(description="SHA-256 (hex) of the PDF.")
    size_bytes: int
    download_url: str
    verify_url: str


class CertificatesPage(BaseModel):
    items: list[CertificateOut]
    total: int
    limit: int
    offset: int


class CertificatesQuery(BaseModel):
    limit: int = Field(50, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1_000_000)


class AdminCertificateOut(CertificateOut):
    id: uuid.UUID
    user_id: uuid.UUID
    enrollment_id: uuid.UUID
    revoked_reason: str | None


class RevokeIn(_In):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ReissueOut(BaseModel):
    number: str
    status: CertificateStatus
    message: str
