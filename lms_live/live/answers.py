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
import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, Protocol

from sqlalchemy import event, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.core.db import Database, upsert_for
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
        writers: int = 4,
        metrics: Metrics | None = None,
    ) -> None:
        self.database = database
        self.linger = linger
        self.batch_max = batch_max
        self.metrics = metrics
        self._slots = asyncio.Semaphore(writers)
        self._inflight: set[asyncio.Future[None]] = set()
        self._queue: asyncio.Queue[Submitted] = asyncio.Queue()
        engine = database.engine.sync_engine
        if engine.dialect.name == "postgresql" and not event.contains(
            engine, "connect", _prepare_batch
        ):
            event.listen(engine, "connect", _prepare_batch)

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
                # Up to `writers` batches in flight: one slowed down (a descheduled database
                # backend, a lock wait) does not hold back the acks of the next ones.
                await self._slots.acquire()
                task = asyncio.ensure_future(self._write(batch))
                self._inflight.add(task)
                task.add_done_callback(self._finished)
        finally:
            stopping.cancel()
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._inflight.discard(task)
        self._slots.release()

    async def _store(self, batch: list[Submitted]) -> list[dict[str, Any]]:
        engine = self.database.engine
        if engine.dialect.name == "postgresql":
            async with engine.connect() as connection:
                raw = await connection.get_raw_connection()
                driver = raw.driver_connection
                assert driver is not None
                return await write_batch_pg(driver, batch)
        async with self.database.transaction() as session:
            return await write_batch(session, batch)

    async def _write(self, batch: list[Submitted]) -> None:
        started = time.perf_counter()
        try:
            acks = await self._store(batch)
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


Key = tuple[uuid.UUID, uuid.UUID]  # (question id, player id)


class _Store(Protocol):
    """The reads and writes of one batch, inside one transaction."""

    async def questions(self, pairs: list[tuple[uuid.UUID, int]]) -> list[Any]:
        """The questions (session, position), locked FOR KEY SHARE."""
        ...

    async def players(self, ids: list[uuid.UUID]) -> list[Any]: ...

    async def insert(self, rows: list[dict[str, Any]]) -> set[Key]:
        """Insert, skipping conflicts; the keys inserted."""
        ...

    async def stored(self, keys: list[Key]) -> dict[Key, Any]:
        """The stored answers of these keys (client_answer_id, response, received_at)."""
        ...


class _OrmStore:
    """SQLAlchemy Core (any dialect: the embedded SQLite)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def questions(self, pairs: list[tuple[uuid.UUID, int]]) -> list[Any]:
        result = await self.session.execute(
            select(*_QUESTION_COLUMNS)
            .where(tuple_(LiveQuestion.session_id, LiveQuestion.position).in_(pairs))
            .with_for_update(read=True, key_share=True, of=LiveQuestion)
        )
        return list(result)

    async def players(self, ids: list[uuid.UUID]) -> list[Any]:
        result = await self.session.execute(select(*_PLAYER_COLUMNS).where(LivePlayer.id.in_(ids)))
        return list(result)

    async def insert(self, rows: list[dict[str, Any]]) -> set[Key]:
        statement = upsert_for(self.session, LiveAnswer).on_conflict_do_nothing(
            index_elements=["question_id", "player_id"]
        )
        result = await self.session.execute(
            statement.returning(LiveAnswer.question_id, LiveAnswer.player_id), rows
        )
        return {(q, p) for q, p in result}

    async def stored(self, keys: list[Key]) -> dict[Key, Any]:
        result = await self.session.execute(
            select(*_STORED_COLUMNS).where(
                tuple_(LiveAnswer.question_id, LiveAnswer.player_id).in_(keys)
            )
        )
        return {(a.question_id, a.player_id): a for a in result}


_QUESTION_COLUMNS = (
    LiveQuestion.id,
    LiveQuestion.session_id,
    LiveQuestion.position,
    LiveQuestion.opened_at,
    LiveQuestion.paused_at,
    LiveQuestion.closed_at,
    LiveQuestion.time_limit_ms,
)
_PLAYER_COLUMNS = (
    LivePlayer.id,
    LivePlayer.session_id,
    LivePlayer.kicked_at,
    LivePlayer.time_factor,
)
_STORED_COLUMNS = (
    LiveAnswer.question_id,
    LiveAnswer.player_id,
    LiveAnswer.client_answer_id,
    LiveAnswer.response,
    LiveAnswer.received_at,
)


def _json(value: Any) -> Any:
    """A json column's value (SQLAlchemy's asyncpg dialect installs a decoding codec)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _rows(records: list[Any]) -> list[SimpleNamespace]:
    """asyncpg records with attribute access, as SQLAlchemy rows have."""
    return [SimpleNamespace(**dict(record)) for record in records]


