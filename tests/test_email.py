"""Email: rendered from templates, delivered by SMTP (a real aiosmtpd) or to the outbox folder."""

from __future__ import annotations

import asyncio
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from lms_live import keys
from lms_live.app import create_app
from lms_live.core.mail import Attachment, EmailTemplates, OutboxMailer, OutgoingEmail, SmtpMailer
from tests.conftest import SmtpInbox, bearer, free_port, make_settings


def test_templates_render_text_and_escaped_html() -> None:
    email = EmailTemplates().render(
        "test", to="a@b.test", context={"public_url": "http://x/<script>", "environment": "dev"}
    )
    assert email.subject == "lms_live test email (dev)"
    assert "http://x/<script>" in email.text
    assert email.html is not None
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html


async def test_outbox_writes_complete_eml_files(tmp_path: Path) -> None:
    mailer = OutboxMailer(tmp_path / "outbox", "lms <no-reply@lms.test>")
    await mailer.send(
        OutgoingEmail(
            to="ann@x.test",
            subject="Hi",
            text="plain",
            html="<p>rich</p>",
            attachments=(Attachment("c.pdf", b"%PDF-1.7 data"),),
        )
    )
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1
    assert not list((tmp_path / "outbox").glob(".*"))
    message = BytesParser(policy=policy.default).parsebytes(files[0].read_bytes())
    assert message["To"] == "ann@x.test"
    assert message["Subject"] == "Hi"
    parts = {part.get_content_type(): part for part in message.walk()}
    assert parts["text/plain"].get_content().strip() == "plain"
    assert "rich" in parts["text/html"].get_content()
    assert parts["application/pdf"].get_content() == b"%PDF-1.7 data"


async def test_smtp_mailer_delivers_to_a_real_server(
    tmp_path: Path, worker_id: str, smtp: tuple[SmtpInbox, int]
) -> None:
    inbox, port = smtp
    settings = make_settings(
        tmp_path, worker_id, pg_url=None, smtp_host="127.0.0.1", smtp_port=port
    )
    await SmtpMailer(settings).send(OutgoingEmail(to="bo@x.test", subject="Ping", text="body"))
    [message] = await inbox.wait_for(1)
    assert message["To"] == "bo@x.test"
    assert message["Subject"] == "Ping"
    assert message["From"] == settings.mail_from


async def test_admin_test_email_arrives_by_smtp(
    aiohttp_client: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    database: Any,
    smtp: tuple[SmtpInbox, int],
) -> None:
    inbox, port = smtp
    settings = make_settings(
        tmp_path, worker_id, pg_url=pg_url, smtp_host="127.0.0.1", smtp_port=port
    )
    app = create_app(settings, database=database)
    client = await aiohttp_client(app)
    response = await client.post(
        "/api/v1/system/test-email",
        json={"to": "Admin@Example.org"},
        headers=bearer(app, role="admin"),
    )
    assert response.status == 202
    assert await response.json() == {"queued": True}
    [message] = await inbox.wait_for(1)
    assert message["To"] == "Admin@example.org"
    assert message["Subject"] == "lms_live test email (test)"
    body = {
        part.get_content_type(): part.get_content()
        for part in message.walk()
        if not part.is_multipart()
    }
    assert "outgoing email works" in body["text/plain"]
    assert "outgoing email works" in body["text/html"]
    counter = app[keys.METRICS].tasks.labels("lms.emails.send", "ok")
    async with asyncio.timeout(5):
        while counter._value.get() < 1:
            await asyncio.sleep(0.02)
    rendered = app[keys.METRICS].render().decode()
    assert 'lms_tasks_total{outcome="ok",task="lms.emails.send"} 1.0' in rendered


async def test_test_email_is_for_admins_only_and_validates(
    client: Any, app: web.Application
) -> None:
    url = "/api/v1/system/test-email"
    assert (await client.post(url, json={"to": "a@b.org"})).status == 401
    assert (await client.post(url, json={"to": "a@b.org"}, headers=bearer(app))).status == 403
    bad = await client.post(url, json={"to": "not an email"}, headers=bearer(app, role="admin"))
    assert bad.status == 422
    assert (await bad.json())["details"][0]["loc"] == ["body", "to"]


async def test_embedded_default_writes_to_the_outbox(
    aiohttp_client: Any, tmp_path: Path, worker_id: str
) -> None:
    from lms_live import migrations

    settings = make_settings(tmp_path, worker_id, pg_url=None)
    await asyncio.to_thread(migrations.upgrade, "head", url=settings.effective_database_url)
    app = create_app(settings)
    client = await aiohttp_client(app)
    response = await client.post(
        "/api/v1/system/test-email", json={"to": "me@x.org"}, headers=bearer(app, role="admin")
    )
    assert response.status == 202
    outbox = settings.effective_outbox_dir
    for _ in range(100):
        if list(outbox.glob("*.eml")):
            break
        await asyncio.sleep(0.05)
    [eml] = list(outbox.glob("*.eml"))
    message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert message["To"] == "me@x.org"


async def test_failed_delivery_is_retried_until_the_server_answers(
    aiohttp_client: Any, tmp_path: Path, worker_id: str, database: Any, pg_url: str
) -> None:
    """The SMTP server is down for the first attempt; the retry delivers the email."""
    from aiosmtpd.controller import Controller

    port = free_port()
    settings = make_settings(
        tmp_path,
        worker_id,
        pg_url=pg_url,
        redis_url=None,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_timeout=2,
    )
    app = create_app(settings, database=database)
    client = await aiohttp_client(app)
    response = await client.post(
        "/api/v1/system/test-email", json={"to": "late@x.org"}, headers=bearer(app, role="admin")
    )
    assert response.status == 202
    metrics = app[keys.METRICS]
    async with asyncio.timeout(10):
        while metrics.tasks.labels("lms.emails.send", "error")._value.get() < 1:
            await asyncio.sleep(0.05)
    inbox = SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        [message] = await inbox.wait_for(1, timeout=20)
    finally:
        controller.stop()
    assert message["To"] == "late@x.org"
    async with asyncio.timeout(5):
        while metrics.tasks.labels("lms.emails.send", "ok")._value.get() < 1:
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("name", ["missing-template"])
def test_unknown_template_fails_loudly(name: str) -> None:
    import jinja2

    with pytest.raises(jinja2.TemplateNotFound):
        EmailTemplates().render(name, to="a@b.c", context={})
