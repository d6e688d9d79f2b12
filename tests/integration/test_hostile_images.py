"""Hostile and unusual images through every image endpoint of the real stack.

The corpus (tests/support/hostile_images.py) holds bombs by header, extreme aspect ratios,
every TIFF compression, 16-bit and unusual colour modes, EXIF orientations, several
frames, truncated files and junk. Each must get a 200 or a 4xx whose JSON detail speaks
the API's words: never a 500, never a path or a traceback of the server.
"""

from __future__ import annotations

import base64
import io
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import PHOTO_FACES, detect, mask
from tests.support import hostile_images

LEAKS = ("/work", "site-packages", ".py", "Traceback")
CORPUS = hostile_images.corpus()
# The recognition endpoints and the admin preview take a sample of the corpus (one item of
# each kind) to keep the run short; detect and mask take all of it.
SAMPLE = ("bomb_png_header", "bomb_jpeg_header", "bomb_tiff_header", "extreme_70000x1_png",
          "extreme_1x70000_png", "extreme_17000x64_png", "tiff_tiff_lzw", "tiff_jpeg", "tiff_lab",
          "tiff_multipage", "png_grey16", "tiff_rgb16", "jpeg_cmyk", "png_palette_transparency",
          "jpeg_exif_orientation_6", "webp_animated", "truncated_jpeg_half", "truncated_png_head",
          "truncated_tiff_tail", "truncated_webp_half", "png_zero_width", "empty", "random_bytes",
          "random_after_jpeg_magic")


def clean_error(response, where: str) -> None:
    """A 4xx with a JSON detail (a sentence, or the /v1 contract's list) that shows no internals."""
    assert 400 <= response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    body = response.json()
    detail = body["detail"]
    if isinstance(detail, list):
        assert response.status_code == 422 and where.startswith("/v1"), f"{where}: {body}"
        texts = [str(problem["msg"]) for problem in detail]
    else:
        assert isinstance(detail, str) and detail, f"{where}: {body}"
        texts = [detail]
    for text in texts:
        assert not any(leak in text for leak in LEAKS), f"{where}: the detail shows internals: {text}"


def check(response, item: hostile_images.Hostile, where: str, output: str | None = None) -> None:
    """``output``: the format a mask endpoint answers in; a usable image may then be refused
    (422) only when it is too large on a side for that format."""
    if response.status_code == 200:
        assert item.accepted is not False, f"{where}: accepted {item.name}"
        return
    clean_error(response, where)
    if item.accepted:
        too_large = output is not None and max(item.size) > {"jpeg": 65_500, "webp": 16_383}[output]
        assert too_large and response.status_code == 422, \
            f"{where}: refused {item.name}: {response.status_code} {response.text[:300]}"


def test_every_hostile_image_through_every_image_endpoint(client, admin):
    started = time.monotonic()
    sample = hostile_images.by_name()
    for name in SAMPLE:
        assert name in sample, name
    for item in CORPUS:
        response = detect(client, item.data, f"{item.name}.bin")
        check(response, item, f"/api/v1/detect {item.name}")
        if item.status is not None:
            assert response.status_code == item.status, f"{item.name}: {response.text[:300]}"
        if response.status_code == 200 and item.size is not None:
            image = response.json()["image"]
            assert (image["width"], image["height"]) == item.size, item.name
        for fmt in ("jpeg", "webp"):
            check(mask(client, item.data, f"{item.name}.bin", format=fmt), item,
                  f"/api/v1/mask?format={fmt} {item.name}", fmt)
        if item.name not in SAMPLE:
            continue
        files = {"image": (f"{item.name}.bin", item.data)}
        check(admin.post("/test/mask", files=files), item, f"/api/v1/admin/test/mask {item.name}", "jpeg")
        for path in ("/v1/file/detect", "/v1/file/embeddings"):
            check(client.post(path, files=files), item, f"{path} {item.name}")
        as_json = {"image": base64.b64encode(item.data).decode()}
        check(client.post("/v1/detect", json=as_json), item, f"/v1/detect {item.name}")
    elapsed = time.monotonic() - started
    assert elapsed < 90, f"the corpus took {elapsed:.0f} s"


# --- output formats that cannot hold the photo ---

def wide_png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("size, fmt, limit", [((70_000, 1), "jpeg", 65_500), ((1, 70_000), "jpeg", 65_500),
                                              ((17_000, 64), "webp", 16_383)])
