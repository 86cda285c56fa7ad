"""Live quiz pages: /live (enter a code), /live/join/{code} (the join URL and QR target),
/live/play/{session_id} (a guest's play page after the nickname form), /live/host/{session_id}
(the host's screen) and /live/host/{session_id}/results.csv.

Joining goes through `live.routes.join_session` (the REST join's rules and per-IP rate limit).
A signed-in learner joins on GET, as themself; a guest posts a nickname form (CSRF-checked by
`web.pages.page`) and is redirected (303) to the play page. The player tokens a browser got
this way are kept in its page session (`live_players`: session id -> token, the latest few),
so a reload of the play page finds the same player; the play script also keeps the token in
sessionStorage. Host pages use the page session's user (the course's instructors and admins).
The pages load only same-origin scripts and styles (the strict CSP); data reaches the scripts
through `data-` attributes and is rendered with textContent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import aiohttp_session
from aiohttp import web
from markupsafe import Markup

from lms_live import keys
from lms_live.core.errors import LmsError, RateLimited
from lms_live.core.http import Handler, RouteTable
from lms_live.core.middleware import client_ip
from lms_live.core.security import Principal
from lms_live.live import service
from lms_live.live.codes import normalize_code
from lms_live.live.models import LiveSession
from lms_live.live.routes import join_session, qr_svg
from lms_live.live.schemas import JoinOut
from lms_live.web.pages import current_user, page, read_form, redirect, render, setup_templates
from lms_live.web.session import PageUser

routes = RouteTable()

KEPT_PLAYERS = 5  # player tokens a page session keeps (the latest joins)
NICKNAME_MAX = 40
NOT_FOUND = "No live quiz has this code, or it has finished. Check the code and try again."


def _page(method: str, path: str, summary: str) -> Callable[[Handler], Handler]:
    return routes.route(
        method,
        path,
        summary=summary,
        tags=["pages"],
        media_type="text/html",
        in_schema=False,
        rate_limit=None,  # joins take LIVE_JOIN_RATE in join_session; POSTs the page bucket
    )


def setup_live_pages(app: web.Application) -> None:
    """Add the live quiz pages to the app (after `setup_pages(app)`, before it starts)."""
    if keys.PAGE_SESSIONS not in app:
        raise RuntimeError("call lms_live.web.session.setup_sessions(app) first")
    setup_templates(app)
    routes.install(app)


def principal_of(user: PageUser) -> Principal:
    """The page user as the principal the live service expects."""
    return Principal(
        user_id=user.user_id,
        role=user.role,
        jti=f"page:{user.auth_session_id}",
        expires_at=user.auth_expires_at,
        session_id=user.auth_session_id,
    )


async def _keep_player(request: web.Request, joined: JoinOut) -> None:
    session = await aiohttp_session.get_session(request)
    kept = dict(session.get("live_players") or {})
    kept.pop(str(joined.session_id), None)
    kept[str(joined.session_id)] = joined.player_token
    session["live_players"] = dict(list(kept.items())[-KEPT_PLAYERS:])


async def _kept_token(request: web.Request, session_id: uuid.UUID) -> str | None:
    session = await aiohttp_session.get_session(request)
    token = (session.get("live_players") or {}).get(str(session_id))
    return token if isinstance(token, str) else None


async def _message(
    request: web.Request,
    status: int,
    title: str,
    message: str,
    *,
    link_href: str = "/live",
    link_text: str = "Enter a code",
) -> web.Response:
    return await render(
        request,
        "message.html",
        status=status,
        title=title,
        message=message,
        link_href=link_href,
        link_text=link_text,
    )


async def _play(request: web.Request, *, session_id: str, token: str | None) -> web.Response:
    return await render(request, "live_play.html", session_id=session_id, player_token=token or "")


def _join_error_text(exc: LmsError) -> str:
    if isinstance(exc, service.LiveSessionNotFound):
        return NOT_FOUND
    return exc.text


async def _join_failed(request: web.Request, code: str, exc: LmsError) -> web.Response:
    """The page for a join that did not happen (the nickname form again when that helps)."""
    if isinstance(exc, service.NicknameRejected | service.NicknameTaken):
        return await _nickname_form(request, code, status=exc.status, error=exc.text)
    if isinstance(exc, service.AuthenticationRequired):
        return await _message(
            request,
            401,
            "Sign in to join",
            "This live quiz is for the course's learners: sign in, then open the join link again.",
            link_href="/login",
            link_text="Sign in",
        )
    response = await _message(
        request,
        exc.status,
        "Cannot join this live quiz",
        _join_error_text(exc),
        link_href="/live",
        link_text="Enter another code",
    )
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    return response


async def _nickname_form(
    request: web.Request, code: str, *, status: int = 200, error: str = "", nickname: str = ""
) -> web.Response:
    return await render(
        request,
        "live_join.html",
        status=status,
        code=code,
        errors={"nickname": error} if error else {},
        values={"nickname": nickname},
    )


async def _guest_probe(request: web.Request, code: str) -> LmsError | None:
    """Why a guest cannot join this code yet: None never happens (a guest always needs a
    nickname); the service's checks run without writing or taking the join rate."""
    async with request.app[keys.DATABASE].reads() as session:
        try:
            await service.join(session, principal=None, code=code, nickname=None)
        except LmsError as exc:
            return exc
    return None


