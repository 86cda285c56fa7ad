"""A real `lms-live worker` process issues a certificate: PostgreSQL row, stored PDF, email with
the PDF attached (the path production takes: Redis stream broker, write-only socket manager)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from redis.asyncio import Redis
from sqlalchemy import select

from lms_live.auth.models import User
from lms_live.certificates.models import Certificate
from lms_live.certificates.tasks import ISSUE
from lms_live.core.db import Database, make_engine
from lms_live.courses.models import Course
from lms_live.enrollments.models import Enrollment
from lms_live.settings import Settings
from lms_live.worker.broker import enqueue, make_broker
from tests.conftest import SmtpInbox, free_port, make_settings
from tests.test_worker import Process

pytestmark = [pytest.mark.slow, pytest.mark.shared_db, pytest.mark.timeout(180)]


@pytest.fixture
def inbox() -> Iterator[tuple[SmtpInbox, int]]:
    box, port = SmtpInbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


async def _completed_enrollment(database: Database) -> Enrollment:
    async with database.transaction() as session:
        learner = User(
            email=f"{uuid.uuid4().hex[:10]}@example.org",
            full_name="Ada Lovelace",
            password_hash="x",
        )
        owner = User(
            email=f"{uuid.uuid4().hex[:10]}@example.org",
            full_name="Charles Babbage",
            password_hash="x",
            role="instructor",
        )
        session.add_all([learner, owner])
        await session.flush()
        course = Course(slug=uuid.uuid4().hex, title="Analytical Engines", owner_id=owner.id)
        session.add(course)
        await session.flush()
        enrollment = Enrollment(
            user_id=learner.id,
            course_id=course.id,
            status="completed",
            completed_at=datetime(2026, 5, 1, tzinfo=UTC),
            progress_percent=100.0,
        )
        session.add(enrollment)
    return enrollment


async def test_a_worker_process_issues_and_emails_the_certificate(
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Redis,
    database: None,
    inbox: tuple[SmtpInbox, int],
) -> None:
    box, smtp_port = inbox
    settings = make_settings(
        tmp_path,
        worker_id,
        pg_url=pg_url,
        redis_url=redis_url,
        task_queue=f"lms:test:tasks:{uuid.uuid4().hex}",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
    )
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in names}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[name.upper()] = ",".join(value) if isinstance(value, list) else str(value)

    engine = make_engine(settings)
    db = Database.from_engine(engine)
    broker = make_broker(settings)
    await broker.startup()
    worker = Process(["worker"], env, tmp_path)
    try:
        enrollment = await _completed_enrollment(db)
        await worker.wait_for_line("worker started")
        await enqueue(broker, ISSUE, enrollment_id=str(enrollment.id))
        [message] = await box.wait_for(1, timeout=60)
        async with db.sessions() as session:
            certificate = await session.scalar(
                select(Certificate).where(Certificate.enrollment_id == enrollment.id)
            )
        assert certificate is not None
        assert certificate.storage_key is not None
        stored = (settings.data_dir / "files" / certificate.storage_key).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == certificate.sha256
        [attachment] = list(message.iter_attachments())
        assert attachment.get_content() == stored
        await worker.wait_for_line(f"certificate {certificate.number} issued")
        code, _ = await worker.stop()
        assert code == 0, "".join(worker.lines)
    finally:
        if worker.proc.poll() is None:
            worker.proc.kill()
            await asyncio.to_thread(worker.proc.wait, 5)
        await broker.shutdown()
        await engine.dispose()
