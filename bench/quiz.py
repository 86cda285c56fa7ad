"""Timed-quiz benchmark: many learners start, autosave and submit a timed attempt at once.

Run by hand (`make bench-quiz` or `.venv/bin/python bench/quiz.py --help`). It creates and
migrates database `lms_bench_quiz`, seeds a published course with `--learners` enrolled
learners and a published quiz of `--questions` single-choice questions with a time limit,
starts one `lms_live serve` on it (PostgreSQL + Redis, production-like logging), then every
learner at once, each on its own keep-alive connection:

  POST /api/v1/quizzes/{quiz}/attempts            start (the server draws and stores the order)
  PUT  /api/v1/attempts/{id}/answers/{position}   autosave, once per question (`--resaves`
                                                  more saves per question change the answer,
                                                  with growing revisions)
  POST /api/v1/attempts/{id}/submit               submit and grade

Figures: requests/s and p50/p99 latency per kind of request, answers saved per second over the
whole run, and what the database holds afterwards: answers stored (must equal learners x
questions: none lost), attempts submitted and graded once, no duplicates (a unique constraint,
counted anyway). Progress goes to stderr, the report (Markdown) to stdout; exit status 1 when
a check fails.
"""

from __future__ import annotations

import os
import sys

if os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.remove(sys.path[0])
if os.path.dirname(os.path.dirname(os.path.abspath(__file__))) not in sys.path:
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import asyncio
import random
import secrets
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.http import (
    BenchError,
    Progress,
    _admin_sql,
    clean_env,
    cpu_description,
    flush_redis,
    free_port,
    lms_env,
    lms_server_argv,
    log_tail,
    process_cpu_seconds,
    running,
)

BENCH_DATABASE = "lms_bench_quiz"
OPTION_IDS = ("a", "b", "c", "d")


@dataclass
class Timings:
    """Latencies (ms) and failures of one kind of request."""

    latencies: list[float] = field(default_factory=list)
    failures: dict[int, int] = field(default_factory=dict)

    def record(self, started: float, status: int, ok: bool) -> None:
        self.latencies.append((time.perf_counter() - started) * 1000)
        if not ok:
            self.failures[status] = self.failures.get(status, 0) + 1

    def percentile(self, fraction: float) -> float:
        values = sorted(self.latencies)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(fraction * len(values)))]


@dataclass
class Run:
    start: Timings = field(default_factory=Timings)
    save: Timings = field(default_factory=Timings)
    submit: Timings = field(default_factory=Timings)
    saves_done: int = 0
    learners_done: int = 0
    errors: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- seeding


async def seed(
    database_url: str, *, learners: int, questions: int, time_limit: int
) -> dict[str, Any]:
    """The course, its quiz and enrolled learners; returns the ids the load needs."""
    from sqlalchemy import insert

    from lms_live.auth.models import User
    from lms_live.core.db import Database, make_engine
    from lms_live.courses.models import Course, CourseStatus
    from lms_live.enrollments.models import Enrollment
    from lms_live.quizzes.models import Question, QuestionVersion, Quiz, QuizSlot
    from lms_live.settings import Settings

    settings = Settings(_env_file=None, database_url=database_url)
    engine = make_engine(settings)
    now = datetime.now(UTC)
    teacher_id = uuid.uuid4()
    learner_ids = [uuid.uuid4() for _ in range(learners)]
    course_id, quiz_id = uuid.uuid4(), uuid.uuid4()
    try:
        async with Database.from_engine(engine).transaction() as session:
            users = [
                {
                    "id": teacher_id,
                    "email": "teacher@bench.example.org",
                    "full_name": "Bench Teacher",
                    "password_hash": "x",
                    "role": "instructor",
                }
            ] + [
                {
                    "id": uid,
                    "email": f"learner{n:05d}@bench.example.org",
                    "full_name": f"Learner {n:05d}",
                    "password_hash": "x",
                    "role": "student",
                }
                for n, uid in enumerate(learner_ids)
            ]
            await session.execute(insert(User), users)
            await session.execute(
                insert(Course),
                [
                    {
                        "id": course_id,
                        "slug": "bench-quiz-course",
                        "title": "Bench course",
                        "owner_id": teacher_id,
                        "status": CourseStatus.PUBLISHED.value,
                        "published_at": now,
                        "enrollment_count": learners,
                    }
                ],
            )
            await session.execute(
                insert(Enrollment),
                [{"user_id": uid, "course_id": course_id} for uid in learner_ids],
            )
            await session.execute(
                insert(Quiz),
                [
                    {
                        "id": quiz_id,
                        "course_id": course_id,
                        "title": "Bench quiz",
                        "published": True,
                        "time_limit_seconds": time_limit,
                        "shuffle_questions": True,
                        "shuffle_options": True,
                        "review_policy": {},
                    }
                ],
            )
            question_ids = [uuid.uuid4() for _ in range(questions)]
            await session.execute(
                insert(Question),
                [
                    {
                        "id": qid,
                        "course_id": course_id,
                        "title": f"Q{n + 1}",
                        "created_by": teacher_id,
                    }
                    for n, qid in enumerate(question_ids)
                ],
            )
            body = {
                "type": "single_choice",
                "options": [
                    {"id": oid, "text": f"Option {oid}", "correct": oid == "a"}
                    for oid in OPTION_IDS
                ],
            }
            await session.execute(
                insert(QuestionVersion),
                [
                    {
                        "question_id": qid,
                        "version": 1,
                        "type": "single_choice",
                        "prompt": f"Question {n + 1}?",
                        "points": 1.0,
                        "body": body,
                    }
                    for n, qid in enumerate(question_ids)
                ],
            )
            await session.execute(
                insert(QuizSlot),
                [
                    {"quiz_id": quiz_id, "position": n, "question_id": qid}
                    for n, qid in enumerate(question_ids)
                ],
            )
    finally:
        await engine.dispose()
    return {"quiz_id": str(quiz_id), "learner_ids": learner_ids}


