"""The public photo endpoints resolve their dependencies on the event loop.

FastAPI runs a plain ``def`` dependency on its thread pool: a round trip to a
thread and back to the event loop for every dependency of every request (eight
on /api/v1/detect). The dependencies there only read the request, so they are
``async def``; this keeps a new one from bringing the round trips back.
"""

from __future__ import annotations

import inspect

import pytest
from fastapi.routing import APIRoute

from frontend.api import detect, mask


def _calls(dependant):
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


@pytest.mark.parametrize(("router", "path"), [(detect.router, "/api/v1/detect"),
                                              (mask.router, "/api/v1/mask")])
def test_every_dependency_of_a_photo_endpoint_is_async(router, path):
    route = next(r for r in router.routes if isinstance(r, APIRoute) and r.path == path)
    calls = list(_calls(route.dependant))
    assert calls
    synchronous = [getattr(call, "__qualname__", repr(call)) for call in calls
                   if not (inspect.iscoroutinefunction(call)
                           or inspect.iscoroutinefunction(type(call).__call__))]  # security schemes
    assert synchronous == []
