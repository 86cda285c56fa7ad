"""Sign-in benchmark: bcrypt logins, token-authenticated reads, and the event loop meanwhile.

Run by hand (`.venv/bin/python bench/auth.py`, `--help` for the options). Against one
`python -m lms_live serve` process on PostgreSQL (database `lms_bench_auth`, created, migrated
and dropped here) and Redis (DB 12, flushed before and after), with BCRYPT_ROUNDS=12 (the
production default), rate limits out of the way (100000000/minute) and LOGIN_MAX_FAILURES so
high that the sign-in throttle never refuses anyone, it measures:

1. `POST /api/v1/auth/login` with wrk and a Lua script cycling through the demo learners
   (`learner001@...`), at 4 and 16 connections: logins/s, p50/p99, server CPU per login
   (counted by the server itself, after it has gone idle again, so logins still in flight
   when wrk stops are neither lost nor half counted), the server's threads (and how many ran
   at once) and the machine's busy CPUs. bcrypt runs through `asyncio.to_thread`, i.e. in the
   loop's default executor. 16 connections run twice: alone, and with the probe of (3).
2. `GET /api/v1/users/me` (token + one database read) and `GET /api/v1/system/whoami` (token
   only) at 32 connections with an access token from one real login.
3. `GET /api/v1/health` from a second wrk (1 connection, one request per `--probe-delay-ms`)
   while the logins at 16 connections run, and the same probe against the idle server: if
   bcrypt held the event loop (or the GIL), the probe's p99 would jump to hundreds of ms.

The accounts are created by `python -m lms_live demo --learners N` with BCRYPT_ROUNDS=4
(seconds instead of minutes), then their password hashes are replaced by one bcrypt-12 hash
of the same password made by `lms_live.core.security.hash_password`: every login then costs
exactly what a production login costs. Their addresses are moved from `demo.lms-live.test`
to `lms-bench.example.com`, because the API's email validation refuses `.test` addresses.

Every case runs once per round (`--rounds`; the login cases in reverse order in even rounds);
the table shows medians over the rounds. Before each round it waits (up to `--quiet-wait` s)
until other work on the machine uses at most `--quiet-below` CPUs: bcrypt needs every CPU, and
other people's test runs on a shared VM would otherwise be measured as slow logins. Progress
goes to stderr, the table (Markdown) to stdout. The server and wrk share the machine's CPUs.
"""

from __future__ import annotations

import os
import sys

# `python bench/auth.py` puts bench/ first on sys.path, where bench/http.py would shadow the
# standard library's `http` package. Import bench/http.py as `bench.http` from the repository
# root instead (appended, so nothing there shadows an installed package).
if os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.remove(sys.path[0])
if os.path.dirname(os.path.dirname(os.path.abspath(__file__))) not in sys.path:
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import asyncio
import importlib.metadata
import json
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import types
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import bcrypt

from bench.http import (
    HEALTH,
    READY,
    WHOAMI,
    BenchError,
    LoadResult,
    LoadSpec,
    Progress,
    Server,
    _admin_sql,
    clean_env,
    cpu_description,
    flush_redis,
    free_port,
    http_get,
    lms_env,
    lms_server_argv,
    log_tail,
    parse_wrk,
    process_cpu_seconds,
    run_wrk,
    running,
    wrk_version,
)

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/users/me"
BENCHED_ROUTES = (LOGIN, ME, WHOAMI, HEALTH)
BENCH_DATABASE = "lms_bench_auth"
# The demo accounts are created as learnerNNN@demo.lms-live.test, which the API's email
# validation refuses (`.test` is a special-use name), so they are renamed to this domain.
LOGIN_DOMAIN = "lms-bench.example.com"
BCRYPT_ROUNDS = 12
LOGIN_MAX_FAILURES = 1_000_000
PROBE_RAMP = 3  # seconds between starting the logins and starting the health probe
WRK_TIMEOUT = 60  # seconds: a login waits seconds in the queue at 16 connections

T = TypeVar("T")

LOGIN_LUA = Template(
    """-- POST $path as learner001 ... learner$last_user (verified demo accounts), in turn.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local users = $users
local threads = 0
local user = 0

function setup(thread)
  thread:set("first_user", threads * 37)
  threads = threads + 1
end

function init(args)
  user = first_user or 0
end

function request()
  user = user % users + 1
  local body = string.format('{"email":"learner%03d@$domain","password":"$password"}', user)
  return wrk.format(nil, nil, nil, body)
end
"""
)

