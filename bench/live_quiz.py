"""Live quiz benchmark: thousands of learners in one live session, against a bare reference.

Run by hand (`make bench-live`, or `.venv/bin/python bench/live_quiz.py --help`). For each size
(1,000, 5,000 and 10,000 learners; `--quick`: 1,000 only) it starts, on this machine, two
lms_live instances on one PostgreSQL database (`lms_bench_live`, created, migrated, seeded and
dropped here) and one Redis, and two instances of the bare python-socketio server
(bench/live_bare.py) on the same Redis, and plays the same session on both pairs back to back
(which pair goes first alternates by size):

1. every learner joins by REST (`POST /api/v1/live/join`, as a guest with a nickname) and
   connects its socket to instance `n % 2`: raw websocket clients, a few thousand per process
   (bench/live_clients.py); join time is the first join to the last socket connected;
2. the host (one python-socketio client on instance 0) sends `host`, then `start` and later
   `next` for each of the quiz's 3 questions: fan-out is `question_opened` received minus its
   `opened_at` (server clock = learners' clock: same machine);
3. every learner answers once, at a random moment in the 2 s after receiving the question:
   ack latency (send -> ack) p50/p99 and answers per second (acks / first send to last ack);
   as soon as every ack is in, the rows in `live_answer` are counted: lost = accepted acks
   without a row, duplicated = rows beyond one per player (the constraint forbids them);
4. the host sends `close_question` (lms_live usually closed it already: everyone answered) and
   `next`: leaderboard latency is the `leaderboard` event received minus the time the host
   sent `next`.

Also: server RSS per learner (VmRSS of both instances after the joins minus before, divided
by the learners connected) and the longest collector pause while a question was open and over
the whole run (lms_live: its `lms_gc_pause_seconds` histogram on /metrics, so a bucket; bare:
timed exactly with gc.callbacks). Servers are restarted for each size, so RSS and collector
state start fresh. Progress goes to stderr, the tables to stdout. Exit status 1 when joins or
answers failed or an answer was lost or duplicated. Every subprocess is stopped on exit,
failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import sys

# `python bench/live_quiz.py` puts bench/ first on sys.path, where bench/http.py would shadow
# the standard library's `http`.
if os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.remove(sys.path[0])
if os.path.dirname(os.path.dirname(os.path.abspath(__file__))) not in sys.path:
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import asyncio
import json
import math
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import types
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.http import (
    BenchError,
    Progress,
    Server,
    _admin_sql,
    clean_env,
    cpu_description,
    free_ports,
    http_get,
    lms_env,
    lms_server_argv,
    percentile,
    running,
)
from bench.live_clients import Measures, WorkerPool, ws_url

BENCH_DATABASE = "lms_bench_live"
SIZES = (1000, 5000, 10000)
QUESTIONS = 3
WINDOW = 2.0
UNLIMITED_RATE = "100000000/minute"
REPO = Path(__file__).resolve().parent.parent
ANSWER_BUCKET = re.compile(r'^lms_live_answer_seconds_bucket\{le="([^"]+)"\}\s+(\S+)', re.M)
BATCH_BUCKET = re.compile(r'^lms_live_answer_batch_seconds_bucket\{le="([^"]+)"\}\s+(\S+)', re.M)
GC_BUCKET = re.compile(
    r'^lms_gc_pause_seconds_bucket\{generation="([^"]*)",le="([^"]+)"\}\s+(\S+)', re.M
)


def _terminate(signum: int, frame: types.FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `finally` blocks that stop everything


# --------------------------------------------------------------------------- results


@dataclass
class CaseResult:
    """Figures of one server pair at one size."""

    name: str
    learners: int
    joined: int = 0
    join_failed: int = 0
    join_s: float = math.nan
    fanout: list[float] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)
    answers_per_s: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    missing_fanout: int = 0
    boards: list[float] = field(default_factory=list)
    lost: int | None = None
    duplicated: int | None = None
    rss_kb_per_learner: float = math.nan
    gc_open: GcMax | None = None
    gc_run: GcMax | None = None
    server_answer_ms: tuple[float, float] | None = None  # lms_live only: p50, p99 buckets
    batch_ms: tuple[float, float] | None = None  # lms_live only: p50, p99 buckets
    disconnects: int = 0
    errors: list[str] = field(default_factory=list)

    def p(self, values: list[float], fraction: float) -> float:
        return percentile(sorted(values), fraction)


@dataclass(frozen=True)
class GcMax:
    """The longest collector pause seen: exact (`low` == `high`) or a histogram bucket."""

    low: float  # seconds
    high: float
    generation: str | None = None  # of the collection, when known

    def text(self) -> str:
        if self.high == 0:
            return "none"
        gen = f" (gen {self.generation})" if self.generation is not None else ""
        if self.low == self.high:
            return f"{self.high * 1000:.1f} ms{gen}"
        if math.isinf(self.high):
            return f"> {self.low * 1000:g} ms{gen}"
        return f"{self.low * 1000:g}-{self.high * 1000:g} ms{gen}"


def worst(*found: GcMax | None) -> GcMax | None:
    """The larger of pauses (None: not measured)."""
    known = [g for g in found if g is not None]
    return max(known, key=lambda g: (g.high, g.low)) if known else None


# --------------------------------------------------------------------------- server pairs


def rss_kb(pid: int) -> int:
    """Resident set size of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for process {pid}")


