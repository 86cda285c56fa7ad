"""HTTP endpoints of certificates: public verification, PDF download, the learner's list, and
admin revocation and reissue.

A certificate is visible only once its PDF is stored. Whoever may not download a certificate
gets the same 404 as for an unknown number, so numbers cannot be probed through it.
"""

from __future__ import annotations

from aiohttp import web

from lms_live import keys
from lms_live.certificates import service
from lms_live.certificates.models import Certificate, CertificateStatus
from lms_live.certificates.schemas import (
    AdminCertificateOut,
    CertificateOut,
    CertificatePath,
    CertificatesPage,
    CertificatesQuery,
    ReissueOut,
    RevokedCertificateOut,
    RevokeIn,
    ValidCertificateOut,
    VerificationOut,
)
from lms_live.certificates.tasks import REISSUE
from lms_live.core.db import utcnow
from lms_live.core.http import RouteTable, require_principal
from lms_live.core.uow import unit_of_work

routes = RouteTable()
TAGS = ["certificates"]
ADMIN = ["admin"]


def certificate_out(certificate: Certificate, public_url: str) -> CertificateOut:
    """The learner's view of an issued certificate."""
    return CertificateOut(**_fields(certificate, public_url))


def _fields(certificate: Certificate, public_url: str) -> dict[str, object]:
    assert certificate.issued_at is not None
    assert certificate.sha256 is not None
    assert certificate.size_bytes is not None
    return {
        "number": certificate.number,
        "status": certificate.status,
        "course_id": certificate.course_id,
        "course_title": certificate.course_title,
        "learner_name": certificate.learner_name,
        "instructor_name": certificate.instructor_name,
        "completed_at": certificate.completed_at,
        "issued_at": certificate.issued_at,
        "reissued_at": certificate.reissued_at,
        "revoked_at": certificate.revoked_at,
        "sha256": certificate.sha256,
        "size_bytes": certificate.size_bytes,
        "download_url": service.download_url(public_url, certificate.number),
        "verify_url": service.verify_url(public_url, certificate.number),
    }


def _admin_out(certificate: Certificate, public_url: str) -> AdminCertificateOut:
    return AdminCertificateOut(
        **_fields(certificate, public_url),
        id=certificate.id,
        user_id=certificate.user_id,
        enrollment_id=certificate.enrollment_id,
        revoked_reason=certificate.revoked_reason,
    )


def verification(certificate: Certificate) -> VerificationOut:
    """The public answer about a certificate: valid or revoked, never why."""
    if certificate.status == CertificateStatus.REVOKED:
        assert certificate.revoked_at is not None
        return VerificationOut(
            RevokedCertificateOut(
                number=certificate.number,
                learner_name=certificate.learner_name,
                course_title=certificate.course_title,
                completed_at=certificate.completed_at,
                revoked_at=certificate.revoked_at,
            )
        )
    return VerificationOut(
        ValidCertificateOut(
            number=certificate.number,
            learner_name=certificate.learner_name,
            course_title=certificate.course_title,
            completed_at=certificate.completed_at,
        )
    )


@routes.get(
    "/api/v1/certificates/{number}/verify",
    summary="Check a certificate",
    tags=TAGS,
    path_model=CertificatePath,
    response=VerificationOut,
)
async def verify_certificate(request: web.Request, path: CertificatePath) -> VerificationOut:
    """Public: whether the number belongs to a valid or revoked certificate, with the learner,
    course and completion date printed on it."""
    async with request.app[keys.DATABASE].reads() as session:
        certificate = await service.get_issued(session, number=path.number)
    return verification(certificate)


@routes.get(
    "/api/v1/certificates/{number}/pdf",
    summary="Download a certificate",
    tags=TAGS,
    path_model=CertificatePath,
    media_type="application/pdf",
    roles=[],
)
async def download_certificate(request: web.Request, path: CertificatePath) -> web.Response:
    """The PDF, for its learner, the course's instructors and admins (404 for anyone else)."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        certificate = await service.get_for_download(
            session, principal=principal, number=path.number
        )
    assert certificate.storage_key is not None
    data = await request.app[keys.STORAGE].get(certificate.storage_key)
    return web.Response(
        body=data,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="certificate-{certificate.number}.pdf"',
            "Cache-Control": "private, no-store",
        },
    )


@routes.get(
    "/api/v1/users/me/certificates",
    summary="My certificates",
    tags=TAGS,
    query=CertificatesQuery,
    response=CertificatesPage,
    roles=[],
)
async def my_certificates(request: web.Request, query: CertificatesQuery) -> CertificatesPage:
    """The caller's issued certificates (revoked ones included, with their status)."""
    principal = require_principal(request)
    public_url = request.app[keys.SETTINGS].public_url
    async with request.app[keys.DATABASE].reads() as session:
        rows, total = await service.list_for_user(
            session, user_id=principal.user_id, limit=query.limit, offset=query.offset
        )
    return CertificatesPage(
        items=[certificate_out(c, public_url) for c in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )


@routes.post(
    "/api/v1/admin/certificates/{number}/revoke",
    summary="Revoke a certificate",
    tags=TAGS,
    path_model=CertificatePath,
    body=RevokeIn,
    response=AdminCertificateOut,
    roles=ADMIN,
    errors=[409],
)
async def revoke_certificate(
    request: web.Request, path: CertificatePath, body: RevokeIn
) -> AdminCertificateOut:
    """The public check answers "revoked" from now on (without the reason)."""
    async with unit_of_work(request.app) as work:
        certificate = await service.revoke(work.session, number=path.number, reason=body.reason)
    return _admin_out(certificate, request.app[keys.SETTINGS].public_url)


@routes.post(
    "/api/v1/admin/certificates/{number}/reissue",
    summary="Render a certificate again",
    tags=TAGS,
    path_model=CertificatePath,
    response=ReissueOut,
    status=202,
    roles=ADMIN,
)
async def reissue_certificate(request: web.Request, path: CertificatePath) -> ReissueOut:
    """Queues a new PDF under the same number, with the learner's, course's and instructor's
    current names (new SHA-256, `reissued_at` set). The status is kept: a revoked certificate
    stays revoked (and its learner is not notified)."""
    async with unit_of_work(request.app) as work:
        certificate = await service.get_issued(work.session, number=path.number)
        work.enqueue(REISSUE, number=certificate.number, requested_at=utcnow().isoformat())
    kept = "revoked" if certificate.status == CertificateStatus.REVOKED else "issued"
    return ReissueOut(
        number=certificate.number,
        status=CertificateStatus(certificate.status),
        message=f"A new PDF is being rendered under the same number; the status stays {kept}.",
    )
