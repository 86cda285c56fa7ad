"""HTTP benchmark: the full lms_live middleware stack against a bare aiohttp handler.

Run by hand (`make bench-http`, or `.venv/bin/python bench/http.py --help`). For each server
configuration it measures requests/s, p50/p99 latency and server CPU per request of
`GET /api/v1/health` and of `GET /api/v1/system/whoami` with a Bearer access token (token
verification, every middleware, a pydantic response), and the same for a bare aiohttp server
(`/health`, `/whoami`: no middleware, no access log) started from this file in a separate
process. Servers and the load generator (`wrk`, or an aiohttp load loop in a separate process
when wrk is missing) run on the same machine and share its CPUs.

The machine's speed drifts (shared VMs: ±30% from minute to minute), so the servers are all
started once and kept running, and the cases are measured in interleaved rounds: every round
runs, per route, the bare case and the full-stack cases back to back (bare first in odd
rounds, full stack first in even rounds). Ratios full stack / bare are computed within each
round; the table shows medians over the rounds and the min-max of the per-round ratios.

It also measures the cold start of `lms-live serve` on the embedded default (after the other
servers have stopped). Progress goes to stderr, the table (Markdown) to stdout.

Configurations of the full stack:
- embedded: no DATABASE_URL/REDIS_URL (SQLite, in-memory key-value store and rate limiter),
  run in a fresh temporary directory so `var/` lands there;
- postgres+redis: a bench database created, migrated and dropped here, and Redis DB 13
  (flushed before and after).
"""

from __future__ import annotations

import os
import sys

# `python bench/http.py` puts bench/ first on sys.path, where this file would shadow the
# standard library's `http` package (imported by asyncio, aiohttp, urllib...).
if os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.remove(sys.path[0])

import argparse
import asyncio
import multiprocessing
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import types
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

UNLIMITED_RATE = "100000000/minute"
HEALTH = "/api/v1/health"
WHOAMI = "/api/v1/system/whoami"
READY = "/api/v1/ready"
BENCH_DATABASE = "lms_bench_http"
TARGET_RATIO = 2.0
RATIO_METRICS = (("p50", "p50_ms"), ("p99", "p99_ms"), ("CPU", "cpu_us"))
SERVER_START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0


# --------------------------------------------------------------------------------------------
# The bare server (`--bare-server`): the same aiohttp, no middleware, no access log.
# --------------------------------------------------------------------------------------------

_BARE_USER = str(uuid.uuid4())


async def bare_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def bare_whoami(request: web.Request) -> web.Response:
    """A body of the shape and size of /api/v1/system/whoami's, built per request."""
    expires = datetime.fromtimestamp(time.time() + 900, UTC).replace(microsecond=0)
    return web.json_response(
        {"user_id": _BARE_USER, "role": "admin", "token_expires_at": expires.isoformat()}
    )


def bare_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/health", bare_health)
    app.router.add_get("/whoami", bare_whoami)
    return app


def serve_bare(port: int) -> None:
    from lms_live.cli import new_event_loop  # the same event loop as `lms-live serve`

    web.run_app(
        bare_app(),
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        loop=new_event_loop(),
    )


# --------------------------------------------------------------------------------------------
# Helpers: progress, ports, plain HTTP, processes.
# --------------------------------------------------------------------------------------------


class BenchError(RuntimeError):
    """A failure that stops the benchmark, with a message for the user."""


