"""Mask the faces on an uploaded photo (inside Triton) and encode the result."""

from __future__ import annotations

import time
from dataclasses import dataclass

from anyio import to_thread

from frontend.imaging.decode import decode_image
from frontend.imaging.encode import MEDIA_TYPES, encode_image
from frontend.inference.triton import TritonClient
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
    content: bytes
    media_type: str
    headers: dict[str, str]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000.0:.2f}"


async def mask(data: bytes, detect: DetectParams, params: MaskParams, triton: TritonClient,
               settings: Settings, started: float) -> MaskedPhoto:
    """Decode, detect + mask in one Triton call, encode; ``started`` = perf_counter() at arrival."""
    t0 = time.perf_counter()
    image = await to_thread.run_sync(decode_image, data, settings.max_image_pixels)
    t1 = time.perf_counter()
    masked = await triton.mask(settings.mask_pipeline, image.pixels, detect.confidence,
                               detect.nms_threshold, detect.max_faces, params.method,
                               params.strength, params.padding)
    t2 = time.perf_counter()
    content = await to_thread.run_sync(encode_image, masked.image, params.format, params.quality,
                                       image.alpha)
    t3 = time.perf_counter()
    headers = {
        "X-Face-Count": str(len(masked.faces.scores)),
        "X-Model": settings.detector,
        "X-Inference-Ms": _ms(t2 - t1),
        "X-Mask-Ms": f"{masked.mask_ms:.2f}",
        "X-Encode-Ms": _ms(t3 - t2),
        "X-Decode-Ms": _ms(t1 - t0),
        "X-Total-Ms": _ms(t3 - started),
    }
    return MaskedPhoto(content, MEDIA_TYPES[params.format], headers)
