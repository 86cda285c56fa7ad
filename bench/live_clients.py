"""Simulated live-quiz learners for bench/live_quiz.py: raw Engine.IO v4 / Socket.IO v5 clients.

python-socketio's client costs too much per connection for thousands of learners on the
machine that also runs the servers, so each learner here is one websocket speaking the wire
protocol by hand, and one process (`worker_main`) runs a few thousand of them on one event
loop (uvloop when installed). The bench drives its processes through a `WorkerPool`. The
websocket is a bare asyncio protocol (`Socket`): frames are handled as the bytes arrive, with
no reader task, stream or message object per frame, so the learners' own processing adds as
little as possible to the latencies measured (they share the servers' CPUs). The REST join
uses aiohttp.

Wire protocol used (websocket transport only, one packet per frame):
  server `0{...}` open; `2` ping -> client `3` pong;
  client `40/live,{"player_token": ...}` -> server `40/live,{"sid": ...}` or `44/live,{...}`;
  server events `42/live,["question_opened",{...}]`, `42/live,["leaderboard",{...}]`;
  client `42/live,<ack id>["answer",{...}]` -> server `43/live,<ack id>[{...}]`.

What a worker measures, all with time.time() (the servers run on the same machine and clock):
- fan-out: receive time of `question_opened` minus its `opened_at` (set by the server);
- ack latency: from sending `answer` to its ack; every learner answers each question once,
  at a random moment of the answer window after receiving the question;
- leaderboard: the receive time of each `leaderboard` event (the bench subtracts the time the
  host sent `next`).

Pipe messages (dicts): commands {"cmd": "join" | "results" | "close", ...} from the bench;
events {"event": "progress" | "joined" | "answered" | "leaderboard" | "results" | "closed"}
back. `answered` / `leaderboard` are sent once per question, when every connected learner of
the process has its ack / has received the leaderboard.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp

NAMESPACE = "/live"
CONNECTED = f"40{NAMESPACE},"
REFUSED = f"44{NAMESPACE},"
DISCONNECTED = f"41{NAMESPACE}"
EVENT = f"42{NAMESPACE},"
ACK = f"43{NAMESPACE},"
PER_PROCESS = 1250
CONNECT_TIMEOUT = 60.0


def ws_url(base: str) -> str:
    """The Socket.IO websocket URL of a server (http://host:port)."""
    return base.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"


@dataclass(slots=True)
class Learner:
    """One simulated learner: its player and its socket."""

    number: int
    rest_base: str | None
    socket_url: str
    player_token: str = ""
    player_id: str = ""
    sock: Socket | None = None
    connected: asyncio.Future[None] | None = None
    next_ack: int = 0
    pending: tuple[int, int, float] | None = None  # ack id, question index, sent at
    boards: set[int] = field(default_factory=set)


@dataclass
class Measures:
    """What one process measured, per question index."""

    fanout_ms: dict[int, list[float]] = field(default_factory=dict)
    ack_ms: dict[int, list[float]] = field(default_factory=dict)
    statuses: dict[int, Counter[str]] = field(default_factory=dict)
    accepted: dict[int, list[str]] = field(default_factory=dict)
    board_at: dict[int, list[float]] = field(default_factory=dict)
    sent: Counter[int] = field(default_factory=Counter)
    first_sent: dict[int, float] = field(default_factory=dict)
    last_ack: dict[int, float] = field(default_factory=dict)
    disconnects: int = 0
    errors: list[str] = field(default_factory=list)


class Worker:
    """The learners of one process, driven by commands on `conn`."""

    def __init__(self, conn: Connection, seed: int) -> None:
        self.conn = conn
        self.rng = random.Random(seed)
        self.learners: list[Learner] = []
        self.live: list[Learner] = []  # connected
        self.m = Measures()
        self.window = 2.0
        self.done = asyncio.Event()
        self.tasks: set[asyncio.Future[Any]] = set()
        self.http: aiohttp.ClientSession | None = None

    async def serve(self) -> None:
        """Run commands until `close`."""
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self._on_command)
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=CONNECT_TIMEOUT),
        )
        try:
            await self.done.wait()
        finally:
            loop.remove_reader(self.conn.fileno())
            await self._close_all()
            await self.http.close()
            self.conn.send({"event": "closed"})

    def _send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(message)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _on_command(self, *_: Any) -> None:
        try:
            command = self.conn.recv()
        except EOFError:
            self.done.set()
            return
        kind = command["cmd"]
        if kind == "join":
            self.window = float(command["window"])
            self._spawn(self.join(command))
        elif kind == "results":
            self._send({"event": "results", "measures": self.m, "connected": len(self.live)})
        elif kind == "close":
            self.done.set()

    # ------------------------------------------------------------------ joining

    async def join(self, command: dict[str, Any]) -> None:
        """Join (REST, when a base is given) and connect every learner of the command."""
        self.learners = [Learner(n, rest, url) for n, rest, url in command["learners"]]
        gate = asyncio.Semaphore(int(command["concurrency"]))
        failed = 0
        started = time.time()

        async def one(learner: Learner) -> None:
            nonlocal failed
            async with gate:
                try:
                    await self._join_one(learner, command["code"])
                except Exception as exc:
                    failed += 1
                    if len(self.m.errors) < 5:
                        self.m.errors.append(f"learner {learner.number}: {exc!r}"[:300])

        async def progress() -> None:
            while True:
                await asyncio.sleep(1.0)
                self._send({"event": "progress", "joined": len(self.live), "failed": failed})

        reporter = asyncio.ensure_future(progress())
        try:
            await asyncio.gather(*(one(learner) for learner in self.learners))
        finally:
            reporter.cancel()
        self._send(
            {
                "event": "joined",
                "joined": len(self.live),
                "failed": failed,
                "started": started,
                "finished": time.time(),
                "errors": self.m.errors[:5],
            }
        )

    async def _join_one(self, learner: Learner, code: str) -> None:
        if learner.rest_base is not None:
            assert self.http is not None
            body = {"code": code, "nickname": f"learner{learner.number:05d}"}
            async with self.http.post(f"{learner.rest_base}/api/v1/live/join", json=body) as r:
                joined = await r.json()
                if r.status not in (200, 201):
                    raise RuntimeError(f"join {r.status}: {str(joined)[:200]}")
            learner.player_token, learner.player_id = joined["player_token"], joined["player_id"]
        else:
            learner.player_token = learner.player_id = f"bare-{learner.number}"
        loop = asyncio.get_running_loop()
        learner.connected = loop.create_future()
        url = urlsplit(learner.socket_url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        path = f"{url.path}?{url.query}"
        await loop.create_connection(
            lambda: Socket(self, learner, f"{host}:{port}", path), host, port
        )
        await asyncio.wait_for(learner.connected, CONNECT_TIMEOUT)
        self.live.append(learner)

    async def _close_all(self) -> None:
        for learner in self.learners:
            if learner.sock is not None:
                learner.sock.close()
        for task in list(self.tasks):
            task.cancel()

    # ------------------------------------------------------------------ receiving

    def on_text(self, learner: Learner, data: str, now: float) -> None:
        """One Engine.IO packet (a websocket text frame), received at `now`."""
        connected, sock = learner.connected, learner.sock
        assert connected is not None
        assert sock is not None
        if data == "2":
            sock.send("3")
        elif data.startswith(EVENT):
            self._on_event(learner, data[len(EVENT) :], now)
        elif data.startswith(ACK):
            self._on_ack(learner, data[len(ACK) :], now)
        elif data.startswith("0"):  # Engine.IO open: connect to the namespace
            sock.send(CONNECTED + json.dumps({"player_token": learner.player_token}))
        elif data.startswith(CONNECTED):
            if not connected.done():
                connected.set_result(None)
        elif data.startswith(REFUSED):
            if not connected.done():
                connected.set_exception(RuntimeError(f"refused: {data[:200]}"))
        elif data.startswith(DISCONNECTED):
            sock.abort("disconnected by the server")

    def on_closed(self, learner: Learner, reason: str) -> None:
        """The learner's connection ended."""
        connected = learner.connected
        assert connected is not None
        if connected.done() and learner in self.live:
            self.m.disconnects += 1
        elif not connected.done():
            connected.set_exception(RuntimeError(f"socket closed while connecting: {reason}"))

    def _on_event(self, learner: Learner, raw: str, now: float) -> None:
        if raw.startswith('["question_opened"'):
            _, payload = json.loads(raw)
            index = int(payload["index"])
            opened = datetime.fromisoformat(payload["opened_at"]).timestamp()
            self.m.fanout_ms.setdefault(index, []).append((now - opened) * 1000)
            labels = [str(o["id"]) for o in payload["question"]["options"]]
            delay = self.rng.uniform(0, self.window)
            asyncio.get_running_loop().call_later(
                delay, self._answer, learner, index, self.rng.choice(labels)
            )
        elif raw.startswith('["leaderboard"'):
            _, payload = json.loads(raw)
            index = int(payload["index"])
            if index not in learner.boards:
                learner.boards.add(index)
                self._count(self.m.board_at, index, now, "leaderboard")

    def _count(self, table: dict[int, list[float]], index: int, value: float, event: str) -> None:
        values = table.setdefault(index, [])
        values.append(value)
        if len(values) == len(self.live):
            self._send({"event": event, "index": index, "count": len(values)})

    def _answer(self, learner: Learner, index: int, label: str) -> None:
        sock = learner.sock
        if sock is None or sock.closed or learner.pending is not None:
            return
        learner.next_ack += 1
        body = {
            "question": index,
            "answer_id": f"b{learner.number}q{index}",
            "response": {"choice": label},
        }
        packet = f"{EVENT}{learner.next_ack}" + json.dumps(["answer", body])
        sent = time.time()
        learner.pending = (learner.next_ack, index, sent)
        self.m.sent[index] += 1
        self.m.first_sent.setdefault(index, sent)
        sock.send(packet)

    def _on_ack(self, learner: Learner, raw: str, now: float) -> None:
        bracket = raw.index("[")
        ack_id = int(raw[:bracket])
        pending = learner.pending
        if pending is None or pending[0] != ack_id:
            return
        learner.pending = None
        _, index, sent = pending
        (ack,) = json.loads(raw[bracket:])
        status = str(ack.get("status")) if ack.get("ok") else str(ack["error"]["code"])
        self.m.statuses.setdefault(index, Counter())[status] += 1
        self.m.last_ack[index] = now
        if status == "accepted":
            self.m.accepted.setdefault(index, []).append(learner.player_id)
        self._count(self.m.ack_ms, index, (now - sent) * 1000, "answered")


class Socket(asyncio.Protocol):
    """A client websocket (RFC 6455) on a bare asyncio protocol: the upgrade request, then
    text frames in and out; frames are handled in `data_received` as they arrive, with no
    task or stream reader per connection. Enough for Engine.IO's websocket transport against
    aiohttp: no extensions (no compression is offered), no fragmented frames expected
    (aiohttp does not fragment what it sends; a fragment ends the connection here)."""

    def __init__(self, worker: Worker, learner: Learner, host: str, path: str) -> None:
        self.worker = worker
        self.learner = learner
        learner.sock = self
        self.host = host
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        key = base64.b64encode(self.worker.rng.randbytes(16)).decode()
        self.transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.time()  # first: the moment the bytes were read
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            if b" 101 " not in status:
                self.abort(f"no websocket upgrade: {status[:100]!r}")
                return
            del buffer[: end + 4]
            self.upgraded = True
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, start = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if second & 0x80 or not first & 0x80:
                self.abort("masked or fragmented frame from the server")
                return
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            opcode = first & 0x0F
            if opcode == 0x1:
                self.worker.on_text(self.learner, payload.decode(), now)
            elif opcode == 0x8:
                self.abort("closed by the server")
                return
            elif opcode == 0x9:
                self._frame(0xA, payload)
            if self.closed:
                return

    def send(self, text: str) -> None:
        """One text frame."""
        self._frame(0x1, text.encode())

    def _frame(self, opcode: int, payload: bytes) -> None:
        if self.closed or self.transport is None:
            return
        length = len(payload)
        if length < 126:
            header = bytes((0x80 | opcode, 0x80 | length))
        elif length < 1 << 16:
            header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
        mask = self.worker.rng.randbytes(4)
        keystream = (mask * (length // 4 + 1))[:length]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(
            length, "big"
        )
        self.transport.write(header + mask + masked)

    def close(self) -> None:
        """Send a close frame (1000) and close the connection."""
        if not self.closed and self.transport is not None:
            self._frame(0x8, (1000).to_bytes(2, "big"))
            self.closed = True
            self.transport.close()

    def abort(self, reason: str) -> None:
        """Drop the connection (the server ended it or broke the protocol)."""
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self.worker.on_closed(self.learner, reason)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.worker.on_closed(self.learner, repr(exc) if exc else "connection lost")


def worker_main(conn: Connection, seed: int) -> None:
    """Entry point of a learner process."""
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        runner: Callable[..., Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(Worker(conn, seed).serve())


class WorkerPool:
    """The learner processes of one run, and their messages as an asyncio queue."""

    def __init__(self, learners: int, per_process: int = PER_PROCESS) -> None:
        self.count = max(1, math.ceil(learners / per_process))
        self.processes: list[BaseProcess] = []
        self.pipes: list[Connection] = []
        self.queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()

    def start(self) -> None:
        """Spawn the processes and listen to them on the running loop."""
        ctx = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        for n in range(self.count):
            mine, theirs = ctx.Pipe(duplex=True)
            process = ctx.Process(target=worker_main, args=(theirs, n + 1), daemon=True)
            process.start()
            theirs.close()
            self.processes.append(process)
            self.pipes.append(mine)
            loop.add_reader(mine.fileno(), self._on_message, n)

    def _on_message(self, n: int) -> None:
        try:
            message = self.pipes[n].recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.pipes[n].fileno())
            message = {"event": "exited"}
        self.queue.put_nowait((n, message))

    def send(self, n: int, message: dict[str, Any]) -> None:
        self.pipes[n].send(message)

    def broadcast(self, message: dict[str, Any]) -> None:
        for n in range(self.count):
            self.send(n, message)

    async def collect(
        self,
        event: str,
        seconds: float,
        *,
        index: int | None = None,
        on_progress: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> dict[int, dict[str, Any]]:
        """One `event` message from each process (fewer when `seconds` pass first)."""
        got: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + seconds
        while len(got) < self.count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                n, message = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                break
            kind = message.get("event")
            if kind == "exited":
                raise RuntimeError(f"learner process {n} exited")
            if kind == event and (index is None or message.get("index") == index):
                got[n] = message
            elif kind == "progress" and on_progress is not None:
                on_progress(n, message)
        return got

    async def results(self, seconds: float = 60.0) -> list[Measures]:
        """Every process's measures."""
        self.broadcast({"cmd": "results"})
        got = await self.collect("results", seconds)
        if len(got) < self.count:
            raise RuntimeError("a learner process did not send its results")
        return [got[n]["measures"] for n in range(self.count)]

    async def close(self, seconds: float = 15.0) -> None:
        """Close every learner's socket and stop the processes (killing stragglers)."""
        loop = asyncio.get_running_loop()
        for n, pipe in enumerate(self.pipes):
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(pipe.fileno())
                self.send(n, {"cmd": "close"})
        deadline = time.monotonic() + seconds
        for process in self.processes:
            await asyncio.to_thread(process.join, max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
        for pipe in self.pipes:
            pipe.close()

    def kill(self) -> None:
        """Last resort (failure paths): kill every process still alive."""
        for process in self.processes:
            if process.is_alive():
                process.kill()
