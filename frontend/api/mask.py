"""POST /api/v1/mask: the uploaded photo with every face masked, as image bytes.

Thin: the parameters and dependencies are declared here (the masking ones also
serve the console's preview), the call itself is frontend/services/calls.py::mask.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile

from frontend.api import dependencies as deps
from frontend.api import recording
from frontend.api.uploads import read_upload
from frontend.inference.served import ServedPipelines
from frontend.inference.triton import TritonClient
from frontend.schemas.face_api import MASK_ERRORS, MASK_RESPONSE_HEADERS, MaskMethod, OutputFormat
from frontend.services import archive as archiving
from frontend.services import calls, masking
from frontend.services.detection import DetectParams
from frontend.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["face-api"])
IMAGE_RESPONSE = {
    "description": "the masked photo",
    "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}},
    "headers": {name: {"description": text, "schema": {"type": "string"}}
                for name, text in MASK_RESPONSE_HEADERS.items()},
}


async def mask_params(
    method: MaskMethod = Query(MaskMethod.gaussian, description="how faces are hidden"),
    strength: int = Query(199, ge=2, le=1001, description=(
        "gaussian/elliptical: blur kernel size in pixels (even values round up to odd); "
        "pixelate: block edge in pixels; solid: ignored. As given for faces up to 200 px, "
        "scaled by side / 200 for larger ones")),
    padding: float = Query(0.15, ge=0.0, le=2.0, description=(
        "grow each box by this fraction of its width (left and right) and height (top and bottom)")),
    format: OutputFormat = Query(OutputFormat.jpeg, description="output image format"),
    quality: int = Query(95, ge=1, le=100, description="JPEG/WebP quality; PNG is lossless and ignores it"),
) -> masking.MaskParams:
    """The masking query parameters that /mask and the admin preview share."""
    return masking.MaskParams(method.value, strength, padding, format.value, quality)


@router.post("/mask", response_class=Response, responses={200: IMAGE_RESPONSE, **MASK_ERRORS},
             dependencies=[Depends(deps.api_key)])
async def mask(
    image: UploadFile = File(description="the photo: JPEG, PNG, WebP, BMP, GIF or TIFF"),
    detect: DetectParams = Depends(deps.detect_params),
    params: masking.MaskParams = Depends(mask_params),
    settings: Settings = Depends(deps.settings),
    triton: TritonClient = Depends(deps.triton),
    catalog: ServedPipelines = Depends(deps.catalog),
    request_id: str = Depends(deps.request_id),
    archive: archiving.Archive | None = Depends(recording.archive),
    api_key_id: str | None = Depends(recording.api_key_id),
) -> Response:
    return await calls.mask(
        # Read only once the service has checked the pipeline (a 501/503 reads nothing).
        lambda: read_upload(image, settings.max_upload_bytes), detect, params,
        request_id=request_id, settings=settings, triton=triton, catalog=catalog,
        archive=archive, api_key_id=api_key_id)
