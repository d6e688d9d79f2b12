"""GET /health: 200 only when one Triton server serves every selected pipeline and every
enabled dependency is ready."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from frontend.api import dependencies as deps
from frontend.inference.served import ServedPipelines
from frontend.inference.triton import TritonClient
from frontend.persistence.database import is_ready
from frontend.schemas.face_api import HealthResponse
from frontend.settings import Settings

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse,
            responses={503: {"model": HealthResponse, "description": "not ready"}})
async def health(request: Request, settings: Settings = Depends(deps.settings),
                 triton: TritonClient = Depends(deps.triton),
                 catalog: ServedPipelines = Depends(deps.catalog)):
    selection = catalog.selection
    detect, mask = selection.detect, selection.mask
    # Every pipeline the settings select and Triton declares: detect, the detector's mask
    # pipeline when it has one, the recognizer's and the detect pipeline it pairs with.
    required = list(dict.fromkeys(p.name for p in (detect, mask, selection.recognize,
                                                   selection.recognize_detect) if p is not None))
    endpoints = await triton.readiness(required)
    if detect is None:  # not among the served pipelines at the last look: look again now
        catalog.refresh_soon()
        endpoints = dict.fromkeys(endpoints, False)
    loaded = any(endpoints.values())  # one Triton server that serves all of them is enough
    mask_available = loaded and mask is not None
    database = request.app.state.database
    database_ready = database is not None and await is_ready(database)
    objects = getattr(request.app.state, "objects", None)
    storage_ready = objects is not None and await objects.is_ready()
    healthy = (loaded and (database_ready or not settings.database_enabled)
               and (storage_ready or not settings.storage_enabled))
    body = HealthResponse(
        status="ok" if healthy else "unavailable",
        model=detect.detector if detect else settings.detector,
        model_loaded=loaded,
        input_size=list(detect.input_size) if loaded else None,
        supports_landmarks=detect.landmarks if detect else False,
        mask_available=mask_available,
        database_enabled=settings.database_enabled,
        database_ready=database_ready,
        storage_enabled=settings.storage_enabled,
        storage_ready=storage_ready,
        inference_endpoints=endpoints,
    )
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
