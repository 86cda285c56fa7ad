"""The HTTP middleware stack: one aiohttp middleware (`make_pipeline`), doing these stages in
order, outermost first:

1. Request context: request id (accepted from / returned in X-Request-ID), access log,
   latency and in-flight metrics. Outermost, so every answer is counted and logged.
2. Errors (`render_error`): every exception becomes `{"error", "message", "details"}`;
   unexpected ones are logged with the request id and answered with a generic 500.
3. `guard`, in this order:
   - trusted host: 400 for a Host header not in TRUSTED_HOSTS;
   - CORS (aiohttp-cors, wired in `app.py`: preflight routes and a response hook);
   - authentication: a valid, unrevoked Bearer access token becomes the request principal;
   - rate limit: token buckets per user (or per client IP when anonymous), stricter for
     auth operations; X-RateLimit-* headers, 429 with Retry-After.
4. Security headers, added on the way out to every response a handler returns unprepared
   (errors, redirects, static files and pages included). A WebSocket upgrade is prepared by
   its handler and carries none: browsers ignore them on a 101.
One middleware rather than several, and aiohttp's own extra layer dropped
(`drop_current_app_layer`): each layer (and each response hook) costs coroutine calls per
request, and the access path is benchmarked against a bare handler (`bench/http.py`). For
the same reason what every request reads is looked up once per app (`HotPath`), and the
common cases of authentication and rate limiting run without coroutines of their own. The
optional `{"data": ...}` envelope is applied by `core.http`.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import lru_cache
from random import getrandbits as _random_bits

import redis.exceptions
import sqlalchemy.exc
from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import CIMultiDict

from lms_live import keys
from lms_live.core import errors as err
from lms_live.core.http import RateBucket, RouteSpec
from lms_live.core.logging import access_log, request_id_var
from lms_live.core.ratelimit import Decision, MemoryRateLimiter, RedisRateLimiter
from lms_live.core.security import Principal
from lms_live.settings import Settings, parse_rate

log = logging.getLogger("lms_live.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SOCKETIO_PREFIX = "/socket.io/"
# Failures of a backing service, not of the request: answered 503 so clients retry.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)
# Present in every set of security headers: when a response lacks it, none is set yet.
_SECURITY_MARKER = "X-Content-Type-Options"
_UNLIMITED = frozenset({"/api/v1/health", "/api/v1/ready"})


def route_label(request: web.Request) -> str:
    """The route template for metrics and logs ("unmatched" for 404s: bounded cardinality)."""
    if request.path.startswith(_SOCKETIO_PREFIX):
        return _SOCKETIO_PREFIX
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@lru_cache(maxsize=64)
def _networks(
    proxies: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _is_trusted_proxy(address: str, proxies: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(proxies))


def client_ip(request: web.Request) -> str:
    """The caller's address; X-Forwarded-For is believed only from TRUSTED_PROXIES."""
    known = request.get(keys.CLIENT_IP)
    if known is None:
        known = request[keys.CLIENT_IP] = _client_ip(request)
    return known


def _client_ip(request: web.Request) -> str:
    remote = request.remote or "unknown"
    proxies = tuple(request.app[keys.SETTINGS].trusted_proxies)
    if not proxies or not _is_trusted_proxy(remote, proxies):
        return remote
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted_proxy(hop, proxies):
            return hop
    return hops[0] if hops else remote


_REQUEST_ID_PREFIX = f"{_random_bits(64):016x}"
_request_numbers = itertools.count(_random_bits(40))


def _new_request_id() -> str:
    """32 hex digits: 64 random bits drawn when the process starts, then a counter (from a
    random start). Unique across instances and restarts; a correlation id, not a secret, so
    no system call to os.urandom and no 128-bit draw per request."""
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers) & 0xFFFFFFFFFFFFFFFF:016x}"


