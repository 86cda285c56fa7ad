"""Route registry: one declaration per operation drives routing, parsing, auth and OpenAPI.

A handler is declared with its path/query/body models and its response model; the registry
parses and validates input with pydantic (400 malformed JSON, 413 too large, 415 wrong content
type, 422 invalid fields), checks the caller's role, and serialises the response model (inside
`{"data": ...}` when RESPONSE_ENVELOPE is on). The same `RouteSpec`s feed `core.openapi`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import SchemaSerializer

from lms_live import keys
from lms_live.core.authz import require_role
from lms_live.core.errors import (
    InvalidToken,
    MalformedJson,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from lms_live.core.security import Principal

RateBucket = Literal["default", "auth"]
Handler = Callable[..., Awaitable[Any]]

_JSON_TYPE = re.compile(r"^application/([a-z0-9.+-]*\+)?json$")
_PATH_PARAM = re.compile(r"\{([^}:]+)(:[^}]+)?\}")


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """Everything known about one HTTP operation."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tags: tuple[str, ...]
    path_model: type[BaseModel] | None = None
    query_model: type[BaseModel] | None = None
    body_model: type[BaseModel] | None = None
    form_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    status: int = 200
    roles: tuple[str, ...] | None = None
    rate_limit: RateBucket | None = "default"
    media_type: str = "application/json"
    in_schema: bool = True
    errors: tuple[int, ...] = ()
    responses: tuple[tuple[int, type[BaseModel]], ...] = ()
    description: str = ""

    @property
    def requires_auth(self) -> bool:
        return self.roles is not None

    @property
    def openapi_path(self) -> str:
        return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", self.path)


