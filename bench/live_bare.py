"""The bare reference server of bench/live_quiz.py: python-socketio 5 on aiohttp, nothing else.

`python bench/live_bare.py --port P --redis URL --channel C` serves the same `/live` wire
traffic the learners of the bench see from lms_live, with none of its work (no database, no
tokens, no streams): what this stack costs by itself. Run two instances on one Redis channel:
`start`/`next` emit through a write-only AsyncRedisManager, so both instances fan out to their
own clients in parallel (as lms_live does for live broadcasts). Start-up tunes the collector
like `lms-live serve` (collect, freeze, threshold 50,000/50/1,000).

Routes and events:
- `POST /api/v1/live/join` -> a player id and token (no check), so joins take the same path;
- `/live` connect with `{"player_token"}` (a learner: joins room `live`) or `{"token"}` (the
  host); `host`, `start`, `next`, `close_question`, `end` (acked) and `answer` (acked
  `accepted` at once, nothing stored);
- `question_opened` / `question_closed` / `leaderboard` payloads shaped and sized like
  lms_live's (a 4-option question, a top-10 leaderboard);
- `GET /stats` -> `{"pauses": [[ended_at epoch, seconds], ...]}`: every collector pause over
  0.5 ms since start-up, timed with gc.callbacks.
"""

from __future__ import annotations

import argparse
import gc
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import socketio
from aiohttp import web

NAMESPACE = "/live"
ROOM = "live"
QUESTIONS = 3
TIME_LIMIT_MS = 30_000
LABELS = ("1", "2", "3", "4")
MIN_PAUSE = 0.0005


class GcPauses:
    """Collector pauses, timed by gc.callbacks."""

    def __init__(self) -> None:
        self.started = 0.0
        self.pauses: list[tuple[float, float]] = []

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started:
            took = time.perf_counter() - self.started
            if took >= MIN_PAUSE:
                self.pauses.append((time.time(), took))


def _now() -> datetime:
    return datetime.now(UTC)


def question_payload(seq: int, index: int) -> dict[str, Any]:
    """A `question_opened` payload like lms_live's for a 4-option single-choice question."""
    opened = _now()
    prompt = f"Question {index + 1}?"
    return {
        "seq": seq,
        "index": index,
        "count": QUESTIONS,
        "question": {
            "type": "single_choice",
            "prompt": prompt,
            "prompt_html": f"<p>{prompt}</p>",
            "options": [{"id": label, "text": f"Option {label}"} for label in LABELS],
        },
        "opened_at": opened.isoformat(),
        "ends_at": (opened + timedelta(milliseconds=TIME_LIMIT_MS)).isoformat(),
        "time_limit_ms": TIME_LIMIT_MS,
        "points": 1000,
        "server_now": opened.isoformat(),
    }


def leaderboard(size: int = 10) -> list[dict[str, Any]]:
    """A top-10 leaderboard of the same shape as lms_live's."""
    return [
        {
            "rank": n + 1,
            "player_id": str(uuid.uuid4()),
            "nickname": f"learner{n:05d}",
            "score": 1000 - n,
        }
        for n in range(size)
    ]


