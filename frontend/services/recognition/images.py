"""Images as /v1 takes them (base64 or a file): checked, decoded, their errors merged."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from fastapi.exceptions import RequestValidationError

from frontend.errors import ApiError, invalid
from frontend.imaging.decode import decode_image
from frontend.observability.context import note_upload
from frontend.services.recognition.codec import decode_base64
from frontend.services.recognition.faces import ALIGNED_SIZE


def decode_upload_base64(text: str, field: str) -> bytes:
    """The bytes of an image sent as base64, counted as uploaded (files are counted as they are read)."""
    data = decode_base64(text, field)
    note_upload(len(data))
    return data


def load_image(source: str | bytes, field: str, max_bytes: int, max_pixels: int) -> np.ndarray:
    """RGB pixels of an image sent as base64 (str) or as a file (bytes).

    Too many bytes or pixels stay 413 ({"detail": "..."}); everything else that
    keeps the image from being used is a 422 at ``("body", field)``.
    """
    data = decode_upload_base64(source, field) if isinstance(source, str) else source
    if len(data) > max_bytes:
        raise ApiError(413, f"{field} is larger than {max_bytes} bytes (FACE_API_MAX_UPLOAD_BYTES)")
    try:
        return decode_image(data, max_pixels).pixels
    except ApiError as error:
        if error.status_code == 413:
            raise
        raise invalid(("body", field), f"{field}: {error.detail}") from None


def check_aligned(pixels: np.ndarray, field: str) -> None:
    height, width = pixels.shape[:2]
    if (width, height) != (ALIGNED_SIZE, ALIGNED_SIZE):
        raise invalid(("body", field),
                      f"{field} is {width}x{height} pixels; this endpoint takes an aligned face of exactly "
                      f"{ALIGNED_SIZE}x{ALIGNED_SIZE} pixels (use /v1/feature or /v1/embeddings for photos)")


def merge(errors: Sequence[BaseException]) -> BaseException | None:
    """One exception for several failed inputs: the first 413 if any, else every 422 together."""
    for error in errors:
        if not isinstance(error, RequestValidationError):
            return error
    problems = [p for error in errors for p in error.errors()]
    return RequestValidationError(problems) if problems else None
