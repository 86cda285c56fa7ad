"""Live session rules on the real PostgreSQL and Redis, two instances: resends counted once,
per-learner deadlines judged by the server, the paused clock, kicks and bans, guests and
nicknames, hosts only for the course's teachers, bad socket input and floods refused without
hurting anyone else, sessions isolated from each other, scores derivable from the answers."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import socketio
from sqlalchemy import func, select, update

from lms_live import keys
from lms_live.auth.models import Role
from lms_live.core.db import utcnow
from lms_live.live import service
from lms_live.live.models import LiveAnswer, LivePlayer, LiveQuestion, LiveSession
from lms_live.quizzes.models import Accommodation
from tests.livekit import (
    NS,
    LiveSocket,
    LiveWorld,
    label_of,
    world_fixture,  # noqa: F401 (the `world` fixture)
)

pytestmark = pytest.mark.shared_db


@pytest.fixture
def live_settings() -> dict[str, Any]:
    return {"live_socket_events_per_second": 50, "live_join_rate": "40/minute"}


async def opened(world: LiveWorld, learners: int = 2, **options: Any) -> tuple[Any, ...]:
    made = await world.quiz(learners=learners)
    live = await world.session(made, **options)
    host = await world.host(made, live)
    players = [await world.player(live, user, server=n % 2) for n, user in enumerate(made.learners)]
    await host.call("start")
    first = await players[0].socket.next("question_opened")
    return made, live, host, players, first


async def test_fifty_concurrent_resends_over_two_instances_make_one_row(world: LiveWorld) -> None:
    made, _live, _host, players, first = await opened(world, learners=2)
    paris = label_of(first["question"], "Paris")
    ann = players[0]
    twin = await world.socket(
        1, {"player_token": ann.join["player_token"], "token": world.token(made.learners[0])}
    )
    payload = {"question": 0, "answer_id": "same-id", "response": {"choice": paris}}
    acks = await asyncio.gather(*(sock.call("answer", payload) for sock in [ann.socket, twin] * 25))
    assert all(ack["ok"] for ack in acks), acks
    assert sum(1 for ack in acks if not ack["duplicate"]) == 1
    assert len({ack["received_at"] for ack in acks}) == 1
    rows = await world.rows(LiveAnswer, LiveAnswer.player_id == uuid.UUID(ann.id))
    assert len(rows) == 1


async def test_a_close_and_an_answer_batch_at_the_same_moment_do_not_deadlock(
    world: LiveWorld,
) -> None:
    """A close locks the session, then the question; a batch locks the question, then (its
    foreign-key check) the session. The session lock must not block that check."""
    _made, live, _host, players, first = await opened(world, learners=2)
    session_id = uuid.UUID(live["id"])
    payload = {
        "question": 0,
        "answer_id": "a-1",
        "response": {"choice": label_of(first["question"], "Paris")},
    }
    async with world.app[keys.DATABASE].transaction() as closing:
        assert await service._session(closing, session_id, lock=True) is not None
        answering = asyncio.ensure_future(players[0].socket.call("answer", payload))
        await asyncio.sleep(0.5)  # the batch is in: question locked, its insert checking keys
        question = await service.question_at(closing, session_id=session_id, index=0, lock=True)
        assert question is not None
        ack = await answering
    assert ack["ok"], ack
    assert len(await world.rows(LiveAnswer, LiveAnswer.player_id == uuid.UUID(players[0].id))) == 1


async def test_each_learner_has_its_own_deadline_and_late_answers_are_never_scored(
    world: LiveWorld,
) -> None:
    made = await world.quiz(learners=2)
    slow = made.learners[1]
    async with world.app[keys.DATABASE].transaction() as session:
        session.add(Accommodation(quiz_id=made.quiz.id, user_id=slow.id, time_multiplier=2.0))
    live = await world.session(made, seconds_per_question=10, scoring="correctness")
    host = await world.host(made, live)
    ann = await world.player(live, made.learners[0])
    ben = await world.player(live, slow, server=1)
    assert (await ben.socket.call("sync"))["snapshot"]["player"]["time_factor"] == 2.0
    await host.call("start")
    first = await ann.socket.next("question_opened")
    paris = label_of(first["question"], "Paris")
    # 12 s have passed: over Ann's 10 s + 1 s grace, within Ben's 20 s.
    async with world.app[keys.DATABASE].transaction() as session:
        await session.execute(
            update(LiveQuestion)
            .where(LiveQuestion.session_id == uuid.UUID(live["id"]), LiveQuestion.position == 0)
            .values(
                opened_at=utcnow() - timedelta(seconds=12),
                closes_at=utcnow() + timedelta(seconds=9),
            )
        )
    late = await ann.socket.call(
        "answer", {"question": 0, "answer_id": "a", "response": {"choice": paris}}
    )
    assert late["error"]["code"] == "late"
    in_time = await ben.socket.call(
        "answer", {"question": 0, "answer_id": "b", "response": {"choice": paris}}
    )
    assert in_time["ok"], in_time
    await host.call("close_question")
    closed = await ann.socket.next("question_closed")
    assert closed["answered"] == 1
    scores = {p.nickname: p.score for p in await world.rows(LivePlayer)}
    assert scores == {"Learner 1": 0, "Learner 2": 1000}
    (answer,) = await world.rows(LiveAnswer)
    assert 11_900 <= answer.elapsed_ms <= 14_000


async def test_a_paused_clock_stops_time_for_everyone(world: LiveWorld) -> None:
    _made, live, host, players, first = await opened(world, learners=2, scoring="speed")
    assert (await host.call("pause"))["ok"]
    paused = await players[1].socket.next("clock_paused")
    assert paused["index"] == 0
    # While paused the question never closes by time, whatever closes_at said.
    (question,) = await world.rows(
        LiveQuestion, LiveQuestion.session_id == uuid.UUID(live["id"]), LiveQuestion.position == 0
    )
    assert question.closes_at is None
    assert (await host.call("pause"))["error"]["code"] == "wrong_phase"
    before = question.opened_at
    assert (await host.call("resume"))["ok"]
    resumed = await players[0].socket.next("clock_resumed")
    assert resumed["opened_at"] > before.isoformat()
    paris = label_of(first["question"], "Paris")
    ack = await players[0].socket.call(
        "answer", {"question": 0, "answer_id": "p", "response": {"choice": paris}}
    )
    assert ack["ok"]


async def test_kicked_players_are_dropped_refused_and_banned_ones_cannot_rejoin(
    world: LiveWorld,
) -> None:
    made, live, host, players, _first = await opened(world, learners=2)
    ann = players[0]
    ack = await host.call("kick", {"player_id": ann.id, "ban": True})
    assert ack["ok"], ack
    kicked = await ann.socket.next("kicked")
    assert kicked == {"banned": True}
    for _ in range(50):
        if not ann.socket.client.connected:
            break
        await asyncio.sleep(0.05)
    assert not ann.socket.client.connected
    status, body = await world.request(
        "POST", "/api/v1/live/join", who=made.learners[0], json={"code": live["code"]}
    )
    assert (status, body["error"]) == (403, "banned")
    refused = LiveSocket()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await world.socket(
            1,
            {"player_token": ann.join["player_token"], "token": world.token(made.learners[0])},
            refused,
        )
    assert refused.refusal is not None
    assert refused.refusal["data"]["code"] == "kicked"
    assert (await host.call("unban", {"player_id": ann.id}))["ok"]
    status, body = await world.request(
        "POST", "/api/v1/live/join", who=made.learners[0], json={"code": live["code"]}
    )
    assert status == 200
    assert body["player_id"] == ann.id


async def test_guests_join_with_clean_unique_nicknames_only_when_allowed(
    world: LiveWorld,
) -> None:
    made = await world.quiz(learners=0)
    closed = await world.session(made)
    status, body = await world.request(
        "POST", "/api/v1/live/join", json={"code": closed["code"], "nickname": "Zed"}
    )
    assert (status, body["error"]) == (401, "authentication_required")
    live = await world.session(made, guests=True, late_join=False)
    guest = await world.player(live, None, nickname="Zed")
    assert guest.join["guest"] is True
    status, body = await world.request(
        "POST", "/api/v1/live/join", json={"code": live["code"], "nickname": "  zed "}
    )
    assert (status, body["error"]) == (409, "nickname_taken")
    status, body = await world.request(
        "POST", "/api/v1/live/join", json={"code": live["code"], "nickname": "a"}
    )
    assert (status, body["error"]) == (422, "nickname_refused")
    status, body = await world.request(
        "POST", "/api/v1/live/join", json={"code": live["code"].lower(), "nickname": "F.U.C.K"}
    )
    assert (status, body["error"]) == (422, "nickname_refused")
    status, body = await world.request(
        "POST", "/api/v1/live/join", json={"code": "ZZZZZZ", "nickname": "Amy"}
    )
    assert (status, body["error"]) == (404, "session_not_found")
    host = await world.host(made, live)
    await host.call("start")
    status, body = await world.request(
        "POST", "/api/v1/live/join", json={"code": live["code"], "nickname": "Late"}
    )
    assert (status, body["error"]) == (409, "session_started")
    # A guest's token alone connects; nothing else does.
    forged = LiveSocket()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await world.socket(0, {"player_token": "forged.token.value"}, forged)
    assert forged.refusal is not None
    assert forged.refusal["data"]["code"] == "invalid_player_token"
    count = await world.rows(LivePlayer, LivePlayer.session_id == uuid.UUID(live["id"]))
    assert [p.nickname for p in count] == ["Zed"]


async def test_accounts_sharing_a_name_get_numbered_and_an_account_joins_once(
    world: LiveWorld,
) -> None:
    made = await world.quiz(learners=0)
    live = await world.session(made, guests=True)
    sam, other = await world.user(name="Sam Same"), await world.user(name="Sam Same")
    joins = [
        world.request("POST", "/api/v1/live/join", who=who, json={"code": live["code"]})
        for who in (sam, sam, sam, other)
    ]
    answers = await asyncio.gather(*joins)
    assert [status for status, _ in answers] == [200] * 4
    assert len({body["player_id"] for _, body in answers[:3]}) == 1  # one account, one player
    assert {body["nickname"] for _, body in answers} == {"Sam Same", "Sam Same 2"}
    rows = await world.rows(LivePlayer, LivePlayer.session_id == uuid.UUID(live["id"]))
    assert sorted((p.nickname, p.user_id) for p in rows) == sorted(
        (body["nickname"], who.id) for (_, body), who in zip(answers[2:], (sam, other), strict=True)
    )


async def test_joins_are_rate_limited_per_client(world: LiveWorld) -> None:
    statuses = []
    for _ in range(45):
        status, _body = await world.request(
            "POST", "/api/v1/live/join", json={"code": "ABCDEF", "nickname": "Amy"}
        )
        statuses.append(status)
    assert statuses[:40] == [404] * 40
    assert statuses[-1] == 429


async def test_only_the_course_teachers_host_and_controls_follow_the_phases(
    world: LiveWorld,
) -> None:
    made = await world.quiz(learners=1)
    live = await world.session(made)
    outsider = await world.user(Role.INSTRUCTOR, "Other")
    stranger = await world.socket(0, {"token": world.token(outsider)})
    ack = await stranger.call("host", {"session_id": live["id"]})
    assert ack["error"]["code"] == "not_host"
    assert (await stranger.call("start"))["error"]["code"] == "not_host"
    player = await world.player(live, made.learners[0])
    assert (await player.socket.call("start"))["error"]["code"] == "not_host"
    host = await world.host(made, live)
    assert (await host.call("next"))["error"]["code"] == "wrong_phase"
    assert (await host.call("close_question"))["error"]["code"] == "wrong_phase"
    assert (await host.call("start"))["ok"]
    assert (await host.call("start"))["error"]["code"] == "wrong_phase"
    assert (await host.call("next"))["error"]["code"] == "wrong_phase"  # close it first
    snapshot = (await host.call("host", {"session_id": live["id"]}))["snapshot"]
    assert snapshot["right_answer"] is not None  # the host sees it; players never do
    assert snapshot["players"][0]["nickname"] == "Learner 1"


async def test_bad_socket_input_gets_error_acks_and_a_flood_is_cut_off(world: LiveWorld) -> None:
    _made, _live, _host, players, first = await opened(world, learners=2)
    ann, ben = players
    for bad in (
        "not an object",
        {"question": "0", "answer_id": "x", "response": {}},
        {"question": 0, "answer_id": "x" * 65, "response": {}},
        {"question": 0, "answer_id": "bad id!", "response": {}},
        {"question": 0, "answer_id": "x", "response": {"choice": ["1"]}},
        {"question": 0, "answer_id": "x", "response": {"choice": "1"}, "extra": 1},
        {"question": -1, "answer_id": "x", "response": {}},
    ):
        ack = await ann.socket.call("answer", bad)
        assert ack["ok"] is False, bad
        assert ack["error"]["code"] == "validation_failed", (bad, ack)
    assert (await ann.socket.call("host", [1, 2]))["error"]["code"] == "validation_failed"
    await ann.socket.client.emit("no_such_event", {"x": 1}, namespace=NS)
    assert (await ann.socket.call("me"))["ok"]
    # A flood from Ann: rate-limited acks, then her socket is dropped; Ben is unaffected.
    flood = [ann.socket.client.emit("clock", {}, namespace=NS) for _ in range(400)]
    started = time.perf_counter()
    await asyncio.gather(*flood, return_exceptions=True)
    paris = label_of(first["question"], "Paris")
    ack = await ben.socket.call(
        "answer", {"question": 0, "answer_id": "b", "response": {"choice": paris}}
    )
    assert ack["ok"]
    assert time.perf_counter() - started < 3
    for _ in range(100):
        if not ann.socket.client.connected:
            break
        await asyncio.sleep(0.05)
    assert not ann.socket.client.connected


async def test_two_sessions_in_parallel_never_see_each_others_events(world: LiveWorld) -> None:
    one = await opened(world, learners=2)
    two = await opened(world, learners=2)
    for _made, _live, host, players, first in (one, two):
        paris = label_of(first["question"], "Paris")
        for n, player in enumerate(players):
            await player.socket.call(
                "answer", {"question": 0, "answer_id": f"a{n}", "response": {"choice": paris}}
            )
        await players[0].socket.next("question_closed")
        await host.call("end")
        await players[1].socket.next("session_finished")
    for (_m, _live, host, players, _f), other in ((one, two[1]), (two, one[1])):
        for socket in [host] + [p.socket for p in players]:
            for _event, data in socket.seen:
                text = str(data)
                assert other["id"] not in text
                assert other["code"] not in text or _event == "dashboard"
        assert all(
            e
            in (
                "session_started",
                "question_opened",
                "question_closed",
                "session_finished",
                "tick",
                "kicked",
            )
            for e, _ in players[0].socket.seen
        ), players[0].socket.seen


async def test_scores_are_derived_from_the_stored_answers(world: LiveWorld) -> None:
    _made, live, host, players, first = await opened(world, learners=2, scoring="speed")
    paris = label_of(first["question"], "Paris")
    await players[0].socket.call(
        "answer", {"question": 0, "answer_id": "a", "response": {"choice": paris}}
    )
    await players[1].socket.call(
        "answer", {"question": 0, "answer_id": "b", "response": {"choice": paris}}
    )
    await players[0].socket.next("question_closed")
    await host.call("next")
    await host.call("next")
    second = await players[0].socket.next("question_opened")
    await players[1].socket.call(
        "answer", {"question": 1, "answer_id": "c", "response": {"value": True}}
    )
    await host.call("close_question")
    await players[0].socket.next("question_closed")
    async with world.app[keys.DATABASE].sessions() as session:
        row = await session.get(LiveSession, uuid.UUID(live["id"]))
        assert row is not None
        totals = await service.recompute_scores(session, live=row)
        stored = {
            p.id: p.score
            for p in await session.scalars(
                select(LivePlayer).where(LivePlayer.session_id == row.id)
            )
        }
        points = await session.scalar(
            select(func.sum(LiveAnswer.points)).where(LiveAnswer.session_id == row.id)
        )
    assert {pid: t[0] for pid, t in totals.items()} == stored
    assert sum(stored.values()) == points
    assert all(500 <= s <= 2600 for s in stored.values()), stored
    assert second["index"] == 1
