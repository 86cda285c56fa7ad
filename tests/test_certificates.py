"""Certificates end to end: the issue task renders a real PDF (read back with pdftotext), stores
it, records its SHA-256, tells the learner (socket event, email with the PDF); the public check
and page, downloads, revocation and reissue as their callers see them."""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import socketio
from sqlalchemy import func, select

from lms_live import keys
from lms_live.auth.models import Role, User
from lms_live.certificates import service
from lms_live.certificates.models import Certificate
from lms_live.certificates.schemas import NUMBER_PATTERN
from lms_live.certificates.tasks import ISSUE, READY_EVENT
from lms_live.courses.models import Course, CourseInstructor
from lms_live.enrollments.models import Enrollment
from lms_live.worker.broker import enqueue
from tests.authkit import Api

COMPLETED_AT = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
NUMBER = re.compile(NUMBER_PATTERN)


@dataclass
class World:
    """A completed enrollment: its learner, the course and its owner, all signed in."""

    api: Api
    learner: User
    learner_headers: dict[str, str]
    owner: User
    owner_headers: dict[str, str]
    course: Course
    enrollment: Enrollment


async def rename(api: Api, user: User, full_name: str) -> None:
    async with api.app[keys.DATABASE].transaction() as session:
        row = await session.get(User, user.id)
        assert row is not None
        row.full_name = full_name
    user.full_name = full_name


async def completed_enrollment(
    api: Api,
    *,
    learner_name: str = "Ada Lovelace",
    course_title: str = "Analytical Engines",
    owner_name: str = "Charles Babbage",
    completed: bool = True,
) -> World:
    learner, learner_headers, _ = await api.signed_in(Role.STUDENT)
    owner, owner_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    await rename(api, learner, learner_name)
    await rename(api, owner, owner_name)
    async with api.app[keys.DATABASE].transaction() as session:
        course = Course(
            slug=f"course-{uuid.uuid4().hex[:12]}",
            title=course_title,
            owner_id=owner.id,
            status="published",
            published_at=COMPLETED_AT,
            enrollment_count=1,
        )
        session.add(course)
        await session.flush()
        enrollment = Enrollment(
            user_id=learner.id,
            course_id=course.id,
            status="completed" if completed else "active",
            completed_at=COMPLETED_AT if completed else None,
            progress_percent=100.0 if completed else 50.0,
        )
        session.add(enrollment)
    return World(api, learner, learner_headers, owner, owner_headers, course, enrollment)


async def run_issue(api: Api, enrollment_id: uuid.UUID | str) -> None:
    await enqueue(api.app[keys.BROKER], ISSUE, enrollment_id=str(enrollment_id))
    await api.app[keys.BROKER].wait_all()  # type: ignore[attr-defined]


async def certificates_of(api: Api, enrollment_id: uuid.UUID) -> list[Certificate]:
    async with api.app[keys.DATABASE].sessions() as session:
        rows = await session.scalars(
            select(Certificate).where(Certificate.enrollment_id == enrollment_id)
        )
        return list(rows)


async def issued(world: World) -> Certificate:
    await run_issue(world.api, world.enrollment.id)
    [certificate] = await certificates_of(world.api, world.enrollment.id)
    assert certificate.storage_key is not None
    return certificate


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def squeeze(text: str) -> str:
    """Text without whitespace (pdftotext breaks long lines where the PDF wraps them)."""
    return "".join(text.split())


# --------------------------------------------------------------------------- issuing


