"""Live sessions: creation, joining, the host's controls, closing questions, snapshots, results.

Service functions take the session first; they never commit, emit or read a request. What
must be broadcast once the transaction commits is put in an `Outbox` the caller sends.

Invariants (see models.py for the stored ones):
- every change of a session's phase holds its row lock (`FOR UPDATE`), taken before any of its
  question rows (one lock order: session, question); the sweeper takes it with `SKIP LOCKED`,
  so two instances never close one question twice and never wait on each other;
- a question is closed under its row's update lock, which waits for answer batches in flight
  (they hold a key-share lock on it): every acknowledged answer is scored by that close;
- points are awarded at close by the session's scoring policy from the stored answers and the
  players' streaks before it; `recompute_scores` replays every closed question from the
  answers alone and must find the same totals.
"""

from __future__ import annotations

import csv
import io
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.auth.models import User
from lms_live.core.db import upsert_for, utcnow
from lms_live.core.errors import Conflict, Forbidden, LmsError, NotFound, Unauthorized
from lms_live.core.security import Principal
from lms_live.courses.access import get_course, may_teach
from lms_live.courses.markdown import render as render_markdown
from lms_live.enrollments.access import is_enrolled
from lms_live.live import scoring
from lms_live.live.codes import NicknameRefused, clean_nickname, new_code, normalize_code
from lms_live.live.events import Outbox
from lms_live.live.models import LiveAnswer, LivePlayer, LiveQuestion, LiveSession, Phase
from lms_live.live.schemas import LeaderboardMode, SessionOptions
from lms_live.quizzes import grading
from lms_live.quizzes.attempts import draw_questions, get_quiz
from lms_live.quizzes.models import Accommodation
from lms_live.quizzes.spec import QuestionSpec, QuestionType, load_spec

GRACE_MS = 1000  # network slack after a player's deadline (the server's receive time counts)
LEADERBOARD_SIZE = 10
PODIUM_SIZE = 3
PLAYABLE = frozenset(
    {
        QuestionType.SINGLE_CHOICE,
        QuestionType.MULTIPLE_CHOICE,
        QuestionType.TRUE_FALSE,
        QuestionType.NUMERIC,
        QuestionType.SHORT_TEXT,
        QuestionType.ORDERING,
    }
)


# --------------------------------------------------------------------------- errors


class LiveSessionNotFound(NotFound):
    code = "session_not_found"
    message = "No live session has this code or id (or it has finished)."


class PlayerNotFound(NotFound):
    code = "player_not_found"
    message = "No such player in this session."


class QuizNotPlayable(LmsError):
    status = 422
    code = "quiz_not_playable"
    message = "This quiz cannot be played live."


class WrongPhase(Conflict):
    code = "wrong_phase"
    message = "The session is not in a phase where this can be done."


class NotHost(Forbidden):
    code = "not_host"
    message = "Only the hosts of this session may do this (send `host` first)."


class SessionStarted(Conflict):
    code = "session_started"
    message = "This session has started and does not take late joiners."


class AuthenticationRequired(Unauthorized):
    code = "authentication_required"
    message = "This session is for signed-in learners of the course; sign in to join."


class Banned(Forbidden):
    code = "banned"
    message = "The host removed you from this session."


class NicknameTaken(Conflict):
    code = "nickname_taken"
    message = "Someone in this session already uses this nickname; pick another."


class NicknameRejected(LmsError):
    status = 422
    code = "nickname_refused"
    message = "This nickname cannot be used."


class EnrollmentRequired(Forbidden):
    code = "enrollment_required"
    message = "Enroll in the course to join its live sessions."


class AnswerRefused(LmsError):
    """An answer that is not accepted; `code` says why (an ack, never an HTTP error)."""

    status = 409

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.refusal = code

    @property
    def code(self) -> str:  # type: ignore[override]
        return self.refusal


REFUSALS = {
    "late": "Time was up for this question when your answer arrived.",
    "already_answered": "You already answered this question.",
    "answer_id_reused": "This answer id was used for a different answer.",
    "question_not_open": "This question is not open.",
    "question_closed": "This question is closed.",
    "not_in_session": "You are not a player of this session.",
    "kicked": "The host removed you from this session.",
}


def refused(code: str) -> AnswerRefused:
    """The refusal of an answer with this code."""
    return AnswerRefused(code, REFUSALS[code])


# --------------------------------------------------------------------------- helpers


def options_of(live: LiveSession) -> SessionOptions:
    """The session's options (stored as JSON when created)."""
    return SessionOptions.model_validate(live.options)


def rules_of(live: LiveSession) -> scoring.Rules:
    """The scoring rules of a session."""
    options = options_of(live)
    return scoring.Rules(
        policy=options.scoring,
        points=options.points,
        streaks=options.streaks,
        question_count=max(1, live.question_count),
    )


def spec_of(question: LiveQuestion) -> QuestionSpec:
    """The frozen spec of a session's question."""
    return load_spec(question.body)


def ends_at(question: LiveQuestion) -> datetime:
    """When an opened question's time is up for a time factor of 1 (before the grace)."""
    assert question.opened_at is not None
    return question.opened_at + timedelta(milliseconds=question.time_limit_ms)


def deadline_of(question: LiveQuestion, time_factor: float) -> datetime | None:
    """A player's deadline for an opened question (before the grace), pause not counted."""
    if question.opened_at is None:
        return None
    return question.opened_at + timedelta(milliseconds=question.time_limit_ms * time_factor)


def public_question(question: LiveQuestion) -> dict[str, Any]:
    """What players see of a question: never its right answer."""
    spec = spec_of(question)
    return {
        "index": question.position,
        "prompt": question.prompt,
        "prompt_html": render_markdown(question.prompt),
        **grading.public_view(spec, option_order=question.option_order),
    }


