"""A corpus of hostile and unusual images, built in memory (no binary files in the repository).

Every item is something a client may send: decompression bombs that declare a huge size
in a small file, extreme aspect ratios, every TIFF compression, 16-bit and unusual colour
modes, every EXIF orientation, multi-frame files, truncated files of every format, and
bytes that are no image at all. The service must answer each with a 200 or a clear 4xx,
never a 500 and never a detail that shows its internals.

The headers that Pillow will not write (a bomb's size, 16-bit RGB) are written here byte
by byte, after the PNG, GIF, TIFF, JPEG and WebP specifications.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112
# What a bomb declares: far over any sane FACE_API_MAX_IMAGE_PIXELS, in a few hundred bytes.
BOMB_SIDE = 60_000
TIFF_COMPRESSIONS = ("raw", "tiff_lzw", "tiff_adobe_deflate", "jpeg", "packbits")


@dataclass(frozen=True)
class Hostile:
    name: str
    data: bytes
    # True: a usable image (detection answers 200); False: refused with a 4xx; None: either.
    accepted: bool | None
    # The exact status /api/v1/detect answers, where it is known (413 for bombs, ...).
    status: int | None = None
    size: tuple[int, int] | None = None  # (width, height) as displayed, for accepted images


def saved(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def picture(width: int = 96, height: int = 72, seed: int = 0) -> Image.Image:
    """A small RGB picture with gradients, edges and some noise (so codecs have work to do)."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    rgb = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                    ((x // 8 + y // 8) % 2) * 200 + rng.integers(0, 40, (height, width))], axis=2)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


# --- headers written by hand ---

def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG whose IHDR says ``width``×``height``, with ``rows`` (filter bytes included) as IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))


def png_rgb16(width: int = 64, height: int = 48) -> bytes:
    """16 bits per channel RGB (Pillow only writes 16-bit grey)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 65535 // (width - 1), y * 65535 // (height - 1), (x * y) % 65536], axis=2)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb)
    return png(width, height, 16, 2, rows)


def gif(width: int, height: int) -> bytes:
    """A GIF of ``width``×``height`` whose one frame is an empty LZW stream (clear, end)."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    lzw = b"\x02" + b"\x01\x2c" + b"\x00"  # minimum code size 2; codes 4 (clear) and 5 (end) in one byte
    return b"GIF89a" + screen + descriptor + lzw + b";"


def tiff(width: int, height: int, bits: tuple[int, ...], photometric: int, strip: bytes,
         extra: tuple[tuple[int, int, tuple[int, ...]], ...] = ()) -> bytes:
    """A little-endian, uncompressed, single-strip TIFF; ``extra`` = (tag, type, values) entries."""
    short, long_ = 3, 4
    entries = sorted([
        (256, long_, (width,)), (257, long_, (height,)), (258, short, bits), (259, short, (1,)),
        (262, short, (photometric,)), (273, long_, (0,)), (277, short, (len(bits),)),
        (278, long_, (height,)), (279, long_, (len(strip),)), *extra,
    ])
    ifd_size = 2 + 12 * len(entries) + 4
    heap_at = 8 + ifd_size
    heap = b""
    packed = []
    for tag, kind, values in entries:
        fmt = "<" + ("H" if kind == short else "I") * len(values)
        raw = struct.pack(fmt, *values)
        if len(raw) <= 4:
            packed.append(struct.pack("<HHI", tag, kind, len(values)) + raw.ljust(4, b"\x00"))
        else:
            packed.append(struct.pack("<HHII", tag, kind, len(values), heap_at + len(heap)))
            heap += raw
    strip_at = heap_at + len(heap)
    packed = [entry if entry[:2] != struct.pack("<H", 273) else
              struct.pack("<HHII", 273, long_, 1, strip_at) for entry in packed]
    ifd = struct.pack("<H", len(entries)) + b"".join(packed) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + heap + strip


