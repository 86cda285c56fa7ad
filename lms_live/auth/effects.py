"""After-commit effects of identity changes, shared by the API routes and the pages: emails
sent as tasks, ended sessions published to every instance and their sockets dropped."""

from __future__ import annotations

import uuid

from aiohttp import web

from lms_live import keys
from lms_live.auth.service import Mail
from lms_live.core.uow import UnitOfWork
from lms_live.emails.tasks import SEND_EMAIL


def send_mail(app: web.Application, work: UnitOfWork, mail: Mail | None) -> None:
    """Send `mail` once the work has committed (links point at PUBLIC_URL)."""
    if mail is None:
        return
    public = app[keys.SETTINGS].public_url.rstrip("/")
    work.enqueue(
        SEND_EMAIL,
        template=mail.template,
        to=mail.to,
        context={"public_url": public, **mail.context},
    )


def end_sessions(
    app: web.Application,
    work: UnitOfWork,
    *,
    user_id: uuid.UUID,
    session_ids: list[uuid.UUID],
    reason: str,
    jti: str | None = None,
) -> None:
    """After commit: refuse the sessions' access tokens everywhere and drop their sockets."""

    async def publish() -> None:
        await app[keys.REVOCATIONS].revoke(session_ids, jti=jti)
        if session_ids:
            await app[keys.KICKER].kick(
                user_id=str(user_id),
                reason=reason,
                session_ids=[str(s) for s in session_ids],
            )

    work.after_commit(publish)