class Pair:
    """Two instances of one server on one Redis: what a case needs from them."""

    name = "?"

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers

    def rss_kb(self) -> int:
        return sum(rss_kb(s.process.pid) for s in self.servers)

    def check_alive(self) -> None:
        for server in self.servers:
            if server.process.poll() is not None:
                raise BenchError(f"{server.name} died (log: {server.log_path})")

    async def create_session(self) -> tuple[str, str]:
        """(session id, join code) of a fresh session."""
        return "bare", "BARE00"

    def host_auth(self) -> dict[str, str]:
        return {"token": "host"}

    async def gc_snapshot(self) -> Any:
        """What `gc_between` compares."""
        return time.time()

    async def gc_between(self, before: Any, after: Any) -> GcMax | None:
        """The longest pause between two snapshots."""
        return None

    async def answers(self, session_id: str, index: int) -> list[str] | None:
        """Player ids of the stored answers to a question (None: nothing stored)."""
        return None


class BarePair(Pair):
    name = "bare"

    async def gc_snapshot(self) -> float:
        return time.time()

    async def gc_between(self, before: Any, after: Any) -> GcMax | None:
        longest = 0.0
        for server in self.servers:
            status, body = await asyncio.to_thread(http_get, server.base + "/stats")
            if status != 200:
                raise BenchError(f"{server.name} /stats answered {status}")
            pauses = json.loads(body)["pauses"]
            longest = max([longest, *(s for t, s in pauses if before <= t <= after)])
        return GcMax(longest, longest)


