"""Live answers: judged by the server's receive time, committed in micro-batches, then acked.

Each instance runs one `AnswerWriter`. A socket's `answer` handler takes the receive time
first, validates and grades the response against the frozen question (no database), then
queues it and waits for its batch: every `linger` (a few ms) or `batch_max` answers, one
transaction locks the questions concerned `FOR KEY SHARE` (a question's close takes `FOR
UPDATE`, so it waits for batches in flight, and batches after it see it closed), judges each
answer (open, player not kicked, in time by its own deadline), inserts the accepted ones in
one multi-row `INSERT ... ON CONFLICT (question_id, player_id) DO NOTHING`, reads back the
conflicting ones, and commits. Only then are the acks sent: an acknowledged answer is stored.

A resend with the same `answer_id` and response gets the same ack (`duplicate: true`), with
another response `answer_id_reused`; another answer to the same question `already_answered`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.core.db import Database
from lms_live.core.metrics import Metrics
from lms_live.live.models import LiveAnswer, LivePlayer, LiveQuestion
from lms_live.live.service import GRACE_MS, AnswerRefused, refused

log = logging.getLogger("lms_live.live.answers")


@dataclass(slots=True)
class Submitted:
    """One graded answer waiting for its batch."""

    session_id: uuid.UUID
    index: int
    player_id: uuid.UUID
    answer_id: str
    response: dict[str, Any]  # stored (spec-id) form
    choice: str
    state: str
    fraction: float
    received_at: datetime
    done: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _accepted(answer_id: str, received_at: datetime, *, duplicate: bool) -> dict[str, Any]:
    return {
        "ok": True,
        "status": "accepted",
        "answer_id": answer_id,
        "duplicate": duplicate,
        "received_at": received_at.isoformat(),
    }


def _refusal(code: str) -> dict[str, Any]:
    error = refused(code)
    return {"ok": False, "error": {"code": error.code, "message": error.text, "details": []}}


class AnswerWriter:
    """Queues answers and writes them in batches (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        *,
        linger: float = 0.002,
        batch_max: int = 500,
        metrics: Metrics | None = None,
    ) -> None:
        self.database = database
        self.linger = linger
        self.batch_max = batch_max
        self.metrics = metrics
        self._queue: asyncio.Queue[Submitted] = asyncio.Queue()

    async def submit(self, item: Submitted) -> dict[str, Any]:
        """Queue an answer and wait for the ack of its committed batch."""
        self._queue.put_nowait(item)
        return await item.done

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches until `stop`; what is queued when it stops is still written."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                if self._queue.empty():
                    if stop.is_set():
                        return
                    getter = asyncio.ensure_future(self._queue.get())
                    await asyncio.wait({getter, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await getter
                        continue
                    batch = [getter.result()]
                else:
                    batch = [self._queue.get_nowait()]
                if self.linger and len(batch) < self.batch_max:
                    await asyncio.sleep(self.linger)
                while len(batch) < self.batch_max and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._write(batch)
        finally:
            stopping.cancel()

    async def _write(self, batch: list[Submitted]) -> None:
        started = time.perf_counter()
        try:
            async with self.database.transaction() as session:
                acks = await write_batch(session, batch)
        except Exception:
            log.exception("an answer batch of %d could not be written", len(batch))
            failure = {
                "ok": False,
                "error": {
                    "code": "service_unavailable",
                    "message": "Your answer could not be saved; send it again.",
                    "details": [],
                },
            }
            for item in batch:
                if not item.done.done():
                    item.done.set_result(failure)
            return
        for item, ack in zip(batch, acks, strict=True):
            if not item.done.done():
                item.done.set_result(ack)
        if self.metrics is not None:
            self.metrics.live_answer_batches.observe(time.perf_counter() - started)
            self.metrics.live_answers.inc(sum(1 for a in acks if a.get("ok")))


def _insert(session: AsyncSession) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
    if dialect == "sqlite":
        return sqlite.insert(LiveAnswer).on_conflict_do_nothing(
            index_elements=["question_id", "player_id"]
        )
    if dialect == "postgresql":
        return postgresql.insert(LiveAnswer).on_conflict_do_nothing(
            index_elements=["question_id", "player_id"]
        )
    return insert(LiveAnswer)


async def write_batch(session: AsyncSession, batch: list[Submitted]) -> list[dict[str, Any]]:
    """Judge, insert and read back one batch in the caller's transaction; one ack per item.

    An answer inserted by this batch and alone with its (question, player) in it is acked from
    what was sent; only conflicts (resends, second answers, races within the batch) are read
    back from the table."""
    pairs = {(item.session_id, item.index) for item in batch}
    questions = {
        (q.session_id, q.position): q
        for q in await session.execute(
            select(
                LiveQuestion.id,
                LiveQuestion.session_id,
                LiveQuestion.position,
                LiveQuestion.opened_at,
                LiveQuestion.paused_at,
                LiveQuestion.closed_at,
                LiveQuestion.time_limit_ms,
            )
            .where(tuple_(LiveQuestion.session_id, LiveQuestion.position).in_(list(pairs)))
            .with_for_update(read=True, key_share=True, of=LiveQuestion)
        )
    }
    players = {
        p.id: p
        for p in await session.execute(
            select(
                LivePlayer.id, LivePlayer.session_id, LivePlayer.kicked_at, LivePlayer.time_factor
            ).where(LivePlayer.id.in_({item.player_id for item in batch}))
        )
    }
    acks: list[dict[str, Any] | None] = [None] * len(batch)
    rows: list[dict[str, Any]] = []
    pending: list[int] = []  # items whose outcome depends on what is stored
    for n, item in enumerate(batch):
        question = questions.get((item.session_id, item.index))
        player = players.get(item.player_id)
        if player is None or player.session_id != item.session_id:
            acks[n] = _refusal("not_in_session")
            continue
        if player.kicked_at is not None:
            acks[n] = _refusal("kicked")
            continue
        if question is None or question.opened_at is None:
            acks[n] = _refusal("question_not_open")
            continue
        pending.append(n)
        if question.closed_at is not None:
            continue  # a resend of a stored answer is still acked as accepted
        counted = item.received_at
        if question.paused_at is not None and question.paused_at < counted:
            counted = question.paused_at  # the clock stopped: time counts until the pause
        deadline = question.opened_at + timedelta(
            milliseconds=question.time_limit_ms * player.time_factor + GRACE_MS
        )
        if counted > deadline:
            continue
        rows.append(
            {
                "id": uuid.uuid4(),
                "session_id": item.session_id,
                "question_id": question.id,
                "player_id": item.player_id,
                "client_answer_id": item.answer_id,
                "response": item.response,
                "choice": item.choice,
                "state": item.state,
                "fraction": item.fraction,
                "received_at": item.received_at,
                "elapsed_ms": max(0, int((counted - question.opened_at).total_seconds() * 1000)),
                "points": None,
                "streak": None,
            }
        )
    inserted: set[tuple[uuid.UUID, uuid.UUID]] = set()
    if rows:
        result = await session.execute(
            _insert(session).returning(LiveAnswer.question_id, LiveAnswer.player_id), rows
        )
        inserted = {(q, p) for q, p in result}
    sent = Counter((row["question_id"], row["player_id"]) for row in rows)
    solo = {key for key in inserted if sent[key] == 1}

    def key_of(n: int) -> tuple[uuid.UUID, uuid.UUID]:
        return questions[(batch[n].session_id, batch[n].index)].id, batch[n].player_id

    unsure = {key_of(n) for n in pending} - solo
    stored: dict[tuple[uuid.UUID, uuid.UUID], Any] = {}
    if unsure:
        stored = {
            (a.question_id, a.player_id): a
            for a in await session.execute(
                select(
                    LiveAnswer.question_id,
                    LiveAnswer.player_id,
                    LiveAnswer.client_answer_id,
                    LiveAnswer.response,
                    LiveAnswer.received_at,
                ).where(tuple_(LiveAnswer.question_id, LiveAnswer.player_id).in_(list(unsure)))
            )
        }
    claimed: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for n in pending:
        item = batch[n]
        key = key_of(n)
        if key in solo:
            acks[n] = _accepted(item.answer_id, item.received_at, duplicate=False)
            continue
        answer = stored.get(key)
        if answer is None:
            closed = questions[(item.session_id, item.index)].closed_at is not None
            acks[n] = _refusal("question_closed" if closed else "late")
        elif answer.client_answer_id != item.answer_id:
            acks[n] = _refusal("already_answered")
        elif answer.response != item.response:
            acks[n] = _refusal("answer_id_reused")
        else:
            first = key in inserted and key not in claimed
            claimed.add(key)
            acks[n] = _accepted(item.answer_id, answer.received_at, duplicate=not first)
    return [ack if ack is not None else _refusal("question_not_open") for ack in acks]


__all__ = ["AnswerRefused", "AnswerWriter", "Submitted", "write_batch"]
