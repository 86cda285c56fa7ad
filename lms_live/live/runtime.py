"""What each instance runs for live sessions, and the loops that keep them going.

`LiveRuntime` (under `keys.LIVE`) holds the instance's live resources: the hot state, the
answer writer, the emitter of live broadcasts, the player tokens and a cache of frozen
questions. `run` starts the instance's loops, all derived from the database on every pass
(nothing to restore after a restart or a crash):
- the sweeper (every LIVE_SWEEP_INTERVAL): closes questions whose time is up or that every
  active player answered; any instance may close any session's question, the session row
  lock taken with SKIP LOCKED makes it exactly one;
- the conductor (every LIVE_DASHBOARD_INTERVAL): for each running session whose lease it
  holds (one instance per session, taken over within seconds when it dies), the hosts'
  `dashboard` (aggregated counts, never one message per answer) and everyone's `tick`;
- presence: this instance's connected players refreshed in the hot state;
- kicks: a kicked player's sockets on this instance are told and disconnected;
- idle sessions are finished (results kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import socketio
from sqlalchemy import select

from lms_live.core.db import Database, utcnow
from lms_live.core.metrics import Metrics
from lms_live.core.realtime import Emitter, follow_channel
from lms_live.core.redis import PubSub
from lms_live.core.streams import StreamLog
from lms_live.live import service
from lms_live.live.answers import AnswerWriter
from lms_live.live.events import (
    NAMESPACE,
    Outbox,
    hosts_room,
    hosts_stream,
    room,
    send,
    session_of_room,
    stream,
)
from lms_live.live.hot import LiveHot
from lms_live.live.models import LiveQuestion, LiveSession, Phase
from lms_live.live.service import spec_of
from lms_live.live.tokens import PlayerTokens
from lms_live.quizzes import grading
from lms_live.quizzes.spec import QuestionSpec
from lms_live.settings import Settings

log = logging.getLogger("lms_live.live")

PRESENCE_REFRESH = 3.0  # seconds; also how soon the counts recover after Redis lost them
TICK_SECONDS = 5.0  # `tick` to everyone in a running session
IDLE_CHECK_SECONDS = 60.0
_PLAYING = (Phase.QUESTION_OPEN.value, Phase.QUESTION_CLOSED.value, Phase.LEADERBOARD.value)
ALL_ANSWERED_SECONDS = 0.3  # how often the sweeper looks for questions everyone answered
# The sweeper's pace while no question is open, the conductor's while no session runs (as
# each last saw the database): an idle instance queries it twice a second instead of 14
# times. Waking (`LiveRuntime.wake`) ends the wait at once.
IDLE_POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Judged:
    """What an answer's response is worth, before the database judges its timing."""

    stored: dict[str, Any]  # the response in spec ids, as stored (shared: never mutated)
    choice: str  # its key in the host's distribution
    state: str
    fraction: float


JUDGED_PER_QUESTION = 512  # distinct responses remembered per question (choices: a handful)


@dataclass(frozen=True, slots=True)
class FrozenQuestion:
    """The parts of a session's question an answer is checked against (never change)."""

    id: uuid.UUID
    index: int
    spec: QuestionSpec
    option_order: list[str]
    judged: dict[str, Judged] = field(default_factory=dict, compare=False, repr=False)

    def judge(self, response: Any) -> Judged:
        """Parse and grade a learner's (labelled) response; raises grading.InvalidResponse.

        Thousands of learners send the same few responses to a choice question, and a
        question never changes: each distinct response (by its JSON text, so `true` and `1`
        differ) is parsed and graded once, up to JUDGED_PER_QUESTION of them."""
        key = json.dumps(response, separators=(",", ":"))
        found = self.judged.get(key)
        if found is not None:
            return found
        stored = grading.parse_response(self.spec, response, option_order=self.option_order)
        grade = grading.grade(self.spec, stored, points=1.0)
        shown = grading.public_response(self.spec, stored, option_order=self.option_order)
        judged = Judged(
            stored=stored,
            choice=service.choice_key(self.spec, shown or {}, grade.state.value),
            state=grade.state.value,
            fraction=min(1.0, max(0.0, grade.score)),
        )
        if len(self.judged) < JUDGED_PER_QUESTION:
            self.judged[key] = judged
        return judged


