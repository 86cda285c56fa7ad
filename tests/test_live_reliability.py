"""Live quizzes survive what production does to them, with every app instance a real
`lms-live serve` process: `kill -9` of the instance holding the host mid-question (no acked
answer lost or doubled, the question still closes on time from the other instance, the
conductor lease moves), a Redis restart mid-question (instances resubscribe, clients detect
the reset `seq` and resync, the host's counts converge to the database) and concurrent
resends of one answer through two processes (one row)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from lms_live.auth.models import Role
from lms_live.live.hot import PRESENCE_TTL
from lms_live.live.models import LiveAnswer, LivePlayer
from lms_live.live.service import GRACE_MS
from tests.livekit import LiveSocket, Player, label_of
from tests.liveprocs import Cluster, ProcWorld, eventually

pytestmark = [pytest.mark.shared_db, pytest.mark.slow, pytest.mark.timeout(90)]

CLOSE_MARGIN = 1.5  # seconds after a question's closing time: sweep interval plus delivery


@pytest.fixture
async def cluster(
    tmp_path: Path, worker_id: str, pg_url: str, redis_url: str, redis: Redis, database: None
) -> AsyncIterator[Cluster]:
    """App processes and Redis servers of this test, all stopped after it."""
    result = Cluster(tmp_path, worker_id, pg_url=pg_url, redis_url=redis_url)
    yield result
    await result.close()


async def until(
    socket: LiveSocket,
    event: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> dict[str, Any]:
    """The first `event` for which `done` holds, within `timeout` seconds in all."""
    async with asyncio.timeout(timeout):
        while True:
            data = await socket.next(event, timeout=timeout)
            if done(data):
                return data


async def answer(
    player: Player | LiveSocket, answer_id: str, choice: str, timeout: float = 10
) -> dict[str, Any]:
    """Send an answer to question 0; the ack."""
    socket = player.socket if isinstance(player, Player) else player
    payload = {"question": 0, "answer_id": answer_id, "response": {"choice": choice}}
    return await socket.call("answer", payload, timeout=timeout)


async def rejoin(world: ProcWorld, player: Player, server: int) -> LiveSocket:
    """The player's page reloads on another instance: same player token, same account."""
    assert player.user is not None
    return await world.socket(
        server, {"player_token": player.join["player_token"], "token": world.token(player.user)}
    )


async def answers_of(world: ProcWorld, session_id: str) -> list[LiveAnswer]:
    return await world.rows(LiveAnswer, LiveAnswer.session_id == uuid.UUID(session_id))


async def instance_ids(world: ProcWorld) -> list[str]:
    """Each app process's instance id (the conductor lease's holder value)."""
    admin = await world.user(Role.ADMIN, "Ada Admin")
    ids = []
    for server in range(len(world.apps)):
        status, info = await world.request("GET", "/api/v1/system/info", who=admin, server=server)
        assert status == 200, info
        ids.append(str(info["instance_id"]))
    return ids