def tiff_rgb16(width: int = 64, height: int = 48) -> bytes:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 65535 // (width - 1), y * 65535 // (height - 1), (x * y) % 65536], axis=2)
    return tiff(width, height, (16, 16, 16), 2, rgb.astype("<u2").tobytes())


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small baseline JPEG whose SOF0 is patched to declare ``width``×``height``."""
    data = bytearray(saved(picture(16, 16), "JPEG", quality=80))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_declaring(width: int, height: int) -> bytes:
    """A small lossless WebP whose VP8L header is patched to declare ``width``×``height``."""
    data = bytearray(saved(picture(16, 16), "WEBP", lossless=True))
    vp8l = data.index(b"VP8L") + 8  # the chunk's payload: 0x2f, then 14+14 bits of size - 1
    assert data[vp8l] == 0x2F
    bits = struct.unpack("<I", data[vp8l + 1:vp8l + 5])[0]
    bits = (bits & ~0x0FFFFFFF) | (width - 1) | ((height - 1) << 14)
    data[vp8l + 1:vp8l + 5] = struct.pack("<I", bits)
    return bytes(data)


# --- the corpus ---

def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return exif


def _upright(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation >= 5 else (width, height)


def _truncations(name: str, data: bytes) -> list[Hostile]:
    cuts = {"head": 20, "half": len(data) // 2, "tail": len(data) - 12}
    return [Hostile(f"truncated_{name}_{where}", data[:at], None) for where, at in cuts.items()]


@functools.cache
def corpus() -> tuple[Hostile, ...]:
    """The whole corpus (built once per process: about 70 items, 1 MB, a second)."""
    base = picture()
    width, height = base.size
    items: list[Hostile] = []
    add = items.append

    # Bombs: a huge size declared in a header, a small body.
    add(Hostile("bomb_png_header", png(BOMB_SIDE, BOMB_SIDE, 8, 0, b"\x00" * 1001), False, 413))
    add(Hostile("bomb_gif_header", gif(65535, 65535), False, 413))
    add(Hostile("bomb_tiff_header", tiff(BOMB_SIDE, BOMB_SIDE, (8,), 1, b"\x80" * 512), False, 413))
    add(Hostile("bomb_jpeg_header", jpeg_declaring(65500, 65500), False, 413))
    add(Hostile("bomb_webp_header", webp_declaring(16384, 16384), False, 413))

    # Extreme aspect ratios, each well within the pixel limit.
    for w, h in ((70000, 1), (1, 70000), (17000, 64)):
        add(Hostile(f"extreme_{w}x{h}_png", saved(Image.new("RGB", (w, h), (90, 120, 150)), "PNG"),
                    True, 200, (w, h)))

    # Every TIFF compression, and CCITT group 4 for bilevel pictures.
    for compression in TIFF_COMPRESSIONS:
        add(Hostile(f"tiff_{compression}", saved(base, "TIFF", compression=compression), True, 200,
                    base.size))
    add(Hostile("tiff_group4_bilevel", saved(base.convert("1"), "TIFF", compression="group4"), True, 200,
                base.size))

    # Depths and colour modes.
    grey16 = Image.fromarray((np.arange(width * height, dtype=np.uint16).reshape(height, width) * 9),
                             "I;16")
    add(Hostile("png_grey16", saved(grey16, "PNG"), True, 200, base.size))
    add(Hostile("tiff_grey16", saved(grey16, "TIFF"), True, 200, base.size))
    add(Hostile("png_rgb16", png_rgb16(), True, 200, (64, 48)))
    add(Hostile("tiff_rgb16", tiff_rgb16(), True, 200, (64, 48)))
    add(Hostile("tiff_int32", saved(Image.fromarray(np.asarray(grey16, np.int32), "I"), "TIFF"),
                True, 200, base.size))
    add(Hostile("tiff_float32", saved(Image.fromarray(np.asarray(grey16, np.float32) / 65535, "F"), "TIFF"),
                True, 200, base.size))
    add(Hostile("jpeg_cmyk", saved(base.convert("CMYK"), "JPEG", quality=90), True, 200, base.size))
    add(Hostile("tiff_cmyk", saved(base.convert("CMYK"), "TIFF"), True, 200, base.size))
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    add(Hostile("png_palette_transparency", saved(palette, "PNG", transparency=0), True, 200, base.size))
    add(Hostile("png_grey_alpha", saved(base.convert("LA"), "PNG"), True, 200, base.size))
    lab = Image.merge("LAB", [base.convert("L"), Image.new("L", base.size, 150),
                              Image.new("L", base.size, 100)])
    add(Hostile("tiff_lab", saved(lab, "TIFF"), True, 200, base.size))
    add(Hostile("tiff_ycbcr", saved(base.convert("YCbCr"), "TIFF", compression="jpeg"), True, 200,
                base.size))

    # EXIF orientations 1-8 (JPEG), and the tag in a PNG and a TIFF.
    stored = picture(48, 32, seed=1)
    for orientation in range(1, 9):
        add(Hostile(f"jpeg_exif_orientation_{orientation}",
                    saved(stored, "JPEG", quality=90, exif=_exif(orientation)), True, 200,
                    _upright(48, 32, orientation)))
    add(Hostile("png_exif_orientation_6", saved(stored, "PNG", exif=_exif(6)), True, 200, (32, 48)))
    add(Hostile("tiff_exif_orientation_8", saved(stored, "TIFF", exif=_exif(8)), True, 200, (32, 48)))

    # Several frames: the first one is used.
    second = picture(seed=2)
    add(Hostile("gif_animated", saved(base, "GIF", save_all=True, append_images=[second]), True, 200,
                base.size))
    add(Hostile("webp_animated", saved(base, "WEBP", save_all=True, append_images=[second], lossless=True),
                True, 200, base.size))
    add(Hostile("tiff_multipage", saved(base, "TIFF", save_all=True, append_images=[picture(40, 30)],
                                        compression="tiff_lzw"), True, 200, base.size))

    # Truncated files of every format, cut in the header, in the middle and near the end.
    for name, fmt, options in (("jpeg", "JPEG", {"quality": 90}), ("png", "PNG", {}), ("gif", "GIF", {}),
                               ("webp", "WEBP", {"quality": 80}), ("bmp", "BMP", {}),
                               ("tiff", "TIFF", {"compression": "tiff_adobe_deflate"})):
        items.extend(_truncations(name, saved(base, fmt, **options)))

    # Degenerate sizes and bytes that are no image.
    add(Hostile("png_1x1", saved(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"), True, 200, (1, 1)))
    add(Hostile("png_zero_width", png(0, 16, 8, 0, b"\x00" * 16), False))
    add(Hostile("empty", b"", False, 400))
    noise = random.Random(7).randbytes(4096)
    add(Hostile("random_bytes", noise, False, 415))
    for name, magic in (("jpeg", b"\xff\xd8\xff\xe0"), ("png", b"\x89PNG\r\n\x1a\n"), ("gif", b"GIF89a"),
                        ("tiff", b"II*\x00")):
        add(Hostile(f"random_after_{name}_magic", magic + noise[:1024], False))
    return tuple(items)


def by_name() -> dict[str, Hostile]:
    return {item.name: item for item in corpus()}
