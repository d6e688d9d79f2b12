"""Turn uploaded bytes into RGB pixels, or a clear client error.

JPEG goes through TurboJPEG (libjpeg-turbo's fastest path); every other
format through Pillow-SIMD. Both honour the EXIF orientation, so a phone photo
is analysed the way it is displayed. Size limits are checked on the header,
before a single pixel is decoded, so a decompression bomb costs nothing.
A file with several frames or pages (animated GIF or WebP, multi-page TIFF)
gives its first one.

Every refusal is an ApiError whose detail says, in the API's words, what is
wrong with the upload; the decoder's own exception (which can name files on
this server) goes to the log, never to the client.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError
from turbojpeg import TJERR_WARNING, TJPF_RGB, TurboJPEG

from frontend.errors import ApiError

log = logging.getLogger("face_api.imaging")

# Our own pixel limit (checked on the header) replaces Pillow's warning-based one.
Image.MAX_IMAGE_PIXELS = None
EXIF_ORIENTATION = 0x0112
SUPPORTED = "JPEG, PNG, WebP, BMP, GIF or TIFF"
TURBO_COLORSPACES = (0, 1, 2)  # RGB, YCbCr, grey; CMYK/YCCK go through Pillow
PILLOW_FORMATS = {"PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO", "JPEG"}
# File signatures of the supported formats: a file that starts like one of them but that
# Pillow cannot identify is a damaged file of that format (400), not an unknown format (415).
JPEG_SIGNATURE = b"\xff\xd8\xff"
SIGNATURES = ((JPEG_SIGNATURE, "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"),
              (b"GIF89a", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"),
              (b"MM\x00+", "TIFF"), (b"BM", "BMP"))
# Image.transpose methods that turn a stored image upright, by EXIF orientation (as exif_transpose).
TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
             4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
             6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


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
    size: tuple[int, int] | None = None  # (width, height) of the upload when ``pixels`` are reduced

    @property
    def height(self) -> int:
        return self.size[1] if self.size else self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.size[0] if self.size else self.pixels.shape[1]


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    """Decode ``data``; raise ApiError (400/413/415) with a readable detail when it cannot be used."""
    if not data:
        raise ApiError(400, "the uploaded image is empty (0 bytes)")
    if is_jpeg(data):
        decoded = _decode_jpeg(data, max_pixels)
        if decoded is not None:
            return decoded
    return _decode_with_pillow(data, max_pixels)


def refused(status: int, detail: str, error: BaseException | None = None) -> ApiError:
    """The client's ApiError; the decoder's exception, if any, goes to the log (with the
    request id the log formatter adds), as it can name files and modules of this server."""
    if error is not None:
        log.warning("upload refused (%s): %s", status, detail, exc_info=error)
    return ApiError(status, detail)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise ApiError(400, f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ApiError(
            413, f"the image is {width}x{height} = {width * height} pixels; "
                 f"the limit is {max_pixels} pixels (FACE_API_MAX_IMAGE_PIXELS)")


def signature_format(data: bytes) -> str | None:
    """The supported format whose file signature ``data`` starts with, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for magic, fmt in SIGNATURES if data.startswith(magic)), None)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as stored, read from the header alone (nothing is decoded);
    None when the header cannot be read (decoding will then say why)."""
    if is_jpeg(data):
        try:
            width, height, _, _ = turbojpeg().decode_header(data)
            if width > 0 and height > 0:
                return width, height
        except OSError:
            pass
    try:
        with Image.open(io.BytesIO(data)) as image:  # lazy: reads the header only
            return image.size
    except Exception:  # any failure here is reported by the decoder, precisely
        return None


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
    if width < 1 or height < 1:
        return None  # no frame header (a cut or damaged file): Pillow says which
    _check_pixels(width, height, max_pixels)
    if colorspace not in TURBO_COLORSPACES:
        return None
    factor = scaling(width, height) if scaling is not None else None
    try:
        pixels = turbo.decode(data, pixel_format=TJPF_RGB, scaling_factor=factor)
    except OSError as error:
        raise refused(400, "the JPEG is corrupt and cannot be decoded", error) from None
    except TruncatedJpeg:
        raise ApiError(400, "the JPEG is truncated (premature end of data)") from None
    return RawJpeg(pixels, width, height, colorspace)


def dct_reduction(width: int, height: int, input_size: tuple[int, int]) -> int:
    """The largest of 8, 4 and 2 by which a JPEG can be reduced while decoding and still be at
    least the size the detector scales it to (its letterbox fits the photo into ``input_size``);
    1 when it cannot. A smaller decode costs a fraction of the time and memory, for the same
    detector input."""
    to_input = min(input_size[0] / width, input_size[1] / height)
    return next((d for d in (8, 4, 2) if 1 / d >= to_input), 1)


def reduced_size(width: int, height: int, reduction: int) -> tuple[int, int]:
    """What TurboJPEG makes of a width × height JPEG reduced 1/``reduction`` (it rounds up)."""
    return -(-width // reduction), -(-height // reduction)


def detection_size(width: int, height: int, input_size: tuple[int, int]) -> tuple[int, int]:
    """The pixels decode_for_detection decodes of a width × height JPEG."""
    return reduced_size(width, height, dct_reduction(width, height, input_size))


def decode_for_detection(data: bytes, max_pixels: int, input_size: tuple[int, int]) -> DecodedImage:
    """Like decode_image, but a large JPEG is decoded reduced in the DCT (dct_reduction): the
    result's ``pixels`` are smaller and its width and height are still the upload's."""
    if is_jpeg(data):
        decoded = _decode_jpeg(data, max_pixels, lambda w, h: dct_reduction(w, h, input_size))
        if decoded is not None:
            return decoded
    return decode_image(data, max_pixels)


def is_jpeg(data: bytes) -> bool:
    return data[:3] == JPEG_SIGNATURE


def _decode_jpeg(data: bytes, max_pixels: int,
                 reduction: Callable[[int, int], int] | None = None) -> DecodedImage | None:
    """TurboJPEG's decode, oriented upright; reduced by ``reduction(width, height)`` when given
    (the result then keeps the upload's width and height in ``size``)."""
    chosen = {"by": 1}

    def scaling(width: int, height: int) -> tuple[int, int] | None:
        chosen["by"] = reduction(width, height) if reduction is not None else 1
        return (1, chosen["by"]) if chosen["by"] > 1 else None

    raw = read_jpeg(data, max_pixels, scaling)
    if raw is None:
        return None
    orientation = exif_orientation(data)
    pixels = np.ascontiguousarray(orient(raw.pixels, orientation))
    size = None
    if chosen["by"] > 1:
        size = (raw.height, raw.width) if orientation in (5, 6, 7, 8) else (raw.width, raw.height)
    return DecodedImage(pixels, 1 if raw.colorspace == 2 else 3, "JPEG", size=size)


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag (1..8), read from the header only; 1 when absent or unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            return _orientation(header)
    except Exception:  # a broken EXIF block must not reject an otherwise fine photo
        return 1


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # as above
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
    # boundary every one of them means "bad upload" (4xx), never a server error.
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        fmt = signature_format(data)
        if fmt is not None:  # Pillow's plugin gave up on a file that starts like one of ours
            # (TIFF and BMP have layouts Pillow does not read, e.g. 32-bit float RGB: say so too.)
            rare = ", or in a layout of the format that is not supported" if fmt in ("TIFF", "BMP") else ""
            raise ApiError(400, f"the {fmt} image is truncated or corrupt{rare}") from None
        raise ApiError(415, f"the upload is not an image in a supported format ({SUPPORTED})") from None
    except Exception as error:
        fmt = signature_format(data)
        raise refused(400, f"the {fmt + ' ' if fmt else ''}image is truncated or corrupt", error) from None
    if image.format not in PILLOW_FORMATS:
        raise ApiError(415, f"{image.format} images are not supported; send {SUPPORTED}")
    _check_pixels(image.width, image.height, max_pixels)
    channels = len(image.getbands())
    fmt = image.format  # a transposed copy has no format
    # Read before load(): a multi-frame file's EXIF cannot be read once its first frame is loaded.
    orientation = _orientation(image)
    try:
        image.load()  # the first frame or page
    except MemoryError:
        raise  # the server's trouble, not the upload's
    except Exception as error:  # see above: any decoder failure is the upload's fault
        raise refused(400, f"the {fmt} image is truncated or corrupt", error) from None
    # Pillow's TIFF plugin turns the pixels upright itself while loading.
    if fmt != "TIFF" and orientation in TRANSPOSE:
        image = image.transpose(TRANSPOSE[orientation])
    try:
        pixels = _to_rgb(image)
        alpha = _alpha(image)
    except MemoryError:
        raise
    except Exception as error:
        raise refused(415, f"the {fmt} image's pixel format ({image.mode}) is not supported; "
                           "send 8- or 16-bit grey, RGB, RGBA or CMYK", error) from None
    return DecodedImage(pixels, channels, fmt, alpha)


def _alpha(image: Image.Image) -> np.ndarray | None:
    """The transparency channel, if the image has one (RGBA, LA, PA, or P with a transparent colour)."""
    if "A" in image.getbands() and image.mode != "LAB":  # LAB's "A" is a colour axis
        return np.asarray(image.getchannel("A"))
    if image.mode == "P" and "transparency" in image.info:
        return np.asarray(image.convert("RGBA").getchannel("A"))
    return None


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return np.ascontiguousarray(np.repeat(_grey8(image)[:, :, None], 3, axis=2))
    if image.mode == "LAB":
        return lab_to_rgb(np.asarray(image))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"))


def _grey8(image: Image.Image) -> np.ndarray:
    """8-bit grey from 16-bit, 32-bit integer or float grey.

    16-bit keeps its top 8 bits. Pillow opens a 16-bit PNG as 32-bit "I", so a wide mode
    is scaled by the range its values use: up to 255 as they are, up to 65535 as 16-bit,
    beyond that to its maximum. Floats in 0..1 are scaled to 0..255. (In place, in the
    image's own width of number: a 20-megapixel upload must not cost gigabytes.)
    """
    if image.mode.startswith("I;16"):
        return (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
    if image.mode == "F":
        values = np.array(image, dtype=np.float32)
        np.nan_to_num(values, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if float(values.max(initial=0.0)) <= 1.0:
            values *= 255.0
        return np.clip(values, 0, 255, out=values).astype(np.uint8)
    values = np.array(image, dtype=np.int32)
    np.clip(values, 0, None, out=values)
    top = int(values.max(initial=0))
    if 255 < top <= 65535:
        values >>= 8
    elif top > 65535:
        return (values.astype(np.float32) * np.float32(255.0 / top)).astype(np.uint8)
    return values.astype(np.uint8)


# CIE L*a*b* (D65) to sRGB, for LAB-mode TIFFs (Pillow converts LAB only through
# LittleCMS, which this build does not need for anything else).
_XYZ_TO_LINEAR_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                                [-0.9692660, 1.8760108, 0.0415560],
                                [0.0556434, -0.2040259, 1.0572252]], dtype=np.float32)
_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
LAB_BAND_PIXELS = 1 << 20  # converted a band of rows at a time: bounded temporaries


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 as numpy sees a LAB image (L 0..255 for 0..100; a and b as signed bytes,
    as TIFF stores them) to sRGB."""
    height, width = lab.shape[:2]
    out = np.empty((height, width, 3), np.uint8)
    rows = max(1, LAB_BAND_PIXELS // max(1, width))
    for top in range(0, height, rows):
        out[top:top + rows] = _lab_band(lab[top:top + rows])
    return out


def _lab_band(lab: np.ndarray) -> np.ndarray:
    light = lab[..., 0].astype(np.float32) * np.float32(100.0 / 255.0)
    a, b = (lab[..., channel].view(np.int8).astype(np.float32) for channel in (1, 2))
    fy = (light + 16.0) / 116.0
    f = np.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    xyz = np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _D65
    linear = np.clip(xyz @ _XYZ_TO_LINEAR_SRGB.T, 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(srgb * 255.0).astype(np.uint8)
