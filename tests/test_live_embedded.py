"""A live quiz on the embedded default (SQLite, no Redis: in-process fan-out, streams, hot
state and kicks): the same protocol works end to end on one instance."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from lms_live import keys, migrations
from lms_live.app import create_app
from lms_live.live.models import LiveAnswer, LivePlayer
from tests.conftest import make_settings
from tests.livekit import LiveWorld, label_of


async def test_a_live_quiz_on_the_embedded_default(
    aiohttp_server: Any, tmp_path: Path, worker_id: str
) -> None:
    settings = make_settings(
        tmp_path, worker_id, pg_url=None, redis_url=None, live_sweep_interval=0.05
    )
    await asyncio.to_thread(migrations.upgrade, "head", url=settings.effective_database_url)
    app = create_app(settings)
    server = await aiohttp_server(app)
    assert app[keys.DATABASE].engine.dialect.name == "sqlite"
    async with aiohttp.ClientSession() as http:
        world = LiveWorld([server], http)
        try:
            made = await world.quiz(learners=2)
            live = await world.session(made, scoring="correctness", streaks=False, points=10)
            host = await world.host(made, live)
            ann = await world.player(live, made.learners[0])
            ben = await world.player(live, made.learners[1])
            assert (await host.call("start"))["ok"]
            first = await ann.socket.next("question_opened")
            paris = label_of(first["question"], "Paris")
            lyon = label_of(first["question"], "Lyon")
            ok = await ann.socket.call(
                "answer", {"question": 0, "answer_id": "a", "response": {"choice": paris}}
            )
            assert ok["ok"], ok
            again = await ann.socket.call(
                "answer", {"question": 0, "answer_id": "a", "response": {"choice": paris}}
            )
            assert again["duplicate"] is True
            await ben.socket.call(
                "answer", {"question": 0, "answer_id": "b", "response": {"choice": lyon}}
            )
            closed = await ben.socket.next("question_closed")
            assert closed["reason"] == "all_answered"
            assert closed["distribution"] == {paris: 1, lyon: 1}
            assert (await ann.socket.call("me"))["player"]["score"] == 10
            await host.call("kick", {"player_id": ben.id})
            assert (await ben.socket.next("kicked")) == {"banned": False}
            assert (await host.call("end"))["phase"] == "finished"
            finished = await ann.socket.next("session_finished")
            assert [e["nickname"] for e in finished["podium"]] == ["Learner 1"]
            assert len(await world.rows(LiveAnswer)) == 2
            assert {p.nickname: p.score for p in await world.rows(LivePlayer)} == {
                "Learner 1": 10,
                "Learner 2": 0,
            }
        finally:
            for socket in world.sockets:
                await socket.disconnect()
