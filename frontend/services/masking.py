"""Mask the faces on an uploaded photo (inside Triton) and encode the result."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from anyio import to_thread

from frontend.imaging import budget
from frontend.imaging.decode import DecodedImage, decode_image, header_size
from frontend.imaging.encode import MEDIA_TYPES, check_output_size, encode_image
from frontend.inference.catalog import Pipeline
from frontend.inference.triton import TritonClient
from frontend.schemas import face_api as schema
from frontend.services import detection
from frontend.services.detection import DetectParams
from frontend.settings import Settings


@dataclass(frozen=True)
class MaskParams:
    method: str
    strength: int
    padding: float
    format: str
    quality: int


@dataclass(frozen=True)
class MaskedPhoto:
    image: DecodedImage  # the upload, decoded
    detected: detection.Detected  # the faces found, as /detect describes them
    regions: int  # face regions actually masked
    content: bytes  # the encoded result
    media_type: str
    inference_ms: float  # the Triton call as the frontend waited for it
    mask_ms: float  # masking alone, inside Triton
    encode_ms: float


def _ms(value: float) -> str:
    return f"{value:.2f}"


def decode_for_output(data: bytes, fmt: str, max_pixels: int) -> DecodedImage:
    """Decode the upload, after refusing from its header alone (422) a size that ``fmt``
    cannot encode: no decoding or inference is spent on a result that could not be sent."""
    size = header_size(data)
    # A photo over the pixel limit is left to the decoder's 413, the more fundamental refusal.
    if size is not None and size[0] * size[1] <= max_pixels:
        check_output_size(*size, fmt)
    return decode_image(data, max_pixels)


async def mask(data: bytes, detect: DetectParams, params: MaskParams, triton: TritonClient,
               pipeline: Pipeline, settings: Settings) -> MaskedPhoto:
    """Decode, detect + mask in one call of the mask ``pipeline``, encode."""
    await budget.admit_upload(data, settings.max_image_pixels)  # masking needs every pixel
    t0 = time.perf_counter()
    image = await to_thread.run_sync(decode_for_output, data, params.format, settings.max_image_pixels)
    t1 = time.perf_counter()
    masked = await triton.mask(pipeline.name, image.pixels, detect.confidence,
                               detect.nms_threshold, detect.max_faces, params.method,
                               params.strength, params.padding)
    t2 = time.perf_counter()
    content = await to_thread.run_sync(encode_image, masked.image, params.format, params.quality,
                                       image.alpha)
    t3 = time.perf_counter()
    return MaskedPhoto(image, detection.Detected(image, masked.faces, (t1 - t0) * 1000.0), masked.regions,
                       content, MEDIA_TYPES[params.format], (t2 - t1) * 1000.0, masked.mask_ms,
                       (t3 - t2) * 1000.0)


def headers(photo: MaskedPhoto, model: str, started: float,
            storage_ms: float | None = None) -> dict[str, str]:
    """The contract's X-* headers; ``started`` = perf_counter() when the request arrived."""
    values = {
        "X-Face-Count": str(len(photo.detected.faces.scores)),
        "X-Model": model,
        "X-Inference-Ms": _ms(photo.inference_ms),
        "X-Mask-Ms": _ms(photo.mask_ms),
        "X-Encode-Ms": _ms(photo.encode_ms),
        "X-Decode-Ms": _ms(photo.detected.decode_ms),
    }
    if storage_ms is not None:
        values["X-Storage-Ms"] = _ms(storage_ms)
    values["X-Total-Ms"] = _ms((time.perf_counter() - started) * 1000.0)
    return values


def build_response(request_id: str, photo: MaskedPhoto, detect: DetectParams, params: MaskParams,
                   pipeline: Pipeline, size_bytes: int, started: float,
                   with_image: bool = True) -> schema.MaskResponse:
    """The MaskResponse: DetectResponse fields + masking + output (base64 of the result
    unless ``with_image`` is false, as in stored job records, where it is "")."""
    described = detection.build_response(request_id, photo.detected, detect, pipeline, size_bytes, started)
    described.profiling.mask_ms = round(photo.mask_ms, 2)
    described.profiling.encode_ms = round(photo.encode_ms, 2)
    described.profiling.output_bytes = len(photo.content)
    return schema.MaskResponse(
        **dict(described),
        masking=schema.Masking(method=params.method, strength=params.strength, padding=params.padding,
                               regions_masked=photo.regions),
        output=schema.MaskOutput(format=params.format, quality=params.quality, size_bytes=len(photo.content),
                                 image_base64=base64.b64encode(photo.content).decode() if with_image else ""),
    )
