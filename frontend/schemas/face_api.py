"""Shapes of the face-api contract (docs/api.md), field by field."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class HealthResponse(BaseModel):
    status: str = Field(description='"ok" when the service can answer, else "unavailable"')
    model: str = Field(description="detector model served")
    model_loaded: bool = Field(description="the detect pipeline is loaded and ready in Triton")
    input_size: list[int] | None = Field(description="detector input [width, height], as its detect "
                                                     "pipeline declares it; null while it is not loaded")
    supports_landmarks: bool = Field(description="the detect pipeline returns 5 landmarks per face")
    mask_available: bool = Field(description="POST /api/v1/mask can answer: the detector has a mask "
                                             "pipeline and Triton has it ready (not needed for 200)")
    database_enabled: bool
    database_ready: bool
    storage_enabled: bool = Field(description="storage-backed mode (FACE_API_STORAGE_ENABLED)")
    storage_ready: bool = Field(description="object storage (local folder or S3 bucket) is reachable; "
                                           "with storage enabled, /health is 503 until it is")
    inference_endpoints: dict[str, bool] = Field(
        default_factory=dict, description="each Triton server (address) and whether it serves the detect "
                                          "pipeline; model_loaded is true while one does")


class ImageInfo(BaseModel):
    width: int = Field(description="upright width (after EXIF orientation)")
    height: int
    channels: int = Field(description="channels in the upload: 1 grey, 3 colour, 4 with alpha")
    size_bytes: int = Field(description="bytes uploaded")


class BoundingBox(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float


class Point(BaseModel):
    x: float
    y: float


class Landmarks(BaseModel):
    left_eye: Point = Field(description="the eye on the left of the image")
    right_eye: Point
    nose: Point
    left_mouth: Point
    right_mouth: Point


class Size(BaseModel):
    width: float
    height: float


class Relative(BaseModel):
    x_center: float = Field(description="box centre as a fraction of the image width")
    y_center: float
    width: float
    height: float


class Detection(BaseModel):
    index: int = Field(description="0 = most confident")
    bbox: BoundingBox
    confidence: float
    landmarks: Landmarks
    size: Size
    area: float
    center: Point
    relative: Relative


class Summary(BaseModel):
    face_count: int
    avg_confidence: float | None = Field(description="null when no face was found")
    min_confidence: float | None
    max_confidence: float | None
    total_face_area: float
    face_area_ratio: float = Field(description="total face area / image area")


class Processing(BaseModel):
    model: str
    input_size: list[int]
    confidence_threshold: float
    nms_threshold: float
    inference_ms: float
    total_ms: float


class Profiling(BaseModel):
    decode_ms: float = Field(description="upload bytes -> RGB pixels, in the frontend")
    preprocess_ms: float = Field(description="letterbox resize + pad, in Triton")
    blob_ms: float = Field(description="normalise + CHW layout, in Triton")
    inference_ms: float = Field(description="the whole Triton pipeline call, transfer included")
    postprocess_ms: float = Field(description="anchor decode + threshold + unscale, in Triton")
    nms_ms: float = Field(description="non-maximum suppression, in Triton")
    mask_ms: float | None = None
    encode_ms: float | None = None
    storage_ms: float | None = Field(
        None, description="recording the upload and the job (storage-backed mode); null when storage is off")
    total_ms: float = Field(description="request received -> response ready, in the frontend")
    candidates_before_nms: int
    candidates_after_nms: int
    det_scale: float = Field(description="detector pixels per image pixel along the long side")
    input_resolution: str = Field(description="WxH of the upright image")
    det_resolution: str = Field(description="WxH of the detector input")
    input_bytes: int
    output_bytes: int | None = None
    input_pixels: int
    model_name: str


class DetectResponse(BaseModel):
    request_id: str
    image_id: str | None = Field(
        None, description="the stored image (storage-backed mode); null when storage is off or failed")
    job_id: str | None = Field(None, description="the stored job record; null like image_id")
    image: ImageInfo
    detections: list[Detection]
    summary: Summary
    processing: Processing
    profiling: Profiling


class Masking(BaseModel):
    method: str
    strength: int
    padding: float
    regions_masked: int = Field(description="face regions actually masked")


class MaskOutput(BaseModel):
    format: str
    quality: int
    size_bytes: int
    image_base64: str = Field(description="the masked photo, base64 of the encoded bytes")


class MaskResponse(DetectResponse):
    """The admin preview (POST /api/v1/admin/test/mask): DetectResponse + masking + output."""

    masking: Masking
    output: MaskOutput


class ErrorResponse(BaseModel):
    detail: str


# Statuses the public endpoints answer with {"detail"} (documented in OpenAPI).
PUBLIC_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 413, 415, 422, 429, 503)}
MASK_ERRORS = dict(sorted({**PUBLIC_ERRORS, 501: {"model": ErrorResponse, "description": (
    "the configured detector has no mask pipeline: masking is not available with it")}}.items()))


class MaskMethod(StrEnum):
    """How /api/v1/mask hides a face (see docs/api.md for what ``strength`` means for each)."""

    gaussian = "gaussian"  # Gaussian blur; strength = kernel size in pixels
    pixelate = "pixelate"  # mosaic; strength = block edge in pixels
    solid = "solid"  # black fill; strength ignored
    elliptical = "elliptical"  # Gaussian blur inside the inscribed ellipse, feathered edge


class OutputFormat(StrEnum):
    jpeg = "jpeg"
    png = "png"
    webp = "webp"


# Contract headers of the binary /api/v1/mask response.
MASK_RESPONSE_HEADERS = {
    "X-Request-Id": "the request's UUID (every response carries it)",
    "X-Face-Count": "faces detected and masked",
    "X-Model": "detector that found them",
    "X-Inference-Ms": "the Triton pipeline call (detection + masking), as the frontend waited for it",
    "X-Mask-Ms": "masking alone, inside Triton",
    "X-Encode-Ms": "encoding the output image",
    "X-Decode-Ms": "decoding the upload",
    "X-Storage-Ms": "recording the upload and the job (storage-backed mode only)",
    "X-Total-Ms": "request received -> response ready",
    "X-Image-Id": "the stored image (storage-backed mode, when recording succeeded)",
    "X-Job-Id": "the stored job record (storage-backed mode, when recording succeeded)",
    "X-Storage-Error": "why the call was not recorded (storage-backed mode; the image is still returned)",
}
