"""The learning journey end to end, as its people see it: an instructor creates and publishes a
course over REST, a learner enrolls and completes every lesson, a real `lms-live worker` process
renders the certificate, the learner gets it by email (aiosmtpd) and on `/notifications`, anyone
can verify it, and the instructor's `/progress` dashboard saw every event, in order.

PostgreSQL, Redis (task stream and Socket.IO fan-out between the app and the worker), SMTP and
pdftotext are all real."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from lms_live import keys
from lms_live.app import create_app
from lms_live.auth import service as accounts
from lms_live.auth.models import Role
from lms_live.settings import Settings
from tests.authkit import PASSWORD
from tests.conftest import SmtpInbox, make_settings
from tests.test_worker import Process

pytestmark = [pytest.mark.slow, pytest.mark.shared_db, pytest.mark.timeout(180)]


class Client:
    """REST calls as one signed-in person."""

    def __init__(self, http: ClientSession, server: TestServer, token: str) -> None:
        self.http = http
        self.server = server
        self.token = token

    async def call(self, method: str, path: str, status: int, json: Any = None) -> Any:
        async with self.http.request(
            method,
            self.server.make_url(path),
            json=json,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            body = await response.json() if response.content_type == "application/json" else None
            assert response.status == status, body
            return body


async def sign_in(http: ClientSession, server: TestServer, role: Role, name: str) -> Client:
    email = f"{uuid.uuid4().hex[:10]}@example.org"
    async with server.app[keys.DATABASE].transaction() as session:
        await accounts.create_user(
            session,
            email=email,
            full_name=name,
            password=PASSWORD,
            role=role,
            verified=True,
            bcrypt_rounds=4,
        )
    async with http.post(
        server.make_url("/api/v1/auth/login"), json={"email": email, "password": PASSWORD}
    ) as response:
        assert response.status == 200
        return Client(http, server, (await response.json())["access_token"])


async def socket(
    server: TestServer, namespace: str, token: str, events: list[str]
) -> tuple[socketio.AsyncClient, asyncio.Queue[tuple[str, Any]]]:
    received: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    client = socketio.AsyncClient(reconnection=False)
    for name in events:
        client.on(name, lambda data, name=name: received.put_nowait((name, data)), namespace)
    await client.connect(
        str(server.make_url("/")),
        namespaces=[namespace],
        auth={"token": token},
        transports=["websocket"],
        wait_timeout=5,
    )
    return client, received


def worker_env(settings: Settings) -> dict[str, str]:
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in names}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[name.upper()] = ",".join(value) if isinstance(value, list) else str(value)
    return env


async def test_course_to_verified_certificate(
    aiohttp_server: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Redis,
    database: None,
    smtp: tuple[SmtpInbox, int],
) -> None:
    inbox, smtp_port = smtp
    settings = make_settings(
        tmp_path,
        worker_id,
        pg_url=pg_url,
        redis_url=redis_url,
        task_broker="redis",
        task_queue=f"lms:test:journey:{uuid.uuid4().hex}",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
    )
    server: TestServer = await aiohttp_server(create_app(settings))
    settings = settings.model_copy(update={"public_url": str(server.make_url("")).rstrip("/")})
    worker = Process(["worker"], worker_env(settings), tmp_path)
    sockets: list[socketio.AsyncClient] = []
    try:
        async with ClientSession() as http:
            teacher = await sign_in(http, server, Role.INSTRUCTOR, "Grace Teacher")
            learner = await sign_in(http, server, Role.STUDENT, "Ada <b>Learner</b>")

            # The instructor builds and publishes a course of two lessons.
            course = await teacher.call(
                "POST", "/api/v1/courses", 201, {"title": "Rivers", "summary": "Water, moving."}
            )
            course_id = course["id"]
            section = await teacher.call(
                "POST", f"/api/v1/courses/{course_id}/sections", 201, {"title": "Part one"}
            )
            lessons = [
                await teacher.call(
                    "POST",
                    f"/api/v1/sections/{section['id']}/lessons",
                    201,
                    {"title": title, "kind": "text", "body": f"About {title}."},
                )
                for title in ("Springs", "Deltas")
            ]
            await teacher.call("POST", f"/api/v1/courses/{course_id}/publish", 200)
            listed = await learner.call("GET", "/api/v1/catalog?q=rivers", 200)
            assert [c["id"] for c in listed["items"]] == [course_id]

            # The instructor's dashboard is open before the learner arrives.
            dashboard, seen = await socket(
                server,
                "/progress",
                teacher.token,
                ["learner_online", "lesson_completed", "progress_changed", "course_completed"],
            )
            sockets.append(dashboard)
            joined = await dashboard.call(
                "join_course", {"course_id": course_id}, namespace="/progress", timeout=5
            )
            assert joined["ok"] is True
            assert joined["snapshot"]["learners"] == []

            await learner.call("POST", f"/api/v1/courses/{course_id}/enrollment", 201)
            mine, _ = await socket(server, "/progress", learner.token, [])
            notices, notified = await socket(
                server, "/notifications", learner.token, ["certificate_ready"]
            )
            sockets += [mine, notices]
            for lesson in lessons:
                await learner.call("POST", f"/api/v1/lessons/{lesson['id']}/open", 204)
                progress = await learner.call(
                    "POST", f"/api/v1/lessons/{lesson['id']}/complete", 200
                )
            assert progress["status"] == "completed"
            assert progress["percent"] == 100.0

            # The certificate: rendered by the worker, announced on the socket, emailed.
            await worker.wait_for_line("worker started")
            async with asyncio.timeout(60):
                name, ready = await notified.get()
            assert name == "certificate_ready"
            number = ready["number"]
            assert ready["course_id"] == course_id
            [mail] = await inbox.wait_for(1, timeout=60)
            [attachment] = list(mail.iter_attachments())
            assert attachment.get_content_type() == "application/pdf"
            pdf = tmp_path / "certificate.pdf"
            pdf.write_bytes(attachment.get_content())
            text = subprocess.run(
                ["pdftotext", "-layout", str(pdf), "-"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout
            for expected in ("Ada <b>Learner</b>", "Rivers", "Grace Teacher", number):
                assert expected in text, expected

            # Anyone can verify it; the learner can download the same PDF.
            async with http.get(server.make_url(f"/certificates/{number}")) as response:
                assert response.status == 200
                page = await response.text()
            assert "valid" in page.lower()
            assert "Ada &lt;b&gt;Learner&lt;/b&gt;" in page
            verified = await learner.call("GET", f"/api/v1/certificates/{number}/verify", 200)
            assert verified["status"] == "valid"
            async with http.get(
                server.make_url(f"/api/v1/certificates/{number}/pdf"),
                headers={"Authorization": f"Bearer {learner.token}"},
            ) as response:
                assert response.status == 200
                assert await response.read() == pdf.read_bytes()

            # The dashboard saw the whole journey, numbered without gaps.
            events = [await asyncio.wait_for(seen.get(), 5) for _ in range(6)]
            assert [name for name, _ in events] == [
                "learner_online",
                "lesson_completed",
                "progress_changed",
                "lesson_completed",
                "progress_changed",
                "course_completed",
            ]
            assert [data["seq"] for _, data in events] == list(
                range(joined["seq"] + 1, joined["seq"] + 7)
            )
            assert [data["percent"] for name, data in events if name == "progress_changed"] == [
                50.0,
                100.0,
            ]
            assert seen.empty()
        code, _ = await worker.stop()
        assert code == 0, "".join(worker.lines)
    finally:
        for client in sockets:
            if client.connected:
                await client.disconnect()
        if worker.proc.poll() is None:
            worker.proc.kill()
            await asyncio.to_thread(worker.proc.wait, 5)