@dataclass(frozen=True, slots=True)
class _Stored:
    client_answer_id: str
    response: Any
    received_at: datetime


async def write_batch(session: AsyncSession, batch: list[Submitted]) -> list[dict[str, Any]]:
    """Judge, insert and read back one batch in the caller's transaction (SQLAlchemy)."""
    return await judge_and_store(_OrmStore(session), batch)


# One statement judges, inserts and reads back a whole batch: the questions locked FOR KEY
# SHARE (a close's FOR UPDATE waits for it, and a batch after the close sees it closed), each
# answer judged against its question and player, the accepted ones inserted, and what is
# already stored read back. A single statement is its own transaction: one round trip per
# batch (each await is a turn of a busy event loop, which is what an ack waits for).
_PG_BATCH = """
WITH input AS (
  SELECT * FROM unnest($1::int[], $2::uuid[], $3::int[], $4::uuid[], $5::text[], $6::json[],
                       $7::text[], $8::text[], $9::float8[], $10::timestamptz[])
    AS i(n, session_id, position, player_id, client_answer_id, response, choice, state,
         fraction, received_at)
), question AS (
  SELECT q.id, q.session_id, q.position, q.opened_at, q.paused_at, q.closed_at, q.time_limit_ms
  FROM live_question q
  JOIN (SELECT DISTINCT session_id, position FROM input) k
    ON q.session_id = k.session_id AND q.position = k.position
  FOR KEY SHARE OF q
), judged AS (
  SELECT i.*, q.id AS question_id,
    CASE
      WHEN p.id IS NULL OR p.session_id <> i.session_id THEN 'not_in_session'
      WHEN p.kicked_at IS NOT NULL THEN 'kicked'
      WHEN q.id IS NULL OR q.opened_at IS NULL THEN 'question_not_open'
      WHEN q.closed_at IS NOT NULL THEN 'question_closed'
      WHEN LEAST(i.received_at, COALESCE(q.paused_at, i.received_at))
           > q.opened_at + (q.time_limit_ms * p.time_factor + $11) * interval '1 millisecond'
        THEN 'late'
      ELSE 'candidate'
    END AS verdict,
    GREATEST(0, floor(extract(epoch FROM
      LEAST(i.received_at, COALESCE(q.paused_at, i.received_at)) - q.opened_at) * 1000))::int
      AS elapsed_ms
  FROM input i
  LEFT JOIN question q ON q.session_id = i.session_id AND q.position = i.position
  LEFT JOIN live_player p ON p.id = i.player_id
), inserted AS (
  INSERT INTO live_answer (id, session_id, question_id, player_id, client_answer_id, response,
                           choice, state, fraction, received_at, elapsed_ms)
  SELECT gen_random_uuid(), session_id, question_id, player_id, client_answer_id, response,
         choice, state, fraction, received_at, elapsed_ms
  FROM judged WHERE verdict = 'candidate'
  ON CONFLICT (question_id, player_id) DO NOTHING
  RETURNING question_id, player_id, client_answer_id, response, received_at
)
SELECT 'judged' AS kind, j.n, j.verdict, j.question_id, j.player_id,
       a.client_answer_id, a.response, a.received_at
FROM judged j
LEFT JOIN live_answer a ON a.question_id = j.question_id AND a.player_id = j.player_id
UNION ALL
SELECT 'inserted', NULL, NULL, question_id, player_id, client_answer_id, response, received_at
FROM inserted
"""


