"""GET /api/v1/admin/stats: totals over images and jobs, and the last 24 hours by the hour."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from frontend.api import recording
from frontend.api.admin.images import STORAGE_ERRORS
from frontend.schemas.archive import StatsResponse
from frontend.services.archive import Archive

router = APIRouter()


@router.get("/stats", response_model=StatsResponse, responses=STORAGE_ERRORS,
            summary="Totals over stored images and jobs, and the last 24 hours by the hour")
async def stats(archive: Archive = Depends(recording.required_archive)) -> StatsResponse:
    return await archive.stats()