async def database_counts(database_url: str, quiz_id: str) -> dict[str, int]:
    from sqlalchemy import text

    from lms_live.core.db import make_engine
    from lms_live.settings import Settings

    engine = make_engine(Settings(_env_file=None, database_url=database_url))
    queries = {
        "attempts": "SELECT count(*) FROM attempt WHERE quiz_id = :q",
        "submitted": "SELECT count(*) FROM attempt WHERE quiz_id = :q AND status = 'submitted'"
        " AND score IS NOT NULL",
        "answers": "SELECT count(*) FROM answer a JOIN attempt_question aq"
        " ON aq.id = a.attempt_question_id JOIN attempt t ON t.id = aq.attempt_id"
        " WHERE t.quiz_id = :q",
        "duplicate_answers": "SELECT count(*) FROM (SELECT attempt_question_id FROM answer"
        " GROUP BY attempt_question_id HAVING count(*) > 1) d",
        "learners_with_two_attempts": "SELECT count(*) FROM (SELECT user_id FROM attempt"
        " WHERE quiz_id = :q GROUP BY user_id HAVING count(*) > 1) d",
    }
    try:
        async with engine.connect() as conn:
            return {
                name: int((await conn.execute(text(sql), {"q": quiz_id})).scalar_one())
                for name, sql in queries.items()
            }
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- load


def choices_of(body: dict[str, Any]) -> list[tuple[int, list[str]]]:
    """Each question's position and the labels its options are shown with (learners answer
    with the labels on their screen, never with the question's own option ids)."""
    questions = body.get("questions")
    if not isinstance(questions, list) or not questions:
        raise BenchError(f"the attempt has no questions: {str(body)[:300]}")
    return [
        (int(q["position"]), [str(o["id"]) for o in q["question"]["options"]]) for q in questions
    ]


