"""POST /api/v1/detect: faces with landmarks on an uploaded photo, as JSON."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, File, Response, UploadFile

from frontend.api import dependencies as deps
from frontend.api import recording
from frontend.api.uploads import read_upload
from frontend.inference.served import ServedPipelines
from frontend.inference.triton import TritonClient
from frontend.schemas.face_api import PUBLIC_ERRORS, DetectResponse
from frontend.services import archive as archiving
from frontend.services import detection
from frontend.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["face-api"])
STORAGE_HEADERS = {
    "X-Storage-Error": {"description": "storage-backed mode: why this call was not recorded "
                                       "(the detections are still returned; image_id and job_id are null)",
                        "schema": {"type": "string"}},
}


@router.post("/detect", response_model=DetectResponse,
             responses={200: {"headers": STORAGE_HEADERS}, **PUBLIC_ERRORS},
             dependencies=[Depends(deps.api_key)])
async def detect(
    response: Response,
    image: UploadFile = File(description="the photo: JPEG, PNG, WebP, BMP, GIF or TIFF"),
    params: detection.DetectParams = Depends(deps.detect_params),
    settings: Settings = Depends(deps.settings),
    triton: TritonClient = Depends(deps.triton),
    catalog: ServedPipelines = Depends(deps.catalog),
    request_id: str = Depends(deps.request_id),
    archive: archiving.Archive | None = Depends(recording.archive),
    api_key_id: str | None = Depends(recording.api_key_id),
) -> DetectResponse:
    started = time.perf_counter()
    pipeline = catalog.detect()  # 503 while the detector's detect pipeline is not served
    data = await read_upload(image, settings.max_upload_bytes)
    detected = await detection.detect(data, params, triton, pipeline, settings)
    body = detection.build_response(request_id, detected, params, pipeline, len(data), started)
    if archive is not None:
        recorded = await archive.try_record(archiving.upload_of(data, detected.image),
                                            archiving.detect_job(body, params, api_key_id))
        archiving.stamp(body, recorded, started)
        response.headers.update(recorded.headers())
    return body