class LmsPair(Pair):
    name = "lms_live"

    def __init__(
        self,
        servers: list[Server],
        *,
        quiz_id: str,
        host_token: str,
        metrics_token: str,
        database_url: str,
    ) -> None:
        super().__init__(servers)
        self.quiz_id = quiz_id
        self.host_token = host_token
        self.metrics_token = metrics_token
        self.database_url = database_url

    def host_auth(self) -> dict[str, str]:
        return {"token": self.host_token}

    async def create_session(self) -> tuple[str, str]:
        url = f"{self.servers[0].base}/api/v1/quizzes/{self.quiz_id}/live-sessions"
        options = {"guests": True, "nickname_filter": False, "seconds_per_question": 60}
        headers = {"Authorization": f"Bearer {self.host_token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, json=options, headers=headers) as response,
        ):
            body = await response.json()
            if response.status != 201:
                raise BenchError(f"creating the session: {response.status} {body}")
        return str(body["id"]), str(body["code"])

    async def gc_snapshot(self) -> list[dict[tuple[str, float], float]]:
        snapshot = []
        for server in self.servers:
            status, body = await asyncio.to_thread(
                http_get,
                server.base + "/metrics",
                {"Authorization": f"Bearer {self.metrics_token}"},
            )
            if status != 200:
                raise BenchError(f"{server.name} /metrics answered {status}")
            snapshot.append(
                {
                    (gen, float(le)): float(count)
                    for gen, le, count in GC_BUCKET.findall(body.decode())
                }
            )
        return snapshot

    async def answer_quantiles(
        self, pattern: re.Pattern[str] = ANSWER_BUCKET
    ) -> tuple[float, float] | None:
        """Server-side answer latency (receipt to ack; or with BATCH_BUCKET, one batch's
        judging, insert and commit) p50 and p99, as bucket upper bounds in ms, over both
        instances' whole run."""
        buckets: dict[float, float] = {}
        for server in self.servers:
            status, body = await asyncio.to_thread(
                http_get,
                server.base + "/metrics",
                {"Authorization": f"Bearer {self.metrics_token}"},
            )
            if status != 200:
                return None
            for le, count in pattern.findall(body.decode()):
                buckets[float(le)] = buckets.get(float(le), 0.0) + float(count)
        bounds = sorted(buckets)
        if not bounds or buckets[bounds[-1]] == 0:
            return None
        total = buckets[bounds[-1]]

        def quantile(q: float) -> float:
            return next(le for le in bounds if buckets[le] >= q * total) * 1000

        return quantile(0.5), quantile(0.99)

    async def gc_between(self, before: Any, after: Any) -> GcMax | None:
        found: GcMax | None = None
        for old, new in zip(before, after, strict=True):
            if not new:
                return None
            for gen in sorted({g for g, _ in new}):
                bounds = sorted(le for g, le in new if g == gen)
                diff = {le: new[(gen, le)] - old.get((gen, le), 0.0) for le in bounds}
                total = diff[bounds[-1]]
                if total <= 0:
                    found = worst(found, GcMax(0.0, 0.0))
                    continue
                for n, le in enumerate(bounds):
                    if diff[le] >= total:
                        found = worst(found, GcMax(bounds[n - 1] if n else 0.0, le, gen))
                        break
        return found

    async def answers(self, session_id: str, index: int) -> list[str] | None:
        import asyncpg

        url = self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        conn = await asyncpg.connect(url, timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT a.player_id FROM live_answer a JOIN live_question q"
                " ON q.id = a.question_id WHERE q.session_id = $1 AND q.position = $2",
                uuid.UUID(session_id),
                index,
            )
        finally:
            await conn.close()
        return [str(r["player_id"]) for r in rows]


# --------------------------------------------------------------------------- one case


async def call(host: Any, event: str, data: dict[str, Any], *, allow: tuple[str, ...] = ()) -> Any:
    """An acked host event; fails the run on an error ack not in `allow`."""
    ack = await host.call(event, data, namespace="/live", timeout=120)
    if not (isinstance(ack, dict) and ack.get("ok")):
        code = ack.get("error", {}).get("code") if isinstance(ack, dict) else None
        if code not in allow:
            raise BenchError(f"host `{event}` refused: {ack}")
    return ack


def start_profilers(pair: Pair, directory: str | None, name: str) -> list[subprocess.Popen[bytes]]:
    """py-spy on each server of the pair while a question is open (`--profile`)."""
    if not directory:
        return []
    Path(directory).mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--nonblocking",
                "-r",
                "200",
                "-f",
                "raw",
                "-p",
                str(server.process.pid),
                "-o",
                f"{directory}/{name}.{n}.raw",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n, server in enumerate(pair.servers)
    ]


def stop_profilers(profilers: list[subprocess.Popen[bytes]]) -> None:
    """Stop the samplers (SIGINT: py-spy writes what it sampled) and wait for their files."""
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
    for profiler in profilers:
        profiler.wait(30)