class GcSteward:
    """Keeps CPython's cyclic collections away from fan-outs and answers.

    A collection walks every tracked object: with thousands of sockets it stalls the loop for
    tens to hundreds of milliseconds, delaying every fan-out and ack. So while a session with
    sockets on this instance fills its lobby or has a question open, what is alive is frozen
    (moved out of the collector's reach, O(1)) on every conductor pass: a collection then only
    walks what the last fraction of a second allocated. The cyclic garbage frozen meanwhile
    (closed connections, finished requests) is released by a cycle (unfreeze, collect once,
    freeze again): as soon as no such session is running here, else after CYCLE_SECONDS when
    no question is open here (a lobby can wait a moment), and after MAX_PINNED_SECONDS in any
    case (a pause is better than memory growing all day on a busy instance). Pauses are
    exported (`lms_gc_pause_seconds`).

    While a quiz is being played here (a question open, its reveal or a leaderboard: the
    next question opens from those), automatic collections are also switched off: even the
    young generation's (what a quarter of a second of answers allocated) measured 100-250 ms
    of wall time at 5,000 learners on 2 shared CPUs, the process descheduled mid-collection.
    Nothing is lost by it: what a collection would find is frozen at the next pass anyway,
    and released by the next cycle. If the passes stop (a stalled conductor), the collector
    comes back by itself after HOLD_SECONDS."""

    CYCLE_SECONDS = 300.0
    MAX_PINNED_SECONDS = 3600.0
    HOLD_SECONDS = 30.0

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.dirty = False  # froze since the last collection: garbage may be pinned
        self.last_cycle = time.monotonic()
        self.holding = False  # automatic collection switched off by us
        self._watchdog: asyncio.TimerHandle | None = None

    def observe(
        self, *, running: bool, busy: bool, question_open: bool, playing: bool = False
    ) -> None:
        """One conductor pass's view of this instance's sessions: any running, any lobby
        filling or question open (`busy`), any question open, any between its first question
        and its end (`playing`: open, closed or leaderboard)."""
        if not self.enabled:
            return
        pinned = time.monotonic() - self.last_cycle
        if self.dirty and (
            not running
            or (not question_open and pinned >= self.CYCLE_SECONDS)
            or pinned >= self.MAX_PINNED_SECONDS
        ):
            self.cycle()
        if busy or playing:
            gc.freeze()
            self.dirty = True
        if playing:  # from the reveal to the next question too: no gap as it opens
            self.hold()
        else:
            self.release()

    def on_broadcast(self, event: str, namespace: str, room: str | None) -> None:
        """Before this instance fans a live question out (a `before_broadcast` hook): hold
        at once, not at the next conductor pass (the fan-out is what allocates)."""
        if self.enabled and event == "question_opened" and namespace == NAMESPACE:
            self.hold()

    def hold(self) -> None:
        """Automatic collections off for HOLD_SECONDS (extended by each call)."""
        if not self.holding and gc.isenabled():
            gc.disable()
            self.holding = True
        if self.holding:
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._watchdog = asyncio.get_running_loop().call_later(self.HOLD_SECONDS, self.release)

    def release(self) -> None:
        """Automatic collections back on, if we had switched them off."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.holding:
            gc.enable()
            self.holding = False

    def cycle(self) -> None:
        """Unfreeze, collect once, freeze what is alive."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.dirty = False
        self.last_cycle = time.monotonic()