PROBE_LUA = Template(
    """-- One request, then a pause of $delay ms: a light probe, not a load.
function delay()
  return $delay
end
"""
)


# --------------------------------------------------------------------------------------------
# Small helpers.
# --------------------------------------------------------------------------------------------


def http_post_json(url: str, payload: dict[str, Any], timeout: float = 30.0) -> tuple[int, Any]:
    """(status, decoded JSON body) of one POST."""
    request = urllib.request.Request(  # noqa: S310 (our own server)
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status: int = response.status
            body = response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body[:300]


def running_threads(pid: int) -> int:
    """Threads of a process that are running or waiting for a CPU (state R) right now."""
    running = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "R":
            running += 1
    return running


def thread_count(pid: int) -> int | None:
    """Threads of a process (Linux /proc; None elsewhere or when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class MachineCpu:
    """Machine-wide CPU time so far (/proc/stat), to see whether the CPUs were all busy."""

    busy: float  # seconds of user + nice + system + irq + softirq, all CPUs
    steal: float  # seconds taken by the hypervisor for other guests
    at: float

    @classmethod
    def now(cls) -> MachineCpu | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
        except (OSError, IndexError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
        tick = os.sysconf("SC_CLK_TCK")
        busy = (user + nice + system + irq + softirq) / tick
        return cls(busy, steal / tick, time.perf_counter())

    def cores_until(self, later: MachineCpu | None) -> tuple[float, float] | None:
        """(busy, steal) in CPUs, averaged from this reading to `later`."""
        if later is None or later.at <= self.at:
            return None
        wall = later.at - self.at
        return (later.busy - self.busy) / wall, (later.steal - self.steal) / wall


def machine_busy(seconds: float = 2.0) -> float | None:
    """CPUs the whole machine keeps busy over `seconds` (None without /proc/stat)."""
    before = MachineCpu.now()
    time.sleep(seconds)
    cores = before.cores_until(MachineCpu.now()) if before else None
    return cores[0] if cores else None


def wait_idle(pid: int, timeout: float = 60.0) -> None:
    """Until the process uses (almost) no CPU: work still running after the load has stopped
    (bcrypt of requests whose client has gone) is finished, so it is counted."""
    deadline = time.perf_counter() + timeout
    last = process_cpu_seconds(pid)
    while last is not None and time.perf_counter() < deadline:
        time.sleep(0.5)
        now = process_cpu_seconds(pid)
        if now is None or now - last < 0.025:  # under 5% of one CPU for 0.5 s
            return
        last = now


def served(server: Server) -> dict[tuple[str, str], int]:
    """Responses the server has counted (its /metrics), by (route, status)."""
    status, body = http_get(server.base + "/metrics")
    if status != 200:
        raise BenchError(f"{server.name}: /metrics answered {status}")
    counts: dict[tuple[str, str], int] = {}
    pattern = re.compile(r"^lms_http_requests_total\{(.*)\}\s+([\d.e+]+)$")
    for line in body.decode().splitlines():
        match = pattern.match(line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            key = (labels.get("route", ""), labels.get("status", ""))
            counts[key] = counts.get(key, 0) + int(float(match.group(2)))
    return counts


def check_served(server: Server) -> dict[str, int]:
    """Every response on the benched routes was a 200; the number of 200s per route."""
    ok: dict[str, int] = dict.fromkeys(BENCHED_ROUTES, 0)
    for (route, status), count in served(server).items():
        if route not in ok or not count:
            continue
        if status != "200":
            raise BenchError(f"the server answered {count} requests on {route} with {status}")
        ok[route] += count
    return ok


def with_retries(
    what: str, attempt: Callable[[], T], attempts: int, wait: float, say: Progress
) -> T:
    """Run `attempt`; when it fails with BenchError, wait and try again (other engineers'
    unfinished work in lms_live/ can break start-up for a while)."""
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except BenchError as exc:
            if number == attempts:
                raise
            say(f"{what} failed (attempt {number}/{attempts}), retrying in {wait:.0f}s:\n{exc}")
            time.sleep(wait)
    raise AssertionError("unreachable")


def check_load(label: str, result: LoadResult) -> None:
    if result.bad_status:
        raise BenchError(f"{label}: {result.bad_status} responses were not 2xx/3xx")
    if result.socket_errors:
        raise BenchError(f"{label}: {result.socket_errors} socket errors (or timeouts)")
    if result.requests == 0:
        raise BenchError(f"{label}: no request completed")


def wrk_script_argv(
    url: str, script: Path, connections: int, duration: int, threads: int
) -> list[str]:
    return [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{duration}s",
        f"--timeout={WRK_TIMEOUT}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]


def finish_wrk(process: subprocess.Popen[str], timeout: float) -> LoadResult:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise BenchError("wrk did not finish in time") from None
    if process.returncode != 0:
        raise BenchError(f"wrk failed ({process.returncode}): {err or out}")
    return parse_wrk(out)


@contextmanager
def wrk_running(argv: list[str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


# --------------------------------------------------------------------------------------------
# bcrypt in this process: the ceiling for logins/s on this machine.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BcryptReference:
    single_ms: float  # median time of one check on one thread
    threads: int
    parallel_rate: float  # checks/s with `threads` threads checking at once


def bcrypt_reference(hashed: str, threads: int, seconds: float = 2.5) -> BcryptReference:
    target = hashed.encode("ascii")
    password = b"not the password"
    times: list[float] = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop or len(times) < 3:
        started = time.perf_counter()
        bcrypt.checkpw(password, target)
        times.append(time.perf_counter() - started)
    done = [0] * threads

    def worker(index: int, until: float) -> None:
        while time.perf_counter() < until:
            bcrypt.checkpw(password, target)
            done[index] += 1

    started = time.perf_counter()
    until = started + seconds
    workers = [threading.Thread(target=worker, args=(n, until)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    return BcryptReference(statistics.median(times) * 1e3, threads, sum(done) / elapsed)


# --------------------------------------------------------------------------------------------
# PostgreSQL + Redis, accounts, the server.
# --------------------------------------------------------------------------------------------


async def _bench_sql(pg_base: str, statement: str, *params: Any) -> list[Any]:
    """Run one statement in the bench database; its rows (or its status string)."""
    import asyncpg

    parts = urlsplit(pg_base.replace("postgresql+asyncpg://", "postgresql://", 1))
    conn = await asyncpg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        database=BENCH_DATABASE,
        timeout=10,
    )
    try:
        if statement.lstrip().upper().startswith("SELECT"):
            return list(await conn.fetch(statement, *params))
        return [await conn.execute(statement, *params)]
    finally:
        await conn.close()


@contextmanager
def bench_database(
    pg_base: str, redis_url: str, workdir: Path, args: argparse.Namespace, say: Progress
) -> Iterator[dict[str, str]]:
    """A fresh, migrated `lms_bench_auth` and a flushed Redis DB; both cleaned up afterwards."""
    drop = f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'
    env = {"DATABASE_URL": f"{pg_base.rstrip('/')}/{BENCH_DATABASE}", "REDIS_URL": redis_url}
    try:
        asyncio.run(_admin_sql(pg_base, drop, f'CREATE DATABASE "{BENCH_DATABASE}"'))
        flush_redis(redis_url)
    except Exception as exc:
        raise BenchError(
            f"PostgreSQL ({pg_base}) or Redis ({redis_url}) is unavailable: {exc}. "
            "Start them (`bash .ci/bootstrap`)."
        ) from exc
    try:

        def migrate() -> None:
            say(f"migrating {BENCH_DATABASE}")
            cli(["migrate", "upgrade"], workdir, env, "migrating " + BENCH_DATABASE)

        with_retries("migrating", migrate, args.retries, args.retry_wait, say)
        yield env
    finally:
        try:
            asyncio.run(_admin_sql(pg_base, drop))
            flush_redis(redis_url)
            say(f"dropped {BENCH_DATABASE}, flushed {redis_url}")
        except Exception as exc:
            say(f"cleanup of {BENCH_DATABASE} / {redis_url} failed: {exc}")


def cli(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    """Run `python -m lms_live <argv>` with a clean environment; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "lms_live", *argv],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def create_accounts(
    args: argparse.Namespace, env: dict[str, str], workdir: Path, password: str, say: Progress
) -> str:
    """The demo learners (verified), all with a bcrypt-12 hash of `password`; that hash."""
    say(f"creating {args.users} demo learners (lms_live demo, BCRYPT_ROUNDS=4 for speed)")
    started = time.perf_counter()

    def demo() -> None:
        cli(
            ["demo", "--learners", str(args.users), "--password", password],
            workdir,
            {**env, "BCRYPT_ROUNDS": "4"},
            "lms_live demo",
        )

    with_retries("lms_live demo", demo, args.retries, args.retry_wait, say)
    say(f"created in {time.perf_counter() - started:.1f}s; hashing the password with bcrypt-12")
    from lms_live.core.security import hash_password

    hashed = asyncio.run(hash_password(password, rounds=BCRYPT_ROUNDS))
    if not hashed.startswith(f"$2b${BCRYPT_ROUNDS}$"):
        raise BenchError(f"unexpected hash format from hash_password: {hashed[:7]}...")
    status = asyncio.run(
        _bench_sql(
            args.postgres,
            # A fresh database: the only accounts are the demo ones.
            'UPDATE "user" SET password_hash = $1, '
            "email = split_part(email, '@', 1) || '@' || $2",
            hashed,
            LOGIN_DOMAIN,
        )
    )[0]
    updated = int(str(status).split()[-1])
    if updated != args.users + 1:  # the learners and the demo instructor
        raise BenchError(f"expected {args.users + 1} demo accounts, updated {updated}")
    say(
        f"{updated} demo accounts now carry a bcrypt-{BCRYPT_ROUNDS} hash and an address "
        f"@{LOGIN_DOMAIN} (the API refuses the demo's @demo.lms-live.test)"
    )
    return hashed


