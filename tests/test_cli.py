"""The `lms-live` command: the embedded default starts from nothing, admin and demo seeding."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow

LMS = [sys.executable, "-m", "lms_live"]


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    from lms_live.settings import Settings

    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra)
    return env


def _wait_ready(url: str, process: subprocess.Popen[bytes], deadline: float) -> int:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
                return int(response.status)
        except OSError:
            time.sleep(0.05)
    raise AssertionError("server did not become ready in time")


def test_embedded_default_serves_with_no_configuration(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [*LMS, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        status = _wait_ready(f"http://127.0.0.1:{port}/api/v1/ready", process, started + 30)
        cold_start = time.monotonic() - started
        assert status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json") as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output.decode()
    log = output.decode()
    assert "serving on http://127.0.0.1" in log
    assert "GET /api/v1/ready 200" in log
    assert (tmp_path / "var" / "lms_live.db").exists()
    print(f"cold start to ready: {cold_start:.2f}s")


def test_production_refuses_unsafe_settings_naming_them(tmp_path: Path) -> None:
    result = subprocess.run(
        [*LMS, "serve"],
        cwd=tmp_path,
        env=_clean_env(tmp_path, ENVIRONMENT="production", SECRET_KEY="short"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_create_admin_demo_and_migrate(tmp_path: Path) -> None:
    env = _clean_env(tmp_path, BCRYPT_ROUNDS="4")
    run = {"cwd": tmp_path, "env": env, "capture_output": True, "text": True, "timeout": 60}
    assert subprocess.run([*LMS, "migrate", "upgrade"], **run).returncode == 0  # type: ignore[call-overload]
    current = subprocess.run([*LMS, "migrate", "current"], **run)  # type: ignore[call-overload]
    assert "(head)" in current.stdout + current.stderr

    created = subprocess.run(  # type: ignore[call-overload]
        [*LMS, "create-admin", "--email", "Root@Example.org", "--name", "Root Admin"],
        input="correct horse battery\ncorrect horse battery\n",
        **run,
    )
    assert created.returncode == 0, created.stderr
    assert "admin Root@Example.org created" in created.stdout
    again = subprocess.run(  # type: ignore[call-overload]
        [
            *LMS,
            "create-admin",
            "--email",
            "root@example.org",
            "--name",
            "X",
            "--password",
            "another pass",
        ],
        **run,
    )
    assert again.returncode != 0
    assert "already exists" in again.stderr

    demo = subprocess.run([*LMS, "demo", "--learners", "5", "--password", "demo-pass-123"], **run)  # type: ignore[call-overload]
    assert demo.returncode == 0, demo.stderr
    assert "seeding demo accounts" in demo.stderr
    assert "created 6, already present 0" in demo.stdout
    rerun = subprocess.run([*LMS, "demo", "--learners", "5", "--password", "x" * 12], **run)  # type: ignore[call-overload]
    assert "created 0, already present 6" in rerun.stdout

    with sqlite3.connect(tmp_path / "var" / "lms_live.db") as db:
        rows = dict(db.execute("SELECT email, role FROM user").fetchall())
    assert rows["root@example.org"] == "admin"
    assert rows["instructor@demo.example.org"] == "instructor"
    assert sum(1 for role in rows.values() if role == "student") == 5
    with sqlite3.connect(tmp_path / "var" / "lms_live.db") as db:
        courses = db.execute("SELECT slug, status, enrollment_count FROM course").fetchall()
        lessons = db.execute("SELECT count(*) FROM lesson").fetchone()[0]
        percents = [
            row[0]
            for row in db.execute(
                "SELECT progress_percent FROM enrollment JOIN user ON user.id = user_id "
                "ORDER BY email"
            )
        ]
        quiz = db.execute(
            "SELECT q.title, q.published, count(s.id) FROM quiz q JOIN quiz_slot s"
            " ON s.quiz_id = q.id GROUP BY q.id"
        ).fetchall()
        quiz_lesson = db.execute(
            "SELECT is_required FROM lesson WHERE kind = 'quiz' AND quiz_id IS NOT NULL"
        ).fetchall()
    assert courses == [("demo-rivers-of-the-world", "published", 5)]  # once, despite the rerun
    assert lessons == 9  # eight required, and the optional quiz lesson
    assert quiz == [("Rivers check", 1, 4)]
    assert quiz_lesson == [(0,)]
    assert percents == [12.5, 25.0, 37.5, 50.0, 62.5]  # learner n completed n lessons of 8

    down = subprocess.run([*LMS, "migrate", "downgrade", "base"], **run)  # type: ignore[call-overload]
    assert down.returncode == 0
    with sqlite3.connect(tmp_path / "var" / "lms_live.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "user" not in tables


def test_worker_and_scheduler_explain_that_they_need_redis(tmp_path: Path) -> None:
    for command in ("worker", "scheduler"):
        result = subprocess.run(
            [*LMS, command],
            cwd=tmp_path,
            env=_clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode != 0
        assert "REDIS_URL is not set" in result.stderr