async def test_issue_renders_stores_and_records_the_pdf(api: Api, tmp_path: Path) -> None:
    world = await completed_enrollment(api)
    certificate = await issued(world)

    assert NUMBER.fullmatch(certificate.number)
    assert certificate.number.startswith("LMS-2026-")
    assert certificate.status == "issued"
    assert certificate.user_id == world.learner.id
    assert certificate.course_id == world.course.id
    assert (certificate.learner_name, certificate.course_title, certificate.instructor_name) == (
        "Ada Lovelace",
        "Analytical Engines",
        "Charles Babbage",
    )
    assert certificate.completed_at == COMPLETED_AT
    assert certificate.issued_at is not None
    assert certificate.reissued_at is None
    assert certificate.storage_key is not None
    assert certificate.storage_key.startswith(f"certificates/2026/{certificate.number}-")

    pdf = await api.app[keys.STORAGE].get(certificate.storage_key)
    assert pdf.startswith(b"%PDF-")
    assert hashlib.sha256(pdf).hexdigest() == certificate.sha256
    assert len(pdf) == certificate.size_bytes

    raw = pdf_text(pdf, tmp_path)
    assert f"Certificate {certificate.number}" in raw  # copied from the PDF in one piece
    text = squeeze(raw)
    for printed in (
        "Certificate of Completion",
        "Ada Lovelace",
        "Analytical Engines",
        "taught by Charles Babbage",
        "on 14 March 2026",
        f"Certificate {certificate.number}",
        f"http://127.0.0.1/certificates/{certificate.number}",
    ):
        assert squeeze(printed) in text, printed


async def test_running_the_task_again_issues_nothing_new(api: Api) -> None:
    world = await completed_enrollment(api)
    first = await issued(world)
    await api.mails(1)
    await run_issue(api, world.enrollment.id)
    await run_issue(api, world.enrollment.id)
    [again] = await certificates_of(api, world.enrollment.id)
    assert (again.id, again.number, again.sha256, again.storage_key, again.issued_at) == (
        first.id,
        first.number,
        first.sha256,
        first.storage_key,
        first.issued_at,
    )
    await asyncio.sleep(0.3)  # a second email would have arrived by now
    assert len(api.inbox.messages) == 1


async def test_a_reserved_number_without_pdf_is_rendered_on_the_next_run(api: Api) -> None:
    """A run that reserved the number but died before storing the PDF is finished by the
    retry, under the same number."""
    world = await completed_enrollment(api)
    async with api.app[keys.DATABASE].transaction() as session:
        job = await service.prepare_issue(session, enrollment_id=world.enrollment.id)
    assert job is not None
    [reserved] = await certificates_of(api, world.enrollment.id)
    assert reserved.storage_key is None
    # Not public yet.
    response = await api.client.get(f"/api/v1/certificates/{reserved.number}/verify")
    assert response.status == 404
    certificate = await issued(world)
    assert certificate.number == job.number == reserved.number


async def test_no_certificate_for_unfinished_or_unknown_enrollments(api: Api) -> None:
    world = await completed_enrollment(api, completed=False)
    await run_issue(api, world.enrollment.id)
    await run_issue(api, uuid.uuid4())
    await run_issue(api, "not-a-uuid")
    assert await certificates_of(api, world.enrollment.id) == []
    async with api.app[keys.DATABASE].sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Certificate)) == 0