async def run_case(
    pair: Pair, learners: int, args: argparse.Namespace, say: Progress
) -> CaseResult:
    """One session of `learners` on one pair of servers."""
    import socketio

    result = CaseResult(pair.name, learners)
    session_id, code = await pair.create_session()
    pool = WorkerPool(learners, args.per_process)
    host = socketio.AsyncClient(reconnection=False)
    pool.start()
    try:
        rss_before = pair.rss_kb()
        gc_start = await pair.gc_snapshot()
        bases = [s.base for s in pair.servers]
        plan = [(n, bases[n % 2], ws_url(bases[n % 2])) for n in range(learners)]
        for w in range(pool.count):
            pool.send(
                w,
                {
                    "cmd": "join",
                    "learners": plan[w :: pool.count],
                    "code": code,
                    "concurrency": args.concurrency,
                    "window": WINDOW,
                },
            )
        counts: dict[int, int] = {}
        last_said = [0.0]

        def progress(w: int, message: dict[str, Any]) -> None:
            counts[w] = int(message["joined"])
            if time.monotonic() - last_said[0] >= 2:
                last_said[0] = time.monotonic()
                say(f"  {pair.name}: {sum(counts.values()):,}/{learners:,} learners connected")

        joined = await pool.collect("joined", args.join_timeout, on_progress=progress)
        if len(joined) < pool.count:
            raise BenchError(f"{pair.name}: joins did not finish in {args.join_timeout:.0f}s")
        result.joined = sum(m["joined"] for m in joined.values())
        result.join_failed = sum(m["failed"] for m in joined.values())
        result.join_s = max(m["finished"] for m in joined.values()) - min(
            m["started"] for m in joined.values()
        )
        for m in joined.values():
            result.errors += m["errors"]
        say(
            f"  {pair.name}: {result.joined:,} learners connected in {result.join_s:.1f}s"
            f" ({result.join_failed:,} failed)"
        )
        if result.joined == 0:
            raise BenchError(f"{pair.name}: no learner connected: {result.errors[:3]}")
        await asyncio.sleep(1.0)  # let the joins' garbage and the last presence writes settle
        result.rss_kb_per_learner = (pair.rss_kb() - rss_before) / result.joined
        pair.check_alive()

        await host.connect(
            pair.servers[0].base,
            namespaces=["/live"],
            auth=pair.host_auth(),
            transports=["websocket"],
            wait_timeout=30,
        )
        await call(host, "host", {"session_id": session_id})
        board_sent: dict[int, float] = {}
        gc_open: GcMax | None = None
        stored: dict[int, list[str] | None] = {}
        for index in range(QUESTIONS):
            before = await pair.gc_snapshot()
            profilers = start_profilers(pair, args.profile, f"{pair.name}-{learners}-q{index + 1}")
            await call(host, "start" if index == 0 else "next", {})
            answered = await pool.collect("answered", WINDOW + args.answer_timeout, index=index)
            stop_profilers(profilers)
            stored[index] = await pair.answers(session_id, index)
            gc_open = worst(gc_open, await pair.gc_between(before, await pair.gc_snapshot()))
            say(
                f"  {pair.name}: question {index + 1}: every learner's ack in"
                f" {len(answered)}/{pool.count} processes"
            )
            await call(host, "close_question", {}, allow=("wrong_phase",))
            board_sent[index] = time.time()
            await call(host, "next", {})
            boards = await pool.collect("leaderboard", args.answer_timeout, index=index)
            if len(boards) < pool.count:
                say(f"  {pair.name}: question {index + 1}: some learners got no leaderboard")
            pair.check_alive()
        await call(host, "end", {}, allow=("wrong_phase",))
        result.gc_open = gc_open
        result.gc_run = await pair.gc_between(gc_start, await pair.gc_snapshot())
        quantiles = getattr(pair, "answer_quantiles", None)
        if quantiles is not None:
            result.server_answer_ms = await quantiles()
            result.batch_ms = await quantiles(BATCH_BUCKET)
        measures = await pool.results()
    finally:
        if host.connected:
            await host.disconnect()
        try:
            await pool.close()
        finally:
            pool.kill()
    merge(result, measures, board_sent, stored)
    return result


