"""OpenAPI 3.1 document generated from the route registry and its pydantic models.

Every operation documents its parameters, body, success response and the error responses it
can give (all with the shared `Error` schema); the document is built once per app.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from lms_live.core.http import RouteSpec

REF = "#/components/schemas/{model}"
JsonSchemaMode = Literal["validation", "serialization"]


class ErrorBody(BaseModel):
    """Every error response."""

    error: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="Human-readable explanation.")
    details: list[dict[str, Any]] = Field(description="Field errors or extra context.")


def _error_statuses(spec: RouteSpec) -> list[int]:
    statuses = {400, 405, 500, *spec.errors}
    if spec.path_model or spec.query_model or spec.body_model or spec.form_model:
        statuses.add(422)
    if spec.body_model or spec.form_model:
        statuses |= {413, 415}
    if spec.path_model:
        statuses.add(404)
    if spec.requires_auth:
        statuses |= {401, 403} if spec.roles else {401}
    if spec.rate_limit:
        statuses.add(429)
    return sorted(statuses)


def _parameters(ref: dict[str, Any], where: str, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    definition = schemas[ref["$ref"].rsplit("/", 1)[-1]]
    required = set(definition.get("required", []))
    params = []
    for name, schema in definition.get("properties", {}).items():
        param: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": schema,
        }
        if "description" in schema:
            param["description"] = schema["description"]
        params.append(param)
    return params


def _wrap(ref: dict[str, Any], envelope: bool) -> dict[str, Any]:
    if not envelope:
        return ref
    return {"type": "object", "properties": {"data": ref}, "required": ["data"]}


def build_openapi(
    specs: Iterable[RouteSpec], *, title: str, version: str, envelope: bool
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for these operations."""
    operations = [s for s in specs if s.in_schema]
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for spec in operations:
        for model in (spec.path_model, spec.query_model, spec.body_model, spec.form_model):
            if model is not None:
                models.append((model, "validation"))
        if spec.response_model is not None:
            models.append((spec.response_model, "serialization"))
        models.extend((model, "serialization") for _, model in spec.responses)
    refs, definitions = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)
    schemas: dict[str, Any] = definitions.get("$defs", {})
    error_ref = refs[(ErrorBody, "serialization")]

    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, None] = {}
    for spec in operations:
        operation: dict[str, Any] = {
            "operationId": spec.operation_id,
            "summary": spec.summary,
            "tags": list(spec.tags),
        }
        tags.update(dict.fromkeys(spec.tags))
        if spec.description:
            operation["description"] = spec.description
        params: list[dict[str, Any]] = []
        if spec.path_model:
            params += _parameters(refs[(spec.path_model, "validation")], "path", schemas)
        if spec.query_model:
            params += _parameters(refs[(spec.query_model, "validation")], "query", schemas)
        if params:
            operation["parameters"] = params
        if spec.form_model:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": refs[(spec.form_model, "validation")]
                    }
                },
            }
        if spec.body_model:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(spec.body_model, "validation")]}},
            }
        responses: dict[str, Any] = {}
        if spec.response_model is not None:
            responses[str(spec.status)] = {
                "description": HTTPStatus(spec.status).phrase,
                "content": {
                    spec.media_type: {
                        "schema": _wrap(refs[(spec.response_model, "serialization")], envelope)
                    }
                },
            }
        elif spec.media_type != "application/json":
            responses[str(spec.status)] = {
                "description": HTTPStatus(spec.status).phrase,
                "content": {spec.media_type: {"schema": {"type": "string"}}},
            }
        else:
            status = 204 if spec.status == 200 else spec.status
            responses[str(status)] = {"description": HTTPStatus(status).phrase}
        for status in _error_statuses(spec):
            responses[str(status)] = {
                "description": HTTPStatus(status).phrase,
                "content": {"application/json": {"schema": error_ref}},
            }
        for status, model in spec.responses:
            responses[str(status)] = {
                "description": HTTPStatus(status).phrase,
                "content": {
                    "application/json": {"schema": _wrap(refs[(model, "serialization")], envelope)}
                },
            }
        operation["responses"] = responses
        if spec.requires_auth:
            operation["security"] = [{"bearerAuth": []}]
        paths.setdefault(spec.openapi_path, {})[spec.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "REST API of lms_live. Errors always have the `ErrorBody` shape.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