def start_server(
    stack: ExitStack,
    args: argparse.Namespace,
    env: dict[str, str],
    workdir: Path,
    secret: str,
    say: Progress,
) -> Server:
    extra = {
        **env,
        "BCRYPT_ROUNDS": str(BCRYPT_ROUNDS),
        "LOGIN_MAX_FAILURES": str(LOGIN_MAX_FAILURES),
    }
    server_env = lms_env(secret, args.log_level, args.log_format, extra)

    def attempt() -> tuple[Server, ExitStack]:
        port = free_port()
        own = ExitStack()
        server = own.enter_context(
            running("lms_live", lms_server_argv(port), cwd=workdir, env=server_env, port=port)
        )
        try:
            waited = server.wait_for(READY)
        except BaseException:
            own.close()
            raise
        say(f"lms_live serve: ready on port {port} ({waited:.1f}s)")
        return server, own

    server, own = with_retries(
        "starting lms_live serve", attempt, args.retries, args.retry_wait, say
    )
    stack.enter_context(own)
    return server


def access_token(server: Server, password: str) -> str:
    status, body = http_post_json(
        server.base + LOGIN, {"email": f"learner001@{LOGIN_DOMAIN}", "password": password}
    )
    if status != 200 or not isinstance(body, dict) or "access_token" not in body:
        raise BenchError(f"signing in as learner001 answered {status}: {body!r}")
    token: str = body["access_token"]
    return token


