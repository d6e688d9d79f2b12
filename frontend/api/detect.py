"""POST /api/v1/detect: faces with landmarks on an uploaded photo, as JSON."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, File, UploadFile

from frontend.api import dependencies as deps
from frontend.api.uploads import read_upload
from frontend.inference.triton import TritonClient
from frontend.schemas.face_api import PUBLIC_ERRORS, DetectResponse
from frontend.services import detection
from frontend.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["face-api"])


@router.post("/detect", response_model=DetectResponse, responses=PUBLIC_ERRORS,
             dependencies=[Depends(deps.api_key)])
async def detect(
    image: UploadFile = File(description="the photo: JPEG, PNG, WebP, BMP, GIF or TIFF"),
    params: detection.DetectParams = Depends(deps.detect_params),
    settings: Settings = Depends(deps.settings),
    triton: TritonClient = Depends(deps.triton),
    request_id: str = Depends(deps.request_id),
) -> DetectResponse:
    started = time.perf_counter()
    data = await read_upload(image, settings.max_upload_bytes)
    detected = await detection.detect(data, params, triton, settings)
    input_size = await triton.input_size(settings.detector)
    return detection.build_response(request_id, detected, params, input_size, settings.detector,
                                    len(data), started)
