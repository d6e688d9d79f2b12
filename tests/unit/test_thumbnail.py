"""Thumbnails (frontend/imaging/thumbnail.py) on the real sample photos, and the archive's
object reads behind the thumbnail endpoints, on real stores."""

from __future__ import annotations

import base64
import io
import socket
from pathlib import Path

import databases
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from frontend.app import create_app
from frontend.errors import ApiError
from frontend.imaging import thumbnail
from frontend.imaging.thumbnail import dct_scale, etag, etag_matches, make_thumbnail, target_size
from frontend.services.archive import Archive
from frontend.settings import Settings
from frontend.storage.local import LocalObjectStore
from frontend.storage.s3 import S3ObjectStore
from frontend.storage.signing import UrlSigner

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
LIMIT = 50_000_000
PHOTOS = {"gdp.jpg": (500, 665), "yaoming.jpg": None, "players.jpg": None}


def open_jpeg(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and image.mode == "RGB"
    image.load()
    return image


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(open_jpeg(data), dtype=np.int16)


def same_picture(a: bytes, b: bytes) -> float:
    """Mean difference of two thumbnails at a quarter of their size (JPEG noise averaged out)."""
    first, second = open_jpeg(a), open_jpeg(b)
    assert first.size == second.size
    quarter = (first.width // 4, first.height // 4)
    return float(np.abs(np.asarray(first.resize(quarter, Image.Resampling.BOX), dtype=np.int16)
                        - np.asarray(second.resize(quarter, Image.Resampling.BOX), dtype=np.int16)).mean())


@pytest.mark.parametrize("name", sorted(PHOTOS))
@pytest.mark.parametrize("size", [32, 100, 320, 480])
def test_the_long_side_is_the_size_and_the_aspect_is_kept(name, size):
    data = (SAMPLES / name).read_bytes()
    with Image.open(io.BytesIO(data)) as original:
        width, height = original.size
    thumb = open_jpeg(make_thumbnail(data, size, LIMIT))
    long_side, short_side = max(width, height), min(width, height)
    expected = min(size, long_side)  # yaoming.jpg is 233x287: never upscaled
    assert max(thumb.size) == expected
    assert abs(min(thumb.size) - short_side * expected / long_side) <= 1
    assert (thumb.width >= thumb.height) == (width >= height)


def test_the_samples_are_what_the_tests_assume():
    with Image.open(SAMPLES / "gdp.jpg") as gdp:
        assert gdp.size == PHOTOS["gdp.jpg"]


def test_no_upscaling():
    gdp = (SAMPLES / "gdp.jpg").read_bytes()
    assert open_jpeg(make_thumbnail(gdp, 1024, LIMIT)).size == (500, 665)
    small = encoded(Image.new("RGB", (40, 30), (10, 200, 30)), "PNG")
    thumb = open_jpeg(make_thumbnail(small, 320, LIMIT))
    assert thumb.size == (40, 30)
    assert np.abs(np.asarray(thumb, dtype=np.int16) - (10, 200, 30)).max() <= 6


@pytest.mark.parametrize("width, height, size, factor", [
    (4000, 3000, 320, (1, 8)),  # 500 >= 320
    (4000, 3000, 1024, (1, 2)),  # 1/4 would be 1000 < 1024
    (4000, 3000, 1000, (1, 4)),  # exactly the size is enough
    (500, 665, 320, (1, 2)),  # 333
    (500, 665, 100, (1, 4)),  # 167; 1/8 would be 84
    (600, 400, 320, None),  # 300: decode whole
    (100, 80, 320, None),  # smaller than the size
    (3001, 17, 375, (1, 8)),  # rounded up, as libjpeg-turbo does: 375.125 -> 376
])
def test_the_strongest_dct_reduction_that_keeps_the_size(width, height, size, factor):
    assert dct_scale(width, height, size) == factor


def test_target_sizes():
    assert target_size(4000, 3000, 320) == (320, 240)
    assert target_size(3000, 4000, 320) == (240, 320)
    assert target_size(5000, 10, 100) == (100, 1)  # never a zero side
    assert target_size(300, 200, 320) == (300, 200)


def test_dct_scaling_gives_the_same_picture_as_a_whole_decode():
    data = (SAMPLES / "players.jpg").read_bytes()  # 1237x800: decoded at 1/4 for 160, 1/2 for 320
    for size in (160, 320):
        assert same_picture(make_thumbnail(data, size, LIMIT),
                            make_thumbnail(data, size, LIMIT, dct_scaling=False)) < 4.0


def big_photo(width: int = 4000, height: int = 3000) -> bytes:
    """A large, detailed JPEG: a sample photo enlarged, with noise."""
    photo = Image.open(SAMPLES / "players.jpg").convert("RGB")
    photo = photo.resize((width, height), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(7).integers(-10, 10, (height, width, 3))
    noisy = np.clip(np.asarray(photo, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return encoded(Image.fromarray(noisy), "JPEG", quality=90)


def test_a_large_photo_through_the_dct_path():
    data = big_photo()
    fast = make_thumbnail(data, 320, LIMIT)  # decoded at 1/8
    assert open_jpeg(fast).size == (320, 240)
    assert same_picture(fast, make_thumbnail(data, 320, LIMIT, dct_scaling=False)) < 4.0


def two_colour(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", (width, height), (230, 20, 20))
    image.paste((20, 20, 230), (width // 2, 0, width, height))
    return image


@pytest.mark.parametrize("dct_scaling", [True, False])
def test_the_exif_orientation_is_applied(dct_scaling):
    # Stored landscape with orientation 6 ("rotate 90° clockwise to display"): shown portrait,
    # the stored left (red) half on top.
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(two_colour(1200, 600), "JPEG", quality=90, exif=exif)
    thumb = pixels(make_thumbnail(data, 320, LIMIT, dct_scaling=dct_scaling))
    assert thumb.shape == (320, 160, 3)
    top, bottom = thumb[:140].reshape(-1, 3).mean(0), thumb[180:].reshape(-1, 3).mean(0)
    assert top[0] > 180 and top[2] < 60, top
    assert bottom[2] > 180 and bottom[0] < 60, bottom


def test_the_exif_orientation_of_other_formats_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90° counter-clockwise: the stored left half ends at the bottom
    data = encoded(two_colour(600, 300), "PNG", exif=exif)
    thumb = pixels(make_thumbnail(data, 200, LIMIT))
    assert thumb.shape == (200, 100, 3)
    assert thumb[180:].reshape(-1, 3).mean(0)[0] > 180


def test_transparency_is_flattened_onto_white():
    image = Image.new("RGBA", (400, 200), (0, 0, 0, 0))  # invisible black on the left half
    image.paste((255, 0, 0, 128), (200, 0, 400, 200))  # half-transparent red on the right half
    thumb = pixels(make_thumbnail(encoded(image, "PNG"), 100, LIMIT))
    assert thumb.shape == (50, 100, 3)
    left, right = thumb[:, :40].reshape(-1, 3).mean(0), thumb[:, 60:].reshape(-1, 3).mean(0)
    assert np.all(left > 245), left  # white, not the hidden black
    assert right[0] > 240 and 110 < right[1] < 145 and 110 < right[2] < 145, right  # pink


def test_a_palette_with_a_transparent_colour_is_flattened_too():
    image = Image.new("P", (64, 64), 0)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (32, 0, 64, 64))
    thumb = pixels(make_thumbnail(encoded(image, "GIF", transparency=0), 64, LIMIT))
    assert np.all(thumb[:, :24] > 245) and thumb[:, 40:, 2].mean() > 230


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grey_and_cmyk_jpegs(mode):
    data = encoded(Image.new(mode, (640, 480), 128 if mode == "L" else (0, 0, 0, 0)), "JPEG")
    assert open_jpeg(make_thumbnail(data, 64, LIMIT)).size == (64, 48)


def test_the_output_is_a_plain_jpeg_without_the_exif():
    exif = Image.Exif()
    exif[0x0112] = 6
    thumb = open_jpeg(make_thumbnail(encoded(two_colour(300, 200), "JPEG", exif=exif), 100, LIMIT))
    assert thumb.getexif().get(0x0112) is None  # already upright: no orientation to apply twice


@pytest.mark.parametrize("data, status, words", [
    ((SAMPLES / "gdp.jpg").read_bytes()[:2000], 400, "truncated"),
    (b"\xff\xd8\xff" + b"\x00" * 500, 400, ""),
    (encoded(Image.new("RGB", (300, 300)), "PNG")[:200], 400, "truncated or corrupt"),
    (b"", 400, "empty"),
    (b"this is not an image at all", 415, "not an image"),
])
def test_damaged_input_is_the_decoders_client_error(data, status, words):
    with pytest.raises(ApiError) as error:
        make_thumbnail(data, 320, LIMIT)
    assert error.value.status_code == status and words in error.value.detail


@pytest.mark.parametrize("name, fmt", [("gdp.jpg", "JPEG"), ("gdp.jpg", "PNG")])
def test_the_pixel_limit_holds(name, fmt):
    data = encoded(Image.open(SAMPLES / name).convert("RGB"), fmt)
    with pytest.raises(ApiError) as error:
        make_thumbnail(data, 320, 500 * 665 - 1)
    assert error.value.status_code == 413 and "FACE_API_MAX_IMAGE_PIXELS" in error.value.detail
    assert make_thumbnail(data, 320, 500 * 665)  # exactly at the limit is fine


def test_sizes_outside_the_range_are_a_programming_error():
    data = (SAMPLES / "yaoming.jpg").read_bytes()
    for size in (thumbnail.MIN_SIZE - 1, thumbnail.MAX_SIZE + 1):
        with pytest.raises(ValueError):
            make_thumbnail(data, size, LIMIT)


def test_etags_are_per_object_and_size():
    tag = etag("originals/ab/ab12.jpg", 320)
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 34
    assert tag == etag("originals/ab/ab12.jpg", 320)
    assert len({tag, etag("originals/ab/ab12.jpg", 321), etag("processed/j.jpg", 320)}) == 3


def test_if_none_match():
    tag = etag("processed/j.jpg", 320)
    assert etag_matches(tag, tag)
    assert etag_matches(f'"other", W/{tag}', tag)  # a list, and weak comparison
    assert etag_matches(" * ", tag)
    assert not etag_matches(None, tag) and not etag_matches("", tag)
    assert not etag_matches('"other"', tag) and not etag_matches(tag.strip('"'), tag)


# --- the archive's reads of stored objects, on real stores ---

def archive_over(store) -> Archive:
    # Reading objects never touches the database: an unconnected handle is enough.
    return Archive(databases.Database("sqlite:///unused.sqlite3"), store)


async def test_an_object_missing_from_the_store_is_404(tmp_path):
    store = LocalObjectStore(tmp_path / "objects", UrlSigner(b"k" * 32, 900))
    await store.start()
    await store.put("processed/j.jpg", b"bytes", "image/jpeg")
    archive = archive_over(store)
    assert await archive.read_object("processed/j.jpg", "processed image") == b"bytes"
    with pytest.raises(ApiError) as error:
        await archive.read_object("originals/ab/ab12.jpg", "original image")
    assert (error.value.status_code, error.value.detail) == (
        404, "the original image is no longer in object storage")


async def test_a_store_that_is_down_is_503():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = S3ObjectStore(Settings(storage_backend="s3", s3_endpoint=f"http://127.0.0.1:{port}",
                                   s3_access_key_id="key", s3_secret_access_key="secret"))
    await store.start()  # S3 unreachable at start is not fatal
    try:
        with pytest.raises(ApiError) as error:
            await archive_over(store).read_object("originals/ab/ab12.jpg", "original image")
    finally:
        await store.close()
    assert error.value.status_code == 503 and error.value.headers == {"Retry-After": "5"}


# --- the routes, without the stack ---

@pytest.fixture(scope="module")
def spec_app():
    return create_app(Settings(database_enabled=False, api_key_enabled=False, storage_enabled=False,
                               admin_password="a-long-admin-password"))


def test_with_storage_off_the_thumbnails_are_501_after_the_guard(spec_app):
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:a-long-admin-password").decode()}
    with TestClient(spec_app) as http:
        for path in ("/images/x/thumbnail", "/jobs/x/thumbnail"):
            assert http.get("/api/v1/admin" + path).status_code == 401
            off = http.get("/api/v1/admin" + path, headers=auth)
            assert off.status_code == 501 and "FACE_API_STORAGE_ENABLED=true" in off.json()["detail"]


def test_the_thumbnails_are_documented(spec_app):
    paths = spec_app.openapi()["paths"]
    for path in ("/api/v1/admin/images/{image_id}/thumbnail", "/api/v1/admin/jobs/{job_id}/thumbnail"):
        operation = paths[path]["get"]
        assert set(operation["responses"]["200"]["content"]) == {"image/jpeg"}
        assert {"304", "401", "404", "422", "501", "503"} <= set(operation["responses"])
        size = {p["name"]: p for p in operation["parameters"]}["size"]["schema"]
        assert (size["default"], size["minimum"], size["maximum"]) == (320, 32, 1024)
        assert {p["name"] for p in operation["parameters"]} >= {"size", "if-none-match"}
