"""Certificate rules: numbering, the printed snapshot, issuing in two steps, access, revocation.

Issuing (and reissuing) is split around the slow part so no transaction stays open while a
PDF renders: `prepare_issue` / `prepare_reissue` (a short transaction: reserve the number,
take the snapshot) -> render and upload outside any transaction -> `record_pdf` (a short
transaction, certificate row locked: store key, SHA-256, size, time). Every upload has its own
key (the PDF's hash is in it), so the row always names a complete file, whichever run wins.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.auth.models import User
from lms_live.certificates.exceptions import (
    CertificateAlreadyRevoked,
    CertificateNotFound,
    NumbersExhausted,
)
from lms_live.certificates.models import Certificate, CertificateStatus
from lms_live.core.authz import ADMIN
from lms_live.core.db import utcnow
from lms_live.core.security import Principal
from lms_live.courses.access import teaches
from lms_live.courses.models import Course
from lms_live.enrollments.models import Enrollment

log = logging.getLogger("lms_live.certificates")

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
NUMBER_ATTEMPTS = 8


def new_number(year: int) -> str:
    """A fresh random number, `LMS-<year>-XXXX-XXXX` (40 random bits, Crockford base32)."""
    groups = ("".join(secrets.choice(CROCKFORD) for _ in range(4)) for _ in range(2))
    return f"LMS-{year:04d}-" + "-".join(groups)


def storage_key(number: str, sha256: str) -> str:
    """Where one rendering of a certificate is stored: `certificates/<year>/<number>-<hash>.pdf`."""
    year = number.split("-")[1]
    return f"certificates/{year}/{number}-{sha256[:16]}.pdf"


def verify_url(public_url: str, number: str) -> str:
    """The public verification page of a certificate (printed and in the QR code)."""
    return f"{public_url.rstrip('/')}/certificates/{number}"


def completed_on(moment: datetime) -> str:
    """A date as certificates print it: "26 November 2026" (UTC)."""
    return f"{moment.day} {moment:%B %Y}"


def download_url(public_url: str, number: str) -> str:
    """The API address of a certificate's PDF (signed in)."""
    return f"{public_url.rstrip('/')}/api/v1/certificates/{number}/pdf"


@dataclass(frozen=True, slots=True)
class RenderJob:
    """One certificate to render: its number and the values to print."""

    certificate_id: uuid.UUID
    number: str
    learner_name: str
    course_title: str
    instructor_name: str
    completed_at: datetime
    reissue: bool


@dataclass(frozen=True, slots=True)
class Recorded:
    """A stored rendering: the certificate, the key it replaced and whom to tell."""

    certificate: Certificate
    previous_key: str | None
    learner_email: str
    learner_active: bool


@dataclass(frozen=True, slots=True)
class _Snapshot:
    learner_name: str
    course_title: str
    instructor_name: str


async def _snapshot(
    session: AsyncSession, *, user_id: uuid.UUID, course_id: uuid.UUID
) -> _Snapshot | None:
    learner = await session.get(User, user_id)
    course = await session.get(Course, course_id)
    if learner is None or course is None:
        return None
    owner = await session.get(User, course.owner_id)
    return _Snapshot(
        learner_name=learner.full_name,
        course_title=course.title,
        instructor_name=owner.full_name if owner is not None else "",
    )


def _job(certificate: Certificate, *, reissue: bool) -> RenderJob:
    return RenderJob(
        certificate_id=certificate.id,
        number=certificate.number,
        learner_name=certificate.learner_name,
        course_title=certificate.course_title,
        instructor_name=certificate.instructor_name,
        completed_at=certificate.completed_at,
        reissue=reissue,
    )


async def _by_enrollment(session: AsyncSession, enrollment_id: uuid.UUID) -> Certificate | None:
    found: Certificate | None = await session.scalar(
        select(Certificate).where(Certificate.enrollment_id == enrollment_id)
    )
    return found


async def prepare_issue(session: AsyncSession, *, enrollment_id: uuid.UUID) -> RenderJob | None:
    """The certificate to render for a completed enrollment, its number reserved; None when
    there is nothing to do (unknown or unfinished enrollment, or the PDF is already stored)."""
    enrollment = await session.get(Enrollment, enrollment_id, with_for_update=True)
    if enrollment is None or enrollment.completed_at is None:
        log.info("no certificate for enrollment %s: not found or not completed", enrollment_id)
        return None
    existing = await _by_enrollment(session, enrollment_id)
    if existing is not None:
        return None if existing.storage_key is not None else _job(existing, reissue=False)
    snapshot = await _snapshot(session, user_id=enrollment.user_id, course_id=enrollment.course_id)
    if snapshot is None:
        return None
    for _ in range(NUMBER_ATTEMPTS):
        certificate = Certificate(
            number=new_number(enrollment.completed_at.year),
            enrollment_id=enrollment.id,
            user_id=enrollment.user_id,
            course_id=enrollment.course_id,
            learner_name=snapshot.learner_name,
            course_title=snapshot.course_title,
            instructor_name=snapshot.instructor_name,
            completed_at=enrollment.completed_at,
            status=CertificateStatus.ISSUED.value,
        )
        try:
            async with session.begin_nested():
                session.add(certificate)
        except IntegrityError:
            # Either another run reserved this enrollment's certificate, or the number is taken.
            existing = await _by_enrollment(session, enrollment_id)
            if existing is not None:
                return None if existing.storage_key is not None else _job(existing, reissue=False)
            log.info("certificate number collision; drawing another")
            continue
        return _job(certificate, reissue=False)
    raise NumbersExhausted(f"no free certificate number after {NUMBER_ATTEMPTS} draws")