def merge(
    result: CaseResult,
    measures: list[Measures],
    board_sent: dict[int, float],
    stored: dict[int, list[str] | None],
) -> None:
    """Fold the processes' measures into the case's figures."""
    for index in range(QUESTIONS):
        acks = 0
        first, last = math.inf, -math.inf
        accepted: list[str] = []
        for m in measures:
            fanout = m.fanout_ms.get(index, [])
            result.fanout += fanout
            result.acks += m.ack_ms.get(index, [])
            acks += len(m.ack_ms.get(index, []))
            result.statuses.update(m.statuses.get(index, Counter()))
            result.sent += m.sent[index]
            accepted += m.accepted.get(index, [])
            if index in m.first_sent:
                first = min(first, m.first_sent[index])
            if index in m.last_ack:
                last = max(last, m.last_ack[index])
            result.boards += [(t - board_sent[index]) * 1000 for t in m.board_at.get(index, [])]
        result.missing_fanout += result.joined - sum(
            len(m.fanout_ms.get(index, [])) for m in measures
        )
        if last > first:
            result.answers_per_s.append(acks / (last - first))
        rows = stored.get(index)
        if rows is not None:
            present = set(rows)
            result.lost = (result.lost or 0) + sum(1 for p in accepted if p not in present)
            result.duplicated = (result.duplicated or 0) + len(rows) - len(present)
    for m in measures:
        result.disconnects += m.disconnects
        result.errors += m.errors


# --------------------------------------------------------------------------- servers and data


async def seed(database_url: str) -> dict[str, Any]:
    """An instructor, a published course and a published quiz of 3 single-choice questions."""
    from sqlalchemy import insert

    from lms_live.auth.models import User
    from lms_live.core.db import Database, make_engine
    from lms_live.courses.models import Course, CourseStatus
    from lms_live.quizzes.models import Question, QuestionVersion, Quiz, QuizSlot
    from lms_live.settings import Settings

    engine = make_engine(Settings(_env_file=None, database_url=database_url))
    teacher_id, course_id, quiz_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    question_ids = [uuid.uuid4() for _ in range(QUESTIONS)]
    body = {
        "type": "single_choice",
        "options": [{"id": o, "text": f"Option {o}", "correct": o == "a"} for o in "abcd"],
    }
    try:
        async with Database.from_engine(engine).transaction() as session:
            await session.execute(
                insert(User),
                [
                    {
                        "id": teacher_id,
                        "email": "teacher@bench-live.example.org",
                        "full_name": "Bench Teacher",
                        "password_hash": "x",
                        "role": "instructor",
                    }
                ],
            )
            await session.execute(
                insert(Course),
                [
                    {
                        "id": course_id,
                        "slug": "bench-live-course",
                        "title": "Bench live course",
                        "owner_id": teacher_id,
                        "status": CourseStatus.PUBLISHED.value,
                        "published_at": datetime.now(UTC),
                    }
                ],
            )
            await session.execute(
                insert(Quiz),
                [
                    {
                        "id": quiz_id,
                        "course_id": course_id,
                        "title": "Bench live quiz",
                        "published": True,
                        "review_policy": {},
                    }
                ],
            )
            await session.execute(
                insert(Question),
                [
                    {
                        "id": q,
                        "course_id": course_id,
                        "title": f"Q{n + 1}",
                        "created_by": teacher_id,
                    }
                    for n, q in enumerate(question_ids)
                ],
            )
            await session.execute(
                insert(QuestionVersion),
                [
                    {
                        "question_id": q,
                        "version": 1,
                        "type": "single_choice",
                        "prompt": f"Question {n + 1}?",
                        "points": 1.0,
                        "body": body,
                    }
                    for n, q in enumerate(question_ids)
                ],
            )
            await session.execute(
                insert(QuizSlot),
                [
                    {"quiz_id": quiz_id, "position": n, "question_id": q}
                    for n, q in enumerate(question_ids)
                ],
            )
    finally:
        await engine.dispose()
    return {"quiz_id": str(quiz_id), "teacher_id": teacher_id}