def labelled(question: LiveQuestion, response: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored response as players name it (labels)."""
    if response is None:
        return None
    return grading.public_response(spec_of(question), response, option_order=question.option_order)


def right_answer(question: LiveQuestion) -> dict[str, Any] | None:
    """The right answer in labels."""
    spec = spec_of(question)
    return grading.public_response(
        spec, grading.right_answer(spec), option_order=question.option_order
    )


def choice_key(spec: QuestionSpec, shown: dict[str, Any], state: str) -> str:
    """The distribution key of an answer: the labels chosen, true/false, or else its grade."""
    if spec.type is QuestionType.SINGLE_CHOICE:
        return str(shown.get("choice", ""))[:200]
    if spec.type is QuestionType.MULTIPLE_CHOICE:
        return ",".join(str(c) for c in shown.get("choices", []))[:200]
    if spec.type is QuestionType.TRUE_FALSE:
        return "true" if shown.get("value") else "false"
    return state


def distribution(spec_type: str, counts: dict[str, int]) -> dict[str, int]:
    """Per option label (a multiple choice answer counts for each label it chose)."""
    if spec_type != QuestionType.MULTIPLE_CHOICE.value:
        return dict(counts)
    per_label: Counter[str] = Counter()
    for key, count in counts.items():
        for label in filter(None, key.split(",")):
            per_label[label] += count
    return dict(per_label)


async def _session(
    session: AsyncSession, session_id: uuid.UUID, *, lock: bool = False, skip_locked: bool = False
) -> LiveSession | None:
    query = select(LiveSession).where(LiveSession.id == session_id)
    if lock:
        # FOR NO KEY UPDATE, not FOR UPDATE: an answer batch's foreign-key check takes FOR KEY
        # SHARE on the session row after locking its question, and a close locks the session
        # then the question; with FOR UPDATE the two deadlocked. Lockers still exclude each
        # other (and SKIP LOCKED still skips).
        query = query.with_for_update(key_share=True, skip_locked=skip_locked).execution_options(
            populate_existing=True
        )
    found: LiveSession | None = await session.scalar(query)
    return found


async def question_at(
    session: AsyncSession, *, session_id: uuid.UUID, index: int, lock: bool = False
) -> LiveQuestion | None:
    """The session's question at `index` (`lock`: FOR UPDATE)."""
    query = select(LiveQuestion).where(
        LiveQuestion.session_id == session_id, LiveQuestion.position == index
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found: LiveQuestion | None = await session.scalar(query)
    return found


async def hosted(
    session: AsyncSession, *, principal: Principal, session_id: uuid.UUID, lock: bool = False
) -> LiveSession:
    """A session the caller may host: the course's instructors and admins (403 for others)."""
    live = await _session(session, session_id, lock=lock)
    if live is None:
        raise LiveSessionNotFound()
    course = await get_course(session, course_id=live.course_id)
    if not await may_teach(session, principal=principal, course=course):
        raise NotHost("Only this course's instructors (and admins) may host its live sessions.")
    return live


def join_url(public_url: str, code: str) -> str:
    """Where players join this code."""
    return f"{public_url.rstrip('/')}/live/join/{code}"


# --------------------------------------------------------------------------- sessions


async def create_session(
    session: AsyncSession,
    *,
    principal: Principal,
    quiz_id: uuid.UUID,
    options: SessionOptions,
    rng: random.Random | None = None,
) -> LiveSession:
    """A new session in the lobby, its questions drawn and frozen now, with a fresh code."""
    rng = rng or random.SystemRandom()
    quiz = await get_quiz(session, quiz_id=quiz_id)
    course = await get_course(session, course_id=quiz.course_id)
    if not await may_teach(session, principal=principal, course=course):
        raise Forbidden("Only this course's instructors (and admins) may host its quizzes.")
    versions = await draw_questions(session, quiz=quiz, rng=rng)
    if not versions:
        raise QuizNotPlayable("This quiz has no questions.")
    unplayable = [
        {
            "loc": ["questions", n],
            "msg": f"{v.type} questions cannot be played live",
            "type": v.type,
        }
        for n, v in enumerate(versions)
        if v.type not in PLAYABLE
    ]
    if unplayable:
        raise QuizNotPlayable(
            "Live sessions play choice, true/false, numeric, short text and ordering questions.",
            details=unplayable,
        )
    live = LiveSession(
        quiz_id=quiz.id,
        course_id=quiz.course_id,
        host_id=principal.user_id,
        title=quiz.title,
        code="",
        phase=Phase.LOBBY.value,
        current_index=-1,
        question_count=len(versions),
        options=options.model_dump(mode="json"),
        last_activity_at=utcnow(),
    )
    for _ in range(8):  # a code taken by a running session: draw another
        live.code = new_code()
        try:
            async with session.begin_nested():
                session.add(live)
                await session.flush()
            break
        except IntegrityError:
            if live in session:
                session.expunge(live)
            continue
    else:
        raise Conflict("Could not draw a free join code; try again.")
    limit_ms = options.seconds_per_question * 1000
    for position, version in enumerate(versions):
        spec = load_spec(version.body)
        session.add(
            LiveQuestion(
                session_id=live.id,
                position=position,
                question_version_id=version.id,
                type=version.type,
                prompt=version.prompt,
                body=version.body,
                option_order=grading.draw_option_order(spec, rng, shuffle=options.shuffle_options),
                time_limit_ms=limit_ms,
                skipped=False,
            )
        )
    await session.flush()
    return live


async def player_counts(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Players who joined (not kicked) per session."""
    if not ids:
        return {}
    rows = await session.execute(
        select(LivePlayer.session_id, func.count())
        .where(LivePlayer.session_id.in_(ids), LivePlayer.kicked_at.is_(None))
        .group_by(LivePlayer.session_id)
    )
    return {sid: int(n) for sid, n in rows}


async def list_sessions(
    session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID
) -> list[LiveSession]:
    """A quiz's sessions, newest first (the course's instructors and admins)."""
    quiz = await get_quiz(session, quiz_id=quiz_id)
    course = await get_course(session, course_id=quiz.course_id)
    if not await may_teach(session, principal=principal, course=course):
        raise Forbidden("Only this course's instructors (and admins) see its live sessions.")
    return list(
        await session.scalars(
            select(LiveSession)
            .where(LiveSession.quiz_id == quiz_id)
            .order_by(LiveSession.created_at.desc(), LiveSession.id)
            .limit(200)
        )
    )


# --------------------------------------------------------------------------- joining


@dataclass(frozen=True, slots=True)
class Joined:
    live: LiveSession
    player: LivePlayer
    created: bool


async def join(
    session: AsyncSession,
    *,
    principal: Principal | None,
    code: str,
    nickname: str | None,
    outbox_for: dict[str, Outbox] | None = None,
) -> Joined:
    """Join a session by its code: an account joins once (again: the same player), a guest
    with a nickname when the session allows guests."""
    normalized = normalize_code(code)
    if normalized is None:
        raise LiveSessionNotFound()
    live: LiveSession | None = await session.scalar(
        select(LiveSession).where(
            LiveSession.code == normalized, LiveSession.phase != Phase.FINISHED.value
        )
    )
    if live is None:
        raise LiveSessionNotFound()
    options = options_of(live)
    if principal is None and not options.guests:
        raise AuthenticationRequired()
    player: LivePlayer | None = None
    if principal is not None:
        player = await session.scalar(
            select(LivePlayer).where(
                LivePlayer.session_id == live.id, LivePlayer.user_id == principal.user_id
            )
        )
        if player is not None:
            if player.banned:
                raise Banned()
            if player.kicked_at is not None or player.left_at is not None:
                player.kicked_at = None
                player.left_at = None
            return Joined(live, player, False)
        course = await get_course(session, course_id=live.course_id)
        member = await is_enrolled(
            session, user_id=principal.user_id, course_id=live.course_id
        ) or await may_teach(session, principal=principal, course=course)
        if not member and not options.guests:
            raise EnrollmentRequired()
    if live.phase != Phase.LOBBY.value and not options.late_join:
        raise SessionStarted()
    if nickname is None and principal is not None:
        user = await session.get(User, principal.user_id)
        nickname = (user.full_name if user else "") or "Player"
    if nickname is None:
        raise NicknameRejected("Guests must pick a nickname.")
    try:
        chosen = clean_nickname(nickname, filter_offensive=options.nickname_filter)
    except NicknameRefused as exc:
        raise NicknameRejected(
            str(exc), details=[{"loc": ["body", "nickname"], "msg": str(exc), "type": exc.reason}]
        ) from exc
    factor = 1.0
    if principal is not None and options.accommodations:
        multiplier = await session.scalar(
            select(Accommodation.time_multiplier).where(
                Accommodation.quiz_id == live.quiz_id, Accommodation.user_id == principal.user_id
            )
        )
        factor = max(1.0, float(multiplier or 1.0))
    player = await _insert_player(
        session, live=live, principal=principal, nickname=chosen, factor=factor
    )
    return Joined(live, player, True)


async def _insert_player(
    session: AsyncSession,
    *,
    live: LiveSession,
    principal: Principal | None,
    nickname: str,
    factor: float,
) -> LivePlayer:
    """Insert a player; an account whose name is taken gets "Name 2", "Name 3"...; a guest
    gets 409 nickname_taken.

    One `INSERT ... ON CONFLICT DO NOTHING RETURNING` per try (either unique constraint, name
    or account): a savepoint and an ORM flush cost three round trips and most of a join's
    CPU when thousands join at once."""
    for attempt in range(1, 20):
        shown = nickname if attempt == 1 else f"{nickname[:36]} {attempt}"
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "session_id": live.id,
            "user_id": principal.user_id if principal else None,
            "nickname": shown,
            "nickname_key": shown.casefold()[:40],
            "time_factor": factor,
            "joined_at": utcnow(),
            "banned": False,
            "score": 0,
            "streak": 0,
            "correct_count": 0,
            "answered_count": 0,
        }
        inserted = await session.scalar(
            upsert_for(session, LivePlayer)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(LivePlayer.id)
        )
        if inserted is not None:
            return LivePlayer(**values)
        if principal is None:
            raise NicknameTaken()
        again = await session.scalar(
            select(LivePlayer).where(
                LivePlayer.session_id == live.id, LivePlayer.user_id == principal.user_id
            )
        )
        if again is not None:  # the same account joined concurrently
            return again
    raise NicknameTaken()


async def player_kicked(
    session: AsyncSession, *, player_id: uuid.UUID, session_id: uuid.UUID
) -> bool:
    """Whether a session's player was kicked (PlayerNotFound when the player is gone, with its
    session: the foreign key cascades): what a socket connect checks, one column, no ORM
    objects."""
    row = (
        await session.execute(
            select(LivePlayer.kicked_at).where(
                LivePlayer.id == player_id, LivePlayer.session_id == session_id
            )
        )
    ).first()
    if row is None:
        raise PlayerNotFound()
    return row[0] is not None


async def player_of(
    session: AsyncSession, *, player_id: uuid.UUID, session_id: uuid.UUID
) -> tuple[LivePlayer, LiveSession]:
    """A player and its session (PlayerNotFound when either is gone)."""
    player = await session.get(LivePlayer, player_id)
    if player is None or player.session_id != session_id:
        raise PlayerNotFound()
    live = await session.get(LiveSession, session_id)
    if live is None:
        raise LiveSessionNotFound()
    return player, live


async def leave(session: AsyncSession, *, player_id: uuid.UUID) -> None:
    """The player left: it no longer counts for "everyone answered"."""
    await session.execute(
        update(LivePlayer)
        .where(LivePlayer.id == player_id, LivePlayer.left_at.is_(None))
        .values(left_at=utcnow())
    )


# --------------------------------------------------------------------------- the host's controls


async def _max_factor(session: AsyncSession, session_id: uuid.UUID) -> float:
    value = await session.scalar(
        select(func.max(LivePlayer.time_factor)).where(
            LivePlayer.session_id == session_id, LivePlayer.kicked_at.is_(None)
        )
    )
    return max(1.0, float(value or 1.0))


def _closes_at(question: LiveQuestion, factor: float) -> datetime:
    assert question.opened_at is not None
    return question.opened_at + timedelta(milliseconds=question.time_limit_ms * factor + GRACE_MS)


async def _open(
    session: AsyncSession, *, live: LiveSession, index: int, now: datetime, outbox: Outbox
) -> None:
    question = await question_at(session, session_id=live.id, index=index, lock=True)
    if question is None:
        raise WrongPhase("No such question.")
    question.opened_at = now
    question.paused_at = None
    question.closes_at = _closes_at(question, await _max_factor(session, live.id))
    live.phase = Phase.QUESTION_OPEN.value
    live.current_index = index
    opened = _opened_payload(live, question, now)
    outbox.all("question_opened", **opened)


def _opened_payload(live: LiveSession, question: LiveQuestion, now: datetime) -> dict[str, Any]:
    assert question.opened_at is not None
    return {
        "index": question.position,
        "count": live.question_count,
        "question": public_question(question),
        "opened_at": question.opened_at.isoformat(),
        "ends_at": ends_at(question).isoformat(),
        "time_limit_ms": question.time_limit_ms,
        "points": options_of(live).points,
        "server_now": now.isoformat(),
    }


async def _finish(
    session: AsyncSession, *, live: LiveSession, now: datetime, by: str, outbox: Outbox
) -> None:
    live.phase = Phase.FINISHED.value
    live.finished_at = now
    live.finished_by = by
    board = await leaderboard(session, live=live)
    outbox.all("session_finished", podium=board[:PODIUM_SIZE], leaderboard=board)


async def control(
    session: AsyncSession,
    *,
    principal: Principal,
    session_id: uuid.UUID,
    action: str,
    outbox: Outbox,
    hot_states: dict[str, dict[str, Any]],
) -> LiveSession:
    """Run one host control (start, next, close_question, pause, resume, skip, end) under the
    session's row lock; the broadcasts go to `outbox`, closed players' states to `hot_states`."""
    live = await hosted(session, principal=principal, session_id=session_id, lock=True)
    now = utcnow()
    phase = Phase(live.phase)
    live.last_activity_at = now
    if phase is Phase.FINISHED:
        raise WrongPhase("This session has finished.")
    if action == "start":
        if phase is not Phase.LOBBY:
            raise WrongPhase("The session has already started.")
        live.started_at = now
        outbox.all("session_started", question_count=live.question_count)
        await _open(session, live=live, index=0, now=now, outbox=outbox)
    elif action == "next":
        await _next(session, live=live, phase=phase, now=now, outbox=outbox)
    elif action == "close_question":
        await _close_by_host(session, live=live, now=now, outbox=outbox, hot_states=hot_states)
    elif action in ("pause", "resume"):
        question = await _current_open(session, live)
        _clock(
            question, pause=action == "pause", now=now, factor=await _max_factor(session, live.id)
        )
        if action == "pause":
            assert question.paused_at is not None
            outbox.all(
                "clock_paused", index=question.position, paused_at=question.paused_at.isoformat()
            )
        else:
            assert question.opened_at is not None
            outbox.all(
                "clock_resumed",
                index=question.position,
                opened_at=question.opened_at.isoformat(),
                ends_at=ends_at(question).isoformat(),
                server_now=now.isoformat(),
            )
    elif action == "skip":
        if phase not in (Phase.QUESTION_OPEN, Phase.QUESTION_CLOSED, Phase.LEADERBOARD):
            raise WrongPhase("There is no question to skip.")
        if phase is Phase.QUESTION_OPEN:
            question = await _current_open(session, live)
            await _skip(session, question=question, now=now)
            outbox.all("question_skipped", index=question.position)
        await _after(session, live=live, now=now, outbox=outbox)
    elif action == "end":
        if phase is Phase.QUESTION_OPEN:
            await _close_by_host(session, live=live, now=now, outbox=outbox, hot_states=hot_states)
        await _finish(session, live=live, now=now, by="host", outbox=outbox)
    else:
        raise WrongPhase(f"Unknown control {action!r}.")
    return live


async def _close_by_host(
    session: AsyncSession,
    *,
    live: LiveSession,
    now: datetime,
    outbox: Outbox,
    hot_states: dict[str, dict[str, Any]],
) -> None:
    question = await _current_open(session, live)
    await close_question(
        session,
        live=live,
        question=question,
        reason="host",
        now=now,
        outbox=outbox,
        hot_states=hot_states,
    )


async def _current_open(session: AsyncSession, live: LiveSession) -> LiveQuestion:
    if live.phase != Phase.QUESTION_OPEN.value:
        raise WrongPhase("No question is open.")
    question = await question_at(session, session_id=live.id, index=live.current_index, lock=True)
    if question is None or question.closed_at is not None:
        raise WrongPhase("No question is open.")
    return question


def _clock(question: LiveQuestion, *, pause: bool, now: datetime, factor: float) -> None:
    if pause:
        if question.paused_at is not None:
            raise WrongPhase("The clock is already paused.")
        question.paused_at = now
        question.closes_at = None
        return
    if question.paused_at is None:
        raise WrongPhase("The clock is not paused.")
    assert question.opened_at is not None
    question.opened_at += now - question.paused_at
    question.paused_at = None
    question.closes_at = _closes_at(question, factor)


async def _next(
    session: AsyncSession, *, live: LiveSession, phase: Phase, now: datetime, outbox: Outbox
) -> None:
    if phase is Phase.LOBBY:
        raise WrongPhase("Start the session first.")
    if phase is Phase.QUESTION_OPEN:
        raise WrongPhase("Close the question first (or skip it).")
    if (
        phase is Phase.QUESTION_CLOSED
        and options_of(live).leaderboard is LeaderboardMode.EACH_QUESTION
    ):
        live.phase = Phase.LEADERBOARD.value
        outbox.all(
            "leaderboard",
            index=live.current_index,
            leaderboard=await leaderboard(session, live=live),
        )
        return
    await _after(session, live=live, now=now, outbox=outbox)


async def _after(
    session: AsyncSession, *, live: LiveSession, now: datetime, outbox: Outbox
) -> None:
    """Open the next question, or finish after the last."""
    if live.current_index + 1 >= live.question_count:
        await _finish(session, live=live, now=now, by="host", outbox=outbox)
    else:
        await _open(session, live=live, index=live.current_index + 1, now=now, outbox=outbox)


async def _skip(session: AsyncSession, *, question: LiveQuestion, now: datetime) -> None:
    """Drop an open question from scoring: its answers earn nothing, streaks stay as before."""
    question.skipped = True
    question.closed_at = now
    question.close_reason = "host"
    question.paused_at = None
    await session.execute(
        update(LiveAnswer)
        .where(LiveAnswer.question_id == question.id)
        .values(points=0, streak=None)
    )


async def kick(
    session: AsyncSession,
    *,
    principal: Principal,
    session_id: uuid.UUID,
    player_id: uuid.UUID,
    ban: bool,
    outbox: Outbox,
) -> LivePlayer:
    """Remove a player (it may join again unless banned)."""
    live = await hosted(session, principal=principal, session_id=session_id, lock=True)
    player = await session.get(LivePlayer, player_id, with_for_update=True)
    if player is None or player.session_id != live.id:
        raise PlayerNotFound()
    player.kicked_at = utcnow()
    player.banned = ban
    outbox.hosts("player_kicked", player_id=str(player.id), banned=ban)
    return player


async def unban(
    session: AsyncSession, *, principal: Principal, session_id: uuid.UUID, player_id: uuid.UUID
) -> LivePlayer:
    """Let a banned player join again."""
    live = await hosted(session, principal=principal, session_id=session_id, lock=True)
    player = await session.get(LivePlayer, player_id, with_for_update=True)
    if player is None or player.session_id != live.id:
        raise PlayerNotFound()
    player.banned = False
    return player


# --------------------------------------------------------------------------- closing and scoring


async def close_question(
    session: AsyncSession,
    *,
    live: LiveSession,
    question: LiveQuestion,
    reason: str,
    now: datetime,
    outbox: Outbox,
    hot_states: dict[str, dict[str, Any]],
) -> None:
    """Close an open question (its row and the session's are locked by the caller), score its
    answers and every player's streak, rank, and tell everyone."""
    question.closed_at = now
    question.close_reason = reason
    question.paused_at = None
    rules = rules_of(live)
    # Columns, not ORM objects: at thousands of players, loading and tracking them took most
    # of a close (which holds its instance's event loop while it computes).
    players = [
        Standing(*row)
        for row in await session.execute(
            select(*_STANDING_COLUMNS)
            .where(LivePlayer.session_id == live.id)
            .order_by(LivePlayer.id)
        )
    ]
    answers = {
        row.player_id: row
        for row in await session.execute(
            select(
                LiveAnswer.id,
                LiveAnswer.player_id,
                LiveAnswer.state,
                LiveAnswer.fraction,
                LiveAnswer.elapsed_ms,
            ).where(LiveAnswer.question_id == question.id)
        )
    }
    points: dict[uuid.UUID, int] = {}
    answer_updates: list[dict[str, Any]] = []
    player_updates: list[dict[str, Any]] = []
    for player in players:
        answer = answers.get(player.id)
        if player.kicked_at is not None:
            if answer is not None:
                answer_updates.append({"id": answer.id, "points": 0, "streak": None})
            continue
        judged = (
            scoring.Judged(
                fraction=answer.fraction,
                elapsed_ms=answer.elapsed_ms,
                limit_ms=max(1, round(question.time_limit_ms * player.time_factor)),
            )
            if answer is not None
            else None
        )
        award = scoring.award(rules, judged, streak_before=player.streak)
        if answer is not None:
            points[player.id] = award.points
            answer_updates.append({"id": answer.id, "points": award.points, "streak": award.streak})
        player.score += award.points
        player.streak = award.streak
        player.correct_count += int(award.correct)
        player.answered_count += int(answer is not None)
    ranks = scoring.rank({p.id: p.score for p in players if p.kicked_at is None})
    for player in players:
        player.rank = ranks.get(player.id)
        player_updates.append(
            {
                "id": player.id,
                "score": player.score,
                "streak": player.streak,
                "correct_count": player.correct_count,
                "answered_count": player.answered_count,
                "rank": player.rank,
            }
        )
    # Bulk updates by primary key, not one flush per object.
    await _update_by_id(session, LiveAnswer, answer_updates)
    await _update_by_id(session, LivePlayer, player_updates)
    live.phase = Phase.QUESTION_CLOSED.value
    reveal = await reveal_of(session, live=live, question=question)
    outbox.all("question_closed", **reveal)
    hot_states.update(_states(players, question, answers, points))


@dataclass(slots=True)
class Standing:
    """A player's standing as a close reads and updates it (no ORM object)."""

    id: uuid.UUID
    nickname: str
    time_factor: float
    kicked_at: datetime | None
    score: int
    streak: int
    correct_count: int
    answered_count: int
    rank: int | None


_STANDING_COLUMNS = (
    LivePlayer.id,
    LivePlayer.nickname,
    LivePlayer.time_factor,
    LivePlayer.kicked_at,
    LivePlayer.score,
    LivePlayer.streak,
    LivePlayer.correct_count,
    LivePlayer.answered_count,
    LivePlayer.rank,
)


_PG_TYPES = {
    "points": "int",
    "streak": "int",
    "score": "int",
    "correct_count": "int",
    "answered_count": "int",
    "rank": "int",
}


async def _update_by_id(
    session: AsyncSession, model: type[LiveAnswer] | type[LivePlayer], rows: list[dict[str, Any]]
) -> None:
    """Set columns of many rows by id. PostgreSQL: one `UPDATE ... FROM unnest(arrays)` (an
    executemany is a statement per row: 10,000 of them at a 5,000-learner close, ~0.5 s of
    database CPU in the middle of an answer burst); others: executemany."""
    if not rows:
        return
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        await session.execute(update(model), rows)
        return
    columns = [c for c in rows[0] if c != "id"]
    table = model.__tablename__
    assignments = ", ".join(f"{c} = u.{c}" for c in columns)
    arrays = ", ".join(
        ["CAST(:ids AS uuid[])", *(f"CAST(:{c} AS {_PG_TYPES[c]}[])" for c in columns)]
    )
    statement = text(
        f"UPDATE {table} AS t SET {assignments} "  # noqa: S608 (names from this module)
        f"FROM unnest({arrays}) AS u(id, {', '.join(columns)}) WHERE t.id = u.id"
    )
    params: dict[str, Any] = {"ids": [row["id"] for row in rows]}
    params |= {c: [row[c] for row in rows] for c in columns}
    await session.execute(statement, params)


def _states(
    players: list[Standing],
    question: LiveQuestion,
    answers: dict[uuid.UUID, Any],
    points: dict[uuid.UUID, int],
) -> dict[str, dict[str, Any]]:
    states = {}
    for player in players:
        answer = answers.get(player.id)
        last = {
            "index": question.position,
            "state": answer.state if answer else "unanswered",
            "points": points.get(player.id, 0),
            "correct": bool(answer and answer.fraction >= 1),
        }
        states[str(player.id)] = _state(player, last)
    return states


def _state(player: LivePlayer | Standing, last: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "player_id": str(player.id),
        "nickname": player.nickname,
        "score": player.score,
        "rank": player.rank,
        "streak": player.streak,
        "correct": player.correct_count,
        "answered": player.answered_count,
        "time_factor": player.time_factor,
        "kicked": player.kicked_at is not None,
        "last": last,
    }


async def reveal_of(
    session: AsyncSession, *, live: LiveSession, question: LiveQuestion
) -> dict[str, Any]:
    """What everyone sees when a question closes: the right answer, the distribution, how
    many answered, and the leaderboard when the session shows it after each question."""
    counts = await answer_counts(session, question_id=question.id)
    board = (
        await leaderboard(session, live=live)
        if options_of(live).leaderboard is LeaderboardMode.EACH_QUESTION
        else None
    )
    return {
        "index": question.position,
        "reason": question.close_reason,
        "right_answer": right_answer(question),
        "distribution": distribution(question.type, counts),
        "answered": sum(counts.values()),
        "leaderboard": board,
    }


async def answer_counts(session: AsyncSession, *, question_id: uuid.UUID) -> dict[str, int]:
    """Answers per distribution key."""
    rows = await session.execute(
        select(LiveAnswer.choice, func.count())
        .where(LiveAnswer.question_id == question_id)
        .group_by(LiveAnswer.choice)
    )
    return {choice: int(n) for choice, n in rows}


async def leaderboard(
    session: AsyncSession, *, live: LiveSession, size: int = LEADERBOARD_SIZE
) -> list[dict[str, Any]]:
    """The top players (ties share a rank; kicked players are out)."""
    # Columns, not entities: a player object loaded earlier in the same transaction would be
    # returned as it was (a close updates scores and ranks with bulk statements).
    rows = await session.execute(
        select(LivePlayer.rank, LivePlayer.id, LivePlayer.nickname, LivePlayer.score)
        .where(LivePlayer.session_id == live.id, LivePlayer.kicked_at.is_(None))
        .order_by(LivePlayer.score.desc(), LivePlayer.joined_at, LivePlayer.id)
        .limit(size)
    )
    return [
        {"rank": p.rank or 1, "player_id": str(p.id), "nickname": p.nickname, "score": p.score}
        for p in rows
    ]


async def recompute_scores(
    session: AsyncSession, *, live: LiveSession, without: uuid.UUID | None = None
) -> dict[uuid.UUID, tuple[int, int, int, int]]:
    """Every player's (score, streak, correct, answered), replayed from the stored answers of
    the closed, scored questions in order (`without`: leave one out)."""
    rules = rules_of(live)
    players = {
        p.id: p
        for p in await session.scalars(select(LivePlayer).where(LivePlayer.session_id == live.id))
    }
    questions = list(
        await session.scalars(
            select(LiveQuestion)
            .where(
                LiveQuestion.session_id == live.id,
                LiveQuestion.closed_at.is_not(None),
                LiveQuestion.skipped.is_(False),
            )
            .order_by(LiveQuestion.position)
        )
    )
    totals = dict.fromkeys(players, (0, 0, 0, 0))
    for question in questions:
        if question.id == without:
            continue
        answers = {
            a.player_id: a
            for a in await session.scalars(
                select(LiveAnswer).where(LiveAnswer.question_id == question.id)
            )
        }
        for pid, player in players.items():
            if player.kicked_at is not None and player.kicked_at <= (
                question.closed_at or utcnow()
            ):
                continue
            score, streak, correct, answered = totals[pid]
            answer = answers.get(pid)
            judged = (
                scoring.Judged(
                    answer.fraction,
                    answer.elapsed_ms,
                    max(1, round(question.time_limit_ms * player.time_factor)),
                )
                if answer
                else None
            )
            award = scoring.award(rules, judged, streak_before=streak)
            totals[pid] = (
                score + award.points,
                award.streak,
                correct + int(award.correct),
                answered + int(answer is not None),
            )
    return totals


@dataclass(frozen=True, slots=True)
class Due:
    question_id: uuid.UUID
    session_id: uuid.UUID
    reason: str


@dataclass(frozen=True, slots=True)
class DueScan:
    """One sweeper pass: the questions to close, and how many questions are open at all
    (none: the sweeper may slow down)."""

    due: list[Due]
    open: int


async def due_questions(session: AsyncSession, *, now: datetime, everyone: bool = True) -> DueScan:
    """Open questions whose time is up (the latest deadline) or, with `everyone`, that every
    active player answered.

    The sweeper runs this during answer bursts, when the tables have grown by thousands of
    rows since the planner last saw statistics: a join of answers and players was planned
    as a nested loop (27 ms at 5,000 learners, the database's largest CPU use in a burst).
    So the pass counts the question's answers and the active players, two single-table
    counts, and only a question with as many answers as players gets the exact check (an
    answer of a kicked or departed player does not count)."""
    columns: list[Any] = [LiveQuestion.id, LiveQuestion.session_id, LiveQuestion.closes_at]
    if everyone:
        answers = (
            select(func.count())
            .select_from(LiveAnswer)
            .where(LiveAnswer.question_id == LiveQuestion.id)
            .scalar_subquery()
        )
        players = (
            select(func.count())
            .select_from(LivePlayer)
            .where(LivePlayer.session_id == LiveQuestion.session_id, *_STILL_PLAYING)
            .scalar_subquery()
        )
        columns += [answers, players]
    rows = await session.execute(
        select(*columns).where(
            LiveQuestion.opened_at.is_not(None), LiveQuestion.closed_at.is_(None)
        )
    )
    due = []
    found = rows.all()
    for qid, sid, closes_at, *counts in found:
        n_answers, n_players = counts or (0, 0)
        if closes_at is not None and closes_at <= now:
            due.append(Due(qid, sid, "time"))
        elif n_players and n_answers >= n_players:
            answered = await session.scalar(
                select(func.count())
                .select_from(LiveAnswer)
                .join(LivePlayer, LivePlayer.id == LiveAnswer.player_id)
                .where(LiveAnswer.question_id == qid, *_STILL_PLAYING)
            )
            if answered is not None and answered >= n_players:
                due.append(Due(qid, sid, "all_answered"))
    return DueScan(due, len(found))


# The players who still count for "everyone answered".
_STILL_PLAYING = (LivePlayer.kicked_at.is_(None), LivePlayer.left_at.is_(None))


async def close_due(
    session: AsyncSession,
    *,
    due: Due,
    outbox: Outbox,
    hot_states: dict[str, dict[str, Any]],
) -> bool:
    """Close a due question unless another instance holds its session (SKIP LOCKED) or has
    closed it already; True when this call closed it."""
    live = await _session(session, due.session_id, lock=True, skip_locked=True)
    if live is None or live.phase != Phase.QUESTION_OPEN.value:
        return False
    question = await question_at(session, session_id=live.id, index=live.current_index, lock=True)
    if question is None or question.id != due.question_id or question.closed_at is not None:
        return False
    if question.paused_at is not None:
        return False
    now = utcnow()
    if due.reason == "time" and (question.closes_at is None or question.closes_at > now):
        return False
    await close_question(
        session,
        live=live,
        question=question,
        reason=due.reason,
        now=now,
        outbox=outbox,
        hot_states=hot_states,
    )
    return True


async def finish_idle(session: AsyncSession, *, now: datetime, idle: timedelta) -> list[Outbox]:
    """Finish sessions nobody has driven for `idle` (their results are kept)."""
    stale = list(
        await session.scalars(
            select(LiveSession)
            .where(
                LiveSession.phase != Phase.FINISHED.value,
                LiveSession.last_activity_at < now - idle,
            )
            .with_for_update(key_share=True, skip_locked=True)  # see _session
            .limit(50)
        )
    )
    outboxes = []
    for live in stale:
        outbox = Outbox(str(live.id))
        if live.phase == Phase.QUESTION_OPEN.value:
            question = await question_at(
                session, session_id=live.id, index=live.current_index, lock=True
            )
            if question is not None and question.closed_at is None:
                await close_question(
                    session,
                    live=live,
                    question=question,
                    reason="time",
                    now=now,
                    outbox=outbox,
                    hot_states={},
                )
        await _finish(session, live=live, now=now, by="idle", outbox=outbox)
        outboxes.append(outbox)
    return outboxes


# --------------------------------------------------------------------------- snapshots


async def player_states(session: AsyncSession, *, live: LiveSession) -> dict[str, dict[str, Any]]:
    """Every player's state from the database (rebuilds the hot copy)."""
    players = list(
        await session.scalars(select(LivePlayer).where(LivePlayer.session_id == live.id))
    )
    return {str(p.id): _state(p, await _last_result(session, live=live, player=p)) for p in players}


async def _last_result(
    session: AsyncSession, *, live: LiveSession, player: LivePlayer
) -> dict[str, Any] | None:
    question: LiveQuestion | None = await session.scalar(
        select(LiveQuestion)
        .where(LiveQuestion.session_id == live.id, LiveQuestion.closed_at.is_not(None))
        .order_by(LiveQuestion.position.desc())
        .limit(1)
    )
    if question is None:
        return None
    answer: LiveAnswer | None = await session.scalar(
        select(LiveAnswer).where(
            LiveAnswer.question_id == question.id, LiveAnswer.player_id == player.id
        )
    )
    return {
        "index": question.position,
        "state": answer.state if answer else "unanswered",
        "points": (answer.points or 0) if answer else 0,
        "correct": bool(answer and answer.fraction >= 1),
    }


async def player_state(
    session: AsyncSession, *, live: LiveSession, player: LivePlayer
) -> dict[str, Any]:
    """One player's score, rank, streak and last result, from the database."""
    return _state(player, await _last_result(session, live=live, player=player))


async def _session_view(
    session: AsyncSession, *, live: LiveSession, now: datetime
) -> tuple[dict[str, Any], LiveQuestion | None]:
    question = None
    if live.current_index >= 0 and live.phase != Phase.FINISHED.value:
        question = await question_at(session, session_id=live.id, index=live.current_index)
    phase = Phase(live.phase)
    view: dict[str, Any] = {
        "session_id": str(live.id),
        "quiz_title": live.title,
        "phase": phase.value,
        "index": live.current_index,
        "count": live.question_count,
        "question": None,
        "opened_at": None,
        "ends_at": None,
        "paused_at": None,
        "time_limit_ms": None,
        "points": options_of(live).points,
        "server_now": now.isoformat(),
        "reveal": None,
        "leaderboard": None,
        "podium": None,
    }
    if question is not None and question.opened_at is not None:
        view |= {
            "question": public_question(question),
            "opened_at": question.opened_at.isoformat(),
            "ends_at": ends_at(question).isoformat(),
            "paused_at": question.paused_at.isoformat() if question.paused_at else None,
            "time_limit_ms": question.time_limit_ms,
        }
        if question.closed_at is not None and not question.skipped:
            view["reveal"] = await reveal_of(session, live=live, question=question)
    if phase is Phase.LEADERBOARD:
        view["leaderboard"] = await leaderboard(session, live=live)
    if phase is Phase.FINISHED:
        board = await leaderboard(session, live=live)
        view["leaderboard"], view["podium"] = board, board[:PODIUM_SIZE]
    return view, question


async def player_snapshot(
    session: AsyncSession, *, live: LiveSession, player: LivePlayer
) -> dict[str, Any]:
    """Everything a player's screen needs, by the server's clock (rejoin, refresh, gaps)."""
    now = utcnow()
    view, question = await _session_view(session, live=live, now=now)
    view["deadline"] = None
    view["my_answer"] = None
    if question is not None and question.opened_at is not None:
        deadline = deadline_of(question, player.time_factor)
        view["deadline"] = deadline.isoformat() if deadline else None
        answer: LiveAnswer | None = await session.scalar(
            select(LiveAnswer).where(
                LiveAnswer.question_id == question.id, LiveAnswer.player_id == player.id
            )
        )
        if answer is not None:
            view["my_answer"] = {
                "index": question.position,
                "answer_id": answer.client_answer_id,
                "response": labelled(question, answer.response),
            }
    view["player"] = await player_state(session, live=live, player=player)
    return view


async def host_snapshot(
    session: AsyncSession, *, live: LiveSession, public_url: str, online: set[str]
) -> dict[str, Any]:
    """Everything the host's screen needs: the session, players, counts, the right answer."""
    now = utcnow()
    view, question = await _session_view(session, live=live, now=now)
    players = list(
        await session.scalars(
            select(LivePlayer)
            .where(LivePlayer.session_id == live.id)
            .order_by(LivePlayer.joined_at, LivePlayer.id)
        )
    )
    counts = await answer_counts(session, question_id=question.id) if question else {}
    view |= {
        "code": live.code,
        "join_url": join_url(public_url, live.code),
        "options": options_of(live).model_dump(mode="json"),
        "players": [
            {
                "id": str(p.id),
                "nickname": p.nickname,
                "guest": p.user_id is None,
                "connected": str(p.id) in online,
                "score": p.score,
                "rank": p.rank,
                "kicked": p.kicked_at is not None,
                "banned": p.banned,
            }
            for p in players
        ],
        "right_answer": right_answer(question) if question is not None else None,
        "answered": sum(counts.values()),
        "distribution": distribution(question.type, counts) if question else {},
    }
    return view


async def dashboard(session: AsyncSession, *, live: LiveSession) -> dict[str, Any]:
    """The host dashboard's aggregate: players, answers and their distribution so far."""
    players = await session.scalar(
        select(func.count()).where(LivePlayer.session_id == live.id, LivePlayer.kicked_at.is_(None))
    )
    question = (
        await question_at(session, session_id=live.id, index=live.current_index)
        if live.current_index >= 0
        else None
    )
    counts = await answer_counts(session, question_id=question.id) if question else {}
    return {
        "phase": live.phase,
        "index": live.current_index,
        "players": int(players or 0),
        "answered": sum(counts.values()),
        "distribution": distribution(question.type, counts) if question else {},
    }


# --------------------------------------------------------------------------- results


async def results(session: AsyncSession, *, live: LiveSession) -> dict[str, Any]:
    """Per player and per question results (the caller checked who may read them)."""
    questions = list(
        await session.scalars(
            select(LiveQuestion)
            .where(LiveQuestion.session_id == live.id)
            .order_by(LiveQuestion.position)
        )
    )
    rows = await session.execute(
        select(LivePlayer, User.email)
        .outerjoin(User, User.id == LivePlayer.user_id)
        .where(LivePlayer.session_id == live.id)
        .order_by(LivePlayer.rank.nulls_last(), LivePlayer.score.desc(), LivePlayer.nickname)
    )
    players = [(p, email) for p, email in rows]
    answers: dict[tuple[uuid.UUID, uuid.UUID], LiveAnswer] = {
        (a.player_id, a.question_id): a
        for a in await session.scalars(select(LiveAnswer).where(LiveAnswer.session_id == live.id))
    }
    by_question = [
        _question_result(q, [a for (_, qid), a in answers.items() if qid == q.id])
        for q in questions
    ]
    return {
        "max_score": scoring.max_total(rules_of(live)),
        "questions": by_question,
        "players": [
            {
                "player_id": p.id,
                "user_id": p.user_id,
                "email": email,
                "nickname": p.nickname,
                "guest": p.user_id is None,
                "rank": p.rank,
                "score": p.score,
                "correct": p.correct_count,
                "answered": p.answered_count,
                "kicked": p.kicked_at is not None,
                "answers": [_answer_result(q, answers.get((p.id, q.id))) for q in questions],
            }
            for p, email in players
        ],
    }


def _answer_result(question: LiveQuestion, answer: LiveAnswer | None) -> dict[str, Any]:
    return {
        "index": question.position,
        "answered": answer is not None,
        "state": answer.state if answer else "unanswered",
        "points": (answer.points or 0) if answer else 0,
        "elapsed_ms": answer.elapsed_ms if answer else None,
        "response": labelled(question, answer.response) if answer else None,
    }


def _question_result(question: LiveQuestion, answers: list[LiveAnswer]) -> dict[str, Any]:
    counts = Counter(a.choice for a in answers)
    scored = [a.points for a in answers if a.points is not None]
    return {
        "index": question.position,
        "type": question.type,
        "prompt": question.prompt,
        "skipped": question.skipped,
        "played": question.closed_at is not None,
        "answered": len(answers),
        "correct": sum(1 for a in answers if a.fraction >= 1),
        "mean_points": round(sum(scored) / len(scored), 2) if scored else None,
        "distribution": distribution(question.type, dict(counts)),
    }


def results_csv(data: dict[str, Any]) -> str:
    """Per player rows (rank, nickname, email, score, right answers, then points per
    question), formula-neutralised cells, CRLF lines."""
    from lms_live.quizzes.analysis import neutralised

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    questions = data["questions"]
    writer.writerow(
        ["rank", "nickname", "email", "guest", "score", "correct", "answered"]
        + [f"q{q['index'] + 1}" for q in questions]
    )
    for p in data["players"]:
        writer.writerow(
            [
                p["rank"] if p["rank"] is not None else "",
                neutralised(p["nickname"]),
                neutralised(p["email"] or ""),
                "yes" if p["guest"] else "no",
                p["score"],
                p["correct"],
                p["answered"],
            ]
            + [a["points"] if a["answered"] else "" for a in p["answers"]]
        )
    return out.getvalue()