def validation_details(exc: ValidationError, location: str) -> list[dict[str, Any]]:
    """Pydantic errors as public details (never echoing the submitted values)."""
    return [
        {"loc": [location, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def principal_of(request: web.Request) -> Principal | None:
    """The authenticated caller, if a valid token came with the request."""
    return request.get(keys.PRINCIPAL)


def require_principal(request: web.Request, roles: Iterable[str] = ()) -> Principal:
    """The caller, or 401; 403 when `roles` is given and theirs is not among them."""
    principal = principal_of(request)
    if principal is None:
        problem = request.get(keys.AUTH_PROBLEM)
        if problem is not None:
            raise problem
        raise InvalidToken() if "Authorization" in request.headers else Unauthorized()
    require_role(principal, roles)
    return principal


async def read_json(request: web.Request, max_bytes: int) -> Any:
    """The JSON body, after content-type and size checks."""
    if not _JSON_TYPE.match(request.content_type):
        raise UnsupportedMediaType()
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(details=[{"limit_bytes": max_bytes}])
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(details=[{"limit_bytes": max_bytes}]) from exc
    if not raw.strip():
        raise MalformedJson("The request body is empty; a JSON object is expected.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson() from exc


async def read_form(request: web.Request) -> dict[str, Any]:
    """A form body (urlencoded or multipart) as a dict of its last values."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise UnsupportedMediaType(
            "The request body must be a form (application/x-www-form-urlencoded)."
        )
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge() from exc
    except ValueError as exc:
        raise MalformedJson("The form body could not be read.") from exc
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _nul_locations(data: Any, loc: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    """Where a string holds a NUL character (PostgreSQL text cannot store one)."""
    if isinstance(data, str):
        if "\x00" in data:
            yield loc
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _nul_locations(key, (*loc, key))
            yield from _nul_locations(value, (*loc, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _nul_locations(value, (*loc, index))


def _parse(model: type[BaseModel], data: Any, location: str) -> BaseModel:
    """Validate one part of the request; every string refused if it holds a NUL character
    (no text column takes one, so it would fail in the database instead)."""
    nul = [
        {"loc": list(where), "msg": "NUL characters are not allowed", "type": "nul_character"}
        for where in _nul_locations(data, (location,))
    ]
    if nul:
        raise ValidationFailed(details=nul)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(details=validation_details(exc, location)) from exc


def _query_data(request: web.Request, model: type[BaseModel]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        values = request.query.getall(key, [])
        if not values:
            continue
        origin = getattr(info.annotation, "__origin__", None)
        data[key] = values if origin in (list, tuple, set, frozenset) else values[-1]
    return data


class JsonBody:
    """Serialises response models once per type (pydantic-core, no intermediate dicts).

    Calls the adapter's pydantic-core serializer directly: `TypeAdapter.dump_json` is a
    Python wrapper passing a dozen defaults, 40% of the call for a small response."""

    _serializers: dict[type[BaseModel], SchemaSerializer] = {}

    @classmethod
    def serializer(cls, model: type[BaseModel]) -> SchemaSerializer:
        serializer = cls._serializers.get(model)
        if serializer is None:
            serializer = cls._serializers[model] = TypeAdapter(model).serializer
        return serializer

    @classmethod
    def dump(cls, model: type[BaseModel], value: Any) -> bytes:
        return cls.serializer(model).to_json(value, by_alias=True)


def json_response(
    request: web.Request, payload: bytes, *, status: int = 200, envelope: bool | None = None
) -> web.Response:
    """A JSON response from serialised bytes, wrapped as {"data": ...} when enveloping."""
    wrap = request.app[keys.SETTINGS].response_envelope if envelope is None else envelope
    body = b'{"data":' + payload + b"}" if wrap else payload
    return web.Response(body=body, status=status, content_type="application/json")


def _wrap(
    spec: RouteSpec, envelope: bool | None = None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler of an operation; `envelope`: RESPONSE_ENVELOPE when known at
    install time (else read from the app's settings per response). What it needs from the
    spec is bound here, once: it runs on every request."""
    handler = spec.handler
    roles = spec.roles
    status = spec.status
    model = spec.response_model
    serializer = JsonBody.serializer(model) if model is not None else None
    takes_input = any(
        m is not None for m in (spec.path_model, spec.query_model, spec.body_model, spec.form_model)
    )

    @functools.wraps(handler)
    async def endpoint(request: web.Request) -> web.StreamResponse:
        if roles is not None:
            require_principal(request, roles)
        if takes_input:
            result = await handler(request, **await _arguments(spec, request))
        else:
            result = await handler(request)
        if isinstance(result, web.StreamResponse):
            return result
        if serializer is None:
            return web.Response(status=204 if status == 200 else status)
        return json_response(
            request, serializer.to_json(result, by_alias=True), status=status, envelope=envelope
        )

    endpoint.__lms_route__ = spec  # type: ignore[attr-defined]
    return endpoint


async def _arguments(spec: RouteSpec, request: web.Request) -> dict[str, Any]:
    """The handler's validated inputs: path, query, body or form models."""
    kwargs: dict[str, Any] = {}
    if spec.path_model is not None:
        kwargs["path"] = _parse(spec.path_model, dict(request.match_info), "path")
    if spec.query_model is not None:
        kwargs["query"] = _parse(spec.query_model, _query_data(request, spec.query_model), "query")
    if spec.body_model is not None:
        max_bytes = request.app[keys.SETTINGS].max_body_bytes
        kwargs["body"] = _parse(spec.body_model, await read_json(request, max_bytes), "body")
    if spec.form_model is not None:
        kwargs["form"] = _parse(spec.form_model, await read_form(request), "body")
    return kwargs


@dataclass
class RouteTable:
    """An ordered collection of RouteSpecs, filled by decorators and installed on an app."""

    specs: list[RouteSpec] = field(default_factory=list)

    def __iter__(self) -> Iterator[RouteSpec]:
        return iter(self.specs)

    def extend(self, other: RouteTable) -> None:
        self.specs.extend(other.specs)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tags: Iterable[str] = (),
        path_model: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        body: type[BaseModel] | None = None,
        form: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        roles: Iterable[str] | None = None,
        rate_limit: RateBucket | None = "default",
        media_type: str = "application/json",
        in_schema: bool = True,
        errors: Iterable[int] = (),
        responses: dict[int, type[BaseModel]] | None = None,
        operation_id: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare an operation; `roles=()` means any authenticated caller."""

        def register(handler: Handler) -> Handler:
            self.specs.append(
                RouteSpec(
                    method=method.upper(),
                    path=path,
                    handler=handler,
                    operation_id=operation_id or handler.__name__,
                    summary=summary,
                    tags=tuple(tags),
                    path_model=path_model,
                    query_model=query,
                    body_model=body,
                    form_model=form,
                    response_model=response,
                    status=status,
                    roles=tuple(roles) if roles is not None else None,
                    rate_limit=rate_limit,
                    media_type=media_type,
                    in_schema=in_schema,
                    errors=tuple(errors),
                    responses=tuple((responses or {}).items()),
                    description=(handler.__doc__ or "").strip(),
                )
            )
            return handler

        return register

    def get(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kwargs)

    def install(self, app: web.Application) -> None:
        """Add every operation to the app's router (HEAD is answered for GETs)."""
        settings = app.get(keys.SETTINGS)
        envelope = None if settings is None else settings.response_envelope
        for spec in self.specs:
            handler = _wrap(spec, envelope)
            if spec.method == "GET":
                route = app.router.add_get(spec.path, handler, name=spec.operation_id)
            else:
                route = app.router.add_route(
                    spec.method, spec.path, handler, name=spec.operation_id
                )
            if route.resource is not None:  # the route template, for metrics and logs
                handler.__lms_label__ = route.resource.canonical  # type: ignore[attr-defined]