async def test_kill_9_of_the_hosts_instance_mid_question_loses_no_acked_answer(
    cluster: Cluster, redis: Redis
) -> None:
    world = await cluster.apps()
    ids = await instance_ids(world)
    made = await world.quiz(learners=6)
    live = await world.session(
        made, seconds_per_question=5, scoring="correctness", streaks=False, points=100
    )
    # A is the instance that took the session's conductor lease; it also gets the host.
    lease_key = f"lms:live:{live['id']}:conductor"
    holder = await eventually(lambda: redis.get(lease_key), lambda v: v is not None)
    a = next(n for n, value in enumerate(ids) if value.encode() == holder)
    b = 1 - a
    host = await world.host(made, live, server=a)
    players = [
        await world.player(live, user, server=a if n < 3 else b)
        for n, user in enumerate(made.learners)
    ]
    assert (await host.call("start"))["phase"] == "question_open"
    opened = await players[3].socket.next("question_opened")
    paris, lyon = label_of(opened["question"], "Paris"), label_of(opened["question"], "Lyon")
    choices = {0: paris, 1: lyon, 2: paris, 3: paris, 4: lyon}  # player 5 never answers

    before = {3: await answer(players[3], "p3", paris)}  # on B
    assert before[3]["ok"], before[3]
    assert before[3]["duplicate"] is False
    # Three answers on A at once; A dies as soon as the first ack is back, so the others
    # may be acked, or lost before their batch commits, or committed but never acked.
    on_a = {
        n: asyncio.create_task(answer(players[n], f"p{n}", choices[n], timeout=3))
        for n in (0, 1, 2)
    }
    await asyncio.wait(on_a.values(), return_when=asyncio.FIRST_COMPLETED)
    assert await redis.get(lease_key) == ids[a].encode()
    world.apps[a].kill()
    outcomes = await asyncio.gather(*on_a.values(), return_exceptions=True)
    for n, outcome in zip(on_a, outcomes, strict=True):
        if isinstance(outcome, dict):
            assert outcome.get("status") == "accepted", outcome
            before[n] = outcome
    assert {0, 1, 2} & before.keys(), "the first completed answer on A must have been acked"
    for socket in (host, *(p.socket for p in players[:3])):
        await asyncio.wait_for(socket.client.eio.wait(), 5)  # A's sockets are gone

    # Every acked answer is stored exactly once.
    stored = {str(row.player_id): row for row in await answers_of(world, live["id"])}
    for n, ack in before.items():
        row = stored[players[n].id]
        assert row.client_answer_id == f"p{n}"
        assert row.received_at.isoformat() == ack["received_at"]

    # A's learners reload on B with their player token and see the open question.
    again = {n: await rejoin(world, players[n], b) for n in (0, 1, 2)}
    for n, socket in again.items():
        synced = await socket.call("sync", {"last_seq": opened["seq"]})
        assert synced["ok"], synced
        snap = synced["snapshot"]
        assert (snap["phase"], snap["index"]) == ("question_open", 0)
        assert snap["question"]["prompt"] == "Capital of France?"
        mine = snap["my_answer"]
        if n in before:
            assert mine == {"index": 0, "answer_id": f"p{n}", "response": {"choice": choices[n]}}
        # Unsure whether it was stored, the client sends it again: the same ack either way.
        resent = await answer(socket, f"p{n}", choices[n])
        assert resent.get("status") == "accepted", resent
        assert resent["duplicate"] is (mine is not None)
        if n in before:
            assert resent["received_at"] == before[n]["received_at"]
    assert (await answer(players[4], "p4", lyon))["ok"]

    # The host reconnects on B; B's conductor takes the lease over and the dashboards resume.
    boss = await world.socket(b, {"token": world.token(made.owner)})
    hosted = await boss.call("host", {"session_id": live["id"]})
    assert hosted["ok"], hosted
    assert (hosted["snapshot"]["phase"], hosted["snapshot"]["answered"]) == ("question_open", 5)
    board = await until(boss, "dashboard", lambda d: d["answered"] == 5, timeout=5)
    assert board["phase"] == "question_open"
    assert board["distribution"] == {paris: 3, lyon: 2}
    assert await redis.get(lease_key) == ids[b].encode()

    # Nobody closes it: B's sweeper does, on time.
    closes_at = datetime.fromisoformat(opened["ends_at"]) + timedelta(milliseconds=GRACE_MS)
    wait = (closes_at - datetime.now(UTC)).total_seconds() + CLOSE_MARGIN
    closed = await players[5].socket.next("question_closed", timeout=max(wait, 0.1))
    arrived = datetime.now(UTC)
    assert closes_at <= arrived <= closes_at + timedelta(seconds=CLOSE_MARGIN)
    assert closed["reason"] == "time"
    assert closed["answered"] == 5
    assert closed["distribution"] == {paris: 3, lyon: 2}
    for socket in again.values():
        assert (await socket.next("question_closed"))["seq"] == closed["seq"]

    rows = await answers_of(world, live["id"])
    assert sorted((str(row.player_id), row.client_answer_id) for row in rows) == sorted(
        (players[n].id, f"p{n}") for n in choices
    )
    scores = {
        str(p.id): p.score
        for p in await world.rows(LivePlayer, LivePlayer.session_id == uuid.UUID(live["id"]))
    }
    assert scores == {p.id: 100 if choices.get(n) == paris else 0 for n, p in enumerate(players)}
    assert {e["player_id"]: e["score"] for e in closed["leaderboard"]} == scores


