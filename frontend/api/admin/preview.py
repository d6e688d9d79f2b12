"""POST /api/v1/admin/test/mask: the console's preview, as JSON with the masked photo in base64.

It takes the parameters of /api/v1/mask and, in storage-backed mode, records a mask
job like it (without an API key).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, File, Response, UploadFile

from frontend.api import dependencies as deps
from frontend.api import recording
from frontend.api.mask import mask_params
from frontend.api.uploads import read_upload
from frontend.inference.served import ServedPipelines
from frontend.inference.triton import TritonClient
from frontend.schemas.face_api import MASK_ERRORS, MaskResponse
from frontend.services import archive as archiving
from frontend.services import masking
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
    started = time.perf_counter()
    pipeline = catalog.mask()  # 501 when the detector has no mask pipeline, 503 while not served
    data = await read_upload(image, settings.max_upload_bytes)
    photo = await masking.mask(data, detect, params, triton, pipeline, settings)
    body = masking.build_response(request_id, photo, detect, params, pipeline, len(data), started)
    if archive is not None:
        recorded = await archive.record_mask(data, photo, body, detect, params, api_key_id=None)
        archiving.stamp(body, recorded, started)
        response.headers.update(recorded.headers())
    return body
