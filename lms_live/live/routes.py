"""HTTP endpoints of live sessions: create, read, list, QR code, results (JSON and CSV) for the
course's instructors and admins; join by code for players (rate-limited per client IP, so a
code cannot be found by trying them)."""

from __future__ import annotations

import asyncio
import io
import uuid

import segno
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live import keys
from lms_live.core.errors import RateLimited
from lms_live.core.http import RouteTable, principal_of, require_principal
from lms_live.core.middleware import client_ip
from lms_live.core.uow import unit_of_work
from lms_live.live import service
from lms_live.live.events import Outbox
from lms_live.live.models import LiveSession
from lms_live.live.schemas import (
    JoinIn,
    JoinOut,
    QuizIdPath,
    ResultsOut,
    SessionIdPath,
    SessionListOut,
    SessionOptions,
    SessionOut,
)
from lms_live.live.tokens import PlayerClaims
from lms_live.settings import parse_rate

routes = RouteTable()
TAGS = ["live"]
TEACHERS = ["instructor", "admin"]


def session_out(live: LiveSession, *, public_url: str, players: int) -> SessionOut:
    """The public form of a session."""
    return SessionOut(
        id=live.id,
        quiz_id=live.quiz_id,
        course_id=live.course_id,
        host_id=live.host_id,
        title=live.title,
        code=live.code,
        join_url=service.join_url(public_url, live.code),
        phase=live.phase,
        current_index=live.current_index,
        question_count=live.question_count,
        options=service.options_of(live),
        players=players,
        created_at=live.created_at,
        started_at=live.started_at,
        finished_at=live.finished_at,
    )


async def _out(session: AsyncSession, request: web.Request, live: LiveSession) -> SessionOut:
    counts = await service.player_counts(session, [live.id])
    return session_out(
        live, public_url=request.app[keys.SETTINGS].public_url, players=counts.get(live.id, 0)
    )


@routes.post(
    "/api/v1/quizzes/{quiz_id}/live-sessions",
    operation_id="create_live_session",
    summary="Host a quiz live: create a session in its lobby",
    tags=TAGS,
    path_model=QuizIdPath,
    body=SessionOptions,
    response=SessionOut,
    status=201,
    roles=TEACHERS,
    errors=[403, 404, 422],
)
async def create_live_session(
    request: web.Request, path: QuizIdPath, body: SessionOptions
) -> SessionOut:
    """The quiz's questions are drawn and frozen now (pools drawn once for everyone); the
    session gets a join code unique among running sessions. 422 `quiz_not_playable` when the
    quiz has no questions or some that cannot be played live (essay, matching)."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        live = await service.create_session(
            work.session, principal=principal, quiz_id=path.quiz_id, options=body
        )
        request.app[keys.LIVE].wake()  # the conductor starts the lobby's dashboard now
        return session_out(live, public_url=request.app[keys.SETTINGS].public_url, players=0)


@routes.get(
    "/api/v1/quizzes/{quiz_id}/live-sessions",
    operation_id="list_live_sessions",
    summary="A quiz's live sessions, newest first",
    tags=TAGS,
    path_model=QuizIdPath,
    response=SessionListOut,
    roles=TEACHERS,
    errors=[403, 404],
)
async def list_live_sessions(request: web.Request, path: QuizIdPath) -> SessionListOut:
    """Running and finished sessions (the latest 200)."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        found = await service.list_sessions(session, principal=principal, quiz_id=path.quiz_id)
        counts = await service.player_counts(session, [s.id for s in found])
    url = request.app[keys.SETTINGS].public_url
    return SessionListOut(
        items=[session_out(s, public_url=url, players=counts.get(s.id, 0)) for s in found]
    )


@routes.get(
    "/api/v1/live-sessions/{session_id}",
    operation_id="get_live_session",
    summary="A live session",
    tags=TAGS,
    path_model=SessionIdPath,
    response=SessionOut,
    roles=TEACHERS,
    errors=[403, 404],
)
async def get_live_session(request: web.Request, path: SessionIdPath) -> SessionOut:
    """Its code, join URL, phase, options and player count (the course's instructors)."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        live = await service.hosted(session, principal=principal, session_id=path.session_id)
        return await _out(session, request, live)


@routes.get(
    "/api/v1/live-sessions/{session_id}/qr.svg",
    operation_id="live_session_qr",
    summary="QR code of a live session's join URL",
    tags=TAGS,
    path_model=SessionIdPath,
    roles=TEACHERS,
    media_type="image/svg+xml",
    errors=[403, 404],
)
async def live_session_qr(request: web.Request, path: SessionIdPath) -> web.Response:
    """An SVG QR code of the join URL, for the host's screen."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        live = await service.hosted(session, principal=principal, session_id=path.session_id)
    return web.Response(
        body=qr_svg(service.join_url(request.app[keys.SETTINGS].public_url, live.code)),
        content_type="image/svg+xml",
    )