class HotPath:
    """What the pipeline reads on every request, looked up once per app rather than through
    `request.app[...]` at each stage (a property and a mapping lookup each, ten a request).
    Filled on the first request, when the app has started (the rate limiter and the
    revocations are built at startup); settings are frozen, so nothing here goes stale."""

    __slots__ = (
        "app",
        "limited",
        "limiter",
        "loaded",
        "memory_limiter",
        "metrics",
        "proxies",
        "rates",
        "redis_limiter",
        "revocations",
        "security",
        "tokens",
        "trusted_hosts",
    )

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loaded = False

    def load(self) -> None:
        app = self.app
        settings: Settings = app[keys.SETTINGS]
        self.metrics = app[keys.METRICS]
        self.security = app[keys.SECURITY_HEADERS]
        self.tokens = app[keys.TOKENS]
        self.trusted_hosts = tuple(settings.trusted_hosts)
        self.proxies = tuple(settings.trusted_proxies)
        self.limited = settings.rate_limit_enabled
        self.rates: dict[str, tuple[int, float]] = {
            "default": parse_rate(settings.rate_limit),
            "auth": parse_rate(settings.rate_limit_auth),
        }
        self.limiter = app[keys.RATE_LIMITER]
        self.redis_limiter = self.limiter if isinstance(self.limiter, RedisRateLimiter) else None
        self.memory_limiter = self.limiter if isinstance(self.limiter, MemoryRateLimiter) else None
        self.revocations = app[keys.REVOCATIONS]
        self.loaded = True


async def drop_current_app_layer(app: web.Application) -> None:
    """On startup: aiohttp adds one more
    middleware layer to every app that has middlewares, setting
    `request.match_info.current_app` for sub-applications. This app has none, so the layer
    (a coroutine and two attribute swaps per request, ~1 µs under load) is dropped. Only
    when the chain is as expected (aiohttp's private `_middlewares_handlers`: our
    middlewares, then that layer); otherwise it stays. Startup runs before aiohttp freezes
    the app, so this builds the chain (`pre_freeze`, idempotent) first."""
    app.pre_freeze()
    handlers = getattr(app, "_middlewares_handlers", None)
    if app._subapps or not isinstance(handlers, tuple):
        return
    ours = tuple(item for item in handlers if item[0] in app.middlewares)
    if len(ours) == len(app.middlewares) == len(handlers) - 1:
        app._middlewares_handlers = ours


def make_pipeline(app: web.Application) -> Middleware:
    """The app's middleware: the whole stack in one coroutine (see the module docstring)."""
    hot = HotPath(app)

    @web.middleware
    async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not hot.loaded:
            hot.load()
        incoming = request.headers.get("X-Request-ID")
        request_id = (
            incoming if incoming is not None and _REQUEST_ID.match(incoming) else _new_request_id()
        )
        request[keys.REQUEST_ID] = request_id
        token = request_id_var.set(request_id)
        metrics = hot.metrics
        metrics.in_flight += 1
        started = time.perf_counter()
        status = 500
        try:
            try:
                response = await guard(hot, request, handler)
            except web.HTTPException as exc:
                if exc.status >= 400:
                    response = render_error(request, exc)
                else:  # a redirect: aiohttp sends the exception itself
                    status = exc.status
                    _finish_headers(hot.security, exc, request_id)
                    raise
            except Exception as exc:  # CancelledError is not an Exception: it goes through
                response = render_error(request, exc)
            status = response.status
            if not response.prepared:
                _finish_headers(hot.security, response, request_id)
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(handler, "__lms_label__", None) or route_label(request)
            metrics.in_flight -= 1
            metrics.observe_request(request.method, route, status, elapsed)
            access_log(
                logging.DEBUG if route == _SOCKETIO_PREFIX else logging.INFO,
                (
                    request.method,
                    route,
                    status,
                    round(elapsed * 1000, 2),
                    (request.remote or "unknown") if not hot.proxies else client_ip(request),
                    request_id,
                ),
            )
            request_id_var.reset(token)

    return pipeline


def _finish_headers(fixed: CIMultiDict[str], response: web.StreamResponse, request_id: str) -> None:
    """X-Request-ID and the security headers (those the handler did not set itself)."""
    headers = response.headers
    headers["X-Request-ID"] = request_id
    if _SECURITY_MARKER not in headers:
        headers.extend(fixed)
    else:
        for name, value in fixed.items():
            headers.setdefault(name, value)


def error_response(request: web.Request, exc: err.LmsError) -> web.Response:
    """The JSON answer for a domain error."""
    response = web.json_response(exc.to_dict(), status=exc.status)
    response.headers.update(exc.headers)
    return response


