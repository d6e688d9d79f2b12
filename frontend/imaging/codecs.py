"""Check that this Pillow-SIMD build and TurboJPEG decode every format the API documents.

pillow-simd compiles from source and silently leaves out a codec whose development
headers were missing at build time: without libtiff-dev, for instance, every LZW,
Deflate or JPEG-compressed TIFF is refused. ``./face-api`` runs this after installing
the requirements (``python -m frontend.imaging.codecs``) and rebuilds pillow-simd once
when it fails; the exit status is 1, with what is missing and how to fix it, when
something is still missing.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable

# What each check needs: the Debian package whose headers pillow-simd compiles against.
FEATURES = {
    "jpg": ("JPEG", "libjpeg62-turbo-dev"),
    "zlib": ("PNG", "zlib1g-dev"),
    "webp": ("WebP", "libwebp-dev"),
    "libtiff": ("TIFF with LZW, Deflate or JPEG compression", "libtiff-dev"),
}
TIFF_COMPRESSIONS = ("raw", "tiff_lzw", "tiff_adobe_deflate", "jpeg", "packbits")


def _round_trip(fmt: str, **options) -> Callable[[], None]:
    def check() -> None:
        from PIL import Image

        from frontend.imaging.decode import decode_image

        out = io.BytesIO()
        Image.new("RGB", (16, 8), (200, 120, 40)).save(out, fmt, **options)
        decoded = decode_image(out.getvalue(), 1_000)
        if (decoded.width, decoded.height) != (16, 8):
            raise ValueError(f"decoded as {decoded.width}x{decoded.height}")
    return check


def _turbojpeg() -> None:
    from frontend.imaging.decode import turbojpeg

    turbojpeg()  # loads libturbojpeg


def problems() -> list[str]:
    """What is missing, one readable line each; empty when every documented format works."""
    try:
        from PIL import features
    except ImportError as error:
        return [f"Pillow cannot be imported ({error})"]
    found = []
    for feature, (what, package) in FEATURES.items():
        if not features.check(feature):
            found.append(f"{what}: Pillow was built without {feature} (Debian package {package})")
    checks: dict[str, Callable[[], None]] = {
        "TurboJPEG (libturbojpeg0)": _turbojpeg,
        "JPEG": _round_trip("JPEG"), "PNG": _round_trip("PNG"), "WebP": _round_trip("WEBP"),
        "GIF": _round_trip("GIF"), "BMP": _round_trip("BMP"),
        **{f"TIFF ({name})": _round_trip("TIFF", compression=name) for name in TIFF_COMPRESSIONS},
    }
    for name, check in checks.items():
        try:
            check()
        except Exception as error:  # report every failure, whatever its kind
            found.append(f"{name}: cannot be written and read back ({type(error).__name__}: {error})")
    return found


def main() -> int:
    found = problems()
    if not found:
        return 0
    print("[codecs] this Pillow-SIMD build cannot decode every documented format:", file=sys.stderr)
    for line in found:
        print(f"[codecs]   {line}", file=sys.stderr)
    print("[codecs] install the Debian packages named above, then rebuild pillow-simd without pip's "
          "cache: .venv/bin/pip install --no-cache-dir --no-binary pillow-simd --force-reinstall "
          "--no-deps pillow-simd==<the version in requirements.txt> (./face-api does this by itself)",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