async def test_a_taken_number_is_drawn_again(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = (await issued(await completed_enrollment(api))).number
    draws = iter([taken, taken, "LMS-2026-ABCD-EFGH"])
    monkeypatch.setattr(service, "new_number", lambda year: next(draws))
    world = await completed_enrollment(api)
    certificate = await issued(world)
    assert certificate.number == "LMS-2026-ABCD-EFGH"


def test_numbers_are_year_and_two_crockford_groups() -> None:
    numbers = {service.new_number(2026) for _ in range(2000)}
    assert len(numbers) == 2000
    for number in numbers:
        assert NUMBER.fullmatch(number), number
        assert not set(number[9:]) & set("ILOU")


async def test_the_learner_is_emailed_the_pdf(api: Api) -> None:
    world = await completed_enrollment(api)
    certificate = await issued(world)
    [mail] = await api.mails(1)
    assert mail["To"] == world.learner.email
    assert mail["Subject"] == "Your certificate for Analytical Engines"
    text = mail.get_body(preferencelist=("plain",))
    assert text is not None
    body = str(text.get_content())
    assert certificate.number in body
    assert f"http://127.0.0.1/certificates/{certificate.number}" in body
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"certificate-{certificate.number}.pdf"
    assert certificate.storage_key is not None
    stored = await api.app[keys.STORAGE].get(certificate.storage_key)
    assert attachment.get_content() == stored


async def test_a_failed_render_is_logged_counted_and_retried(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from lms_live.certificates import render

    real = render.render_certificate
    calls = 0

    async def flaky(content: render.CertificateContent) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the renderer fell over")
        return await real(content)

    monkeypatch.setattr(render, "render_certificate", flaky)
    world = await completed_enrollment(api)
    metrics = api.app[keys.METRICS]
    await run_issue(api, world.enrollment.id)
    assert metrics.tasks.labels(ISSUE, "error")._value.get() == 1
    assert "failed to render" in caplog.text
    async with asyncio.timeout(15):  # the retry comes after a backoff of 2-3 s
        while metrics.tasks.labels(ISSUE, "ok")._value.get() < 1:
            await asyncio.sleep(0.05)
    [certificate] = await certificates_of(api, world.enrollment.id)
    assert certificate.sha256 is not None
    assert calls == 2


async def test_a_learner_not_told_is_told_on_the_retry_without_a_new_render(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PDF was stored but queueing the email failed: the retry renders nothing and sends
    the one email (at least once, never lost)."""
    from lms_live.certificates import render, tasks

    renders = 0
    real_render, real_email = render.render_certificate, tasks._email

    async def counted(content: render.CertificateContent) -> bytes:
        nonlocal renders
        renders += 1
        return await real_render(content)

    failures = 1

    async def flaky_email(*args: Any, **kwargs: Any) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("the task queue is down")
        await real_email(*args, **kwargs)

    monkeypatch.setattr(render, "render_certificate", counted)
    monkeypatch.setattr(tasks, "_email", flaky_email)
    world = await completed_enrollment(api)
    metrics = api.app[keys.METRICS]
    await run_issue(api, world.enrollment.id)
    [stored] = await certificates_of(api, world.enrollment.id)
    assert stored.storage_key is not None
    assert stored.notified_at is None  # owed
    async with asyncio.timeout(15):  # the retry comes after a backoff of 2-3 s
        while metrics.tasks.labels(ISSUE, "ok")._value.get() < 1:
            await asyncio.sleep(0.05)
    [mail] = await api.mails(1)
    assert stored.number in str(mail["Subject"]) + str(mail.get_body())
    [told] = await certificates_of(api, world.enrollment.id)
    assert told.notified_at is not None
    assert (told.sha256, renders) == (stored.sha256, 1)
    await run_issue(api, world.enrollment.id)  # once told, a further run tells nobody
    await asyncio.sleep(0.3)
    assert len(api.inbox.messages) == 1


# --------------------------------------------------------------------------- public check


async def test_verify_valid_revoked_and_unknown(api: Api) -> None:
    world = await completed_enrollment(api)
    certificate = await issued(world)
    url = f"/api/v1/certificates/{certificate.number}/verify"

    valid = await api.client.get(url)
    assert valid.status == 200
    assert await valid.json() == {
        "status": "valid",
        "number": certificate.number,
        "learner_name": "Ada Lovelace",
        "course_title": "Analytical Engines",
        "completed_at": "2026-03-14T15:09:26Z",
    }

    _, admin, _ = await api.signed_in(Role.ADMIN)
    revoked = await api.client.post(
        f"/api/v1/admin/certificates/{certificate.number}/revoke",
        json={"reason": "Plagiarised final project"},
        headers=admin,
    )
    assert revoked.status == 200
    answer = await api.client.get(url)
    assert answer.status == 200
    body = await answer.json()
    assert body["status"] == "revoked"
    assert body["number"] == certificate.number
    assert body["revoked_at"]
    assert "Plagiarised" not in await answer.text()
    assert set(body) == {
        "status",
        "number",
        "learner_name",
        "course_title",
        "completed_at",
        "revoked_at",
    }

    unknown = await api.client.get("/api/v1/certificates/LMS-2026-0000-0000/verify")
    assert unknown.status == 404
    assert (await unknown.json())["error"] == "certificate_not_found"


@pytest.mark.parametrize(
    "number",
    ["LMS-2026-7K3Q", "lms-2026-7k3q-9xwm", "LMS-2026-7K3Q-9XWU", "LMS-26-7K3Q-9XWM", "x" * 300],
)
async def test_verify_refuses_malformed_numbers(api: Api, number: str) -> None:
    response = await api.client.get(f"/api/v1/certificates/{number}/verify")
    assert response.status == 422
    body = await response.json()
    assert body["error"] == "validation_failed"
    assert body["details"][0]["loc"] == ["path", "number"]


async def test_verification_page_valid_revoked_and_unknown(api: Api) -> None:
    world = await completed_enrollment(api)
    certificate = await issued(world)

    page = await api.client.get(f"/certificates/{certificate.number}")
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()
    assert "This certificate is valid." in html
    for shown in ("Ada Lovelace", "Analytical Engines", "14 March 2026", certificate.number):
        assert shown in html
    assert "Charles Babbage" not in html  # name, course and date only
    assert not re.search(r"<script|<style|\sstyle=|\son[a-z]+=", html, re.IGNORECASE)

    typed = await api.client.get(f"/certificates/{certificate.number.lower()}")
    assert typed.status == 200

    _, admin, _ = await api.signed_in(Role.ADMIN)
    await api.client.post(
        f"/api/v1/admin/certificates/{certificate.number}/revoke",
        json={"reason": "Issued by mistake"},
        headers=admin,
    )
    revoked = await (await api.client.get(f"/certificates/{certificate.number}")).text()
    assert "This certificate was revoked" in revoked
    assert "is valid" not in revoked
    assert "Issued by mistake" not in revoked

    for unknown in ("LMS-2026-0000-0000", "nonsense", "%3Cscript%3E"):
        missing = await api.client.get(f"/certificates/{unknown}")
        assert missing.status == 404
        assert "Certificate not found" in await missing.text()
        assert "<script>" not in await missing.text()


async def test_markup_in_names_is_escaped_on_the_page(api: Api) -> None:
    world = await completed_enrollment(api, learner_name='<script>alert("x")</script>')
    certificate = await issued(world)
    html = await (await api.client.get(f"/certificates/{certificate.number}")).text()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


# --------------------------------------------------------------------------- downloads


async def test_download_for_learner_instructors_and_admins_only(api: Api) -> None:
    world = await completed_enrollment(api)
    certificate = await issued(world)
    assert certificate.storage_key is not None
    stored = await api.app[keys.STORAGE].get(certificate.storage_key)
    url = f"/api/v1/certificates/{certificate.number}/pdf"

    co_teacher, co_headers, _ = await api.signed_in(Role.INSTRUCTOR)
    async with api.app[keys.DATABASE].transaction() as session:
        session.add(CourseInstructor(course_id=world.course.id, user_id=co_teacher.id))
    _, admin, _ = await api.signed_in(Role.ADMIN)
    for headers in (world.learner_headers, world.owner_headers, co_headers, admin):
        response = await api.client.get(url, headers=headers)
        assert response.status == 200
        assert response.content_type == "application/pdf"
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="certificate-{certificate.number}.pdf"'
        )
        assert await response.read() == stored

    _, other_student, _ = await api.signed_in(Role.STUDENT)
    _, other_instructor, _ = await api.signed_in(Role.INSTRUCTOR)
    for headers in (other_student, other_instructor):
        refused = await api.client.get(url, headers=headers)
        assert refused.status == 404
        assert (await refused.json())["error"] == "certificate_not_found"
    unknown = await api.client.get(
        "/api/v1/certificates/LMS-2026-0000-0000/pdf", headers=other_student
    )
    assert await unknown.json() == await refused.json()  # no difference to probe

    anonymous = await api.client.get(url)
    assert anonymous.status == 401


async def test_my_certificates_lists_only_mine(api: Api) -> None:
    world = await completed_enrollment(api)
    certificate = await issued(world)
    await issued(await completed_enrollment(api, learner_name="Someone Else"))

    response = await api.client.get("/api/v1/users/me/certificates", headers=world.learner_headers)
    assert response.status == 200
    body = await response.json()
    assert body["total"] == 1
    [item] = body["items"]
    assert item["number"] == certificate.number
    assert item["status"] == "issued"
    assert item["course_id"] == str(world.course.id)
    assert item["course_title"] == "Analytical Engines"
    assert item["instructor_name"] == "Charles Babbage"
    assert item["sha256"] == certificate.sha256
    assert item["download_url"] == (
        f"http://127.0.0.1/api/v1/certificates/{certificate.number}/pdf"
    )
    assert item["verify_url"] == f"http://127.0.0.1/certificates/{certificate.number}"
    assert "revoked_reason" not in item

    nothing = await api.client.get("/api/v1/users/me/certificates", headers=world.owner_headers)
    assert (await nothing.json())["items"] == []
    assert (await api.client.get("/api/v1/users/me/certificates")).status == 401
    bad = await api.client.get(
        "/api/v1/users/me/certificates?limit=0", headers=world.learner_headers
    )
    assert bad.status == 422


# --------------------------------------------------------------------------- admin


async def test_revoke_is_for_admins_and_validates_the_reason(api: Api) -> None:
    world = await completed_enrollment(api)
    certificate = await issued(world)
    url = f"/api/v1/admin/certificates/{certificate.number}/revoke"
    _, admin, _ = await api.signed_in(Role.ADMIN)

    assert (await api.client.post(url, json={"reason": "x"})).status == 401
    for headers in (world.learner_headers, world.owner_headers):
        forbidden = await api.client.post(url, json={"reason": "x"}, headers=headers)
        assert forbidden.status == 403
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"why": "x"}):
        invalid = await api.client.post(url, json=body, headers=admin)
        assert invalid.status == 422, body
    missing = await api.client.post(
        "/api/v1/admin/certificates/LMS-2026-0000-0000/revoke", json={"reason": "x"}, headers=admin
    )
    assert missing.status == 404

    response = await api.client.post(url, json={"reason": "  Fraud  "}, headers=admin)
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "revoked"
    assert body["revoked_reason"] == "Fraud"
    assert body["revoked_at"]
    again = await api.client.post(url, json={"reason": "Fraud"}, headers=admin)
    assert again.status == 409
    assert (await again.json())["error"] == "certificate_already_revoked"

    # Its learner still sees it, marked revoked, and may still download the PDF.
    mine = await api.client.get("/api/v1/users/me/certificates", headers=world.learner_headers)
    assert (await mine.json())["items"][0]["status"] == "revoked"
    pdf = await api.client.get(
        f"/api/v1/certificates/{certificate.number}/pdf", headers=world.learner_headers
    )
    assert pdf.status == 200


async def test_reissue_keeps_the_number_with_a_new_pdf(api: Api, tmp_path: Path) -> None:
    world = await completed_enrollment(api, learner_name="Ada Byron")
    first = await issued(world)
    await api.mails(1)
    await rename(api, world.learner, "Ada Lovelace")
    _, admin, _ = await api.signed_in(Role.ADMIN)
    url = f"/api/v1/admin/certificates/{first.number}/reissue"

    forbidden = await api.client.post(url, headers=world.owner_headers)
    assert forbidden.status == 403
    response = await api.client.post(url, headers=admin)
    assert response.status == 202
    body = await response.json()
    assert body["number"] == first.number
    assert body["status"] == "issued"
    assert "status stays issued" in body["message"]
    await api.app[keys.BROKER].wait_all()  # type: ignore[attr-defined]

    [second] = await certificates_of(api, world.enrollment.id)
    assert second.id == first.id
    assert second.number == first.number
    assert second.sha256 != first.sha256
    assert second.issued_at == first.issued_at
    assert second.reissued_at is not None
    assert second.learner_name == "Ada Lovelace"
    assert second.storage_key is not None
    assert first.storage_key is not None
    storage = api.app[keys.STORAGE]
    pdf = await storage.get(second.storage_key)
    assert hashlib.sha256(pdf).hexdigest() == second.sha256
    assert "AdaLovelace" in squeeze(pdf_text(pdf, tmp_path))
    assert not await storage.exists(first.storage_key)

    mails = await api.mails(2)
    assert "It replaces the one sent earlier." in str(mails[1].get_body(("plain",)))

    missing = await api.client.post(
        "/api/v1/admin/certificates/LMS-2026-0000-0000/reissue", headers=admin
    )
    assert missing.status == 404


async def test_reissuing_a_revoked_certificate_keeps_it_revoked(api: Api) -> None:
    world = await completed_enrollment(api)
    first = await issued(world)
    await api.mails(1)
    _, admin, _ = await api.signed_in(Role.ADMIN)
    await api.client.post(
        f"/api/v1/admin/certificates/{first.number}/revoke", json={"reason": "x"}, headers=admin
    )
    response = await api.client.post(
        f"/api/v1/admin/certificates/{first.number}/reissue", headers=admin
    )
    assert response.status == 202
    body = await response.json()
    assert body["status"] == "revoked"
    assert "status stays revoked" in body["message"]
    await api.app[keys.BROKER].wait_all()  # type: ignore[attr-defined]
    [second] = await certificates_of(api, world.enrollment.id)
    assert second.status == "revoked"
    assert second.sha256 != first.sha256
    await asyncio.sleep(0.3)
    assert len(api.inbox.messages) == 1  # a revoked certificate is not announced again


# --------------------------------------------------------------------------- socket event


@pytest.mark.shared_db
async def test_the_learner_socket_hears_certificate_ready(api: Api) -> None:
    world = await completed_enrollment(api)
    _, bystander_headers, _ = await api.signed_in(Role.STUDENT)
    heard: dict[str, asyncio.Queue[Any]] = {
        "learner": asyncio.Queue(),
        "bystander": asyncio.Queue(),
    }
    sockets = []
    for who, headers in (("learner", world.learner_headers), ("bystander", bystander_headers)):
        client = socketio.AsyncClient(reconnection=False)
        client.on(READY_EVENT, heard[who].put_nowait, namespace="/notifications")
        await client.connect(
            str(api.client.make_url("/")),
            namespaces=["/notifications"],
            auth={"token": headers["Authorization"].removeprefix("Bearer ")},
            transports=["websocket"],
            wait_timeout=5,
        )
        sockets.append(client)
    try:
        await run_issue(api, world.enrollment.id)
        async with asyncio.timeout(10):
            event = await heard["learner"].get()
        [certificate] = await certificates_of(api, world.enrollment.id)
        assert event == {
            "number": certificate.number,
            "course_id": str(world.course.id),
            "course_title": "Analytical Engines",
            "download_url": f"http://127.0.0.1/api/v1/certificates/{certificate.number}/pdf",
        }
        await asyncio.sleep(0.2)
        assert heard["bystander"].empty()
        await api.mails(1)
    finally:
        for client in sockets:
            await client.disconnect()


# --------------------------------------------------------------------------- embedded default


async def test_embedded_default_issues_on_sqlite_with_local_files(
    aiohttp_client: Any, tmp_path: Path, worker_id: str
) -> None:
    """No DATABASE_URL, REDIS_URL, STORAGE_URL or SMTP: SQLite, a local folder, the outbox."""
    from email import policy
    from email.parser import BytesParser

    from lms_live import migrations
    from lms_live.app import create_app
    from tests.conftest import SmtpInbox, make_settings

    settings = make_settings(tmp_path, worker_id, pg_url=None)
    await asyncio.to_thread(migrations.upgrade, "head", url=settings.effective_database_url)
    api = Api(await aiohttp_client(create_app(settings)), SmtpInbox())
    world = await completed_enrollment(api)
    certificate = await issued(world)
    await run_issue(api, world.enrollment.id)
    assert len(await certificates_of(api, world.enrollment.id)) == 1
    assert certificate.storage_key is not None
    stored = settings.data_dir / "files" / certificate.storage_key
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == certificate.sha256

    outbox = settings.effective_outbox_dir
    async with asyncio.timeout(10):
        while not list(outbox.glob("*.eml")):
            await asyncio.sleep(0.05)
    [eml] = list(outbox.glob("*.eml"))
    message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content() == stored.read_bytes()
    verified = await api.client.get(f"/api/v1/certificates/{certificate.number}/verify")
    assert (await verified.json())["status"] == "valid"
