"""GET /health: 200 only when the pipelines and every enabled dependency are ready."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from frontend.api import dependencies as deps
from frontend.inference.triton import TritonClient, TritonUnavailable
from frontend.persistence.database import is_ready
from frontend.schemas.face_api import HealthResponse
from frontend.settings import Settings

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse,
            responses={503: {"model": HealthResponse, "description": "not ready"}})
async def health(request: Request, settings: Settings = Depends(deps.settings),
                 triton: TritonClient = Depends(deps.triton)):
    endpoints = await triton.readiness([settings.detect_pipeline, settings.mask_pipeline])
    loaded = any(endpoints.values())  # one Triton server that serves both is enough
    input_size = None
    if loaded:
        try:
            input_size = list(await triton.input_size(settings.detector))
        except TritonUnavailable:
            loaded = False
    database = request.app.state.database
    database_ready = database is not None and await is_ready(database)
    objects = getattr(request.app.state, "objects", None)
    storage_ready = objects is not None and await objects.is_ready()
    healthy = (loaded and (database_ready or not settings.database_enabled)
               and (storage_ready or not settings.storage_enabled))
    body = HealthResponse(
        status="ok" if healthy else "unavailable",
        model=settings.detector,
        model_loaded=loaded,
        input_size=input_size,
        supports_landmarks=True,  # every served detector (SCRFD *_bnkps) predicts 5 points
        database_enabled=settings.database_enabled,
        database_ready=database_ready,
        storage_enabled=settings.storage_enabled,
        storage_ready=storage_ready,
        inference_endpoints=endpoints,
    )
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