@dataclass
class LiveRuntime:
    settings: Settings
    database: Database
    streams: StreamLog
    hot: LiveHot
    emitter: Emitter
    writer: AnswerWriter
    tokens: PlayerTokens
    pubsub: PubSub
    metrics: Metrics
    instance_id: str
    kick_channel: str
    gc: GcSteward = field(default_factory=lambda: GcSteward(enabled=False))
    counted_at: float = float("-inf")  # the sweeper's last "everyone answered" check
    wakers: list[asyncio.Event] = field(default_factory=list)  # the paced loops' (`_paced`)
    _questions: OrderedDict[tuple[uuid.UUID, int], asyncio.Future[FrozenQuestion | None]] = field(
        default_factory=OrderedDict
    )

    async def question(self, session_id: uuid.UUID, index: int) -> FrozenQuestion | None:
        """A session's question by index, its spec parsed (cached: questions are frozen at
        creation). Loaded once however many answers ask at the same moment."""
        key = (session_id, index)
        loading = self._questions.get(key)
        if (
            loading is not None
            and loading.done()
            and not loading.cancelled()
            and loading.exception() is None
        ):
            return loading.result()  # the common case: no shield, no await
        if loading is None:
            loading = asyncio.ensure_future(self._load_question(session_id, index))
            self._questions[key] = loading
            if len(self._questions) > 4096:
                self._questions.popitem(last=False)
        try:
            return await asyncio.shield(loading)
        except Exception:
            if self._questions.get(key) is loading:
                del self._questions[key]  # a failed load is not cached
            raise

    async def _load_question(self, session_id: uuid.UUID, index: int) -> FrozenQuestion | None:
        async with self.database.reads() as session:
            row: LiveQuestion | None = await session.scalar(
                select(LiveQuestion).where(
                    LiveQuestion.session_id == session_id, LiveQuestion.position == index
                )
            )
        if row is None:
            return None
        return FrozenQuestion(row.id, row.position, spec_of(row), list(row.option_order))

    def wake(self) -> None:
        """Something happened in a live session here: the sweeper and the conductor look now
        and keep their fast pace while it lasts (other instances notice within
        IDLE_POLL_SECONDS)."""
        for event in self.wakers:
            event.set()

    async def publish(
        self, outbox: Outbox, hot_states: dict[str, dict[str, Any]] | None = None
    ) -> None:
        """After a commit: the players' hot states first (clients read them on the events),
        then the broadcasts."""
        self.wake()
        if hot_states:
            try:
                await self.hot.put_players(outbox.session_id, hot_states)
            except Exception:
                log.exception("could not write the hot player states of %s", outbox.session_id)
        await send(outbox, streams=self.streams, emitter=self.emitter)

    async def kick(self, session_id: str, player_id: str, *, banned: bool) -> None:
        """Ask every instance to tell and disconnect this player's sockets."""
        message = {"session_id": session_id, "player_id": player_id, "banned": banned}
        await self.pubsub.publish(self.kick_channel, json.dumps(message))


async def run(runtime: LiveRuntime, sio: socketio.AsyncServer, stop: asyncio.Event) -> None:
    """Every loop of this instance until `stop` (the answer writer drains its queue)."""

    async def on_kick(raw: bytes) -> None:
        await _apply_kick(sio, raw)

    last_quiet: dict[uuid.UUID, float] = {}
    last_tick: dict[uuid.UUID, float] = {}

    async def conduct() -> bool:
        return await conduct_once(runtime, sio=sio, last_quiet=last_quiet, last_tick=last_tick)

    await asyncio.gather(
        runtime.writer.run(stop),
        _paced(runtime, runtime.settings.live_sweep_interval, stop, lambda: sweep(runtime)),
        _paced(runtime, runtime.settings.live_dashboard_interval, stop, conduct),
        _every(PRESENCE_REFRESH, stop, lambda: refresh_presence(runtime, sio)),
        _every(IDLE_CHECK_SECONDS, stop, lambda: finish_idle(runtime)),
        follow_channel(runtime.pubsub, runtime.kick_channel, on_kick, stop),
    )