# --------------------------------------------------------------------------- players


@_page("GET", "/live", "Enter a live quiz code")
@page
async def enter_code_page(request: web.Request) -> web.StreamResponse:
    return await render(request, "live_join.html", code="", errors={}, values={})


@_page("GET", "/live/join", "Go to the join page of a typed code")
@page
async def enter_code_submit(request: web.Request) -> web.StreamResponse:
    typed = request.query.get("code", "")
    code = normalize_code(typed[:40])
    if code is None:
        return await render(
            request,
            "live_join.html",
            status=400,
            code="",
            errors={"code": "Enter the 6-character code shown on the host's screen."},
            values={"code": typed[:40]},
        )
    return redirect(f"/live/join/{code}")


@_page("GET", "/live/join/{code}", "Join a live quiz (signed in) or pick a nickname (guests)")
@page
async def join_page(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"][:40]
    user = current_user(request)
    if user is None:
        refusal = await _guest_probe(request, code)
        if isinstance(refusal, service.NicknameRejected):
            return await _nickname_form(request, normalize_code(code) or code)
        assert refusal is not None
        return await _join_failed(request, code, refusal)
    try:
        joined = await join_session(
            request.app,
            principal=principal_of(user),
            code=code,
            nickname=None,
            ip=client_ip(request),
        )
    except LmsError as exc:
        return await _join_failed(request, code, exc)
    await _keep_player(request, joined)
    return await _play(request, session_id=str(joined.session_id), token=joined.player_token)


@_page("POST", "/live/join/{code}", "Join a live quiz as a guest with a nickname")
@page
async def join_submit(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"][:40]
    user = current_user(request)
    if user is not None:
        return redirect(f"/live/join/{normalize_code(code) or code}")
    nickname = (await read_form(request, "nickname"))["nickname"].strip()
    if not nickname or len(nickname) > NICKNAME_MAX:
        return await _nickname_form(
            request,
            code,
            status=400,
            error=f"Pick a nickname of 1 to {NICKNAME_MAX} characters.",
            nickname=nickname[:NICKNAME_MAX],
        )
    try:
        joined = await join_session(
            request.app, principal=None, code=code, nickname=nickname, ip=client_ip(request)
        )
    except LmsError as exc:
        if isinstance(exc, service.NicknameRejected | service.NicknameTaken):
            return await _nickname_form(
                request, code, status=exc.status, error=exc.text, nickname=nickname
            )
        return await _join_failed(request, code, exc)
    await _keep_player(request, joined)
    return redirect(f"/live/play/{joined.session_id}")


@_page("GET", "/live/play/{session_id}", "Play a live quiz joined in this browser")
@page
async def play_page(request: web.Request) -> web.StreamResponse:
    """The token comes from the page session, else from the script's sessionStorage."""
    try:
        session_id = uuid.UUID(request.match_info["session_id"])
    except ValueError:
        return await _message(request, 404, "Live quiz not found", NOT_FOUND)
    token = await _kept_token(request, session_id)
    return await _play(request, session_id=str(session_id), token=token)


# --------------------------------------------------------------------------- hosts


async def _hosted(request: web.Request) -> LiveSession | web.Response:
    """The session this page's user may host, or the page refusing them."""
    user = current_user(request)
    if user is None:
        return await _message(
            request,
            401,
            "Sign in to host",
            "Sign in with an instructor account of this course to host its live quiz.",
            link_href="/login",
            link_text="Sign in",
        )
    try:
        session_id = uuid.UUID(request.match_info["session_id"])
    except ValueError:
        return await _message(request, 404, "Live quiz not found", NOT_FOUND)
    async with request.app[keys.DATABASE].reads() as session:
        try:
            live = await service.hosted(
                session, principal=principal_of(user), session_id=session_id
            )
        except service.LiveSessionNotFound:
            return await _message(request, 404, "Live quiz not found", NOT_FOUND)
        except service.NotHost:
            return await _message(
                request,
                403,
                "Not your live quiz",
                "Only the instructors of this course may host its live quizzes.",
            )
        return live


@_page("GET", "/live/host/{session_id}", "Host a live quiz")
@page
async def host_page(request: web.Request) -> web.StreamResponse:
    live = await _hosted(request)
    if isinstance(live, web.Response):
        return live
    url = service.join_url(request.app[keys.SETTINGS].public_url, live.code)
    svg = await asyncio.to_thread(qr_svg, url)
    return await render(
        request,
        "live_host.html",
        session_id=str(live.id),
        title=live.title,
        code=live.code,
        join_url=url,
        qr=Markup(svg.decode()),  # noqa: S704 (segno's markup: path data, no text)
    )


@_page("GET", "/live/host/{session_id}/results.csv", "Download a live quiz's results")
@page
async def host_results_csv(request: web.Request) -> web.StreamResponse:
    live = await _hosted(request)
    if isinstance(live, web.Response):
        return live
    async with request.app[keys.DATABASE].reads() as session:
        data = await service.results(session, live=live)
    text = await asyncio.to_thread(service.results_csv, data)
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="live-{live.code}-{live.id}.csv"'},
    )