class BareLive(socketio.AsyncNamespace):  # type: ignore[misc]
    """The `/live` events of the bench, with empty bodies; phase kept by the host's instance."""

    def __init__(self, writer: socketio.AsyncManager) -> None:
        super().__init__(NAMESPACE)
        self.writer = writer
        self.seq = 0
        self.index = -1
        self.phase = "lobby"

    async def _broadcast(self, event: str, payload: dict[str, Any]) -> None:
        await self.writer.emit(event, payload, namespace=NAMESPACE, room=ROOM)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if isinstance(auth, dict) and auth.get("player_token"):
            await self.save_session(sid, {"player_id": str(auth["player_token"])})
            await self.enter_room(sid, ROOM)
        elif isinstance(auth, dict) and auth.get("token"):
            await self.save_session(sid, {"host": True})
        else:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")

    async def on_answer(self, sid: str, data: Any = None) -> dict[str, Any]:
        received = _now()
        return {
            "ok": True,
            "status": "accepted",
            "answer_id": data.get("answer_id") if isinstance(data, dict) else None,
            "duplicate": False,
            "received_at": received.isoformat(),
        }

    async def on_host(self, sid: str, data: Any = None) -> dict[str, Any]:
        await self.enter_room(sid, ROOM)
        return {"ok": True, "seq": self.seq, "host_seq": 0, "snapshot": {"phase": self.phase}}

    async def _open_next(self) -> None:
        self.index += 1
        self.seq += 1
        if self.index >= QUESTIONS:
            self.phase = "finished"
            await self._broadcast(
                "session_finished", {"seq": self.seq, "podium": [], "leaderboard": leaderboard()}
            )
            return
        self.phase = "question_open"
        await self._broadcast("question_opened", question_payload(self.seq, self.index))

    async def on_start(self, sid: str, data: Any = None) -> dict[str, Any]:
        if self.phase != "lobby":
            return _wrong_phase()
        await self._open_next()
        return {"ok": True, "phase": self.phase, "index": self.index}

    async def on_close_question(self, sid: str, data: Any = None) -> dict[str, Any]:
        if self.phase != "question_open":
            return _wrong_phase()
        self.phase = "question_closed"
        self.seq += 1
        await self._broadcast(
            "question_closed",
            {
                "seq": self.seq,
                "index": self.index,
                "reason": "host",
                "right_answer": {"choice": LABELS[0]},
                "distribution": dict.fromkeys(LABELS, 0),
                "answered": 0,
                "leaderboard": leaderboard(),
            },
        )
        return {"ok": True, "phase": self.phase, "index": self.index}

    async def on_next(self, sid: str, data: Any = None) -> dict[str, Any]:
        if self.phase == "question_closed":
            self.phase = "leaderboard"
            self.seq += 1
            await self._broadcast(
                "leaderboard", {"seq": self.seq, "index": self.index, "leaderboard": leaderboard()}
            )
        elif self.phase in ("lobby", "leaderboard"):
            await self._open_next()
        else:
            return _wrong_phase()
        return {"ok": True, "phase": self.phase, "index": self.index}

    async def on_end(self, sid: str, data: Any = None) -> dict[str, Any]:
        self.phase = "finished"
        return {"ok": True, "phase": self.phase, "index": self.index}


def _wrong_phase() -> dict[str, Any]:
    return {"ok": False, "error": {"code": "wrong_phase", "message": "wrong phase"}}


async def join(request: web.Request) -> web.Response:
    """Any body joins: a fresh player id and token."""
    body = await request.json()
    player = str(uuid.uuid4())
    return web.json_response(
        {
            "session_id": str(uuid.uuid4()),
            "player_id": player,
            "player_token": player,
            "nickname": str(body.get("nickname") or "guest"),
            "quiz_title": "Bench quiz",
        },
        status=201,
    )


def make_app(redis_url: str, channel: str, pauses: GcPauses) -> web.Application:
    """The bare server: Socket.IO on Redis, the join route, `/stats`."""
    options = {"socket_timeout": None, "socket_connect_timeout": 5}
    manager = socketio.AsyncRedisManager(redis_url, channel=channel, redis_options=options)
    writer = socketio.AsyncRedisManager(
        redis_url, channel=channel, write_only=True, redis_options=options
    )
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        cors_allowed_origins="*",
        max_http_buffer_size=65_536,
        logger=False,
        engineio_logger=False,
    )
    sio.register_namespace(BareLive(writer))
    app = web.Application()
    sio.attach(app)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"pauses": pauses.pauses})

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_post("/api/v1/live/join", join)
    app.router.add_get("/stats", stats)
    app.router.add_get("/ready", ready)

    async def tune_gc(_: web.Application) -> None:
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 1000)
        gc.callbacks.append(pauses)

    app.on_startup.append(tune_gc)
    return app


def main() -> None:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--channel", required=True)
    args = parser.parse_args()
    app = make_app(args.redis, args.channel, GcPauses())
    from lms_live.cli import new_event_loop  # uvloop, as the app's `serve` uses

    web.run_app(
        app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=new_event_loop()
    )


if __name__ == "__main__":
    main()