async def test_a_redis_restart_mid_question_is_resubscribed_resynced_and_recounted(
    cluster: Cluster,
) -> None:
    server = await cluster.redis_server()
    world = await cluster.apps(redis_url=server.url)
    made = await world.quiz(learners=4)
    live = await world.session(
        made, seconds_per_question=60, scoring="correctness", streaks=False, points=100
    )
    host = await world.host(made, live, server=0)
    players = [await world.player(live, user, server=n % 2) for n, user in enumerate(made.learners)]
    await server.wait_subscribers(world.channel, 2)
    await host.call("start")
    opened = await players[1].socket.next("question_opened")
    paris, lyon = label_of(opened["question"], "Paris"), label_of(opened["question"], "Lyon")
    assert (await answer(players[0], "p0", paris))["ok"]  # on A
    assert (await answer(players[1], "p1", lyon))["ok"]  # on B
    board = await until(host, "dashboard", lambda d: d["answered"] == 2, timeout=5)
    last_seq = board["seq"]
    assert last_seq == opened["seq"] == 2
    assert board["connected"] == 4

    server.kill()
    server.start()
    await server.wait_ready()
    # Both instances' Socket.IO managers subscribe again to the fresh, empty server.
    await server.wait_subscribers(world.channel, 2, timeout=15)

    # The stream's seq was lost with Redis: the host sees its head go back and resyncs.
    await until(host, "dashboard", lambda d: d["seq"] < last_seq, timeout=10)
    resync = await host.call("host", {"session_id": live["id"]})
    assert resync["ok"], resync
    assert resync["seq"] < last_seq
    assert (resync["snapshot"]["phase"], resync["snapshot"]["answered"]) == ("question_open", 2)

    assert (await answer(players[2], "p2", paris))["ok"]  # on A, after the restart
    stored = len(await answers_of(world, live["id"]))
    assert stored == 3
    # The online set was lost too: each instance adds its players again within PRESENCE_TTL/3.
    board = await until(
        host,
        "dashboard",
        lambda d: (d["answered"], d["connected"]) == (stored, 4),
        timeout=PRESENCE_TTL / 3 + 3,
    )
    assert (board["players"], board["distribution"]) == (4, {paris: 2, lyon: 1})

    # Events fan out across instances again: closed on A, seen on B, numbered afresh.
    assert (await host.call("close_question"))["phase"] == "question_closed"
    closed = await players[1].socket.next("question_closed")
    assert closed["seq"] <= last_seq  # what makes a client sync
    assert closed["answered"] == stored
    for n, player in enumerate(players):
        synced = await player.socket.call("sync", {"last_seq": last_seq})
        assert synced["ok"], synced
        assert synced["seq"] == closed["seq"]
        snap = synced["snapshot"]
        assert snap["phase"] == "question_closed"
        assert snap["reveal"]["answered"] == stored
        assert snap["player"]["score"] == (100 if n in (0, 2) else 0)


async def test_fifty_concurrent_resends_across_two_processes_make_one_row(
    cluster: Cluster,
) -> None:
    world = await cluster.apps()
    made = await world.quiz(learners=2)
    live = await world.session(made)
    host = await world.host(made, live, server=0)
    ann = await world.player(live, made.learners[0], server=0)
    await world.player(live, made.learners[1], server=1)
    twin = await rejoin(world, ann, 1)
    await host.call("start")
    opened = await ann.socket.next("question_opened")
    paris = label_of(opened["question"], "Paris")
    acks = await asyncio.gather(*(answer(s, "same-id", paris) for s in [ann.socket, twin] * 25))
    assert all(ack["ok"] and ack["status"] == "accepted" for ack in acks), acks
    assert sum(1 for ack in acks if not ack["duplicate"]) == 1
    assert len({ack["received_at"] for ack in acks}) == 1
    rows = await world.rows(LiveAnswer, LiveAnswer.player_id == uuid.UUID(ann.id))
    assert [(r.client_answer_id, r.state) for r in rows] == [("same-id", "correct")]