def instructor_token(secret: str, teacher_id: uuid.UUID) -> str:
    """An access token of the seeded instructor the servers accept (same SECRET_KEY)."""
    from lms_live.core.security import TokenCodec
    from lms_live.settings import Settings

    default_url = Settings.model_fields["public_url"].default
    settings = Settings(_env_file=None, secret_key=secret, public_url=default_url)
    return TokenCodec.from_settings(settings).issue(user_id=teacher_id, role="instructor")


@dataclass
class Setup:
    """What the servers of every size share."""

    workdir: Path
    secret: str
    metrics_token: str
    database_url: str | None = None
    quiz_id: str = ""
    host_token: str = ""
    channel: str = field(default_factory=lambda: f"lms:bench_live:{secrets.token_hex(4)}")


def start_pairs(
    stack: ExitStack, setup: Setup, args: argparse.Namespace, say: Progress
) -> list[Pair]:
    """Both instances of each server under test, started and answering."""
    ports = free_ports(4)
    pairs: list[Pair] = []
    if args.only in ("both", "bare"):
        servers = []
        for n, port in enumerate(ports[:2]):
            argv = [
                sys.executable,
                "-m",
                "bench.live_bare",
                "--port",
                str(port),
                "--redis",
                args.redis,
                "--channel",
                setup.channel + ":bare",
            ]
            env = clean_env({"PYTHONPATH": str(REPO)})
            servers.append(
                stack.enter_context(
                    running(f"bare-{n}", argv, cwd=setup.workdir, env=env, port=port)
                )
            )
        for server in servers:
            server.wait_for("/ready")
        pairs.append(BarePair(servers))
    if args.only in ("both", "lms_live"):
        assert setup.database_url is not None
        env = lms_env(
            setup.secret,
            args.log_level,
            "json",
            {
                "DATABASE_URL": setup.database_url,
                "REDIS_URL": args.redis,
                "SOCKETIO_CHANNEL": setup.channel,
                "TASK_BROKER": "memory",
                "RATE_LIMIT_ENABLED": "false",
                "LIVE_JOIN_RATE": UNLIMITED_RATE,
                "METRICS_TOKEN": setup.metrics_token,
                **dict(item.split("=", 1) for item in args.env),
            },
        )
        servers = [
            stack.enter_context(
                running(
                    f"lms_live-{n}", lms_server_argv(port), cwd=setup.workdir, env=env, port=port
                )
            )
            for n, port in enumerate(ports[2:])
        ]
        for server in servers:
            server.wait_for("/api/v1/ready")
        pairs.append(
            LmsPair(
                servers,
                quiz_id=setup.quiz_id,
                host_token=setup.host_token,
                metrics_token=setup.metrics_token,
                database_url=setup.database_url,
            )
        )
    say(f"servers up: {', '.join(f'{p.name} on {[s.port for s in p.servers]}' for p in pairs)}")
    return pairs


