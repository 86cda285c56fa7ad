"""Helpers for identity tests: an app wired to a real SMTP inbox, and one-line users."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from lms_live import keys
from lms_live.auth import service
from lms_live.auth.models import Role, User
from tests.conftest import SmtpInbox

PASSWORD = "correct horse battery staple"


def body_of(message: EmailMessage) -> str:
    """The plain-text part of an email."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def token_in(message: EmailMessage) -> str:
    """The token of the link in an email."""
    found = re.search(r"token=([A-Za-z0-9_\-]+)", body_of(message))
    assert found, body_of(message)
    return found.group(1)


def code_in(message: EmailMessage) -> str:
    found = re.search(r"\b(\d{6})\b", body_of(message))
    assert found
    return found.group(1)


@dataclass
class Api:
    """A client on the app plus its mailbox."""

    client: TestClient[web.Request, web.Application]
    inbox: SmtpInbox

    @property
    def app(self) -> web.Application:
        app = self.client.app
        assert app is not None
        return app

    async def user(
        self,
        role: Role = Role.STUDENT,
        *,
        email: str | None = None,
        password: str = PASSWORD,
        verified: bool = True,
    ) -> User:
        """A user in the database, in one line."""
        async with self.app[keys.DATABASE].transaction() as session:
            return await service.create_user(
                session,
                email=email or f"{uuid.uuid4().hex[:10]}@example.org",
                full_name="Test " + role.value,
                password=password,
                role=role,
                verified=verified,
                bcrypt_rounds=4,
            )

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def signed_in(
        self, role: Role = Role.STUDENT
    ) -> tuple[User, dict[str, str], dict[str, Any]]:
        """A user, its Authorization header and its token pair."""
        user = await self.user(role)
        tokens = await self.login(user.email)
        return user, {"Authorization": f"Bearer {tokens['access_token']}"}, tokens

    async def mails(self, count: int) -> list[EmailMessage]:
        await self.app[keys.BROKER].wait_all()  # type: ignore[attr-defined]
        return await self.inbox.wait_for(count)
