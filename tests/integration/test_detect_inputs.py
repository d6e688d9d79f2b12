"""Every kind of upload: formats, colour modes, orientation, and each bad input's clear 4xx."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import detect


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def gdp(photos) -> Image.Image:
    return Image.open(io.BytesIO(photos["gdp.jpg"])).convert("RGB")


def boxes(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.array([[d["bbox"][k] for k in ("x1", "y1", "x2", "y2")]
                     for d in response.json()["detections"]])


@pytest.mark.parametrize("fmt, mode, channels", [
    ("PNG", "RGB", 3), ("PNG", "RGBA", 4), ("PNG", "L", 1), ("WEBP", "RGB", 3),
    ("BMP", "RGB", 3), ("TIFF", "RGB", 3), ("JPEG", "L", 1), ("PNG", "P", 1),
])
def test_formats_and_colour_modes_find_the_same_faces(client, gdp, fmt, mode, channels):
    reference = boxes(detect(client, encode(gdp, "PNG"), "gdp.png"))
    options = {"lossless": True} if fmt == "WEBP" else {"quality": 98} if fmt == "JPEG" else {}
    response = detect(client, encode(gdp.convert(mode), fmt, **options), f"gdp.{fmt.lower()}")
    found = boxes(response)
    assert response.json()["image"]["channels"] == channels
    if mode in ("RGB", "RGBA"):  # the same pixels: the same faces, to the pixel
        np.testing.assert_allclose(found, reference, atol=0.02)
    else:  # grey or palette pixels differ: every confident face, in nearly the same place
        confident = reference[:3]  # gdp.jpg: 3 faces >= 0.8, two half-cut ones at the border ~0.65
        assert 3 <= len(found) <= len(reference)
        np.testing.assert_allclose(found[:3], confident, atol=6)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_honoured(client, gdp, orientation):
    """A photo stored rotated with an EXIF tag is analysed upright, as viewers show it."""
    upright = np.asarray(gdp)
    stored = {3: np.rot90(upright, 2), 6: np.rot90(upright, 1), 8: np.rot90(upright, -1)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(np.ascontiguousarray(stored)), "JPEG", quality=98, exif=exif)
    body = detect(client, data).json()
    assert (body["image"]["width"], body["image"]["height"]) == gdp.size
    reference = boxes(detect(client, encode(gdp, "JPEG", quality=98)))
    np.testing.assert_allclose(boxes(detect(client, data)), reference, atol=3)


def test_bad_input_empty_file(client):
    response = detect(client, b"")
    assert response.status_code == 400
    assert response.json() == {"detail": "the uploaded image is empty (0 bytes)"}


@pytest.mark.parametrize("data", [b"hello, this is not an image", b"%PDF-1.4 fake pdf", b"\x00" * 64,
                                  b'<svg xmlns="http://www.w3.org/2000/svg"/>'])
def test_bad_input_not_an_image(client, data):
    response = detect(client, data, "file.bin")
    assert response.status_code == 415
    assert "not an image in a supported format" in response.json()["detail"]


def test_bad_input_unsupported_format(client, gdp):
    response = detect(client, encode(gdp, "ICO"), "gdp.ico")
    assert response.status_code == 415
    assert response.json()["detail"].startswith("ICO images are not supported")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_bad_input_truncated(client, gdp, fmt):
    whole = encode(gdp, fmt)
    response = detect(client, whole[: len(whole) // 2])
    assert response.status_code == 400, response.text
    assert "truncated" in response.json()["detail"] or "corrupt" in response.json()["detail"]


def test_bad_input_too_many_bytes(client):
    noise = np.random.default_rng(0).integers(0, 256, (1300, 1300, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "PNG")  # ~5 MB of incompressible pixels
    assert len(data) > 4 * 1024 * 1024
    response = detect(client, data, "noise.png")
    assert response.status_code == 413
    assert "FACE_API_MAX_UPLOAD_BYTES" in response.json()["detail"]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_bad_input_decompression_bomb(client, fmt):
    """A small file that claims 8000×4000 pixels is refused from its header alone."""
    data = encode(Image.new("RGB", (8000, 4000)), fmt)
    assert len(data) < 1024 * 1024
    response = detect(client, data)
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "the image is 8000x4000 = 32000000 pixels; the limit is 20000000 pixels "
        "(FACE_API_MAX_IMAGE_PIXELS)")


def test_bad_input_missing_image_field(client):
    response = client.post("/api/v1/detect", files={"photo": ("a.jpg", b"123")})
    assert response.status_code == 422
    assert response.json() == {"detail": "image: is required (send the photo as multipart/form-data "
                                         "field 'image')"}


def test_bad_input_not_multipart(client):
    response = client.post("/api/v1/detect", content=b"raw bytes",
                           headers={"content-type": "application/octet-stream"})
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("params, field", [
    ({"confidence": 1.5}, "confidence"), ({"confidence": -0.1}, "confidence"),
    ({"confidence": "high"}, "confidence"), ({"nms_threshold": 2}, "nms_threshold"),
    ({"max_faces": -1}, "max_faces"), ({"max_faces": 2.5}, "max_faces"),
])
def test_bad_input_parameters(client, photos, params, field):
    response = detect(client, photos["yaoming.jpg"], **params)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.startswith(f"{field}: ")
