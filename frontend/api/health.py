"""GET /health: 200 only when the detect pipeline (and every enabled dependency) is ready."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from frontend.api import dependencies as deps
from frontend.inference.triton import TritonClient, TritonUnavailable
from frontend.schemas.face_api import HealthResponse
from frontend.settings import Settings

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse,
            responses={503: {"model": HealthResponse, "description": "not ready"}})
async def health(settings: Settings = Depends(deps.settings),
                 triton: TritonClient = Depends(deps.triton)):
    loaded = await triton.is_ready(settings.detect_pipeline)
    input_size = None
    if loaded:
        try:
            input_size = list(await triton.input_size(settings.detector))
        except TritonUnavailable:
            loaded = False
    body = HealthResponse(
        status="ok" if loaded else "unavailable",
        model=settings.detector,
        model_loaded=loaded,
        input_size=input_size,
        supports_landmarks=True,  # every served detector (SCRFD *_bnkps) predicts 5 points
        database_enabled=False,
        database_ready=False,
        storage_enabled=False,
        storage_ready=False,
    )
    return JSONResponse(body.model_dump(), status_code=200 if loaded else 503)
