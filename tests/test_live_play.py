"""Live quizzes end to end over two app instances on the real PostgreSQL and Redis: a host on
one instance, players spread over both; questions open with the server's clock, answers are
committed before their ack (resends idempotent), questions close by themselves (everyone
answered, or the time is up), scores by the session's policy, reveal, leaderboard, podium and
results saved; rejoining restores everything; no right answer before the reveal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import update

from lms_live import keys
from lms_live.live.models import LiveAnswer, LivePlayer, LiveQuestion
from tests.livekit import (
    LiveWorld,
    label_of,
    world_fixture,  # noqa: F401 (the `world` fixture)
)

pytestmark = pytest.mark.shared_db


def no_secrets(payload: Any) -> None:
    """No right answer or option id leaks into what players receive before the reveal."""
    text = json.dumps(payload)
    for secret in ('"correct"', "paris", "lyon", "right_answer"):
        assert secret not in text, (secret, payload)


async def test_a_whole_quiz_over_two_instances(world: LiveWorld) -> None:
    made = await world.quiz(learners=3)
    live = await world.session(made, scoring="correctness", streaks=False, points=100)
    host = await world.host(made, live, server=0)
    ann = await world.player(live, made.learners[0], server=0)
    bob = await world.player(live, made.learners[1], server=1)
    cid = await world.player(live, made.learners[2], server=1)
    joined = [await host.next("player_joined") for _ in range(3)]
    assert {j["player"]["nickname"] for j in joined} == {"Learner 1", "Learner 2", "Learner 3"}
    assert [j["host_seq"] for j in joined] == [1, 2, 3]

    ack = await host.call("start")
    assert ack == {"ok": True, "phase": "question_open", "index": 0}
    opened = [await p.socket.next("question_opened") for p in (ann, bob, cid)]
    assert {o["seq"] for o in opened} == {2}  # session_started was seq 1
    question = opened[0]["question"]
    no_secrets(opened[0])
    assert question["prompt"] == "Capital of France?"
    paris, lyon = label_of(question, "Paris"), label_of(question, "Lyon")

    first = await ann.socket.call(
        "answer", {"question": 0, "answer_id": "a-1", "response": {"choice": paris}}
    )
    assert first["ok"]
    assert first["status"] == "accepted"
    assert first["duplicate"] is False
    again = await ann.socket.call(
        "answer", {"question": 0, "answer_id": "a-1", "response": {"choice": paris}}
    )
    assert again["ok"]
    assert again["duplicate"] is True
    assert again["received_at"] == first["received_at"]
    reused = await ann.socket.call(
        "answer", {"question": 0, "answer_id": "a-1", "response": {"choice": lyon}}
    )
    assert reused["error"]["code"] == "answer_id_reused"
    other = await ann.socket.call(
        "answer", {"question": 0, "answer_id": "a-2", "response": {"choice": lyon}}
    )
    assert other["error"]["code"] == "already_answered"
    bad = await bob.socket.call(
        "answer", {"question": 0, "answer_id": "b-1", "response": {"choice": "Z9"}}
    )
    assert bad["error"]["code"] == "validation_failed"
    wrong_q = await bob.socket.call(
        "answer", {"question": 1, "answer_id": "b-0", "response": {"value": True}}
    )
    assert wrong_q["error"]["code"] == "question_not_open"
    assert (
        await bob.socket.call(
            "answer", {"question": 0, "answer_id": "b-1", "response": {"choice": lyon}}
        )
    )["ok"]
    # Not everyone has answered: the question stays open.
    dashboard = await host.next("dashboard")
    while dashboard["answered"] < 2:
        dashboard = await host.next("dashboard")
    assert dashboard["distribution"] == {paris: 1, lyon: 1}
    assert dashboard["phase"] == "question_open"
    assert (
        await cid.socket.call(
            "answer", {"question": 0, "answer_id": "c-1", "response": {"choice": paris}}
        )
    )["ok"]

    closed = await ann.socket.next("question_closed")
    assert closed["reason"] == "all_answered"
    assert closed["right_answer"] == {"choice": paris}
    assert closed["distribution"] == {paris: 2, lyon: 1}
    assert closed["answered"] == 3
    assert [(e["nickname"], e["score"], e["rank"]) for e in closed["leaderboard"]] == [
        ("Learner 1", 100, 1),
        ("Learner 3", 100, 1),
        ("Learner 2", 0, 3),
    ]
    me = await bob.socket.call("me")
    assert me["player"]["score"] == 0
    assert me["player"]["rank"] == 3
    assert me["player"]["last"] == {"index": 0, "state": "incorrect", "points": 0, "correct": False}

    assert (await host.call("next"))["phase"] == "leaderboard"
    board = await cid.socket.next("leaderboard")
    assert board["leaderboard"][0]["score"] == 100
    assert (await host.call("next"))["phase"] == "question_open"
    second = await bob.socket.next("question_opened")
    assert second["index"] == 1
    assert (
        await bob.socket.call(
            "answer", {"question": 1, "answer_id": "b-2", "response": {"value": True}}
        )
    )["ok"]
    # The host closes it early; the others never answered.
    assert (await host.call("close_question"))["phase"] == "question_closed"
    closed = await bob.socket.next("question_closed")
    assert closed["reason"] == "host"
    assert closed["answered"] == 1
    late = await ann.socket.call(
        "answer", {"question": 1, "answer_id": "a-3", "response": {"value": True}}
    )
    assert late["error"]["code"] == "question_closed"

    assert (await host.call("skip"))["phase"] == "question_open"  # skips the leaderboard
    await cid.socket.next("question_opened")
    assert (await host.call("end"))["phase"] == "finished"
    finished = await ann.socket.next("session_finished")
    assert [e["score"] for e in finished["podium"]] == [100, 100, 100]

    players = {p.nickname: p for p in await world.rows(LivePlayer)}
    assert players["Learner 2"].score == 100
    assert players["Learner 1"].score == 100
    answers = await world.rows(LiveAnswer)
    assert len(answers) == 4
    status, results = await world.request(
        "GET", f"/api/v1/live-sessions/{live['id']}/results", who=made.owner, server=1
    )
    assert status == 200, results
    assert [p["score"] for p in results["players"]] == [100, 100, 100]
    assert results["questions"][0]["distribution"] == {paris: 2, lyon: 1}
    status, csv_text = await world.request(
        "GET", f"/api/v1/live-sessions/{live['id']}/results.csv", who=made.owner
    )
    assert status == 200
    assert csv_text.splitlines()[0].startswith("rank,nickname,email")
    assert len(csv_text.splitlines()) == 4


async def test_a_question_closes_on_time_by_itself_and_late_answers_are_refused(
    world: LiveWorld,
) -> None:
    made = await world.quiz(learners=2)
    live = await world.session(made, seconds_per_question=5)
    host = await world.host(made, live)
    ann = await world.player(live, made.learners[0], server=1)
    await world.player(live, made.learners[1], server=0)
    await host.call("start")
    opened = await ann.socket.next("question_opened")
    # Nobody answers; the host's socket goes away: the server still closes the question.
    await host.disconnect()
    async with world.app[keys.DATABASE].transaction() as session:
        await session.execute(
            update(LiveQuestion)
            .where(LiveQuestion.session_id == live["id"], LiveQuestion.position == 0)
            .values(closes_at=LiveQuestion.opened_at)
        )
    closed = await ann.socket.next("question_closed", timeout=5)
    assert closed["reason"] == "time"
    assert closed["answered"] == 0
    assert opened["index"] == 0
    label = label_of(opened["question"], "Paris")
    late = await ann.socket.call(
        "answer", {"question": 0, "answer_id": "x", "response": {"choice": label}}
    )
    assert late["error"]["code"] == "question_closed"


async def test_rejoin_restores_phase_question_answer_and_score(world: LiveWorld) -> None:
    made = await world.quiz(learners=2)
    live = await world.session(made, scoring="correctness", streaks=False, points=10)
    host = await world.host(made, live)
    ann = await world.player(live, made.learners[0], server=0)
    await world.player(live, made.learners[1], server=1)
    await host.call("start")
    opened = await ann.socket.next("question_opened")
    paris = label_of(opened["question"], "Paris")
    assert (
        await ann.socket.call(
            "answer", {"question": 0, "answer_id": "p", "response": {"choice": paris}}
        )
    )["ok"]
    await host.call("close_question")
    await ann.socket.next("question_closed")
    await host.call("next")
    await host.call("next")
    await ann.socket.next("question_opened")
    # Ann's page reloads: a new socket on the other instance, with the same player token.
    await ann.socket.disconnect()
    again = await world.socket(
        1, {"player_token": ann.join["player_token"], "token": world.token(made.learners[0])}
    )
    ack = await again.call("sync", {"last_seq": 2})
    snap = ack["snapshot"]
    assert snap["phase"] == "question_open"
    assert snap["index"] == 1
    assert snap["question"]["prompt"] == "The Earth is round."
    assert snap["player"]["score"] == 10
    assert snap["player"]["rank"] == 1
    assert snap["deadline"] is not None
    assert snap["server_now"] is not None
    assert snap["my_answer"] is None
    no_secrets(snap["question"])
    assert ack["seq"] >= 5
