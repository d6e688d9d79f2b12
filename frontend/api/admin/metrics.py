"""GET /api/v1/admin/metrics/recent: request rate, p95 latency and error ratio over the last hour."""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Request

from frontend.schemas.admin import RecentMetricsResponse

router = APIRouter()


@router.get("/metrics/recent", response_model=RecentMetricsResponse,
            summary="This node's request rate, p95 latency and error ratio over the last hour, by minute")
async def recent(request: Request) -> dict:
    # Reading every worker's metric files is file I/O: off the event loop.
    return await to_thread.run_sync(request.app.state.metrics_history.recent)
