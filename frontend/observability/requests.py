"""One observation per HTTP request: metrics, the request log line, and the request id.

``RequestObserver`` is the outermost ASGI middleware. It gives the request its
id (``scope["state"]["request_id"]``, the X-Request-Id header, every log line
written while it runs), opens its ``Tally`` (frontend/observability/context.py),
times it to the last byte of the answer, and, once it is answered, counts it
under its route template and writes one log line.
"""

from __future__ import annotations

import logging
import os
import time
import uuid

from frontend.middleware import client_host
from frontend.observability import metrics
from frontend.observability.context import Tally, close_tally, open_tally

log = logging.getLogger("face_api.request")

UNMATCHED = "<unmatched>"


def route_template(scope) -> str:
    """The route's template (``/api/v1/admin/images/{image_id}``), never the raw path: metric
    labels must stay bounded. Requests refused before routing (size, key, rate limit) have
    no route yet; a static route is then recognised by its path."""
    # FastAPI keeps the full template of a route reached through included routers in its
    # own scope entry; scope["route"].path is only the innermost router's part of it.
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None) or getattr(scope.get("route"), "path", None)
    if template:
        return template
    app = scope.get("app")
    if app is None:
        return UNMATCHED
    statics = getattr(app.state, "static_route_paths", None)
    if statics is None:
        statics = {path for path in app.openapi()["paths"] if "{" not in path}
        app.state.static_route_paths = statics
    path = scope.get("path", "")
    return path if path in statics else UNMATCHED


class RequestObserver:
    """Pure ASGI (no task per request): see the module docstring."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        tally, token = open_tally(str(uuid.uuid4()))
        scope.setdefault("state", {})["request_id"] = tally.request_id
        answer = {"status": 500, "bytes": 0}  # 500: nothing was sent before an exception escaped
        started = time.perf_counter()

        async def observed_send(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["bytes"] += len(message.get("body", b""))
            await send(message)

        metrics.IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            # The tally stays open: the server logs the traceback next, in this same task,
            # and that record should carry the request's id too.
            raise
        else:
            close_tally(token)
        finally:
            metrics.IN_FLIGHT.dec()
            for callback in tally.at_end:  # e.g. the pixels this request held (imaging/budget.py)
                callback()
            self._record(scope, tally, answer["status"], answer["bytes"], time.perf_counter() - started)

    @staticmethod
    def _record(scope, tally: Tally, status: int, bytes_out: int, elapsed_s: float) -> None:
        route, method = route_template(scope), scope.get("method", "")
        metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc()
        metrics.HTTP_LATENCY.labels(route, method).observe(elapsed_s)
        if tally.upload_bytes:
            metrics.UPLOAD_BYTES.labels(route).observe(tally.upload_bytes)
        for pixels in tally.photo_pixels:
            metrics.PIXELS.labels(route).observe(pixels)
        if tally.faces is not None:
            metrics.FACES.labels(route).observe(tally.faces)
        log.info("request", extra={"fields": {
            "request_id": tally.request_id, "method": method, "route": route, "path": scope.get("path", ""),
            "status": status, "latency_ms": round(elapsed_s * 1000.0, 2),
            "key_id": scope.get("state", {}).get("api_key_id"), "faces": tally.faces,
            "bytes_in": tally.upload_bytes, "bytes_out": bytes_out,
            "client": client_host(scope), "pid": os.getpid()}})