def _from_http_exception(exc: web.HTTPException) -> err.LmsError:
    mapping: dict[int, type[err.LmsError]] = {
        400: err.BadRequest,
        401: err.Unauthorized,
        403: err.Forbidden,
        404: err.NotFound,
        405: err.MethodNotAllowed,
        413: err.PayloadTooLarge,
        415: err.UnsupportedMediaType,
        422: err.ValidationFailed,
        503: err.ServiceUnavailable,
    }
    cls = mapping.get(exc.status)
    if cls is not None:
        converted = cls()
    else:
        converted = err.LmsError(exc.reason)
        converted.status = exc.status  # type: ignore[misc]
        converted.code = exc.reason.lower().replace(" ", "_")  # type: ignore[misc]
    if isinstance(exc, web.HTTPMethodNotAllowed):
        converted.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
    return converted


def render_error(request: web.Request, exc: Exception) -> web.Response:
    """Every failure as a JSON error body; unexpected ones logged, never leaking internals."""
    if isinstance(exc, err.LmsError):
        return error_response(request, exc)
    if isinstance(exc, web.HTTPException):
        return error_response(request, _from_http_exception(exc))
    if is_write_conflict(exc):
        log.info("write conflict in %s %s", request.method, route_label(request))
        return error_response(request, err.ConcurrentUpdate())
    if isinstance(exc, UNAVAILABLE):
        log.warning(
            "dependency unavailable in %s %s: %s",
            request.method,
            route_label(request),
            type(exc).__name__,
        )
        return error_response(request, err.ServiceUnavailable())
    log.error("unhandled error in %s %s", request.method, route_label(request), exc_info=exc)
    body = {
        "error": "internal_error",
        "message": "An unexpected error occurred. Quote the request id if you report it.",
        "details": [{"request_id": request[keys.REQUEST_ID]}],
    }
    return web.json_response(body, status=500)