async def _connections_by_state(pg_base: str) -> dict[str, int]:
    rows = await _bench_sql(
        pg_base,
        "SELECT coalesce(state, '?') AS state, count(*) AS n FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid() GROUP BY 1",
        BENCH_DATABASE,
    )
    return {str(row["state"]): int(row["n"]) for row in rows}


# --------------------------------------------------------------------------------------------
# Measurements.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    result: LoadResult
    cpu_us: float | None  # server CPU (user + system, all threads) per request
    threads: int | None = None  # most server threads seen during the window
    running: int | None = None  # most server threads seen running (or runnable) at once
    machine: tuple[float, float] | None = None  # machine CPUs busy, stolen (averages)


@dataclass
class Case:
    key: str
    label: str
    connections: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, attribute: str) -> float | None:
        """Median over the rounds of `cpu_us`, `threads` or a LoadResult attribute (None when
        a round lacks it)."""
        values: list[float] = []
        for sample in self.samples:
            source: Any = sample if attribute in ("cpu_us", "threads", "running") else sample.result
            value = getattr(source, attribute)
            if value is None:
                return None
            values.append(float(value))
        return statistics.median(values) if values else None

    def machine(self) -> tuple[float, float] | None:
        """Medians over the rounds of the machine's busy and stolen CPUs."""
        found = [sample.machine for sample in self.samples]
        pairs = [pair for pair in found if pair is not None]
        if not pairs or len(pairs) != len(found):
            return None
        return (
            statistics.median(pair[0] for pair in pairs),
            statistics.median(pair[1] for pair in pairs),
        )

    def values(self, attribute: str) -> list[float]:
        return [float(getattr(sample.result, attribute)) for sample in self.samples]


