"""Small JPEG thumbnails of stored photos, for the admin console's gallery.

JPEG is decoded already reduced: libjpeg-turbo's DCT scaling produces 1/2, 1/4 or
1/8 of each side for a fraction of the work of a full decode, and the strongest
reduction that still leaves at least ``size`` pixels on the long side is used.
Pillow-SIMD's Lanczos resize brings it to the exact size. Every other format (and
the rare JPEGs TurboJPEG leaves to Pillow, such as CMYK) goes through the ordinary
decoder. Either way the pixel limit is checked on the header first, the EXIF
orientation is applied, transparency is flattened onto white, and a damaged image
is the decoder's ApiError (400/413/415), never a server error.
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from frontend.errors import ApiError
from frontend.imaging.decode import decode_image, exif_orientation, is_jpeg, orient, read_jpeg
from frontend.imaging.encode import encode_image

DEFAULT_SIZE = 320
MIN_SIZE = 32
MAX_SIZE = 1024
QUALITY = 80
# Bump when the output changes (filter, quality, ...): it is part of the ETag, so
# browsers holding yesterday's thumbnail fetch the new one.
VERSION = 1
# Strongest first. libjpeg-turbo has SIMD code for these; its other factors (3/8,
# 5/8, ...) are scalar and not faster than decoding at the next power of two.
DCT_SCALES: tuple[tuple[int, int], ...] = ((1, 8), (1, 4), (1, 2))
WHITE = (255, 255, 255)


def target_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) with the long side ``size``, the aspect kept; never larger than the image."""
    long_side = max(width, height)
    if long_side <= size:
        return width, height
    if width >= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


def scaled(dimension: int, factor: tuple[int, int]) -> int:
    """A side after DCT scaling by ``factor`` (libjpeg-turbo's TJSCALED: rounded up)."""
    num, denom = factor
    return (dimension * num + denom - 1) // denom


def dct_scale(width: int, height: int, size: int) -> tuple[int, int] | None:
    """The strongest DCT reduction whose long side is still >= ``size``; None: decode it whole."""
    long_side = max(width, height)
    for factor in DCT_SCALES:
        if scaled(long_side, factor) >= size:
            return factor
    return None


def make_thumbnail(data: bytes, size: int, max_pixels: int, quality: int = QUALITY,
                   dct_scaling: bool = True) -> bytes:
    """JPEG bytes of ``data`` (any supported format) with the long side at most ``size``.

    ``dct_scaling=False`` decodes JPEGs whole (for measurements; the output is nearly the same).
    Raises ApiError 400 (damaged), 413 (over ``max_pixels``) or 415 (not an image).
    """
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"thumbnail size {size} is outside {MIN_SIZE}..{MAX_SIZE}")
    if not data:
        raise ApiError(400, "the image is empty (0 bytes)")
    rgb = _jpeg_thumbnail(data, size, max_pixels, dct_scaling) if is_jpeg(data) else None
    if rgb is None:
        rgb = _any_thumbnail(data, size, max_pixels)
    return encode_image(rgb, "jpeg", quality)


def _jpeg_thumbnail(data: bytes, size: int, max_pixels: int, dct_scaling: bool) -> np.ndarray | None:
    """The TurboJPEG path: decode reduced, resize, then orient (cheaper on the small image).
    None hands the photo over to the ordinary decoder."""
    raw = read_jpeg(data, max_pixels, (lambda w, h: dct_scale(w, h, size)) if dct_scaling else None)
    if raw is None:
        return None
    # The target comes from the full size, so the aspect is the photo's, not the scaled one's.
    small = _resize(Image.fromarray(raw.pixels, "RGB"), target_size(raw.width, raw.height, size))
    return np.ascontiguousarray(orient(np.asarray(small), exif_orientation(data)))


def _any_thumbnail(data: bytes, size: int, max_pixels: int) -> np.ndarray:
    decoded = decode_image(data, max_pixels)  # upright already
    image = Image.fromarray(decoded.pixels, "RGB")
    if decoded.alpha is not None:  # flatten before resizing: hidden colours must not bleed in
        background = Image.new("RGB", image.size, WHITE)
        background.paste(image, mask=Image.fromarray(decoded.alpha, "L"))
        image = background
    return np.asarray(_resize(image, target_size(image.width, image.height, size)))


def _resize(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    if image.size == target:
        return image
    # reducing_gap: large non-JPEG images are box-reduced first, then Lanczos-filtered.
    return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)


def etag(object_key: str, size: int) -> str:
    """The strong ETag of a thumbnail. An object key never changes content (originals are
    named by their sha256, outputs by their job id), so the key and the size suffice."""
    return '"' + hashlib.sha256(f"{object_key}\n{size}\nv{VERSION}".encode()).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names ``tag`` (weak comparison, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = tag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == opaque for candidate in if_none_match.split(","))
