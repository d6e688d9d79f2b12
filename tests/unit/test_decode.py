"""Image decoding: pure logic on real sample photos, no server."""

from __future__ import annotations

import io
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from frontend.errors import ApiError
from frontend.imaging.decode import decode_image, orient
from tests.support import hostile_images

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
LIMIT = 50_000_000


def test_truncated_jpeg_is_a_client_error():
    data = (SAMPLES / "gdp.jpg").read_bytes()
    with pytest.raises(ApiError) as error:
        decode_image(data[:2000], LIMIT)
    assert error.value.status_code == 400 and "truncated" in error.value.detail


def test_concurrent_decodes_do_not_see_each_others_truncation():
    # Regression: a truncated upload decoding in one thread once made a sound
    # upload decoding at the same moment in another thread fail as "truncated".
    sound = (SAMPLES / "yaoming.jpg").read_bytes()
    truncated = (SAMPLES / "gdp.jpg").read_bytes()[:2000]
    wrong: list[str] = []
    start = threading.Barrier(4)

    def decode_many(data: bytes, should_fail: bool) -> None:
        start.wait()
        for _ in range(60):
            try:
                decode_image(data, LIMIT)
                failed = False
            except ApiError:
                failed = True
            if failed != should_fail:
                wrong.append("sound photo rejected" if failed else "truncated photo accepted")

    threads = [threading.Thread(target=decode_many, args=(data, fail))
               for data, fail in ((sound, False), (truncated, True)) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


# --- formats, frames, orientations, depths (tests/support/hostile_images.py builds the files) ---

def saved(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize("compression", hostile_images.TIFF_COMPRESSIONS)
def test_every_tiff_compression_decodes(compression):
    # Regression: pillow-simd built without libtiff refused LZW, Deflate and JPEG TIFFs
    # ("decoder libtiff not available"); ./face-api now checks the build for it.
    source = hostile_images.picture()
    decoded = decode_image(saved(source, "TIFF", compression=compression), LIMIT)
    assert decoded.format == "TIFF" and (decoded.width, decoded.height) == source.size
    difference = np.abs(decoded.pixels.astype(int) - np.asarray(source, dtype=int))
    assert difference.max() == 0 if compression != "jpeg" else difference.mean() < 4


def test_bilevel_group4_tiff_decodes():
    source = hostile_images.picture().convert("1")
    decoded = decode_image(saved(source, "TIFF", compression="group4"), LIMIT)
    assert np.array_equal(decoded.pixels[:, :, 0], np.asarray(source.convert("L")))


@pytest.mark.parametrize("fmt, options", [
    ("TIFF", {"compression": "tiff_lzw"}), ("TIFF", {}), ("GIF", {}), ("WEBP", {"lossless": True}),
])
def test_a_file_with_several_frames_gives_its_first(fmt, options):
    # Regression: a multi-page TIFF was refused with "'NoneType' object has no attribute 'seek'".
    # (WebP animation frames share the canvas size; the others may differ.)
    first = hostile_images.picture(seed=1)
    second = hostile_images.picture(*((96, 72) if fmt == "WEBP" else (40, 30)), seed=2)
    data = saved(first, fmt, save_all=True, append_images=[second], **options)
    decoded = decode_image(data, LIMIT)
    assert (decoded.width, decoded.height) == first.size
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=int)  # frame 0
    assert np.abs(decoded.pixels.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP"])
def test_every_exif_orientation_in_every_format_is_applied_once(fmt, orientation):
    # Regression: Pillow's TIFF plugin turns the pixels upright while loading, and the
    # decoder turned them again (an orientation-8 TIFF came out upside down).
    stored = hostile_images.picture(48, 32, seed=3)
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"JPEG": {"quality": 100, "subsampling": 0}, "WEBP": {"lossless": True}}.get(fmt, {})
    decoded = decode_image(saved(stored, fmt, exif=exif, **options), LIMIT)
    expected = orient(np.asarray(stored), orientation)
    assert decoded.pixels.shape == expected.shape
    assert np.abs(decoded.pixels.astype(int) - expected.astype(int)).mean() < 2


def test_sixteen_bit_grey_keeps_its_picture():
    # Regression: Pillow opens a 16-bit grey PNG as 32-bit "I", whose values were clipped
    # to 255: the photo came out white.
    wide = (np.arange(96 * 72, dtype=np.uint32).reshape(72, 96) * 9).astype(np.uint16)
    expected = (wide >> 8).astype(np.uint8)
    for fmt in ("PNG", "TIFF"):
        decoded = decode_image(saved(Image.fromarray(wide, "I;16"), fmt), LIMIT)
        assert np.array_equal(decoded.pixels[:, :, 1], expected), fmt


def test_sixteen_bit_rgb_png_and_tiff_decode():
    for data in (hostile_images.png_rgb16(), hostile_images.tiff_rgb16()):
        decoded = decode_image(data, LIMIT)
        assert (decoded.width, decoded.height) == (64, 48)
        assert decoded.pixels[0, -1, 0] == 255 and decoded.pixels[-1, 0, 1] == 255


def test_lab_tiff_is_converted_to_srgb():
    # Regression: converting LAB needed LittleCMS, absent from this build, and the refusal's
    # detail showed the server's site-packages path.
    red = (round(53.24 * 255 / 100), 128 + 80, 128 + 67)  # sRGB red in CIE L*a*b* (D65)
    lab = Image.merge("LAB", [Image.new("L", (8, 8), value) for value in red])
    decoded = decode_image(saved(lab, "TIFF"), LIMIT)
    assert np.abs(decoded.pixels.astype(int) - (255, 0, 0)).max() <= 3
    assert decoded.alpha is None  # its "A" band is a colour axis, not transparency


def test_cmyk_jpeg_and_tiff_decode():
    source = hostile_images.picture()
    for fmt in ("JPEG", "TIFF"):
        options = {"quality": 95} if fmt == "JPEG" else {}
        decoded = decode_image(saved(source.convert("CMYK"), fmt, **options), LIMIT)
        assert decoded.channels == 4
        assert np.abs(decoded.pixels.astype(int) - np.asarray(source, dtype=int)).mean() < 6, fmt


# --- refusals: the API's words to the client, the exception to the log ---

LEAKS = ("/work", "site-packages", ".py", "Traceback", "/usr/", "Errno")


@pytest.mark.parametrize("data, status, detail", [
    (b"\x89PNG\r\n\x1a\n" + bytes(200), 400, "the PNG image is truncated or corrupt"),
    (b"II*\x00" + bytes(100), 400, "the TIFF image is truncated or corrupt, or in a layout of the format "
                                    "that is not supported"),
    (hostile_images.tiff(8, 8, (32, 32, 32), 2, bytes(768)), 400,  # float RGB: valid, but not read
     "the TIFF image is truncated or corrupt, or in a layout of the format that is not supported"),
    (b"GIF89a" + bytes(5), 400, "the GIF image is truncated or corrupt"),
    (b"\xff\xd8\xff\xe0" + bytes(50), 400, "the JPEG image is truncated or corrupt"),
    (b"not an image at all", 415, "the upload is not an image in a supported format "
                                  "(JPEG, PNG, WebP, BMP, GIF or TIFF)"),
])
def test_a_damaged_file_is_named_by_its_signature(data, status, detail):
    with pytest.raises(ApiError) as error:
        decode_image(data, LIMIT)
    assert (error.value.status_code, error.value.detail) == (status, detail)


def test_decoder_exceptions_go_to_the_log_not_to_the_client(caplog):
    # Regression: details ended in the decoder's exception text, e.g. "(image file is truncated
    # (102 bytes not processed))" or a path into the server's site-packages.
    whole = saved(hostile_images.picture(), "GIF")
    with caplog.at_level(logging.WARNING, logger="face_api.imaging"):
        with pytest.raises(ApiError) as error:
            decode_image(whole[: len(whole) // 2], LIMIT)
    assert error.value.detail == "the GIF image is truncated or corrupt"
    record = next(r for r in caplog.records if r.name == "face_api.imaging")
    assert record.exc_info is not None and "truncated" in str(record.exc_info[1])


@pytest.mark.parametrize("item", hostile_images.corpus(), ids=lambda item: item.name)
def test_every_hostile_image_decodes_or_gets_a_clean_4xx(item):
    try:
        decoded = decode_image(item.data, 20_000_000)
    except ApiError as error:
        assert item.accepted is not True, f"refused: {error.status_code} {error.detail}"
        assert 400 <= error.status_code < 500 and item.status in (None, error.status_code)
        assert not any(leak in error.detail for leak in LEAKS), error.detail
        return
    assert item.accepted is not False, "accepted"
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.ndim == 3 and decoded.pixels.shape[2] == 3
    if item.size is not None:
        assert (decoded.width, decoded.height) == item.size
