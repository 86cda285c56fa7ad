"""The HTTP middleware stack, outermost first:

1. `request_context`: request id (accepted from / returned in X-Request-ID), access log,
   latency and in-flight metrics. Outermost, so every answer is counted and logged.
2. `errors`: every exception becomes `{"error", "message", "details"}`; unexpected ones are
   logged with the request id and answered with a generic 500.
3. `guard`, in this order:
   - `check_host`: 400 for a Host header not in TRUSTED_HOSTS;
   - CORS (aiohttp-cors, wired in `app.py`: preflight routes and a response hook);
   - `authenticate`: a valid Bearer access token becomes the request principal;
   - `rate_limit`: token buckets per user (or per client IP when anonymous), stricter for
     auth operations; X-RateLimit-* headers, 429 with Retry-After.
   One middleware rather than three: each aiohttp middleware layer costs a coroutine call
   per request, and the access path is benchmarked against a bare handler.
Security headers are added to every response (errors and static files included) by an
`on_response_prepare` hook; the optional `{"data": ...}` envelope is applied by `core.http`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache

import redis.exceptions
import sqlalchemy.exc
from aiohttp import web

from lms_live import keys
from lms_live.core import errors as err
from lms_live.core.http import RateBucket, spec_of
from lms_live.core.logging import AccessRecord, request_id_var
from lms_live.core.ratelimit import Decision, RedisRateLimiter
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


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, access log and HTTP metrics for every request."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(16)
    request[keys.REQUEST_ID] = request_id
    token = request_id_var.set(request_id)
    metrics = request.app[keys.METRICS]
    metrics.in_flight += 1
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["X-Request-ID"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = route_label(request)
        metrics.in_flight -= 1
        metrics.observe_request(request.method, route, status, elapsed)
        level = logging.DEBUG if route == _SOCKETIO_PREFIX else logging.INFO
        if log.isEnabledFor(level):
            log.handle(
                AccessRecord(
                    log.name,
                    level,
                    method=request.method,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    client=client_ip(request),
                    request_id=request_id,
                )
            )
        request_id_var.reset(token)


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


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure as a JSON error body; never leak internals."""
    try:
        return await handler(request)
    except err.LmsError as exc:
        return error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(request, _from_http_exception(exc))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
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
        log.exception("unhandled error in %s %s", request.method, route_label(request))
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


def check_host(request: web.Request) -> None:
    """Refuse requests addressed to a host we do not serve (DNS rebinding, cache poisoning)."""
    if not host_allowed(request.host, request.app[keys.SETTINGS].trusted_hosts):
        raise err.BadHost()


async def authenticate(request: web.Request, *, revoked: bool | None = None) -> None:
    """Attach the principal of a valid, unrevoked Bearer token; routes decide whether one is
    required (and then answer with the reason it is missing: AUTH_PROBLEM). `revoked`: the
    revocation check's answer when the caller already has it (read with the rate limit)."""
    principal = bearer_principal(request)
    if principal is not None:
        try:
            if revoked is None:
                revoked = await request.app[keys.REVOCATIONS].is_revoked(principal)
            if revoked:
                principal = None
                request[keys.AUTH_PROBLEM] = err.TokenRevoked()
        except err.ServiceUnavailable as exc:  # revocations unreachable, production: closed
            principal = None
            request[keys.AUTH_PROBLEM] = exc
    request[keys.PRINCIPAL] = principal


def bearer_principal(request: web.Request) -> Principal | None:
    """The principal of the request's Bearer token if its signature, expiry and claims hold
    (not yet checked against revocations)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return request.app[keys.TOKENS].decode(token.strip())
    except err.InvalidToken:
        return None


class _RedisWarning:
    last = 0.0


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stages 3-6 in one middleware (one coroutine layer instead of four): trusted host,
    CORS (aiohttp-cors acts through its own routes and response hook), authentication,
    rate limit."""
    check_host(request)
    bucket = bucket_of(request)
    limiter = request.app[keys.RATE_LIMITER]
    principal = bearer_principal(request) if bucket is not None else None
    if bucket is not None and principal is not None and isinstance(limiter, RedisRateLimiter):
        # One shared round trip for the token's revocation keys and the user's bucket.
        checked = await _hit_checking(request, limiter, bucket, principal)
        if checked is not None:
            decision, present = checked
            # A revoked token's request was counted as its user's (it still proved who
            # signed in); the revocation decides access. No answer (marker missing): the
            # full check runs and rebuilds the hot set.
            await authenticate(request, revoked=request.app[keys.REVOCATIONS].judge(present))
            return await _limited(request, handler, decision)
    await authenticate(request)
    return await rate_limit(request, handler)


def bucket_of(request: web.Request) -> RateBucket | None:
    """The rate-limit bucket of a request, or None when it is not limited."""
    settings: Settings = request.app[keys.SETTINGS]
    if not settings.rate_limit_enabled or request.path in _UNLIMITED:
        return None
    spec = spec_of(request)
    if spec is not None:
        return spec.rate_limit
    if request.path.startswith("/api/") and request.method != "OPTIONS":
        return "default"
    return None


def _rate(request: web.Request, bucket: RateBucket) -> tuple[int, float]:
    settings: Settings = request.app[keys.SETTINGS]
    return parse_rate(settings.rate_limit_auth if bucket == "auth" else settings.rate_limit)


async def _hit_checking(
    request: web.Request, limiter: RedisRateLimiter, bucket: RateBucket, principal: Principal
) -> tuple[Decision, list[bool]] | None:
    capacity, period = _rate(request, bucket)
    try:
        return await limiter.hit_checking(
            f"{bucket}:user:{principal.user_id}",
            capacity=capacity,
            period=period,
            keys=request.app[keys.REVOCATIONS].keys_for(principal),
        )
    except (OSError, redis.exceptions.RedisError):
        return None  # the separate checks decide (revocations fail closed in production)


async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Token bucket per user or client IP; auth operations use the stricter bucket."""
    bucket = bucket_of(request)
    if bucket is None:
        return await handler(request)
    principal = request.get(keys.PRINCIPAL)
    identity = f"user:{principal.user_id}" if principal else f"ip:{client_ip(request)}"
    capacity, period = _rate(request, bucket)
    try:
        decision = await request.app[keys.RATE_LIMITER].hit(
            f"{bucket}:{identity}", capacity=capacity, period=period
        )
    except (OSError, redis.exceptions.RedisError) as exc:
        # Rate limits fail open: an outage of Redis must not take the API down with it.
        now = time.monotonic()
        if now - _RedisWarning.last > 30:
            _RedisWarning.last = now
            log.warning("rate limiter unavailable, allowing requests: %s", type(exc).__name__)
        return await handler(request)
    return await _limited(request, handler, decision)


async def _limited(
    request: web.Request, handler: Handler, decision: Decision
) -> web.StreamResponse:
    """Refuse over the limit, else run the handler; the `X-RateLimit-*` headers either way."""
    if not decision.allowed:
        raise err.RateLimited(decision.retry_after, headers=decision.headers())
    try:
        response = await handler(request)
    except err.LmsError as exc:
        exc.headers.update(decision.headers())
        raise
    if not response.prepared:
        response.headers.update(decision.headers())
    return response


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


def security_headers(
    settings: Settings,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An on_response_prepare hook adding security headers to every response."""
    fixed = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Content-Security-Policy": content_security_policy(),
    }
    if settings.is_production:
        fixed["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in fixed.items():
            response.headers.setdefault(name, value)

    return add_headers