async def _every(interval: float, stop: asyncio.Event, work: Any) -> None:
    while not stop.is_set():
        try:
            await work()
        except Exception:
            log.exception("live loop failed; continuing")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def _paced(
    runtime: LiveRuntime, interval: float, stop: asyncio.Event, work: Callable[[], Awaitable[bool]]
) -> None:
    """`work` every `interval` while it reports something live to watch, else every
    IDLE_POLL_SECONDS or as soon as `runtime.wake()` is called."""
    woken = asyncio.Event()
    runtime.wakers.append(woken)
    try:
        while not stop.is_set():
            woken.clear()  # before the pass: a wake during it is not lost
            busy = True
            try:
                busy = await work()
            except Exception:
                log.exception("live loop failed; continuing")
            if busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
                continue
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(woken.wait())]
            try:
                await asyncio.wait(
                    waits, timeout=IDLE_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiting in waits:
                    waiting.cancel()
    finally:
        runtime.wakers.remove(woken)


async def sweep(runtime: LiveRuntime) -> bool:
    """Close every due question this instance can lock; whether any question was open. Deadlines are
    checked on every pass, "everyone answered" (a count per open question) every
    ALL_ANSWERED_SECONDS: at LIVE_SWEEP_INTERVAL on every instance the counts were a large
    share of the database's CPU during an answer burst."""
    now = time.monotonic()
    everyone = now - runtime.counted_at >= ALL_ANSWERED_SECONDS
    if everyone:
        runtime.counted_at = now
    async with runtime.database.reads() as session:
        scan = await service.due_questions(session, now=utcnow(), everyone=everyone)
    for item in scan.due:
        outbox = Outbox(str(item.session_id))
        states: dict[str, dict[str, Any]] = {}
        async with runtime.database.transaction() as session:
            done = await service.close_due(session, due=item, outbox=outbox, hot_states=states)
        if done:
            runtime.metrics.live_closes.labels(item.reason).inc()
            await runtime.publish(outbox, states)
    return scan.open > 0


async def finish_idle(runtime: LiveRuntime) -> None:
    """Finish sessions idle for LIVE_IDLE_MINUTES."""
    idle = timedelta(minutes=runtime.settings.live_idle_minutes)
    async with runtime.database.transaction() as session:
        outboxes = await service.finish_idle(session, now=utcnow(), idle=idle)
    for outbox in outboxes:
        await runtime.publish(outbox)


async def conduct_once(
    runtime: LiveRuntime,
    *,
    sio: socketio.AsyncServer,
    last_quiet: dict[uuid.UUID, float],
    last_tick: dict[uuid.UUID, float],
) -> bool:
    """One pass: dashboards (and ticks) of the running sessions whose lease this instance
    holds; an open question's dashboard every pass, others about once a second. Whether any
    session runs."""
    lease_ttl = max(2.0, runtime.settings.live_dashboard_interval * 8)
    now = time.monotonic()
    async with runtime.database.reads() as session:
        running = list(
            await session.scalars(
                select(LiveSession).where(LiveSession.phase != Phase.FINISHED.value).limit(500)
            )
        )
        local = sio.manager.rooms.get(NAMESPACE, {})
        here = [live for live in running if local.get(room(str(live.id)))]
        runtime.gc.observe(
            running=bool(here),
            busy=any(live.phase in (Phase.LOBBY.value, Phase.QUESTION_OPEN.value) for live in here),
            question_open=any(live.phase == Phase.QUESTION_OPEN.value for live in here),
            playing=any(live.phase in _PLAYING for live in here),
        )
        for live in running:
            is_open = live.phase == Phase.QUESTION_OPEN.value
            if not is_open and now - last_quiet.get(live.id, 0.0) < 1.0:
                continue
            if not await runtime.hot.lease(str(live.id), runtime.instance_id, ttl=lease_ttl):
                continue
            last_quiet[live.id] = now
            sid = str(live.id)
            board = await service.dashboard(session, live=live)
            board["connected"] = await runtime.hot.online_count(sid)
            board["seq"] = await runtime.streams.head(stream(sid))
            board["host_seq"] = await runtime.streams.head(hosts_stream(sid))
            await runtime.emitter.emit(
                "dashboard", board, room=hosts_room(sid), namespace=NAMESPACE
            )
            if (
                live.phase != Phase.LOBBY.value
                and now - last_tick.get(live.id, 0.0) >= TICK_SECONDS
            ):
                last_tick[live.id] = now
                await runtime.emitter.emit(
                    "tick",
                    {"seq": board["seq"], "phase": live.phase, "players": board["players"]},
                    room=room(sid),
                    namespace=NAMESPACE,
                )
    return bool(running)


async def local_players(sio: socketio.AsyncServer, session_id: str) -> dict[str, list[str]]:
    """This instance's player sockets in a session: player id -> socket ids."""
    found: dict[str, list[str]] = {}
    for sid, _ in list(sio.manager.get_participants(NAMESPACE, room(session_id))):
        with contextlib.suppress(KeyError):  # disconnected meanwhile
            data = await sio.get_session(sid, namespace=NAMESPACE)
            if data.get("player_id"):
                found.setdefault(data["player_id"], []).append(sid)
    return found


async def refresh_presence(runtime: LiveRuntime, sio: socketio.AsyncServer) -> None:
    """Count this instance's connected players as online for another PRESENCE_TTL."""
    for name in list(sio.manager.rooms.get(NAMESPACE, {})):
        session_id = session_of_room(str(name)) if name else None
        if session_id is not None:
            players = await local_players(sio, session_id)
            await runtime.hot.online_add(session_id, list(players))


async def _apply_kick(sio: socketio.AsyncServer, raw: bytes) -> None:
    try:
        message = json.loads(raw)
        players = await local_players(sio, str(message["session_id"]))
        for sid in players.get(str(message["player_id"]), []):
            await sio.emit(
                "kicked", {"banned": bool(message["banned"])}, to=sid, namespace=NAMESPACE
            )
            await sio.disconnect(sid, namespace=NAMESPACE)
    except Exception:
        log.exception("could not apply a live kick")
