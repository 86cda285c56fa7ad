"""The live benchmark's simulated learners speak websocket and Engine.IO / Socket.IO correctly:
one learner against a real aiohttp websocket server that plays the live namespace by hand."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from bench.live_clients import ACK, CONNECTED, EVENT, Learner, Worker, ws_url

PADDING = {"short": "x" * 200, "long": "y" * 70_000}  # 16-bit and 64-bit frame lengths


class Host:
    """What the server side saw."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.closed = asyncio.Event()
        self.pong = asyncio.Event()


@pytest.fixture
async def host() -> AsyncIterator[tuple[Host, str]]:
    seen = Host()

    async def socket_io(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str('0{"sid":"e1","upgrades":[],"pingInterval":25000,"pingTimeout":5000}')
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            data: str = message.data
            seen.received.append(data)
            if data.startswith(CONNECTED):
                await ws.send_str(CONNECTED + '{"sid":"s1"}')
                await ws.send_str("2")  # an Engine.IO ping: the learner must answer 3
                opened = {
                    "index": 0,
                    "opened_at": datetime.now(UTC).isoformat(),
                    "question": {"options": [{"id": "a"}, {"id": "b"}]},
                    "padding": PADDING["short"],
                }
                await ws.send_str(EVENT + json.dumps(["question_opened", opened]))
            elif data == "3":
                seen.pong.set()
            elif data.startswith(EVENT):
                ack_id = data[len(EVENT) : data.index("[")]
                _, answer = json.loads(data[data.index("[") :])
                ack = {"ok": True, "status": "accepted", "answer_id": answer["answer_id"]}
                await ws.send_str(f"{ACK}{ack_id}" + json.dumps([ack]))
                board = {"index": 0, "padding": PADDING["long"]}
                await ws.send_str(EVENT + json.dumps(["leaderboard", board]))
        seen.closed.set()
        return ws

    app = web.Application()
    app.router.add_get("/socket.io/", socket_io)
    server = TestServer(app)
    await server.start_server()
    try:
        yield seen, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_a_learner_connects_answers_and_reads_big_frames(host: tuple[Host, str]) -> None:
    seen, base = host
    mine, _theirs = multiprocessing.Pipe()
    worker = Worker(mine, seed=1)
    worker.window = 0.05
    learner = Learner(7, None, ws_url(base))
    worker.learners = [learner]
    await asyncio.wait_for(worker._join_one(learner, "CODE"), 5)
    assert worker.live == [learner]
    assert seen.received[0] == CONNECTED + json.dumps({"player_token": "bare-7"})

    for _ in range(200):  # the answer goes out within the window, then the leaderboard
        if worker.m.board_at.get(0):
            break
        await asyncio.sleep(0.01)
    assert seen.pong.is_set()
    assert len(worker.m.fanout_ms[0]) == 1
    assert 0 <= worker.m.fanout_ms[0][0] < 1000
    (answer,) = [m for m in seen.received if m.startswith(EVENT)]
    _, body = json.loads(answer[answer.index("[") :])
    assert body == {"question": 0, "answer_id": "b7q0", "response": body["response"]}
    assert body["response"]["choice"] in {"a", "b"}
    assert worker.m.statuses[0] == {"accepted": 1}
    assert worker.m.accepted[0] == ["bare-7"]
    assert len(worker.m.ack_ms[0]) == 1
    assert len(worker.m.board_at[0]) == 1  # the 70 kB frame was read whole

    await worker._close_all()
    await asyncio.wait_for(seen.closed.wait(), 5)
    assert worker.m.disconnects == 0
