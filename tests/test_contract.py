"""Schemathesis against the running server: every operation and check, no 5xx, no drift."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from lms_live.settings import Settings
from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.shared_db, pytest.mark.timeout(900)]

SECRET = "contract-test-secret-" + "x" * 20
ADMIN = "contract-admin@example.org"
PASSWORD = "contract admin passphrase"


def test_schemathesis_finds_no_failures(
    tmp_path: Path, pg_url: str, redis_url: str, redis: object, database: object
) -> None:
    """`database` (shared_db) truncates the tables afterwards: the served process commits."""
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
        "BCRYPT_ROUNDS": "4",
        "LOG_LEVEL": "WARNING",
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
        admin = subprocess.run(
            [
                sys.executable,
                "-m",
                "lms_live",
                "create-admin",
                "--email",
                ADMIN,
                "--name",
                "Contract Admin",
                "--password",
                PASSWORD,
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert admin.returncode == 0, admin.stderr
        login = urllib.request.Request(  # noqa: S310
            f"{base}/api/v1/auth/login",
            method="POST",
            data=json.dumps({"email": ADMIN, "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(login, timeout=10) as response:  # noqa: S310
            token = json.loads(response.read())["access_token"]
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{base}/api/v1/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--no-color",
            "--workers",
            "2",
            "--generation-database",
            "none",
            # A parallel suite can starve the server for a moment: a slow answer is not a
            # contract failure (a 5xx still is). Runtime errors showed up once in 8 CI runs.
            "--request-timeout",
            "30",
            "--request-retries",
            "1",
            "-H",
            f"Authorization: Bearer {token}",
            # Business rules stricter than JSON Schema can say (the common-password list,
            # reserved email domains, unknown link tokens) answer 4xx to schema-valid data.
            "--exclude-checks",
            "positive_data_acceptance",
            # Signing out would revoke the token the rest of the run uses.
            "--exclude-operation-id",
            "logout",
            "--exclude-operation-id",
            "end_my_sessions",
        ]
        result = subprocess.run(
            command,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=800,
        )
    finally:
        server.send_signal(signal.SIGTERM)
        log, _ = server.communicate(timeout=15)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-2000:]
    assert "failures" not in result.stdout.rsplit("SUMMARY", 1)[-1].split("Test cases")[0]
    # The token worked throughout (schemathesis lists operations that only got 401/403; the
    # ones that check a password or a code legitimately answer 403 to its guesses).
    assert "GET /api/v1/users/me\n" not in result.stdout
    assert "GET /api/v1/admin/users\n" not in result.stdout
    assert " 500 " not in log.decode()
