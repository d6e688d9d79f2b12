"""Turn uploaded bytes into RGB pixels, or a clear client error.

JPEG goes through TurboJPEG (libjpeg-turbo's fastest path); every other
format through Pillow-SIMD. Both honour the EXIF orientation, so a phone photo
is analysed the way it is displayed. Size limits are checked on the header,
before a single pixel is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from turbojpeg import TJERR_WARNING, TJPF_RGB, TurboJPEG

from frontend.errors import ApiError

# Our own pixel limit (checked on the header) replaces Pillow's warning-based one.
Image.MAX_IMAGE_PIXELS = None
EXIF_ORIENTATION = 0x0112
SUPPORTED = "JPEG, PNG, WebP, BMP, GIF or TIFF"
TURBO_COLORSPACES = (0, 1, 2)  # RGB, YCbCr, grey; CMYK/YCCK go through Pillow
PILLOW_FORMATS = {"PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO", "JPEG"}

class TruncatedJpeg(Exception):
    """libjpeg-turbo stopped at a premature end of data."""


class _ThreadSafeTurboJPEG(TurboJPEG):
    """TurboJPEG that raises on truncation instead of calling warnings.warn.

    PyTurboJPEG reports a truncated JPEG as a UserWarning and returns the partly
    decoded pixels. Catching that warning needs warnings.catch_warnings, which
    swaps process-wide state and is not thread-safe: with two uploads decoding
    at once in the thread pool, one upload's warning was caught by the other's
    call. Overriding the (name-mangled) reporter keeps the outcome in the
    decoding thread. pyturbojpeg is pinned below 2; tests/unit/test_decode.py
    fails if this hook stops being called.
    """

    def _TurboJPEG__report_error(self, handle) -> None:
        message = self._TurboJPEG__get_error_string(handle)
        get_code = self._TurboJPEG__get_error_code
        if get_code is not None and get_code(handle) == TJERR_WARNING:
            if "premature end" in message.lower():
                raise TruncatedJpeg(message)
            return  # other warnings ("extraneous bytes before marker"...) are common and harmless
        raise OSError(message)


_turbo: TurboJPEG | None = None


def turbojpeg() -> TurboJPEG:
    global _turbo
    if _turbo is None:
        _turbo = _ThreadSafeTurboJPEG()
    return _turbo


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # H×W×3 uint8, RGB, upright
    channels: int  # channels in the upload (1 grey, 2 grey+alpha, 3 colour, 4 with alpha/CMYK)
    format: str  # "JPEG", "PNG", ...
    alpha: np.ndarray | None = None  # H×W uint8 when the upload has transparency (kept by /mask)

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    """Decode ``data``; raise ApiError (400/413/415) with a readable detail when it cannot be used."""
    if not data:
        raise ApiError(400, "the uploaded image is empty (0 bytes)")
    if data[:3] == b"\xff\xd8\xff":
        decoded = _decode_jpeg(data, max_pixels)
        if decoded is not None:
            return decoded
    return _decode_with_pillow(data, max_pixels)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise ApiError(400, f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ApiError(
            413, f"the image is {width}x{height} = {width * height} pixels; "
                 f"the limit is {max_pixels} pixels (FACE_API_MAX_IMAGE_PIXELS)")


@dataclass(frozen=True)
class RawJpeg:
    pixels: np.ndarray  # RGB as stored: not yet turned by the EXIF orientation
    width: int  # of the full-size image (the header), whatever the scaling
    height: int
    colorspace: int


def read_jpeg(data: bytes, max_pixels: int,
              scaling: Callable[[int, int], tuple[int, int] | None] | None = None) -> RawJpeg | None:
    """TurboJPEG's fast path: the pixel limit checked on the header, then the decode, reduced
    in the DCT by ``scaling(width, height)`` when given. None hands the photo over to
    Pillow (an unreadable header, CMYK and other rare JPEGs)."""
    turbo = turbojpeg()
    try:
        width, height, _, colorspace = turbo.decode_header(data)
    except OSError:
        return None  # let Pillow produce the precise error
    _check_pixels(width, height, max_pixels)
    if colorspace not in TURBO_COLORSPACES:
        return None
    factor = scaling(width, height) if scaling is not None else None
    try:
        pixels = turbo.decode(data, pixel_format=TJPF_RGB, scaling_factor=factor)
    except OSError as error:
        raise ApiError(400, f"the JPEG is corrupt and cannot be decoded ({error})") from None
    except TruncatedJpeg:
        raise ApiError(400, "the JPEG is truncated (premature end of data)") from None
    return RawJpeg(pixels, width, height, colorspace)


def _decode_jpeg(data: bytes, max_pixels: int) -> DecodedImage | None:
    raw = read_jpeg(data, max_pixels)
    if raw is None:
        return None
    pixels = orient(raw.pixels, exif_orientation(data))
    return DecodedImage(np.ascontiguousarray(pixels), 1 if raw.colorspace == 2 else 3, "JPEG")


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag (1..8), read from the header only; 1 when absent or unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            value = header.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block must not reject an otherwise fine photo
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to H×W×C pixels, as Pillow's exif_transpose does."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(pixels, -1)
    if orientation == 7:
        return pixels.transpose(1, 0, 2)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(pixels, 1)
    return pixels


def _decode_with_pillow(data: bytes, max_pixels: int) -> DecodedImage:
    # Pillow's format plugins raise many exception types on damaged data; at this
    # boundary every one of them means "bad upload" (400), never a server error.
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ApiError(415, f"the upload is not an image in a supported format ({SUPPORTED})") from None
    except Exception as error:
        raise ApiError(400, f"the image is truncated or corrupt ({error})") from None
    if image.format not in PILLOW_FORMATS:
        raise ApiError(415, f"{image.format} images are not supported; send {SUPPORTED}")
    _check_pixels(image.width, image.height, max_pixels)
    channels = len(image.getbands())
    fmt = image.format  # exif_transpose returns a copy without it
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        pixels = _to_rgb(image)
        alpha = _alpha(image)
    except Exception as error:  # see above: any decoder failure is the upload's fault
        raise ApiError(400, f"the {fmt} image is truncated or corrupt ({error})") from None
    return DecodedImage(pixels, channels, fmt, alpha)


def _alpha(image: Image.Image) -> np.ndarray | None:
    """The transparency channel, if the image has one (RGBA, LA, PA, or P with a transparent colour)."""
    if "A" in image.getbands():
        return np.asarray(image.getchannel("A"))
    if image.mode == "P" and "transparency" in image.info:
        return np.asarray(image.convert("RGBA").getchannel("A"))
    return None


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grey: keep the top 8 bits
        wide = np.asarray(image, dtype=np.uint32)
        top = (wide >> 8) if image.mode.startswith("I;16") else np.clip(wide, 0, 255)
        return np.ascontiguousarray(np.repeat(top.astype(np.uint8)[:, :, None], 3, axis=2))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"))