def is_write_conflict(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the database aborted one of two concurrent
    writers; the request did nothing and can be sent again."""
    if not isinstance(exc, sqlalchemy.exc.DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(
        getattr(exc.orig, "__cause__", None), "sqlstate", None
    )
    return sqlstate in {"40001", "40P01"}


def host_allowed(host: str, patterns: list[str]) -> bool:
    """Whether a Host header value (port stripped) matches TRUSTED_HOSTS (`*.x` wildcards)."""
    return _host_allowed(host, tuple(patterns))


@lru_cache(maxsize=1024)
def _host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if not name:
        return False
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern == "*" or pattern == name:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


def _attach(request: web.Request, principal: Principal | None, revoked: bool) -> None:
    """Attach the principal of a valid Bearer token unless it is revoked; routes decide
    whether one is required (and then answer with the reason it is missing: AUTH_PROBLEM)."""
    if principal is not None and revoked:
        principal = None
        request[keys.AUTH_PROBLEM] = err.TokenRevoked()
    request[keys.PRINCIPAL] = principal


async def _authenticated(hot: HotPath, request: web.Request, principal: Principal) -> None:
    """`_attach` after asking the revocation store (it may rebuild its hot set first)."""
    try:
        revoked = await hot.revocations.is_revoked(principal)
    except err.ServiceUnavailable as exc:  # revocations unreachable, production: closed
        request[keys.AUTH_PROBLEM] = exc
        request[keys.PRINCIPAL] = None
        return
    _attach(request, principal, revoked)


def bearer_principal(hot: HotPath, request: web.Request) -> Principal | None:
    """The principal of the request's Bearer token if its signature, expiry and claims hold
    (not yet checked against revocations)."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return hot.tokens.decode(token.strip())
    except err.InvalidToken:
        return None


class _RedisWarning:
    last = 0.0


async def guard(hot: HotPath, request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stage 3: trusted host (refusing requests addressed to a host we do not serve: DNS
    rebinding, cache poisoning), CORS (aiohttp-cors acts through its own routes and response
    hook), authentication, rate limit.

    The common cases wait for nothing but the one Redis round trip they need: with Redis, a
    signed-in request's bucket and its token's revocation keys are read in one call (a
    future shared with other requests of the moment, awaited here directly); in memory,
    both are read without a coroutine."""
    if not _host_allowed(request.host, hot.trusted_hosts):
        raise err.BadHost()
    bucket = bucket_of(hot, request, handler)
    principal = bearer_principal(hot, request)
    decision: Decision | None = None
    revoked: bool | None = None
    if principal is not None:
        if bucket is not None and hot.redis_limiter is not None:
            # One shared round trip for the token's revocation keys and the user's bucket.
            capacity, period = hot.rates[bucket]
            try:
                decision, mask = await hot.redis_limiter.submit(
                    f"{bucket}:{_user_identity(principal.user_id)}",
                    capacity=capacity,
                    period=period,
                    keys=hot.revocations.checked_keys(principal),
                )
            except (OSError, redis.exceptions.RedisError):
                pass  # the separate checks decide (revocations fail closed in production)
            else:
                # A revoked token's request was counted as its user's (it still proved who
                # signed in); the revocation decides access. No answer (marker missing):
                # the full check runs and rebuilds the hot set.
                revoked = hot.revocations.judge_mask(mask)
        else:
            revoked = hot.revocations.revoked_now(principal)
        if revoked is None:
            await _authenticated(hot, request, principal)
        else:
            _attach(request, principal, revoked)
    else:
        request[keys.PRINCIPAL] = None
    if decision is None and bucket is not None:
        if hot.memory_limiter is not None:
            decision = hot.memory_limiter.take(_identity(request, bucket), *hot.rates[bucket])
        else:
            decision = await take_token(hot, request, bucket)
    if decision is None:  # not limited, or the limiter is unavailable
        return await handler(request)
    # The X-RateLimit-* headers on every answer of a limited route, refusals included.
    if not decision.allowed:
        raise err.RateLimited(decision.retry_after, headers=decision.headers())
    try:
        response = await handler(request)
    except err.LmsError as exc:
        exc.headers.update(decision.headers())
        raise
    if not response.prepared:
        decision.put(response.headers)
    return response


def bucket_of(hot: HotPath, request: web.Request, handler: Handler) -> RateBucket | None:
    """The rate-limit bucket of a request, or None when it is not limited. `handler` is the
    matched route's (its RouteSpec, when it has one, travels with it: `core.http._wrap`)."""
    if not hot.limited:
        return None
    spec: RouteSpec | None = getattr(handler, "__lms_route__", None)
    if spec is not None:  # health and readiness are declared unlimited
        return spec.rate_limit
    path = request.path
    if path in _UNLIMITED:
        return None
    if path.startswith("/api/") and request.method != "OPTIONS":
        return "default"
    return None


@lru_cache(maxsize=8192)
def _user_identity(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"  # formatting a UUID costs a microsecond; this runs per request


def _identity(request: web.Request, bucket: RateBucket) -> str:
    """The bucket of the request's user (not revoked), else of its client IP."""
    principal = request[keys.PRINCIPAL]
    if principal is not None:
        return f"{bucket}:{_user_identity(principal.user_id)}"
    return f"{bucket}:ip:{client_ip(request)}"


async def take_token(hot: HotPath, request: web.Request, bucket: RateBucket) -> Decision | None:
    """Take a token from the bucket of the request's user (or client IP when anonymous);
    auth operations use the stricter bucket. None when the limiter is unreachable: rate
    limits fail open, an outage of Redis must not take the API down with it."""
    capacity, period = hot.rates[bucket]
    try:
        return await hot.limiter.hit(_identity(request, bucket), capacity=capacity, period=period)
    except (OSError, redis.exceptions.RedisError) as exc:
        now = time.monotonic()
        if now - _RedisWarning.last > 30:
            _RedisWarning.last = now
            log.warning("rate limiter unavailable, allowing requests: %s", type(exc).__name__)
        return None


def content_security_policy() -> str:
    """The CSP our own pages satisfy: no inline script, no third-party origins."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(settings: Settings) -> CIMultiDict[str]:
    """The security headers of every response (HSTS only in production)."""
    fixed = CIMultiDict(
        {
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "strict-origin-when-cross-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Content-Security-Policy": content_security_policy(),
        }
    )
    if settings.is_production:
        fixed["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    return fixed
