"""Every admin endpoint of an app, as the router serves it (prefixes and included routers resolved)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

ADMIN_PREFIX = "/api/v1/admin"
# The only admin endpoints served without the admin guard.
OPEN = {("POST", "/api/v1/admin/auth/login"), ("POST", "/api/v1/admin/auth/logout")}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with {placeholders}
    dependant: Any  # FastAPI's Dependant (None for a route FastAPI did not build)

    def url(self, placeholder: str) -> str:
        """The path with every {parameter} (also {name:path}) replaced by `placeholder`."""
        parts = [placeholder if p.startswith("{") and p.endswith("}") else p for p in self.path.split("/")]
        return "/".join(parts)


def admin_endpoints(app: FastAPI) -> list[Endpoint]:
    found = []
    for route in iter_route_contexts(app.routes):
        if (route.path or "").startswith(ADMIN_PREFIX):
            dependant = getattr(route, "dependant", None)
            found.extend(Endpoint(method, route.path, dependant) for method in sorted(route.methods or {"?"}))
    assert found, "no admin endpoints found: has FastAPI's route listing changed?"
    return found


def calls(dependant: Any) -> set:
    """Every callable in a dependency tree (the endpoint, its dependencies, theirs ...)."""
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= calls(sub)
    return found