class Progress:
    """Timestamped progress lines on stderr."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (all bound at once, so none is handed out twice)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def http_get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """(status, body) of one GET; raises OSError when nothing answers."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (our own server)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """A minimal environment (nothing of the caller's configuration leaks in) plus `extra`."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(extra)
    return env


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (Linux /proc; None elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 (state) is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _us(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "n/a"


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill if it does not exit in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@dataclass
class Server:
    """A server process listening on 127.0.0.1:port, its output going to `log_path`."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, path: str, timeout: float = SERVER_START_TIMEOUT) -> float:
        """Poll `path` until it answers 200; seconds waited. Fails if the process exits."""
        started = time.perf_counter()
        deadline = started + timeout
        last = "no answer"
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.process.returncode} before answering:\n"
                    + log_tail(self.log_path)
                )
            try:
                status, _ = http_get(self.base + path, timeout=2.0)
            except OSError as exc:
                last = str(exc)
            else:
                if status == 200:
                    return time.perf_counter() - started
                last = f"status {status}"
            time.sleep(0.005)
        raise BenchError(f"{self.name} did not answer 200 on {path} in {timeout:.0f}s ({last})")


@contextmanager
def running(
    name: str, argv: list[str], *, cwd: Path, env: dict[str, str], port: int
) -> Iterator[Server]:
    log_path = cwd / f"{name.replace(' ', '_').replace('+', '_')}.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file
        )
    try:
        yield Server(name=name, port=port, process=process, log_path=log_path)
    finally:
        stop_process(process)


def lms_server_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "lms_live", "serve", "--port", str(port)]


def lms_env(
    secret: str, log_level: str, log_format: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {
        "SECRET_KEY": secret,
        "LOG_LEVEL": log_level,
        "LOG_FORMAT": log_format,
        "RATE_LIMIT": UNLIMITED_RATE,
        "RATE_LIMIT_AUTH": UNLIMITED_RATE,
    }
    env.update(extra or {})
    return clean_env(env)


def admin_token(secret: str) -> str:
    """An admin access token the server (same SECRET_KEY, default PUBLIC_URL) accepts."""
    from lms_live.core.security import TokenCodec
    from lms_live.settings import Settings

    default_url = Settings.model_fields["public_url"].default  # what the server runs with
    settings = Settings(_env_file=None, secret_key=secret, public_url=default_url)
    return TokenCodec.from_settings(settings).issue(user_id=uuid.uuid4(), role="admin")


# --------------------------------------------------------------------------------------------
# Load generation: wrk, or an aiohttp loop in a separate process.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    tool: str  # "wrk" or "aiohttp"
    duration: int
    connections: int
    threads: int


@dataclass(frozen=True)
class LoadResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    bad_status: int
    socket_errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> LoadResult:
    """Requests/sec, the 50% and 99% latencies, non-2xx/3xx and socket errors of wrk's output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in ", output, re.M)
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    if not (rps and total and p50 and p99):
        raise BenchError(f"could not parse wrk's output:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return LoadResult(
        requests=int(total.group(1)),
        rps=float(rps.group(1)),
        p50_ms=_to_ms(*p50.groups()),
        p99_ms=_to_ms(*p99.groups()),
        bad_status=int(bad.group(1)) if bad else 0,
        socket_errors=sum(int(n) for n in sock.groups()) if sock else 0,
    )


def run_wrk(url: str, headers: dict[str, str], spec: LoadSpec, duration: int) -> LoadResult:
    argv = ["wrk", f"-t{spec.threads}", f"-c{spec.connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(fraction * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def _aiohttp_load(
    url: str, headers: dict[str, str], duration: float, connections: int
) -> tuple[list[float], int, int, float]:
    latencies: list[float] = []
    bad = 0
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal bad, errors
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    async with session.get(url) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                if status != 200:
                    bad += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return latencies, bad, errors, elapsed


def _aiohttp_load_child(
    url: str, headers: dict[str, str], duration: float, connections: int, pipe: Connection
) -> None:
    try:
        pipe.send(asyncio.run(_aiohttp_load(url, headers, duration, connections)))
    except BaseException as exc:
        pipe.send(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        pipe.close()


def run_aiohttp_load(
    url: str, headers: dict[str, str], spec: LoadSpec, duration: int
) -> LoadResult:
    """The fallback load generator: aiohttp keep-alive connections in a separate process."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_aiohttp_load_child,
        args=(url, headers, float(duration), spec.connections, sender),
        daemon=True,
    )
    process.start()
    sender.close()
    try:
        if not receiver.poll(duration + 60):
            raise BenchError("the aiohttp load process did not report")
        outcome: Any = receiver.recv()
    except EOFError as exc:
        raise BenchError("the aiohttp load process died") from exc
    finally:
        process.join(5)
        if process.is_alive():
            process.terminate()
            process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
        receiver.close()
    if isinstance(outcome, str):
        raise BenchError(f"the aiohttp load process failed: {outcome}")
    latencies, bad, errors, elapsed = outcome
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        rps=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        bad_status=bad,
        socket_errors=errors,
    )


def drive(url: str, headers: dict[str, str], spec: LoadSpec, duration: int) -> LoadResult:
    if spec.tool == "wrk":
        return run_wrk(url, headers, spec, duration)
    return run_aiohttp_load(url, headers, spec, duration)


# --------------------------------------------------------------------------------------------
# Cases and interleaved rounds.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One measured window of one case."""

    result: LoadResult
    cpu_us: float | None  # server CPU time (user + system) per request


def metric_of(sample: Sample, metric: str) -> float | None:
    """`rps`, `p50_ms`, `p99_ms` (of the load result) or `cpu_us` of a sample."""
    if metric == "cpu_us":
        return sample.cpu_us
    value: float = getattr(sample.result, metric)
    return value


@dataclass
class Case:
    """One endpoint of one running server; `samples[i]` is its measurement in round i + 1."""

    config: str
    endpoint: str
    server: Server
    headers: dict[str, str]
    body_bytes: int
    baseline: Case | None = None
    samples: list[Sample] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.base + self.endpoint

    @property
    def label(self) -> str:
        return f"{self.config} {self.endpoint}"

    def values(self, metric: str) -> list[float] | None:
        """The metric of every round, or None when a round lacks it (no /proc)."""
        values = [metric_of(sample, metric) for sample in self.samples]
        if not values or any(value is None for value in values):
            return None
        return [value for value in values if value is not None]

    def median(self, metric: str) -> float | None:
        values = self.values(metric)
        return statistics.median(values) if values else None

    def ratios(self, metric: str) -> list[float] | None:
        """Per round: this case's metric divided by its baseline's in the same round."""
        if self.baseline is None:
            return None
        ours, theirs = self.values(metric), self.baseline.values(metric)
        if ours is None or theirs is None or not all(theirs):
            return None
        return [a / b for a, b in zip(ours, theirs, strict=True)]


def make_case(
    config: str,
    server: Server,
    endpoint: str,
    headers: dict[str, str],
    baseline: Case | None = None,
) -> Case:
    """A case, after checking that the endpoint answers 200 (and noting its body size)."""
    status, body = http_get(server.base + endpoint, headers)
    if status != 200:
        raise BenchError(f"{config} {endpoint} answered {status}: {body[:300]!r}")
    return Case(config, endpoint, server, headers, len(body), baseline)


@dataclass
class Pair:
    """A route of the bare server and the same route of every full-stack server."""

    bare: Case
    full: list[Case]

    def order(self, round_number: int) -> list[Case]:
        """Bare first in odd rounds, full stack first (the reverse order) in even rounds."""
        cases = [self.bare, *self.full]
        return cases if round_number % 2 else cases[::-1]


@dataclass
class Bench:
    spec: LoadSpec
    rounds: int
    warmup: int
    say: Progress
    pairs: list[Pair] = field(default_factory=list)
    load_before: float = field(default_factory=lambda: os.getloadavg()[0])

    @property
    def cases(self) -> list[Case]:
        return [case for pair in self.pairs for case in (pair.bare, *pair.full)]

    def run(self) -> None:
        """Interleaved rounds: each pair's cases back to back, every round."""
        for number in range(1, self.rounds + 1):
            first = "bare" if number % 2 else "full stack"
            self.say(f"round {number}/{self.rounds} ({first} first)")
            for pair in self.pairs:
                order = pair.order(number)
                if number == 1 and self.warmup > 0:
                    for case in order:
                        self.warm_up(case)
                for case in order:
                    case.samples.append(self.measure(case, number))
                for case in pair.full:
                    self.say(
                        f"round {number}: {case.label} vs bare: "
                        + ", ".join(
                            f"{name} {ratios[-1]:.2f}x"
                            for name, metric in RATIO_METRICS
                            if (ratios := case.ratios(metric))
                        )
                    )

    def warm_up(self, case: Case) -> None:
        self.say(f"{case.label}: warming up for {self.warmup}s")
        self.check(case, drive(case.url, case.headers, self.spec, self.warmup))

    def measure(self, case: Case, number: int) -> Sample:
        server = case.server
        cpu_before = process_cpu_seconds(server.process.pid)
        result = drive(case.url, case.headers, self.spec, self.spec.duration)
        cpu_after = process_cpu_seconds(server.process.pid)
        self.check(case, result)
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} died during the run:\n" + log_tail(server.log_path))
        cpu_us = None
        if cpu_before is not None and cpu_after is not None:
            cpu_us = (cpu_after - cpu_before) / result.requests * 1e6
        self.say(
            f"round {number}: {case.label}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
            f"p99 {result.p99_ms:.2f} ms ({result.requests:,} requests in "
            f"{self.spec.duration}s, server CPU {_us(cpu_us)} us/request)"
        )
        return Sample(result, cpu_us)

    @staticmethod
    def check(case: Case, result: LoadResult) -> None:
        if result.bad_status:
            raise BenchError(
                f"{case.label}: {result.bad_status} responses were not 200 "
                "(wrk: 'Non-2xx or 3xx responses')"
            )
        if result.socket_errors:
            raise BenchError(f"{case.label}: {result.socket_errors} socket errors")
        if result.requests == 0:
            raise BenchError(f"{case.label}: no request completed")


def check_metrics(server: Server) -> int:
    """Every response the server counted for the benched routes was a 200; their number."""
    status, body = http_get(server.base + "/metrics")
    if status != 200:
        raise BenchError(f"{server.name}: /metrics answered {status}")
    answered = 0
    pattern = re.compile(r"^lms_http_requests_total\{(.*)\}\s+([\d.e+]+)$")
    for line in body.decode().splitlines():
        match = pattern.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.get("route") not in (HEALTH, WHOAMI):
            continue
        count = int(float(match.group(2)))
        if labels.get("status") != "200" and count:
            raise BenchError(
                f"{server.name}: the server counted {count} responses {labels.get('status')} "
                f"on {labels.get('route')}"
            )
        answered += count
    if not answered:
        raise BenchError(f"{server.name}: /metrics counted no response on the benched routes")
    return answered


def bare_server_argv(port: int) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--bare-server", "--port", str(port)]


def start_servers(
    stack: ExitStack, args: argparse.Namespace, root: Path, secret: str, say: Progress
) -> tuple[Server, list[Server]]:
    """Start the bare server and every full-stack configuration; wait until all are ready.

    They stay up for the whole measurement; `stack` stops them (and drops the bench database)
    on the way out.
    """
    configs: list[tuple[str, Path, dict[str, str]]] = [("embedded", root / "embedded", {})]
    if not args.no_postgres:
        pg_dir = _mkdir(root / "postgres")
        env = stack.enter_context(postgres_redis(args.postgres, args.redis, pg_dir, say))
        configs.append(("postgres+redis", pg_dir, env))
    ports = free_ports(1 + len(configs))
    say("starting: bare aiohttp, " + ", ".join(config for config, _, _ in configs))
    bare = stack.enter_context(
        running(
            "bare aiohttp",
            bare_server_argv(ports[0]),
            cwd=_mkdir(root / "bare"),
            env=clean_env({}),
            port=ports[0],
        )
    )
    full = [
        stack.enter_context(
            running(
                config,
                lms_server_argv(port),
                cwd=_mkdir(workdir),
                env=lms_env(secret, args.log_level, args.log_format, extra),
                port=port,
            )
        )
        for (config, workdir, extra), port in zip(configs, ports[1:], strict=True)
    ]
    started = time.perf_counter()
    for server, path in [(bare, "/health"), *((server, READY) for server in full)]:
        server.wait_for(path)
        say(f"{server.name}: ready on port {server.port} ({time.perf_counter() - started:.1f}s)")
    return bare, full


def make_pairs(bare: Server, full: list[Server], secret: str) -> list[Pair]:
    auth = {"Authorization": f"Bearer {admin_token(secret)}"}
    pairs = []
    for bare_path, path, headers in (("/health", HEALTH, {}), ("/whoami", WHOAMI, auth)):
        baseline = make_case("bare aiohttp", bare, bare_path, {})
        cases = [make_case(server.name, server, path, headers, baseline) for server in full]
        pairs.append(Pair(baseline, cases))
    return pairs


def cold_start(
    runs: int, secret: str, log_level: str, log_format: str, say: Progress
) -> list[float]:
    """Seconds from spawning `serve` (fresh dir, embedded default) to the first 200 on /ready."""
    times: list[float] = []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory(prefix="lms-bench-cold-") as tmp:
            port = free_port()
            spawned = time.perf_counter()
            with running(
                "cold start",
                lms_server_argv(port),
                cwd=Path(tmp),
                env=lms_env(secret, log_level, log_format),
                port=port,
            ) as server:
                server.wait_for(READY)
                times.append(time.perf_counter() - spawned)
        say(f"cold start {run}/{runs}: {times[-1]:.2f}s")
    return times


# --------------------------------------------------------------------------------------------
# PostgreSQL + Redis configuration.
# --------------------------------------------------------------------------------------------


async def _admin_sql(pg_url: str, *statements: str) -> None:
    import asyncpg

    parts = urlsplit(pg_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    conn = await asyncpg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        database="postgres",
        timeout=10,
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


@contextmanager
def postgres_redis(
    pg_base: str, redis_url: str, workdir: Path, say: Progress
) -> Iterator[dict[str, str]]:
    """A fresh, migrated bench database and a flushed Redis DB; both cleaned up afterwards."""
    drop = f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'
    database_url = f"{pg_base.rstrip('/')}/{BENCH_DATABASE}"
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
    try:
        asyncio.run(_admin_sql(pg_base, drop, f'CREATE DATABASE "{BENCH_DATABASE}"'))
        flush_redis(redis_url)
    except Exception as exc:
        raise BenchError(
            f"PostgreSQL ({pg_base}) or Redis ({redis_url}) is unavailable: {exc}. "
            "Start them (`bash .ci/bootstrap`) or skip this configuration with --no-postgres."
        ) from exc
    try:
        say(f"postgres+redis: migrating {BENCH_DATABASE}")
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
            raise BenchError(f"migrating {BENCH_DATABASE} failed:\n{done.stdout}{done.stderr}")
        yield env
    finally:
        try:
            asyncio.run(_admin_sql(pg_base, drop))
            flush_redis(redis_url)
        except Exception as exc:
            say(f"cleanup of {BENCH_DATABASE} / {redis_url} failed: {exc}")


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


def cpu_description() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{usable} CPUs ({model})"


def wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0] if first else "wrk"


def _fmt(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else "n/a"


def _ratio(case: Case, metric: str) -> str:
    """Median of the per-round ratios to bare, with their min-max in brackets."""
    if case.baseline is None:
        return "baseline"
    ratios = case.ratios(metric)
    if not ratios:
        return "n/a"
    return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"


def misses(bench: Bench) -> list[str]:
    """Full-stack cases whose median p50 or p99 ratio exceeds the target."""
    found = []
    for case in bench.cases:
        over = [
            f"{name} {ratio:.2f}x"
            for name in ("p50", "p99")
            if (ratios := case.ratios(f"{name}_ms"))
            and (ratio := statistics.median(ratios)) > TARGET_RATIO
        ]
        if over:
            found.append(f"{case.label} ({', '.join(over)})")
    return found


def report(bench: Bench, args: argparse.Namespace, cold: list[float]) -> str:
    spec = bench.spec
    tool = (
        f"{wrk_version()}, {spec.threads} thread(s)"
        if spec.tool == "wrk"
        else "aiohttp load loop in a separate process"
    )
    warmup = f"{bench.warmup}s warm-up per case in round 1 only" if bench.warmup else "no warm-up"
    lines = [
        f"lms_live HTTP benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {cpu_description()}; Python {platform.python_version()}, aiohttp "
        f"{aiohttp.__version__}; the load generator and the servers share these CPUs; 1-min "
        f"load average {bench.load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        f"load: {tool}, {spec.connections} connections; {bench.rounds} interleaved rounds of "
        f"{spec.duration}s per case ({warmup}; bare first in odd rounds, full stack first in "
        "even rounds)",
        f"lms_live: LOG_LEVEL={args.log_level}, LOG_FORMAT={args.log_format}",
        f"values: median over the {bench.rounds} rounds; vs bare: median of the per-round "
        "ratios full stack / bare [min-max over the rounds]",
    ]
    drift = [
        f"{pair.bare.endpoint} {min(rps):,.0f}-{max(rps):,.0f}"
        for pair in bench.pairs
        if (rps := pair.bare.values("rps"))
    ]
    if drift:
        lines.append("drift: bare aiohttp req/s over the rounds: " + ", ".join(drift))
    lines += [
        "",
        "| configuration | endpoint | body B | req/s | p50 ms | p99 ms | CPU µs/req "
        "| p50 vs bare | p99 vs bare | CPU vs bare |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in bench.cases:
        lines.append(
            f"| {case.config} | `{case.endpoint}` | {case.body_bytes} | "
            f"{_fmt(case.median('rps'), ',.0f')} | {_fmt(case.median('p50_ms'), '.2f')} | "
            f"{_fmt(case.median('p99_ms'), '.2f')} | {_fmt(case.median('cpu_us'), ',.0f')} | "
            f"{_ratio(case, 'p50_ms')} | {_ratio(case, 'p99_ms')} | {_ratio(case, 'cpu_us')} |"
        )
    lines.append("")
    if any(case.baseline for case in bench.cases):
        missed = misses(bench)
        verdict = "met" if not missed else "MISSED: " + "; ".join(missed)
        lines.append(
            f"target (full stack p50 and p99 <= {TARGET_RATIO:g}x bare, median of the "
            f"per-round ratios): {verdict}"
        )
    if cold:
        runs = ", ".join(f"{t:.2f}" for t in cold)
        lines.append(
            f"cold start (embedded default, fresh dir incl. migrations, spawn -> first 200 on "
            f"{READY}): median {statistics.median(cold):.2f}s of {len(cold)} runs ({runs} s)"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark lms_live's full HTTP stack against a bare aiohttp handler, "
        "in interleaved rounds."
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per case and round (5)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="warm-up seconds per case, round 1 only (2)"
    )
    parser.add_argument("--connections", type=int, default=32, help="open connections (32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--quick", action="store_true", help="3 rounds of 2 s per case, 1 s warm-up"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="LOG_LEVEL of lms_live (INFO: the real access-log cost; WARNING: none)",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="json",
        help="LOG_FORMAT of lms_live (json, as in production)",
    )
    parser.add_argument(
        "--load",
        choices=["auto", "wrk", "aiohttp"],
        default="auto",
        help="load generator (auto: wrk if installed, else the aiohttp loop)",
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the PostgreSQL + Redis configuration"
    )
    parser.add_argument(
        "--postgres",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432",
        help=f"PostgreSQL server; database {BENCH_DATABASE} is created there and dropped",
    )
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/13", help="Redis DB (flushed before and after)"
    )
    parser.add_argument(
        "--cold-start-runs", type=int, default=3, help="cold-start runs (median; 0 skips)"
    )
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 3, 2, 1
    if min(args.rounds, args.duration, args.connections, args.threads) < 1 or args.warmup < 0:
        parser.error(
            "--rounds, --duration, --connections and --threads must be >= 1, --warmup >= 0"
        )
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections")
    return args


def pick_tool(choice: str, say: Progress) -> str:
    if shutil.which("wrk"):
        return "wrk" if choice != "aiohttp" else "aiohttp"
    if choice == "wrk":
        raise BenchError("wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu)")
    say(
        "wrk not found (install it with `apt-get install -y wrk`); falling back to the "
        "aiohttp load loop, which is slower than the servers and inflates latencies"
    )
    return "aiohttp"


def _terminate(signum: int, frame: types.FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `finally` blocks that stop servers


def run(args: argparse.Namespace) -> int:
    say = Progress()
    spec = LoadSpec(pick_tool(args.load, say), args.duration, args.connections, args.threads)
    bench = Bench(spec=spec, rounds=args.rounds, warmup=args.warmup, say=say)
    secret = secrets.token_urlsafe(48)
    say(
        f"{cpu_description()}; load and servers share them. {args.rounds} rounds x "
        f"{args.duration}s per case, {args.warmup}s warm-up per case in round 1; "
        f"lms_live LOG_LEVEL={args.log_level} LOG_FORMAT={args.log_format}"
    )
    with tempfile.TemporaryDirectory(prefix="lms-bench-http-") as tmp, ExitStack() as stack:
        bare, full = start_servers(stack, args, Path(tmp), secret, say)
        bench.pairs = make_pairs(bare, full, secret)
        bench.run()
        for server in full:
            counted = check_metrics(server)
            say(
                f"{server.name}: the server counted {counted:,} responses on the benched "
                "routes, all 200"
            )
        say("stopping the servers")
    cold = cold_start(args.cold_start_runs, secret, args.log_level, args.log_format, say)
    say("done")
    print(report(bench, args, cold))
    return 0


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server:
        serve_bare(args.port or 8081)
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench/http.py: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