@dataclass
class AuthBench:
    args: argparse.Namespace
    server: Server
    token: str
    login_script: Path
    probe_script: Path
    hashed: str
    say: Progress
    cases: dict[str, Case] = field(default_factory=dict)
    references: list[BcryptReference] = field(default_factory=list)
    background: list[float] = field(default_factory=list)
    db_states: list[dict[str, int]] = field(default_factory=list)
    load_before: float = field(default_factory=lambda: os.getloadavg()[0])

    def __post_init__(self) -> None:
        logins = f"`POST {LOGIN}`"
        probe = f"1 (a request every {self.args.probe_delay_ms} ms)"
        for key, label, connections in (
            ("login4", logins, "4"),
            ("login16", logins, "16"),
            ("login16probe", f"{logins}, health probe alongside", "16"),
            ("probe_idle", f"`GET {HEALTH}` probe, server idle", probe),
            ("probe_busy", f"`GET {HEALTH}` probe, during logins c=16", probe),
            ("me", f"`GET {ME}`", str(self.args.connections)),
            ("whoami", f"`GET {WHOAMI}`", str(self.args.connections)),
        ):
            self.cases[key] = Case(key, label, connections)

    @property
    def pid(self) -> int:
        return self.server.process.pid

    def alive(self) -> None:
        if self.server.process.poll() is not None:
            raise BenchError("the server died during the run:\n" + log_tail(self.server.log_path))

    def logins(
        self, connections: int, duration: int, *, probe: bool = False
    ) -> tuple[Sample, Sample | None]:
        """Logins at `connections` for `duration` s (with the health probe alongside, if asked).

        CPU per login = server CPU from just before the load until the server is idle again,
        divided by the logins the server counted in that time (its /metrics).
        """
        self.alive()
        count_before = served(self.server).get((LOGIN, "200"), 0)
        cpu_before = process_cpu_seconds(self.pid)
        most_threads = thread_count(self.pid) or 0
        most_running = 0
        argv = wrk_script_argv(
            self.server.base + LOGIN, self.login_script, connections, duration, self.args.threads
        )
        probe_result = None
        started = time.perf_counter()
        machine_before = MachineCpu.now()
        with wrk_running(argv) as load, ExitStack() as stack:
            prober = None
            if probe:
                time.sleep(PROBE_RAMP)
                probe_argv = wrk_script_argv(
                    self.server.base + HEALTH, self.probe_script, 1, duration - 2 * PROBE_RAMP, 1
                )
                prober = stack.enter_context(wrk_running(probe_argv))
            halfway = started + duration / 2
            while load.poll() is None:
                most_threads = max(most_threads, thread_count(self.pid) or 0)
                most_running = max(most_running, running_threads(self.pid))
                if probe and halfway and time.perf_counter() > halfway:
                    self.db_states.append(asyncio.run(_connections_by_state(self.args.postgres)))
                    halfway = 0.0  # once per run
                time.sleep(0.1)
            machine_after = MachineCpu.now()
            result = finish_wrk(load, 30)
            if prober is not None:
                probe_result = finish_wrk(prober, 30)
        wait_idle(self.pid)
        cpu_after = process_cpu_seconds(self.pid)
        counted = served(self.server).get((LOGIN, "200"), 0) - count_before
        self.alive()
        check_load(f"logins c={connections}", result)
        cpu_us = None
        if cpu_before is not None and cpu_after is not None and counted:
            cpu_us = (cpu_after - cpu_before) / counted * 1e6
        machine = machine_before.cores_until(machine_after) if machine_before else None
        sample = Sample(result, cpu_us, most_threads or None, most_running or None, machine)
        probe_sample = None
        if probe_result is not None:
            check_load("health probe", probe_result)
            probe_sample = Sample(probe_result, None, None, None, machine)
        return sample, probe_sample

    def probe_idle(self, duration: int) -> Sample:
        self.alive()
        cpu_before = process_cpu_seconds(self.pid)
        machine_before = MachineCpu.now()
        argv = wrk_script_argv(self.server.base + HEALTH, self.probe_script, 1, duration, 1)
        with wrk_running(argv) as prober:
            result = finish_wrk(prober, duration + 30)
        machine = machine_before.cores_until(MachineCpu.now()) if machine_before else None
        cpu_after = process_cpu_seconds(self.pid)
        check_load("health probe (idle)", result)
        cpu_us = None
        if cpu_before is not None and cpu_after is not None:
            cpu_us = (cpu_after - cpu_before) / result.requests * 1e6
        return Sample(result, cpu_us, None, None, machine)

    def reads(self, path: str, duration: int) -> Sample:
        self.alive()
        spec = LoadSpec("wrk", duration, self.args.connections, self.args.threads)
        headers = {"Authorization": f"Bearer {self.token}"}
        cpu_before = process_cpu_seconds(self.pid)
        machine_before = MachineCpu.now()
        result = run_wrk(self.server.base + path, headers, spec, duration)
        machine = machine_before.cores_until(MachineCpu.now()) if machine_before else None
        cpu_after = process_cpu_seconds(self.pid)
        self.alive()
        check_load(path, result)
        cpu_us = None
        if cpu_before is not None and cpu_after is not None:
            cpu_us = (cpu_after - cpu_before) / result.requests * 1e6
        return Sample(result, cpu_us, thread_count(self.pid), None, machine)

    def record(self, key: str, sample: Sample, number: int) -> None:
        self.cases[key].samples.append(sample)
        case, result = self.cases[key], sample.result
        cpu = f"{sample.cpu_us:,.0f} us/request" if sample.cpu_us is not None else "n/a"
        self.say(
            f"round {number}: {case.label} c={case.connections}: {result.rps:,.1f} req/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms "
            f"({result.requests:,} requests; server CPU {cpu}; threads {sample.threads or '-'}, "
            f"at most {sample.running or '-'} running; "
            f"machine {_machine(sample.machine)})"
        )

    def wait_for_quiet(self, number: int) -> None:
        """Until the machine, our server idle, is (nearly) idle: other people's test runs
        on the same 2 CPUs take CPU from bcrypt. Gives up after --quiet-wait seconds."""
        deadline = time.perf_counter() + self.args.quiet_wait
        while True:
            busy = machine_busy()
            if busy is None:
                return
            if busy <= self.args.quiet_below or time.perf_counter() > deadline:
                self.background.append(busy)
                note = "" if busy <= self.args.quiet_below else " (gave up waiting)"
                self.say(f"round {number}: other work on the machine: {busy:.2f} CPUs{note}")
                return
            self.say(f"round {number}: the machine is busy with other work ({busy:.2f} CPUs)")
            time.sleep(3)

    def warm_up(self) -> None:
        args = self.args
        if args.warmup <= 0:
            return
        self.say(f"warming up: logins c=4 for {args.warmup}s, reads for {args.warmup}s each")
        self.logins(4, args.warmup)
        for path in (ME, WHOAMI):
            self.reads(path, args.warmup)

    def run(self) -> None:
        args = self.args
        self.warm_up()
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
        for number in range(1, args.rounds + 1):
            self.wait_for_quiet(number)
            self.say(f"round {number}/{args.rounds}: bcrypt-{BCRYPT_ROUNDS} in this process")
            reference = bcrypt_reference(self.hashed, cpus)
            self.references.append(reference)
            self.say(
                f"round {number}: one check {reference.single_ms:.0f} ms; {cpus} threads at "
                f"once: {reference.parallel_rate:.1f} checks/s"
            )
            order = [("login4", 4, False), ("login16", 16, False), ("login16probe", 16, True)]
            for key, connections, probe in order if number % 2 else order[::-1]:
                sample, probe_sample = self.logins(connections, args.login_duration, probe=probe)
                self.record(key, sample, number)
                if probe_sample is not None:
                    self.record("probe_busy", probe_sample, number)
            self.record("probe_idle", self.probe_idle(args.login_duration - 2 * PROBE_RAMP), number)
            self.record("me", self.reads(ME, args.duration), number)
            self.record("whoami", self.reads(WHOAMI, args.duration), number)


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else "-"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def _threads(case: Case) -> str:
    threads, running = case.median("threads"), case.median("running")
    if threads is None:
        return "-"
    return f"{threads:.0f} ({running:.0f})" if running is not None else f"{threads:.0f}"