def prepare_database(setup: Setup, args: argparse.Namespace, say: Progress) -> None:
    """Create, migrate and seed the bench database."""
    drop = f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'
    asyncio.run(_admin_sql(args.postgres, drop, f'CREATE DATABASE "{BENCH_DATABASE}"'))
    setup.database_url = f"{args.postgres.rstrip('/')}/{BENCH_DATABASE}"
    say(f"migrating {BENCH_DATABASE}")
    done = subprocess.run(
        [sys.executable, "-m", "lms_live", "migrate", "upgrade"],
        cwd=setup.workdir,
        env=clean_env({"DATABASE_URL": setup.database_url, "REDIS_URL": args.redis}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"migration failed:\n{done.stdout}{done.stderr}")
    seeded = asyncio.run(seed(setup.database_url))
    setup.quiz_id = seeded["quiz_id"]
    setup.host_token = instructor_token(setup.secret, seeded["teacher_id"])


def clean_redis(url: str, channel: str) -> None:
    """Delete the keys of the bench's sessions (every live key also has a TTL)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        for pattern in ("lms:live:*", "lms:stream:live:*"):
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)
    finally:
        client.close()


# --------------------------------------------------------------------------- report


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _ratio(ours: float, bare: float) -> str:
    if math.isnan(ours) or math.isnan(bare) or bare <= 0:
        return ""
    return f"{ours / bare:.2f}x"


def table(learners: int, results: list[CaseResult]) -> str:
    """The plain-text table of one size."""
    by = {r.name: r for r in results}
    names = [n for n in ("lms_live", "bare") if n in by]
    rows: list[tuple[str, list[str], str]] = []

    def number(label: str, get: Any, fmt: Any = _ms, ratio: bool = True) -> None:
        values = {n: float(get(by[n])) for n in names}
        cells = [fmt(values[n]) for n in names]
        both = ratio and len(names) == 2
        rows.append((label, cells, _ratio(values["lms_live"], values["bare"]) if both else ""))

    def text(label: str, get: Any) -> None:
        rows.append((label, [str(get(by[n])) for n in names], ""))

    number("learners connected", lambda r: r.joined, lambda v: f"{v:,.0f}", ratio=False)
    number("join time for all, s", lambda r: r.join_s, lambda v: f"{v:.1f}")
    number("fan-out p50, ms", lambda r: r.p(r.fanout, 0.5))
    number("fan-out p99, ms", lambda r: r.p(r.fanout, 0.99))
    number("answer ack p50, ms", lambda r: r.p(r.acks, 0.5))
    number("answer ack p99, ms", lambda r: r.p(r.acks, 0.99))
    text(
        "server-side answer p50 / p99, ms <=",
        lambda r: (
            f"{r.server_answer_ms[0]:g} / {r.server_answer_ms[1]:g}"
            if r.server_answer_ms
            else "n/a"
        ),
    )
    text(
        "answer batch commit p50 / p99, ms <=",
        lambda r: f"{r.batch_ms[0]:g} / {r.batch_ms[1]:g}" if r.batch_ms else "n/a",
    )
    number(
        "answers/s (burst)",
        lambda r: min(r.answers_per_s) if r.answers_per_s else math.nan,
        lambda v: "n/a" if math.isnan(v) else f"{v:,.0f}",
    )
    text("answers sent / accepted", lambda r: f"{r.sent:,} / {r.statuses['accepted']:,}")
    text(
        "lost / duplicated (DB)",
        lambda r: "n/a" if r.lost is None else f"{r.lost} / {r.duplicated}",
    )
    number("leaderboard p50, ms", lambda r: r.p(r.boards, 0.5))
    number("leaderboard p99, ms", lambda r: r.p(r.boards, 0.99))
    number("server RSS per learner, KB", lambda r: r.rss_kb_per_learner, lambda v: f"{v:.1f}")
    text("longest GC pause, question open", lambda r: r.gc_open.text() if r.gc_open else "n/a")
    text("longest GC pause, whole run", lambda r: r.gc_run.text() if r.gc_run else "n/a")
    widths = [max(len(r[0]) for r in rows), *([16] * len(names)), 7]
    header = ["", *names, "ratio" if len(names) == 2 else ""]
    lines = [f"{learners:,} learners in one session, two instances each"]
    lines.append(
        "  ".join(
            h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)
        )
    )
    for label, cells, ratio in rows:
        parts = [label.ljust(widths[0]), *(c.rjust(16) for c in cells), ratio.rjust(7)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def checks(results: list[CaseResult]) -> tuple[list[str], list[str]]:
    """(failures that fail the run, targets missed)."""
    failures, misses = [], []
    by = {(r.name, r.learners): r for r in results}
    for r in results:
        tag = f"{r.name} at {r.learners:,}"
        if r.join_failed or r.joined < r.learners:
            failures.append(f"{tag}: {r.learners - r.joined:,} learners did not connect")
        refused = r.sent - r.statuses["accepted"]
        if refused or r.sent < r.joined * QUESTIONS:
            failures.append(
                f"{tag}: {r.sent:,} answers sent for {r.joined * QUESTIONS:,}, {refused:,} not"
                f" accepted ({dict(r.statuses)})"
            )
        if r.lost or r.duplicated:
            failures.append(f"{tag}: {r.lost} answers lost, {r.duplicated} duplicated")
        if r.missing_fanout or r.disconnects:
            failures.append(
                f"{tag}: {r.missing_fanout} questions not received, {r.disconnects} disconnects"
            )
    for (name, learners), r in by.items():
        if name != "lms_live":
            continue
        bare = by.get(("bare", learners))
        fan99, ack99 = r.p(r.fanout, 0.99), r.p(r.acks, 0.99)
        if learners == 5000:
            if fan99 > 300:
                misses.append(f"fan-out p99 at 5,000 is {fan99:.0f} ms (target <= 300)")
            if bare is not None and fan99 > 1.5 * bare.p(bare.fanout, 0.99):
                misses.append(
                    f"fan-out p99 at 5,000 is {fan99 / bare.p(bare.fanout, 0.99):.2f}x bare"
                    " (target <= 1.5x)"
                )
            if ack99 > 250:
                misses.append(f"answer ack p99 at 5,000 is {ack99:.0f} ms (target <= 250)")
            if r.rss_kb_per_learner > 40:
                misses.append(f"RSS per learner {r.rss_kb_per_learner:.1f} KB (target <= 40)")
            if r.gc_open is not None and r.gc_open.low >= 0.1:
                misses.append(f"GC pause while open {r.gc_open.text()} (target <= 100 ms)")
        if learners == 10000 and fan99 > 600:
            misses.append(f"fan-out p99 at 10,000 is {fan99:.0f} ms (target <= 600)")
    return failures, misses


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 learners only (~1 minute)")
    parser.add_argument("--sizes", help="comma-separated learner counts (default 1000,5000,10000)")
    parser.add_argument("--only", choices=("both", "bare", "lms_live"), default="both")
    parser.add_argument("--per-process", type=int, default=1250, help="learners per process")
    parser.add_argument("--concurrency", type=int, default=32, help="joins at once per process")
    parser.add_argument("--join-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument("--answer-timeout", type=float, default=60.0, help="seconds")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the lms_live servers (repeatable), e.g. LIVE_GC_FREEZE=false",
    )
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="sample each server with py-spy while each question is open (raw stacks in DIR)",
    )
    args = parser.parse_args(argv)
    if args.sizes:
        args.size_list = [int(s) for s in args.sizes.split(",")]
    else:
        args.size_list = [1000] if args.quick else list(SIZES)
    return args


def run(args: argparse.Namespace) -> int:
    say = Progress()
    with tempfile.TemporaryDirectory(prefix="lms-bench-live-") as tmp:
        setup = Setup(Path(tmp), secrets.token_urlsafe(48), secrets.token_urlsafe(24))
        say(
            f"{cpu_description()}; servers, PostgreSQL, Redis and learners share them. "
            f"sizes {args.size_list}, {QUESTIONS} questions each, answers within {WINDOW:.0f}s"
        )
        results: list[CaseResult] = []
        load_before = os.getloadavg()[0]
        try:
            if args.only != "bare":
                prepare_database(setup, args, say)
            for n, learners in enumerate(args.size_list):
                with ExitStack() as stack:
                    pairs = start_pairs(stack, setup, args, say)
                    if n % 2:
                        pairs.reverse()
                    for pair in pairs:
                        say(f"{pair.name}: {learners:,} learners")
                        results.append(asyncio.run(run_case(pair, learners, args, say)))
                    say("stopping the servers")
                sized = [r for r in results if r.learners == learners]
                print(table(learners, sized) + "\n", flush=True)
        finally:
            if setup.database_url is not None:
                drop = f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'
                asyncio.run(_admin_sql(args.postgres, drop))
            clean_redis(args.redis, setup.channel)
    print(
        f"lms_live live quiz benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"{cpu_description()}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    failures, misses = checks(results)
    for miss in misses:
        print(f"target missed: {miss}")
    for failure in failures:
        print(f"CHECK FAILED: {failure}")
    for r in results:
        for error in r.errors[:3]:
            say(f"{r.name} at {r.learners:,}: {error}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench/live_quiz.py: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
