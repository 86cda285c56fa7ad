"""Certificate tasks: issue one for a completed enrollment, or render an issued one again.

Each run: a short transaction to prepare (service), the PDF rendered and uploaded outside any
transaction, a short transaction to record it, then the effects: the learner's sockets get
`certificate_ready {number, course_id, course_title, download_url}` on `/notifications`
(room `user:<id>`) and an email with the PDF attached (its own task, retried on its own).
Both tasks are idempotent: a run after the PDF is stored (or after the requested reissue
happened) renders nothing; it only tells the learner when an earlier run stored the PDF but
failed before telling them (`certificate.notified_at` is set last: at least once). A failed
render, upload or email send raises, so the broker retries with backoff and counts the
failure (`lms_tasks_total{outcome="error"}`).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime

from taskiq import AsyncBroker, Context, TaskiqDepends

from lms_live.certificates import service
from lms_live.certificates.models import CertificateStatus
from lms_live.core.db import utcnow
from lms_live.core.realtime import user_room
from lms_live.emails.tasks import SEND_EMAIL
from lms_live.notifications.namespace import NAMESPACE as NOTIFICATIONS
from lms_live.worker.broker import TaskResources, enqueue, resources, task

log = logging.getLogger("lms_live.certificates")

ISSUE = "lms.certificates.issue"
REISSUE = "lms.certificates.reissue"
READY_EVENT = "certificate_ready"


@task(ISSUE, retries=5)
async def issue_certificate(enrollment_id: str, ctx: Context = TaskiqDepends()) -> None:
    """Issue the certificate of a completed enrollment (nothing if it already exists)."""
    try:
        enrollment = uuid.UUID(enrollment_id)
    except ValueError:
        log.error("certificate task got an invalid enrollment id %.60r", enrollment_id)
        return
    res = resources(ctx)
    async with res.database.transaction() as session:
        job = await service.prepare_issue(session, enrollment_id=enrollment)
        owed = (
            None
            if job is not None
            else await service.owed_notification(session, enrollment_id=enrollment)
        )
    if job is not None:
        await _render_and_record(res, ctx.broker, job)
    elif owed is not None:  # stored by an earlier run that failed to tell the learner
        await _notify(res, ctx.broker, owed, reissued=False)


@task(REISSUE, retries=5)
async def reissue_certificate(
    number: str, requested_at: str, ctx: Context = TaskiqDepends()
) -> None:
    """Render an issued certificate again under the same number, with today's names."""
    res = resources(ctx)
    async with res.database.transaction() as session:
        job = await service.prepare_reissue(
            session, number=number, requested_at=datetime.fromisoformat(requested_at)
        )
    if job is not None:
        await _render_and_record(res, ctx.broker, job)


async def _render_and_record(
    res: TaskResources, broker: AsyncBroker, job: service.RenderJob
) -> None:
    # WeasyPrint takes most of a second to import: only processes that render pay for it.
    from lms_live.certificates import render

    content = render.CertificateContent(
        number=job.number,
        learner_name=job.learner_name,
        course_title=job.course_title,
        instructor_name=job.instructor_name,
        completed_at=job.completed_at,
        verify_url=service.verify_url(res.settings.public_url, job.number),
        issued_at=utcnow(),
    )
    try:
        pdf = await render.render_certificate(content)
    except Exception:
        log.exception("certificate %s failed to render", job.number)
        raise
    sha256 = hashlib.sha256(pdf).hexdigest()
    key = service.storage_key(job.number, sha256)
    await res.storage.put(key, pdf, content_type="application/pdf")
    async with res.database.transaction() as session:
        recorded = await service.record_pdf(
            session, job=job, key=key, sha256=sha256, size_bytes=len(pdf)
        )
    if recorded is None:  # another run stored this certificate first
        await res.storage.delete(key)
        return
    if recorded.previous_key is not None and recorded.previous_key != key:
        try:
            await res.storage.delete(recorded.previous_key)
        except Exception:
            log.warning("could not delete replaced certificate file %s", recorded.previous_key)
    log.info(
        "certificate %s %s (%d bytes, sha256 %s)",
        job.number,
        "reissued" if job.reissue else "issued",
        len(pdf),
        sha256,
    )
    if recorded.certificate.status == CertificateStatus.ISSUED:
        await _notify(res, broker, recorded, reissued=job.reissue)


async def _notify(
    res: TaskResources, broker: AsyncBroker, recorded: service.Recorded, *, reissued: bool
) -> None:
    certificate = recorded.certificate
    public_url = res.settings.public_url
    try:
        await res.emitter.emit(
            READY_EVENT,
            {
                "number": certificate.number,
                "course_id": str(certificate.course_id),
                "course_title": certificate.course_title,
                "download_url": service.download_url(public_url, certificate.number),
            },
            room=user_room(str(certificate.user_id)),
            namespace=NOTIFICATIONS,
        )
    except Exception:  # the certificate is stored; the list endpoint still shows it
        log.exception("could not push %s for certificate %s", READY_EVENT, certificate.number)
    if recorded.learner_active and recorded.learner_email:
        await _email(res, broker, recorded, reissued=reissued)
    # Only now: a failure above raises, the task is retried, and the learner is told then.
    async with res.database.transaction() as session:
        await service.mark_notified(session, certificate_id=certificate.id)


async def _email(
    res: TaskResources, broker: AsyncBroker, recorded: service.Recorded, *, reissued: bool
) -> None:
    certificate = recorded.certificate
    public_url = res.settings.public_url
    assert certificate.storage_key is not None
    await enqueue(
        broker,
        SEND_EMAIL,
        template="certificate_ready",
        to=recorded.learner_email,
        context={
            "full_name": certificate.learner_name,
            "course_title": certificate.course_title,
            "number": certificate.number,
            "verify_url": service.verify_url(public_url, certificate.number),
            "public_url": public_url,
            "reissued": reissued,
        },
        attachments=[
            {
                "key": certificate.storage_key,
                "filename": f"certificate-{certificate.number}.pdf",
                "content_type": "application/pdf",
            }
        ],
    )
