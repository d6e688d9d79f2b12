"""The OpenAPI description (/openapi.json, /docs) with readable component names.

Both contracts have a ``DetectResponse`` and a ``BoundingBox``. Where two schema
modules define a model of the same name, FastAPI names the components after
the module path (``frontend__schemas__recognition__DetectResponse``). Here the
face-api contract keeps the plain names it has always had, and the recognition
contract's colliding models become ``V1DetectResponse`` and ``V1BoundingBox``;
every other name is the class name, i.e. the contract's schema name.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

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


def install(app: FastAPI) -> None:
    generate = app.openapi  # FastAPI's own: builds the description once and keeps it

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = rename_components(generate())
        return app.openapi_schema

    app.openapi = openapi
