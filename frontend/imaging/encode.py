"""Encode result pixels as JPEG, PNG or WebP for the /api/v1/mask response.

JPEG goes through TurboJPEG (several times faster than Pillow at the same
quality); PNG and WebP through Pillow-SIMD. Transparency from the upload is
kept where the format can carry it (PNG, WebP) and dropped for JPEG.

JPEG and WebP cannot hold every size: libjpeg-turbo stops at 65,500 pixels on a
side and WebP at 16,383. ``check_output_size`` refuses such a photo (422) from
its header, before any decoding or inference is spent on it; PNG has no such
limit.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from turbojpeg import TJPF_RGB, TJSAMP_420

from frontend.errors import ApiError
from frontend.imaging.decode import turbojpeg

MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
# The longest side each output format can encode (None: no limit below the pixel limit).
MAX_SIDE: dict[str, int | None] = {"jpeg": 65_500, "png": None, "webp": 16_383}
NAMES = {"jpeg": "JPEG", "png": "PNG", "webp": "WebP"}
# zlib level 3 costs about a third of the default level 6's time for a few % more bytes.
PNG_COMPRESS_LEVEL = 3


def check_output_size(width: int, height: int, fmt: str) -> None:
    """422 when a ``width``×``height`` image cannot be encoded as ``fmt``, naming the limit
    and the formats that can hold it."""
    limit = MAX_SIDE[fmt]
    longest = max(width, height)
    if limit is None or longest <= limit:
        return
    fits = [name for name, side in MAX_SIDE.items() if side is None or longest <= side]
    raise ApiError(422, f"the image is {width}x{height} pixels; {NAMES[fmt]} output is limited to "
                        f"{limit} pixels on a side: ask for format={' or format='.join(fits)}, "
                        "or send a smaller image")


def encode_image(rgb: np.ndarray, fmt: str, quality: int, alpha: np.ndarray | None = None) -> bytes:
    """``rgb`` (H×W×3 uint8) as ``fmt`` bytes; ``quality`` 1..100 applies to JPEG and WebP.
    An image the format cannot hold is ApiError 422 (see check_output_size)."""
    check_output_size(rgb.shape[1], rgb.shape[0], fmt)
    if fmt == "jpeg":
        # 4:2:0 chroma, as Pillow and browsers' encoders do by default.
        return turbojpeg().encode(np.ascontiguousarray(rgb), quality=quality, pixel_format=TJPF_RGB,
                                   jpeg_subsample=TJSAMP_420)
    image = Image.fromarray(rgb, "RGB")
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha, "L"))
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif fmt == "webp":
        image.save(out, "WEBP", quality=quality, method=4)
    else:
        raise ValueError(f"unsupported output format {fmt!r}")
    return out.getvalue()
