"""GET /metrics: the frontend's Prometheus metrics, summed over every worker.

Off with FACE_API_METRICS_ENABLED=false (404); with FACE_API_METRICS_TOKEN set,
only a scraper that sends it as a bearer token is answered. Not part of the
API contracts, so not in the OpenAPI document.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request, Response

from frontend.errors import ApiError
from frontend.observability import metrics

router = APIRouter(include_in_schema=False)
log = logging.getLogger("face_api.metrics")


@router.get("/metrics")
async def serve_metrics(request: Request) -> Response:
    settings = request.app.state.settings
    if not settings.metrics_enabled:
        raise ApiError(404, "metrics are disabled (FACE_API_METRICS_ENABLED=false)")
    if settings.metrics_token:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expected = settings.metrics_token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise ApiError(401, "send the metrics token as 'Authorization: Bearer <token>'",
                           {"WWW-Authenticate": 'Bearer realm="metrics"'})
    body, content_type = metrics.render(await _cleanup_queue_depth(request))
    return Response(body, media_type=content_type)


async def _cleanup_queue_depth(request: Request) -> int | None:
    """One COUNT in storage-backed mode; None (the series is left out) without it or when it fails."""
    archive = getattr(request.app.state, "archive", None)
    if archive is None:
        return None
    try:
        return await archive.pending_cleanup()
    except Exception as error:  # the scrape still shows everything else
        log.warning("cleanup queue depth unavailable: %r", error)
        return None