def test_mask_refuses_an_output_the_format_cannot_hold(client, admin, size, fmt, limit):
    # Regression: 500 with a plain-text body (TurboJPEG's OSError, WebP's "encoding error 5").
    data = wide_png(*size)
    params = {} if fmt == "jpeg" else {"format": fmt}  # jpeg is the default
    for response in (mask(client, data, "wide.png", **params),
                     admin.post("/test/mask", params=params, files={"image": ("wide.png", data)})):
        assert response.status_code == 422, response.text[:300]
        detail = response.json()["detail"]
        assert detail.startswith(f"the image is {size[0]}x{size[1]} pixels; ")
        assert f"output is limited to {limit} pixels on a side" in detail and "format=png" in detail


def test_mask_makes_a_png_of_any_shape(client):
    response = mask(client, wide_png(70_000, 1), "wide.png", format="png")
    assert response.status_code == 200, response.text[:300]
    out = Image.open(io.BytesIO(response.content))
    assert out.format == "PNG" and out.size == (70_000, 1)
    assert response.headers["x-face-count"] == "0"


# --- TIFF for real ---

@pytest.fixture(scope="module")
def gdp(photos) -> Image.Image:
    return Image.open(io.BytesIO(photos["gdp.jpg"])).convert("RGB")


def boxes(response) -> np.ndarray:
    assert response.status_code == 200, response.text[:300]
    return np.array([[d["bbox"][k] for k in ("x1", "y1", "x2", "y2")] for d in response.json()["detections"]])


@pytest.mark.parametrize("compression", hostile_images.TIFF_COMPRESSIONS)
def test_every_tiff_compression_finds_the_faces(client, gdp, compression):
    # Regression: LZW, Deflate and JPEG TIFFs were refused: "decoder libtiff not available".
    reference = boxes(detect(client, hostile_images.saved(gdp, "PNG"), "gdp.png"))
    found = boxes(detect(client, hostile_images.saved(gdp, "TIFF", compression=compression), "gdp.tif"))
    assert len(found) == PHOTO_FACES["gdp.jpg"]
    np.testing.assert_allclose(found, reference, atol=0.02 if compression != "jpeg" else 3)


@pytest.mark.parametrize("compression", ["raw", "tiff_lzw"])
def test_a_multi_page_tiff_is_read_from_its_first_page(client, gdp, compression):
    # Regression: 400 "'NoneType' object has no attribute 'seek'".
    data = hostile_images.saved(gdp, "TIFF", save_all=True, compression=compression,
                                append_images=[Image.new("RGB", (64, 64))])
    response = detect(client, data, "gdp.tif")
    assert response.json()["summary"]["face_count"] == PHOTO_FACES["gdp.jpg"]
    assert (response.json()["image"]["width"], response.json()["image"]["height"]) == gdp.size


def test_a_tiff_through_mask_and_the_recognition_api(client, gdp):
    data = hostile_images.saved(gdp, "TIFF", compression="tiff_adobe_deflate")
    masked = mask(client, data, "gdp.tif", format="png")
    assert masked.status_code == 200 and masked.headers["x-face-count"] == str(PHOTO_FACES["gdp.jpg"])
    faces = client.post("/v1/file/detect", files={"image": ("gdp.tif", data)})
    assert faces.status_code == 200 and len(faces.json()["faces"]) >= 3


# --- the wording of errors ---

def test_a_lab_tiff_is_analysed_and_its_errors_never_named_a_path(client):
    # Regression: the detail held "(cannot import name '_imagingcms' from 'PIL' (/…/site-packages/…))".
    response = detect(client, hostile_images.by_name()["tiff_lab"].data, "lab.tif")
    assert response.status_code == 200, response.text[:300]


def test_the_json_login_is_not_told_to_send_a_photo(stack):
    response = httpx.post(f"{stack.url}/api/v1/admin/auth/login", json={"username": "admin"}, timeout=30)
    assert response.status_code == 422
    assert response.json() == {"detail": "password: is required"}


def test_the_decoders_exception_goes_to_the_log_with_the_request_id(client, stack):
    whole = hostile_images.saved(hostile_images.picture(), "GIF")
    response = detect(client, whole[: len(whole) // 2], "cut.gif")
    assert response.json() == {"detail": "the GIF image is truncated or corrupt"}
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in stack.log().splitlines() if "upload refused" in line and request_id in line]
        if lines:
            break
        time.sleep(0.2)
    assert lines, "no log record of the refusal with its request id"
    assert "image file is truncated" in lines[0]  # the exception, for the operator
