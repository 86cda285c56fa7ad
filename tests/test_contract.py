"""Schemathesis against the running server: every operation and check, no 5xx, no drift."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from lms_live.core.security import TokenCodec
from lms_live.settings import Settings
from tests.conftest import free_port

pytestmark = pytest.mark.slow

SECRET = "contract-test-secret-" + "x" * 20


def test_schemathesis_finds_no_failures(
    tmp_path: Path, pg_url: str, redis_url: str, redis: object
) -> None:
    port = free_port()
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env |= {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET,
        "RATE_LIMIT": "1000000/minute",
        "RATE_LIMIT_AUTH": "1000000/minute",
        "TASK_QUEUE": f"lms:contract:{uuid.uuid4().hex}",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "lms_live", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/v1/ready", timeout=1):  # noqa: S310
                    break
            except OSError:
                assert server.poll() is None, "server exited"
                assert time.monotonic() < deadline, "server not ready"
                time.sleep(0.1)
        settings = Settings(_env_file=None, secret_key=SECRET)
        admin = TokenCodec.from_settings(settings).issue(user_id=uuid.uuid4(), role="admin")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{base}/api/v1/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "40",
                "--seed",
                "1",
                "--no-color",
                "-H",
                f"Authorization: Bearer {admin}",
                "--generation-database",
                "none",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.send_signal(signal.SIGTERM)
        log, _ = server.communicate(timeout=15)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
    assert " 500 " not in log.decode()
