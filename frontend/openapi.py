"""The OpenAPI description (/openapi.json, /docs) with readable component names.

Both contracts have a ``DetectResponse`` and a ``BoundingBox``. Where two schema
modules define a model of the same name, FastAPI names the components after
the module path (``frontend__schemas__recognition__DetectResponse``). Here the
face-api contract keeps the plain names it has always had, and the recognition
contract's colliding models become ``V1DetectResponse`` and ``V1BoundingBox``;
every other name is the class name, i.e. the contract's schema name.

The error bodies are documented as they are served (frontend/errors.py): on the
face-api contract (everything outside /v1) every 4xx and 5xx is ``ErrorResponse``
(``{"detail": "..."}``), validation errors included, where FastAPI would list its
``HTTPValidationError`` for 422; the recognition contract keeps that list for 422.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi import FastAPI

from frontend.errors import is_recognition
from frontend.schemas.face_api import ErrorResponse

# Schema module -> the prefix its models get when their name is taken twice.
PREFIXES = {"frontend.schemas.face_api": "", "frontend.schemas.recognition": "V1"}
REF = "#/components/schemas/"


def rename_components(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with module-qualified component names replaced (and every $ref to them)."""
    schemas = spec.get("components", {}).get("schemas", {})
    renames = {}
    for name in schemas:
        for module, prefix in PREFIXES.items():
            qualified = module.replace(".", "__") + "__"
            if name.startswith(qualified):
                renames[name] = prefix + name.removeprefix(qualified)
    if not renames:
        return spec
    if len(set(renames.values()) | (set(schemas) - set(renames))) != len(schemas):
        raise RuntimeError(f"OpenAPI component names collide after renaming: {renames}")
    text = json.dumps(spec)
    for old, new in renames.items():
        text = text.replace(f'"{REF}{old}"', f'"{REF}{new}"')
    spec = json.loads(text)
    spec["components"]["schemas"] = {renames.get(k, k): v for k, v in spec["components"]["schemas"].items()}
    return spec


def document_error_bodies(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with the face-api contract's error responses as ``ErrorResponse``.

    Only error responses without a body of their own (a bare description) or with FastAPI's
    ``HTTPValidationError`` change; /health's 503, a ``HealthResponse``, stays.
    """
    error = {"application/json": {"schema": {"$ref": f"{REF}{ErrorResponse.__name__}"}}}
    validation_list = {"$ref": f"{REF}HTTPValidationError"}
    used = False
    for path, operations in spec.get("paths", {}).items():
        if is_recognition(path):
            continue
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if not status.isdigit() or int(status) < 400:
                    continue
                content = response.get("content")
                schema = (content or {}).get("application/json", {}).get("schema")
                if content is None or schema == validation_list:
                    response["content"] = copy.deepcopy(error)
                    used = True
    if used:
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault(ErrorResponse.__name__, ErrorResponse.model_json_schema())
    return spec


def install(app: FastAPI) -> None:
    generate = app.openapi  # FastAPI's own: builds the description once and keeps it

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_error_bodies(rename_components(generate()))
        return app.openapi_schema

    app.openapi = openapi
