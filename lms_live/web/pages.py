"""The frame every page handler runs in: page session, sign-in check, forgery and rate checks,
and HTML rendering.

`page` wraps a handler: it loads the page session (aiohttp-session's middleware, run for page
routes only), signs out a session whose `auth_session` has ended, and refuses a POST whose
Origin or CSRF token is wrong (403 page) or that is over the "auth" rate limit (429 page).
Expected failures are rendered as HTML by the handlers themselves; only unexpected ones reach
the app's JSON error middleware.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp_jinja2
import aiohttp_session
import jinja2
import redis.exceptions
from aiohttp import web
from pydantic import BaseModel, ValidationError

from lms_live import keys
from lms_live.auth import service
from lms_live.core.middleware import client_ip
from lms_live.paths import TEMPLATES
from lms_live.settings import parse_rate
from lms_live.web.csrf import CSRF_FIELD, csrf_token, csrf_valid, origin_allowed
from lms_live.web.session import (
    PageUser,
    fresh_session,
    max_age_of,
    signed_in_user,
)

M = TypeVar("M", bound=BaseModel)
PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


FORGED = "This form has expired or did not come from this site. Reload the page and try again."
TOO_MANY = "Too many attempts; wait a little and try again."


def setup_templates(app: web.Application) -> None:
    """The Jinja2 environment of `templates/pages/` (autoescaped; once per app)."""
    if aiohttp_jinja2.APP_KEY in app:
        return
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES / "pages"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        default_helpers=False,
    )


def current_user(request: web.Request) -> PageUser | None:
    """The signed-in user of this page request (after the sign-in check)."""
    return request.get(keys.PAGE_USER)


def page(handler: PageHandler) -> PageHandler:
    """Run a page handler inside its page session, with the checks every page gets."""

    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        async def inner(request: web.Request) -> web.StreamResponse:
            response = await _checked(handler, request)
            session = await aiohttp_session.get_session(request)
            session.max_age = max_age_of(session, request.app[keys.SETTINGS])
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return await request.app[keys.SESSION_MIDDLEWARE](request, inner)

    return run


async def _checked(handler: PageHandler, request: web.Request) -> web.StreamResponse:
    session = await aiohttp_session.get_session(request)
    user = signed_in_user(session)
    if user is not None and not await _alive(request.app, user):
        await fresh_session(request)
        user = None
    request[keys.PAGE_USER] = user
    if request.method == "POST":
        refusal = await _refuse(request)
        if refusal is not None:
            return refusal
    return await handler(request)


async def _alive(app: web.Application, user: PageUser) -> bool:
    async with app[keys.DATABASE].reads() as session:
        return await service.session_alive(session, session_id=user.auth_session_id)


async def _refuse(request: web.Request) -> web.Response | None:
    """A 403 or 429 page for a POST that must not be handled, else None."""
    session = await aiohttp_session.get_session(request)
    form = await request.post()
    if not origin_allowed(request.headers, request.app[keys.SETTINGS]) or not csrf_valid(
        session, form.get(CSRF_FIELD)
    ):
        return await render(
            request, "message.html", status=403, title="Form refused", message=FORGED
        )
    retry_after = await _over_rate_limit(request)
    if retry_after is not None:
        response = await render(
            request, "message.html", status=429, title="Slow down", message=TOO_MANY
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
    return None


async def _over_rate_limit(request: web.Request) -> int | None:
    """Seconds to wait when the caller's "auth" bucket (shared with the API) is empty."""
    settings = request.app[keys.SETTINGS]
    if not settings.rate_limit_enabled:
        return None
    capacity, period = parse_rate(settings.rate_limit_auth)
    try:
        decision = await request.app[keys.RATE_LIMITER].hit(
            f"auth:ip:{client_ip(request)}", capacity=capacity, period=period
        )
    except (OSError, redis.exceptions.RedisError):
        return None  # fails open, as the API's limiter does
    return None if decision.allowed else max(1, int(decision.retry_after + 0.999))


async def read_form(request: web.Request, *fields: str) -> dict[str, str]:
    """These fields of the posted form (missing ones as ""); files are ignored."""
    form = await request.post()
    values: dict[str, str] = {}
    for name in fields:
        value = form.get(name, "")
        values[name] = value if isinstance(value, str) else ""
    return values


def validate(
    model: type[M], data: Mapping[str, object], messages: Mapping[str, str]
) -> tuple[M | None, dict[str, str]]:
    """The parsed form, or None and one message per invalid field (from `messages`)."""
    try:
        return model.model_validate(dict(data)), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors(include_url=False, include_context=False, include_input=False):
            name = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(name, messages.get(name, "Check this value."))
        order = list(data)  # the form's order, for the error summary
        return None, dict(sorted(errors.items(), key=lambda e: _position(order, e[0])))


def _position(order: list[str], name: str) -> int:
    return order.index(name) if name in order else len(order)


async def render(
    request: web.Request,
    template: str,
    *,
    status: int = 200,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
    **context: Any,
) -> web.Response:
    """An HTML page from `templates/pages/`, with the form token, notice and user it needs."""
    session = await aiohttp_session.get_session(request)
    flash = session.pop("flash", None) if "flash" in session else None
    context = {
        "csrf_field": CSRF_FIELD,
        "csrf_token": lambda: csrf_token(session),
        "flash": flash,
        "user": current_user(request),
        "errors": dict(errors or {}),
        "values": dict(values or {}),
        **context,
    }
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def redirect(location: str) -> web.Response:
    """303 See Other: the answer to a successful POST."""
    return web.Response(status=303, headers={"Location": location})


async def flash(request: web.Request, message: str) -> None:
    """A notice for the next rendered page."""
    session = await aiohttp_session.get_session(request)
    session["flash"] = message
