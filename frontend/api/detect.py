"""POST /api/v1/detect: faces with landmarks on an uploaded photo, as JSON.

Thin: the parameters and dependencies are declared here, the call itself is
frontend/services/calls.py::detect.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Response, UploadFile

from frontend.api import dependencies as deps
from frontend.api import recording
from frontend.api.uploads import read_upload
from frontend.inference.served import ServedPipelines
from frontend.inference.triton import TritonClient
from frontend.schemas.face_api import PUBLIC_ERRORS, DetectResponse
from frontend.services import archive as archiving
from frontend.services import calls, detection
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
    answer = await calls.detect(
        # Read only once the service has checked the pipeline (a 503 reads nothing).
        lambda: read_upload(image, settings.max_upload_bytes), params,
        request_id=request_id, settings=settings, triton=triton, catalog=catalog,
        archive=archive, api_key_id=api_key_id)
    response.headers.update(answer.headers)  # storage-backed mode: X-Image-Id / X-Job-Id or X-Storage-Error
    return answer.body