def qr_svg(url: str) -> bytes:
    """The QR code of `url` as SVG (segno: pure Python, no image libraries)."""
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=8, border=2, xmldecl=False)
    return out.getvalue()


async def _results(
    request: web.Request, session_id: uuid.UUID
) -> tuple[LiveSession, dict, SessionOut]:  # type: ignore[type-arg]
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        live = await service.hosted(session, principal=principal, session_id=session_id)
        data = await service.results(session, live=live)
        out = await _out(session, request, live)
    return live, data, out


@routes.get(
    "/api/v1/live-sessions/{session_id}/results",
    operation_id="live_session_results",
    summary="Results of a live session per player and per question",
    tags=TAGS,
    path_model=SessionIdPath,
    response=ResultsOut,
    roles=TEACHERS,
    errors=[403, 404],
)
async def live_session_results(request: web.Request, path: SessionIdPath) -> ResultsOut:
    """Ranks, scores, right answers and each answer's points and time; per question the
    distribution. Written as the session goes (each close), so they exist even if nobody
    clicks anything at the end."""
    _, data, out = await _results(request, path.session_id)
    return ResultsOut.model_validate({"session": out, **data})


@routes.get(
    "/api/v1/live-sessions/{session_id}/results.csv",
    operation_id="live_session_results_csv",
    summary="Results of a live session as CSV",
    tags=TAGS,
    path_model=SessionIdPath,
    roles=TEACHERS,
    media_type="text/csv",
    errors=[403, 404],
)
async def live_session_results_csv(request: web.Request, path: SessionIdPath) -> web.Response:
    """One row per player: rank, nickname, email (accounts), score, right answers, then the
    points of each question. Formula-like cells are neutralised."""
    live, data, _ = await _results(request, path.session_id)
    text = await asyncio.to_thread(service.results_csv, data)
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="live-{live.code}-{live.id}.csv"'},
    )


async def join_session(
    app: web.Application, *, principal: object, code: str, nickname: str | None, ip: str
) -> JoinOut:
    """Join by code (shared by the REST endpoint and the join page): rate-limited per IP."""
    settings = app[keys.SETTINGS]
    if settings.rate_limit_enabled:
        capacity, period = parse_rate(settings.live_join_rate)
        decision = await app[keys.RATE_LIMITER].hit(
            f"live_join:{ip}", capacity=capacity, period=period
        )
        if not decision.allowed:
            raise RateLimited(decision.retry_after, "Too many join attempts; wait a little.")
    outbox: Outbox | None = None
    async with unit_of_work(app) as work:
        joined = await service.join(
            work.session,
            principal=principal,  # type: ignore[arg-type]
            code=code,
            nickname=nickname,
        )
        player, live = joined.player, joined.live
        if joined.created:
            outbox = Outbox(str(live.id))
            outbox.hosts(
                "player_joined",
                player={
                    "id": str(player.id),
                    "nickname": player.nickname,
                    "guest": player.user_id is None,
                },
            )
        claims = PlayerClaims(player.id, live.id, player.user_id)
        out = JoinOut(
            session_id=live.id,
            player_id=player.id,
            player_token=app[keys.LIVE].tokens.issue(claims),
            nickname=player.nickname,
            quiz_title=live.title,
            guest=player.user_id is None,
        )
    if outbox is not None:
        await app[keys.LIVE].publish(outbox)
    return out


@routes.post(
    "/api/v1/live/join",
    operation_id="join_live_session",
    summary="Join a live session by its code",
    tags=TAGS,
    body=JoinIn,
    response=JoinOut,
    errors=[401, 403, 404, 409, 422, 429],
)
async def join_live_session(request: web.Request, body: JoinIn) -> JoinOut:
    """Signed-in learners of the course join as themselves (again: the same player); guests
    with a nickname when the session allows guests. Connect to `/live` with the returned
    `player_token`. Rate-limited per client IP (LIVE_JOIN_RATE)."""
    return await join_session(
        request.app,
        principal=principal_of(request),
        code=body.code,
        nickname=body.nickname,
        ip=client_ip(request),
    )
