"""POST /api/v1/admin/test/mask: the console's preview, as JSON with the masked photo in base64.

It takes the parameters of /api/v1/mask and, in storage-backed mode, records a mask
job like it (without an API key). Thin: the call itself is frontend/services/calls.py::preview.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Response, UploadFile

from frontend.api import dependencies as deps
from frontend.api import recording
from frontend.api.mask import mask_params
from frontend.api.uploads import read_upload
from frontend.inference.served import ServedPipelines
from frontend.inference.triton import TritonClient
from frontend.schemas.face_api import MASK_ERRORS, MaskResponse
from frontend.services import archive as archiving
from frontend.services import calls, masking
from frontend.services.detection import DetectParams
from frontend.settings import Settings

router = APIRouter()


@router.post("/test/mask", response_model=MaskResponse, responses=MASK_ERRORS,
             summary="Mask the faces on a photo and answer JSON (DetectResponse + masking + output)")
async def test_mask(
    response: Response,
    image: UploadFile = File(description="the photo: JPEG, PNG, WebP, BMP, GIF or TIFF"),
    detect: DetectParams = Depends(deps.detect_params),
    params: masking.MaskParams = Depends(mask_params),
    settings: Settings = Depends(deps.settings),
    triton: TritonClient = Depends(deps.triton),
    catalog: ServedPipelines = Depends(deps.catalog),
    request_id: str = Depends(deps.request_id),
    archive: archiving.Archive | None = Depends(recording.archive),
) -> MaskResponse:
    answer = await calls.preview(
        # Read only once the service has checked the pipeline (a 501/503 reads nothing).
        lambda: read_upload(image, settings.max_upload_bytes), detect, params,
        request_id=request_id, settings=settings, triton=triton, catalog=catalog, archive=archive)
    response.headers.update(answer.headers)  # storage-backed mode: X-Image-Id / X-Job-Id or X-Storage-Error
    return answer.body
