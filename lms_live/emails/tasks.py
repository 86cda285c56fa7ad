"""Email tasks: render a template and deliver it (retried with backoff on failure)."""

from __future__ import annotations

from typing import Any

from taskiq import Context, TaskiqDepends

from lms_live.core.mail import Attachment
from lms_live.worker.broker import resources, task

SEND_EMAIL = "lms.emails.send"


@task(SEND_EMAIL, retries=6)
async def send_email(
    template: str,
    to: str,
    context: dict[str, Any],
    attachments: list[dict[str, str]] | None = None,
    ctx: Context = TaskiqDepends(),
) -> None:
    """Render `templates/email/<template>.*` for `to` and send it; attachments are storage keys."""
    res = resources(ctx)
    email = res.email_templates.render(template, to=to, context=context)
    files = []
    for item in attachments or []:
        data = await res.storage.get(item["key"])
        files.append(Attachment(item["filename"], data, item.get("content_type")))
    if files:
        email = type(email)(email.to, email.subject, email.text, email.html, tuple(files))
    await res.mailer.send(email)