async def prepare_reissue(
    session: AsyncSession, *, number: str, requested_at: datetime
) -> RenderJob | None:
    """The issued certificate to render again with today's names; None when unknown, not
    issued yet, or already reissued since `requested_at` (a retried task does nothing)."""
    certificate = await session.scalar(select(Certificate).where(Certificate.number == number))
    if certificate is None or certificate.storage_key is None:
        return None
    if certificate.reissued_at is not None and certificate.reissued_at >= requested_at:
        return None
    snapshot = await _snapshot(
        session, user_id=certificate.user_id, course_id=certificate.course_id
    )
    if snapshot is None:
        return None
    return RenderJob(
        certificate_id=certificate.id,
        number=certificate.number,
        learner_name=snapshot.learner_name,
        course_title=snapshot.course_title,
        instructor_name=snapshot.instructor_name,
        completed_at=certificate.completed_at,
        reissue=True,
    )


async def record_pdf(
    session: AsyncSession, *, job: RenderJob, key: str, sha256: str, size_bytes: int
) -> Recorded | None:
    """Point the certificate at its stored PDF; None when this rendering lost (another run
    already issued it, or the row is gone): the caller then deletes its upload."""
    certificate = await session.get(Certificate, job.certificate_id, with_for_update=True)
    if certificate is None or (not job.reissue and certificate.storage_key is not None):
        return None
    previous = certificate.storage_key
    now = utcnow()
    certificate.learner_name = job.learner_name
    certificate.course_title = job.course_title
    certificate.instructor_name = job.instructor_name
    certificate.storage_key = key
    certificate.sha256 = sha256
    certificate.size_bytes = size_bytes
    if job.reissue:
        certificate.reissued_at = now
    else:
        certificate.issued_at = now
    certificate.notified_at = None
    return await _recorded(session, certificate, previous)


async def _recorded(
    session: AsyncSession, certificate: Certificate, previous: str | None
) -> Recorded:
    learner = await session.get(User, certificate.user_id)
    return Recorded(
        certificate=certificate,
        previous_key=previous,
        learner_email=learner.email if learner is not None else "",
        learner_active=learner is not None and learner.is_active,
    )


async def owed_notification(session: AsyncSession, *, enrollment_id: uuid.UUID) -> Recorded | None:
    """The enrollment's stored, issued certificate whose learner was not told yet (a run that
    stored it failed before telling), else None."""
    certificate = await _by_enrollment(session, enrollment_id)
    if (
        certificate is None
        or certificate.storage_key is None
        or certificate.notified_at is not None
        or certificate.status != CertificateStatus.ISSUED.value
    ):
        return None
    return await _recorded(session, certificate, certificate.storage_key)


async def mark_notified(session: AsyncSession, *, certificate_id: uuid.UUID) -> None:
    """The learner was told about this rendering."""
    certificate = await session.get(Certificate, certificate_id, with_for_update=True)
    if certificate is not None:
        certificate.notified_at = utcnow()


async def get_issued(session: AsyncSession, *, number: str) -> Certificate:
    """An issued (or revoked) certificate by number; CertificateNotFound before its PDF exists."""
    certificate = await session.scalar(select(Certificate).where(Certificate.number == number))
    if certificate is None or certificate.storage_key is None:
        raise CertificateNotFound()
    return certificate


async def get_for_download(
    session: AsyncSession, *, principal: Principal, number: str
) -> Certificate:
    """The certificate if the caller is its learner, teaches its course or is an admin; else
    CertificateNotFound (never saying whether the number exists)."""
    certificate = await get_issued(session, number=number)
    if principal.role == ADMIN or certificate.user_id == principal.user_id:
        return certificate
    course = await session.get(Course, certificate.course_id)
    if course is not None and await teaches(session, user_id=principal.user_id, course=course):
        return certificate
    raise CertificateNotFound()


async def list_for_user(
    session: AsyncSession, *, user_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[Certificate], int]:
    """A learner's issued certificates, latest completion first, and how many there are."""
    where = (Certificate.user_id == user_id, Certificate.storage_key.is_not(None))
    total = await session.scalar(select(func.count()).select_from(Certificate).where(*where))
    rows = await session.scalars(
        select(Certificate)
        .where(*where)
        .order_by(Certificate.completed_at.desc(), Certificate.number)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def revoke(session: AsyncSession, *, number: str, reason: str) -> Certificate:
    """Revoke an issued certificate (the reason is kept for admins, never shown publicly)."""
    certificate = await get_issued(session, number=number)
    await session.refresh(certificate, with_for_update=True)
    if certificate.status == CertificateStatus.REVOKED:
        raise CertificateAlreadyRevoked()
    certificate.status = CertificateStatus.REVOKED.value
    certificate.revoked_at = utcnow()
    certificate.revoked_reason = reason
    return certificate