async def learner(
    http: aiohttp.ClientSession,
    base: str,
    quiz_id: str,
    token: str,
    run: Run,
    resaves: int,
    rng: random.Random,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    async with http.post(f"{base}/api/v1/quizzes/{quiz_id}/attempts", headers=headers) as resp:
        body = await resp.json()
        run.start.record(started, resp.status, resp.status in (200, 201))
        if resp.status not in (200, 201):
            run.errors.append(f"start {resp.status}: {str(body)[:200]}")
            return
    attempt = body["id"]
    for position, labels in choices_of(body):
        for revision in range(1, resaves + 2):
            payload = {"response": {"choice": rng.choice(labels)}, "revision": revision}
            started = time.perf_counter()
            async with http.put(
                f"{base}/api/v1/attempts/{attempt}/answers/{position}",
                json=payload,
                headers=headers,
            ) as resp:
                await resp.read()
                run.save.record(started, resp.status, resp.status == 200)
                if resp.status != 200:
                    run.errors.append(f"save {resp.status}")
                else:
                    run.saves_done += 1
    started = time.perf_counter()
    async with http.post(f"{base}/api/v1/attempts/{attempt}/submit", headers=headers) as resp:
        await resp.read()
        run.submit.record(started, resp.status, resp.status == 200)
        if resp.status != 200:
            run.errors.append(f"submit {resp.status}")
    run.learners_done += 1


async def drive(
    base: str, quiz_id: str, tokens: list[str], resaves: int, say: Progress
) -> tuple[Run, float]:
    run = Run()
    connector = aiohttp.TCPConnector(limit=len(tokens) + 10)
    timeout = aiohttp.ClientTimeout(total=600)
    rng = random.Random(7)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def report() -> None:
            while True:
                await asyncio.sleep(2)
                say(
                    f"  {run.saves_done:,} answers saved, {run.learners_done:,}/{len(tokens):,}"
                    f" learners submitted, {len(run.errors)} errors"
                )

        reporter = asyncio.create_task(report())
        started = time.perf_counter()
        try:
            await asyncio.gather(
                *(learner(http, base, quiz_id, t, run, resaves, rng) for t in tokens)
            )
        finally:
            reporter.cancel()
        elapsed = time.perf_counter() - started
    return run, elapsed


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--time-limit", type=int, default=1800, help="seconds")
    parser.add_argument("--resaves", type=int, default=0, help="extra saves per question")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    say = Progress()
    secret = secrets.token_urlsafe(32)
    database_url = f"{args.postgres.rstrip('/')}/{BENCH_DATABASE}"
    drop = f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'
    asyncio.run(_admin_sql(args.postgres, drop, f'CREATE DATABASE "{BENCH_DATABASE}"'))
    flush_redis(args.redis)
    try:
        with tempfile.TemporaryDirectory(prefix="lms-bench-quiz-") as tmp:
            workdir = Path(tmp)
            env = {"DATABASE_URL": database_url, "REDIS_URL": args.redis}
            say(f"migrating {BENCH_DATABASE}")
            done = subprocess.run(
                [sys.executable, "-m", "lms_live", "migrate", "upgrade"],
                cwd=workdir,
                env=clean_env(env),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                raise BenchError(f"migration failed:\n{done.stdout}{done.stderr}")
            say(f"seeding {args.learners:,} enrolled learners and a {args.questions}-question quiz")
            seeded = asyncio.run(
                seed(
                    database_url,
                    learners=args.learners,
                    questions=args.questions,
                    time_limit=args.time_limit,
                )
            )
            tokens = learner_tokens(secret, seeded["learner_ids"])
            port = free_port()
            server_env = lms_env(secret, args.log_level, "json", env | {"TASK_BROKER": "memory"})
            with running(
                "lms_live", lms_server_argv(port), cwd=workdir, env=server_env, port=port
            ) as server:
                server.wait_for("/api/v1/ready")
                cpu_before = process_cpu_seconds(server.process.pid)
                say(f"{args.learners:,} learners start, answer and submit at once")
                run, elapsed = asyncio.run(
                    drive(server.base, seeded["quiz_id"], tokens, args.resaves, say)
                )
                cpu_after = process_cpu_seconds(server.process.pid)
                if server.process.poll() is not None:
                    raise BenchError("the server died:\n" + log_tail(server.log_path))
            counts = asyncio.run(database_counts(database_url, seeded["quiz_id"]))
    finally:
        asyncio.run(_admin_sql(args.postgres, drop))
        flush_redis(args.redis)
    cpu = (cpu_after - cpu_before) if cpu_before is not None and cpu_after is not None else None
    print(report(args, run, elapsed, counts, cpu))
    expected = args.learners * args.questions
    problems = []
    if counts["answers"] != expected:
        problems.append(f"answers stored {counts['answers']:,} != {expected:,}")
    if counts["submitted"] != args.learners:
        problems.append(f"graded attempts {counts['submitted']:,} != {args.learners:,}")
    if counts["duplicate_answers"] or counts["learners_with_two_attempts"]:
        problems.append("duplicates found")
    if run.errors:
        problems.append(f"{len(run.errors)} failed requests, first: {run.errors[0]}")
    for problem in problems:
        say(f"CHECK FAILED: {problem}")
    return 1 if problems else 0


def learner_tokens(secret: str, learner_ids: list[uuid.UUID]) -> list[str]:
    from lms_live.core.security import TokenCodec
    from lms_live.settings import Settings

    default_url = Settings.model_fields["public_url"].default
    settings = Settings(_env_file=None, secret_key=secret, public_url=default_url)
    codec = TokenCodec.from_settings(settings)
    return [codec.issue(user_id=uid, role="student") for uid in learner_ids]


def report(
    args: argparse.Namespace, run: Run, elapsed: float, counts: dict[str, int], cpu: float | None
) -> str:
    saves = len(run.save.latencies)
    lines = [
        f"lms_live quiz benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {cpu_description()}; one server process, PostgreSQL + Redis on the same "
        "machine, the load generator too",
        f"load: {args.learners:,} learners at once, {args.questions} questions each, "
        f"{args.resaves + 1} save(s) per question; run took {elapsed:.1f} s"
        + (f"; server CPU {cpu:.1f} s" if cpu is not None else ""),
        "",
        "| request | count | per second | p50 ms | p99 ms | failed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, timings in (("start", run.start), ("autosave", run.save), ("submit", run.submit)):
        count = len(timings.latencies)
        lines.append(
            f"| {name} | {count:,} | {count / elapsed:,.0f} | {timings.percentile(0.5):,.1f} | "
            f"{timings.percentile(0.99):,.1f} | {sum(timings.failures.values()):,} |"
        )
    lines += [
        "",
        f"answers saved per second over the run: {saves / elapsed:,.0f}",
        f"database afterwards: {counts['answers']:,} answers stored (expected "
        f"{args.learners * args.questions:,}), {counts['submitted']:,} attempts submitted and "
        f"graded, {counts['duplicate_answers']} duplicated answers, "
        f"{counts['learners_with_two_attempts']} learners with two attempts",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