def _machine(machine: tuple[float, float] | None) -> str:
    """CPUs busy (stolen) in a window, e.g. `1.93 (0.02)`."""
    return f"{machine[0]:.2f} ({machine[1]:.2f})" if machine else "-"


def default_executor_size() -> int:
    """ThreadPoolExecutor's default (what asyncio.to_thread uses unless the app sets one)."""
    return min(32, (os.cpu_count() or 1) + 4)


def report(bench: AuthBench, threads_at_start: int | None, users: int) -> str:
    args = bench.args
    cases = bench.cases
    single = [ref.single_ms for ref in bench.references]
    rates = [ref.parallel_rate for ref in bench.references]
    cpus = bench.references[0].threads if bench.references else 0
    lines = [
        f"lms_live sign-in benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {cpu_description()}; Python {platform.python_version()}, aiohttp "
        f"{aiohttp.__version__}, bcrypt {importlib.metadata.version('bcrypt')}, "
        f"{wrk_version()}; wrk and the server share these CPUs; 1-min load average "
        f"{bench.load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        f"server: one `lms_live serve` on PostgreSQL + Redis ({args.redis}), "
        f"BCRYPT_ROUNDS={BCRYPT_ROUNDS}, LOG_LEVEL={args.log_level}, "
        f"LOG_FORMAT={args.log_format}, rate limits 100000000/minute, "
        f"LOGIN_MAX_FAILURES={LOGIN_MAX_FAILURES}; {users} verified learners, logins cycle "
        "through them",
        f"method: {args.rounds} rounds; logins {args.login_duration}s per case (c=4, c=16, "
        "c=16 + probe; reversed in even rounds), reads "
        f"{args.duration}s; values are medians over the rounds; login CPU counted until the "
        "server is idle again, per login the server counted; before each round, waited for "
        f"other work on the machine to fall to <= {args.quiet_below} CPUs (measured: "
        + ", ".join(f"{busy:.2f}" for busy in bench.background)
        + ")",
        f"bcrypt-{BCRYPT_ROUNDS} in the bench process (idle server, before each round): one "
        f"check {statistics.median(single):.0f} ms; {cpus} threads at once "
        f"{statistics.median(rates):.1f} checks/s [{min(rates):.1f}-{max(rates):.1f}]: the "
        "ceiling for logins/s here",
        f"default executor (asyncio.to_thread): min(32, os.cpu_count() + 4) = "
        f"{default_executor_size()} threads; server threads at start: "
        f"{threads_at_start if threads_at_start is not None else 'n/a'}",
        "",
        "| case | connections | req/s | p50 ms | p99 ms | server CPU µs/req "
        "| server threads (most running) | machine CPUs busy (steal) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases.values():
        rps = case.median("rps")
        rps_spec = ",.1f" if rps is not None and rps < 100 else ",.0f"
        lines.append(
            f"| {case.label} | {case.connections} | {_fmt(rps, rps_spec)} | "
            f"{_ms(case.median('p50_ms'))} | {_ms(case.median('p99_ms'))} | "
            f"{_fmt(case.median('cpu_us'), ',.0f')} | {_threads(case)} | "
            f"{_machine(case.machine())} |"
        )
    lines.append("")
    low, high = cases["login4"].values("rps"), cases["login16"].values("rps")
    if low and high and all(low):
        ratios = [b / a for a, b in zip(low, high, strict=True)]
        lines.append(
            f"logins/s at c=16 / at c=4: {statistics.median(ratios):.2f}x "
            f"[{min(ratios):.2f}-{max(ratios):.2f} over the rounds]"
        )
    busy, idle = cases["probe_busy"].values("p99_ms"), cases["probe_idle"].values("p99_ms")
    if busy and idle:
        lines.append(
            f"health probe p99 during logins c=16: {statistics.median(busy):.2f} ms (worst "
            f"round {max(busy):.2f} ms) vs idle {statistics.median(idle):.2f} ms"
        )
    if bench.db_states:
        states = ", ".join(
            f"{state} {count}" for state, count in sorted(bench.db_states[-1].items())
        )
        lines.append(f"server's database connections mid-run at c=16 (last round): {states}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark lms_live's sign-in (bcrypt-12) and token-authenticated reads "
        "on PostgreSQL + Redis."
    )
    parser.add_argument("--users", type=int, default=200, help="demo learners to create (200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every case (3)")
    parser.add_argument(
        "--login-duration", type=int, default=20, help="seconds per login case and round (20)"
    )
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds per read case and round (10)"
    )
    parser.add_argument(
        "--warmup", type=int, default=5, help="warm-up seconds per case before round 1 (5)"
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="connections for the read cases (32)"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--probe-delay-ms", type=int, default=10, help="pause between health probes (10 ms)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 round, logins 10 s, reads 4 s, 2 s warm-up"
    )
    parser.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of lms_live (WARNING)")
    parser.add_argument(
        "--log-format", choices=["text", "json"], default="json", help="LOG_FORMAT (json)"
    )
    parser.add_argument(
        "--postgres",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432",
        help=f"PostgreSQL server; database {BENCH_DATABASE} is created there and dropped",
    )
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/12", help="Redis DB (flushed before and after)"
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.25,
        help="before each round, wait until the machine uses at most this many CPUs (0.25)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=300.0, help="longest wait for that, seconds (300)"
    )
    parser.add_argument(
        "--retries", type=int, default=3, help="attempts at migrating/seeding/starting (3)"
    )
    parser.add_argument(
        "--retry-wait", type=float, default=60.0, help="seconds between attempts (60)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.login_duration, args.duration, args.warmup = 1, 10, 4, 2
    if min(args.users, args.rounds, args.duration, args.connections, args.threads) < 1:
        parser.error("--users, --rounds, --duration, --connections, --threads must be >= 1")
    if args.login_duration < 2 * PROBE_RAMP + 1:
        parser.error(f"--login-duration must be >= {2 * PROBE_RAMP + 1}")
    if args.users > 999:
        parser.error("--users must be <= 999 (learner001 ... learner999)")
    if args.retries < 1 or args.warmup < 0 or args.probe_delay_ms < 0:
        parser.error("--retries must be >= 1, --warmup and --probe-delay-ms >= 0")
    return args


def _terminate(signum: int, frame: types.FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `finally` blocks that stop servers


def run(args: argparse.Namespace) -> int:
    say = Progress()
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu)")
    secret = secrets.token_urlsafe(48)
    password = secrets.token_urlsafe(15)
    say(
        f"{cpu_description()}; wrk and the server share them. {args.rounds} rounds; logins "
        f"{args.login_duration}s at c=4 and c=16, reads {args.duration}s at "
        f"c={args.connections}; LOG_LEVEL={args.log_level}"
    )
    with tempfile.TemporaryDirectory(prefix="lms-bench-auth-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        env = stack.enter_context(bench_database(args.postgres, args.redis, root, args, say))
        hashed = create_accounts(args, env, root, password, say)
        login_script = root / "login.lua"
        login_script.write_text(
            LOGIN_LUA.substitute(
                path=LOGIN,
                users=args.users,
                last_user=f"{args.users:03d}",
                domain=LOGIN_DOMAIN,
                password=password,
            )
        )
        probe_script = root / "probe.lua"
        probe_script.write_text(PROBE_LUA.substitute(delay=args.probe_delay_ms))
        server = start_server(stack, args, env, root, secret, say)
        threads_at_start = thread_count(server.process.pid)
        token = access_token(server, password)
        say("signed in as learner001; checking /users/me and /system/whoami with its token")
        for path in (ME, WHOAMI):
            status, body = http_get(server.base + path, {"Authorization": f"Bearer {token}"})
            if status != 200:
                raise BenchError(f"{path} answered {status}: {body[:300]!r}")
        bench = AuthBench(args, server, token, login_script, probe_script, hashed, say)
        bench.run()
        counted = check_served(server)
        say(
            "the server counted only 200s on the benched routes: "
            + ", ".join(f"{route} {n:,}" for route, n in counted.items())
        )
        say("stopping the server")
    say("done")
    print(report(bench, threads_at_start, args.users))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench/auth.py: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
