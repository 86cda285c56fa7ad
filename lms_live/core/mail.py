"""Outgoing email: rendering from Jinja2 templates and delivery by SMTP or to an outbox folder.

Templates live in `templates/email/<name>.subject.txt`, `<name>.txt` and `<name>.html`
(HTML autoescaped). With SMTP_HOST unset, messages are written as `.eml` files to the outbox
folder (the embedded default) and only the recipient and subject are logged, never the body:
bodies carry single-use links and codes.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
import jinja2

from lms_live.core.db import utcnow
from lms_live.paths import TEMPLATES
from lms_live.settings import Settings

log = logging.getLogger("lms_live.mail")


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """A rendered email ready to deliver."""

    to: str
    subject: str
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = field(default=())

    def to_message(self, sender: str) -> EmailMessage:
        """The MIME message (text, optional HTML alternative, attachments)."""
        message = EmailMessage()
        message["From"] = sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Date"] = format_datetime(utcnow())
        message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip("> "))
        message.set_content(self.text)
        if self.html:
            message.add_alternative(self.html, subtype="html")
        for item in self.attachments:
            kind = item.content_type or mimetypes.guess_type(item.filename)[0]
            maintype, _, subtype = (kind or "application/octet-stream").partition("/")
            message.add_attachment(
                item.content, maintype=maintype, subtype=subtype, filename=item.filename
            )
        return message


class EmailTemplates:
    """Renders `templates/email/<name>.*` into an OutgoingEmail."""

    def __init__(self, directory: Path = TEMPLATES / "email") -> None:
        loader = jinja2.FileSystemLoader(directory)
        # Plain-text parts and subjects are not HTML: escaping would corrupt them.
        self.text_env = jinja2.Environment(
            loader=loader,
            autoescape=False,  # noqa: S701
            undefined=jinja2.StrictUndefined,
        )
        self.html_env = jinja2.Environment(
            loader=loader, autoescape=True, undefined=jinja2.StrictUndefined
        )

    def render(self, name: str, *, to: str, context: dict[str, Any]) -> OutgoingEmail:
        """Render one email; the HTML part is optional per template."""
        subject = self.text_env.get_template(f"{name}.subject.txt").render(context)
        text = self.text_env.get_template(f"{name}.txt").render(context)
        try:
            html: str | None = self.html_env.get_template(f"{name}.html").render(context)
        except jinja2.TemplateNotFound:
            html = None
        return OutgoingEmail(to=to, subject=" ".join(subject.split()), text=text, html=html)


class Mailer(Protocol):
    """Delivers an email or raises (the caller's task retries)."""

    async def send(self, email: OutgoingEmail) -> None: ...


class SmtpMailer:
    """Delivery through an SMTP server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, email: OutgoingEmail) -> None:
        s = self.settings
        await aiosmtplib.send(
            email.to_message(s.mail_from),
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            start_tls=s.smtp_starttls,
            use_tls=s.smtp_tls,
            timeout=s.smtp_timeout,
        )
        log.info("email sent to %s: %s", email.to, email.subject)


class OutboxMailer:
    """Writes each email as an .eml file (embedded default: nothing leaves the machine)."""

    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    async def send(self, email: OutgoingEmail) -> None:
        data = bytes(email.to_message(self.sender))
        name = f"{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.eml"
        path = await asyncio.to_thread(self._write, name, data)
        log.info("email to %s written to %s: %s", email.to, path, email.subject)

    def _write(self, name: str, data: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{name}.part"
        partial.write_bytes(data)
        return partial.rename(self.directory / name)


def make_mailer(settings: Settings) -> Mailer:
    """SMTP when SMTP_HOST is set, else the outbox folder."""
    if settings.smtp_host:
        return SmtpMailer(settings)
    return OutboxMailer(settings.effective_outbox_dir, settings.mail_from)