def _prepare_batch(dbapi_connection: Any, _record: Any) -> None:
    """Prepare the batch statement on every new pooled connection: asyncpg looks up the
    array types of its parameters (three round trips) the first time a connection prepares
    it, which otherwise happened in the first answer burst, once per connection."""
    dbapi_connection.run_async(lambda connection: connection.prepare(_PG_BATCH))


async def write_batch_pg(connection: Any, batch: list[Submitted]) -> list[dict[str, Any]]:
    """Judge, insert and read back one batch on an asyncpg connection: one statement (plus a
    read-back only when a concurrent batch stored the same answer at the same moment)."""
    records = await connection.fetch(
        _PG_BATCH,
        list(range(len(batch))),
        [item.session_id for item in batch],
        [item.index for item in batch],
        [item.player_id for item in batch],
        [item.answer_id for item in batch],
        [json.dumps(item.response, separators=(",", ":")) for item in batch],
        [item.choice for item in batch],
        [item.state for item in batch],
        [item.fraction for item in batch],
        [item.received_at for item in batch],
        float(GRACE_MS),
    )
    verdicts: list[tuple[str, Key | None]] = [("question_not_open", None)] * len(batch)
    stored: dict[Key, _Stored] = {}
    inserted: dict[Key, _Stored] = {}
    for r in records:
        key: Key = (r["question_id"], r["player_id"])
        if r["kind"] == "inserted":
            inserted[key] = _Stored(r["client_answer_id"], _json(r["response"]), r["received_at"])
            continue
        verdicts[r["n"]] = (r["verdict"], key if r["question_id"] is not None else None)
        if r["client_answer_id"] is not None:
            stored[key] = _Stored(r["client_answer_id"], _json(r["response"]), r["received_at"])
    missing = [
        key
        for verdict, key in verdicts
        if key is not None
        and verdict in ("candidate", "question_closed", "late")
        and key not in inserted
        and key not in stored
    ]
    if missing:  # stored by a batch that committed while this one waited on the index
        for r in await connection.fetch(
            "SELECT a.question_id, a.player_id, a.client_answer_id, a.response, a.received_at "
            "FROM live_answer a JOIN unnest($1::uuid[], $2::uuid[]) AS k(question_id, player_id) "
            "ON a.question_id = k.question_id AND a.player_id = k.player_id",
            [k[0] for k in missing],
            [k[1] for k in missing],
        ):
            stored[(r["question_id"], r["player_id"])] = _Stored(
                r["client_answer_id"], _json(r["response"]), r["received_at"]
            )
    acks: list[dict[str, Any]] = []
    claimed: set[Key] = set()
    for item, (verdict, found) in zip(batch, verdicts, strict=True):
        if found is None or verdict in ("not_in_session", "kicked", "question_not_open"):
            acks.append(_refusal(verdict))
            continue
        key = found
        answer = inserted.get(key) or stored.get(key)
        if answer is None:
            acks.append(_refusal("late" if verdict == "late" else "question_closed"))
        elif answer.client_answer_id != item.answer_id:
            acks.append(_refusal("already_answered"))
        elif answer.response != item.response:
            acks.append(_refusal("answer_id_reused"))
        else:
            first = key in inserted and key not in claimed
            claimed.add(key)
            acks.append(_accepted(item.answer_id, answer.received_at, duplicate=not first))
    return acks


async def judge_and_store(store: _Store, batch: list[Submitted]) -> list[dict[str, Any]]:
    """Judge, insert and read back one batch; one ack per item.

    An answer inserted by this batch and alone with its (question, player) in it is acked from
    what was sent; only conflicts (resends, second answers, races within the batch) are read
    back from the table."""
    pairs = sorted({(item.session_id, item.index) for item in batch})
    questions = {(q.session_id, q.position): q for q in await store.questions(pairs)}
    players = {p.id: p for p in await store.players(sorted({i.player_id for i in batch}))}
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
    inserted = await store.insert(rows) if rows else set()
    sent = Counter((row["question_id"], row["player_id"]) for row in rows)
    solo = {key for key in inserted if sent[key] == 1}

    def key_of(n: int) -> Key:
        return questions[(batch[n].session_id, batch[n].index)].id, batch[n].player_id

    unsure = sorted({key_of(n) for n in pending} - solo)
    stored = await store.stored(unsure) if unsure else {}
    claimed: set[Key] = set()
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
