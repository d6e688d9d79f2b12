"""/api/v1/mask through the real stack: methods, formats, padding, borders, inputs, bad parameters."""

from __future__ import annotations

import io
import math
import uuid

import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import PHOTO_FACES, detect, mask

METHODS = ("gaussian", "pixelate", "solid", "elliptical")
FORMATS = {"jpeg": ("image/jpeg", b"\xff\xd8\xff"), "png": ("image/png", b"\x89PNG"),
           "webp": ("image/webp", b"RIFF")}
TIMING_HEADERS = ("x-inference-ms", "x-mask-ms", "x-encode-ms", "x-total-ms")


def pixels(data: bytes, mode: str = "RGB") -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert(mode))


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, "PNG")
    return out.getvalue()


def boxes_of(client, data: bytes, **params) -> np.ndarray:
    response = detect(client, data, **params)
    assert response.status_code == 200, response.text
    return np.array([[d["bbox"][k] for k in ("x1", "y1", "x2", "y2")] for d in response.json()["detections"]])


def padded(boxes: np.ndarray, padding: float, width: int, height: int, margin: int = 1) -> list[tuple]:
    """The documented padded regions (written here independently), grown by ``margin`` px
    to absorb the 0.01 px rounding of the boxes that /detect reports."""
    regions = []
    for x1, y1, x2, y2 in boxes:
        w, h = x2 - x1, y2 - y1
        regions.append((max(0, math.floor(x1 - padding * w) - margin),
                        max(0, math.floor(y1 - padding * h) - margin),
                        min(width, math.ceil(x2 + padding * w) + margin),
                        min(height, math.ceil(y2 + padding * h) + margin)))
    return regions


def covered(regions: list[tuple], height: int, width: int) -> np.ndarray:
    inside = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in regions:
        inside[y1:y2, x1:x2] = True
    return inside


def inner(region: tuple, margin: int = 2) -> tuple[slice, slice]:
    x1, y1, x2, y2 = region
    return slice(y1 + margin, y2 - margin), slice(x1 + margin, x2 - margin)


@pytest.fixture(scope="module")
def gdp_png(photos) -> bytes:
    return png(pixels(photos["gdp.jpg"]))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_in_every_format(client, photos, gdp_png, method, fmt):
    original = pixels(gdp_png)
    height, width = original.shape[:2]
    response = mask(client, gdp_png, "gdp.png", method=method, format=fmt)
    assert response.status_code == 200, response.text
    media_type, magic = FORMATS[fmt]
    assert response.headers["content-type"] == media_type
    assert response.content.startswith(magic)
    assert response.headers["x-face-count"] == str(PHOTO_FACES["gdp.jpg"])
    out = pixels(response.content)
    assert out.shape == original.shape

    regions = padded(boxes_of(client, gdp_png), 0.15, width, height)
    outside = ~covered(regions, height, width)
    difference = np.abs(out.astype(int) - original.astype(int))
    if fmt == "png":
        assert np.array_equal(out[outside], original[outside])  # byte-exact outside the boxes
    else:
        assert difference[outside].mean() < 3.0  # only the lossy codec's noise
    for region in regions:
        inside = difference[inner(region)]
        assert inside.mean() > 8.0, f"{method}: region {region} hardly changed ({inside.mean():.1f})"
    if method == "solid" and fmt == "png":
        for x1, y1, x2, y2 in padded(boxes_of(client, gdp_png), 0.15, width, height, margin=-1):
            assert out[y1:y2, x1:x2].max() == 0


def test_documented_headers(client, photos):
    response = mask(client, photos["yaoming.jpg"])
    assert response.status_code == 200
    uuid.UUID(response.headers["x-request-id"])
    assert response.headers["x-face-count"] == "1"
    assert response.headers["x-model"] == "scrfd_500m"
    for name in TIMING_HEADERS:
        assert float(response.headers[name]) >= 0.0, name
    assert float(response.headers["x-total-ms"]) >= float(response.headers["x-inference-ms"])
    assert float(response.headers["x-inference-ms"]) >= float(response.headers["x-mask-ms"])


def test_photo_without_faces_comes_back_unmasked(client):
    ramp = np.linspace(0, 255, 320 * 240 * 3).astype(np.uint8).reshape(240, 320, 3)
    response = mask(client, png(ramp), "ramp.png", format="png")
    assert response.status_code == 200
    assert response.headers["x-face-count"] == "0"
    assert np.array_equal(pixels(response.content), ramp)


def test_max_faces_masks_only_the_most_confident(client, photos):
    data = png(pixels(photos["players.jpg"]))
    original = pixels(data)
    height, width = original.shape[:2]
    response = mask(client, data, "players.png", max_faces=3, format="png", padding=0)
    assert response.status_code == 200
    assert response.headers["x-face-count"] == "3"
    kept = padded(boxes_of(client, data, max_faces=3), 0.0, width, height)
    out = pixels(response.content)
    outside = ~covered(kept, height, width)
    assert np.array_equal(out[outside], original[outside])  # the other 19 faces untouched
    assert all(np.abs(out[inner(r)].astype(int) - original[inner(r)]).mean() > 8 for r in kept)


def test_padding_grows_the_masked_region(client, gdp_png):
    original = pixels(gdp_png)
    height, width = original.shape[:2]
    boxes = boxes_of(client, gdp_png)
    tight = mask(client, gdp_png, "gdp.png", format="png", padding=0)
    wide = mask(client, gdp_png, "gdp.png", format="png", padding=0.5)
    assert tight.status_code == wide.status_code == 200
    ring = covered(padded(boxes, 0.5, width, height, margin=-2), height, width) & \
        ~covered(padded(boxes, 0.0, width, height, margin=2), height, width)
    assert np.array_equal(pixels(tight.content)[ring], original[ring])
    changed = np.abs(pixels(wide.content)[ring].astype(int) - original[ring]).mean()
    assert changed > 3.0


def test_faces_crossing_the_border(client, photos):
    """Crop so that the padded box of Yao Ming's face sticks out on the left and top."""
    original = pixels(photos["yaoming.jpg"])
    [[x1, y1, x2, y2]] = boxes_of(client, photos["yaoming.jpg"])
    crop = original[int(y1 + 0.05 * (y2 - y1)):, int(x1 + 0.05 * (x2 - x1)):].copy()
    data = png(crop)
    height, width = crop.shape[:2]
    response = mask(client, data, "edge.png", format="png", confidence=0.3)
    assert response.status_code == 200
    assert int(response.headers["x-face-count"]) >= 1
    boxes = boxes_of(client, data, confidence=0.3)
    assert boxes[:, 0].min() - 0.15 * (boxes[:, 2] - boxes[:, 0]).max() < 0  # padding crosses x = 0
    regions = padded(boxes, 0.15, width, height)
    out = pixels(response.content)
    outside = ~covered(regions, height, width)
    assert np.array_equal(out[outside], crop[outside])
    x1, y1, x2, y2 = regions[0]
    assert x1 == 0 and np.abs(out[y1:y2, 0:5].astype(int) - crop[y1:y2, 0:5]).mean() > 5


def encoded(array: np.ndarray, mode: str, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).convert(mode).save(out, fmt)
    return out.getvalue()


# Grey, lossy WebP and 256 colours may cost the weakest faces of gdp.jpg (5 faces).
@pytest.mark.parametrize("mode, fmt, faces", [("L", "JPEG", 4), ("L", "PNG", 4), ("RGB", "WEBP", 4),
                                              ("RGB", "PNG", 5), ("P", "GIF", 3), ("RGB", "BMP", 5)])
def test_input_kinds(client, photos, mode, fmt, faces):
    data = encoded(pixels(photos["gdp.jpg"]), mode, fmt)
    response = mask(client, data, f"gdp.{fmt.lower()}", format="png")
    assert response.status_code == 200, response.text
    assert int(response.headers["x-face-count"]) >= faces
    out = Image.open(io.BytesIO(response.content))
    assert out.size == Image.open(io.BytesIO(data)).size


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparency_is_kept_where_the_format_can_carry_it(client, photos, fmt):
    rgb = pixels(photos["gdp.jpg"])
    alpha = np.tile(np.linspace(40, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    data = png(np.dstack([rgb, alpha]), "RGBA")
    response = mask(client, data, "gdp.png", format=fmt, quality=100)
    assert response.status_code == 200
    assert response.headers["x-face-count"] == "5"
    out = Image.open(io.BytesIO(response.content))
    assert out.mode == "RGBA"
    out_alpha = np.asarray(out.getchannel("A")).astype(int)
    assert np.abs(out_alpha - alpha).max() <= (0 if fmt == "png" else 8)
    jpeg = mask(client, data, "gdp.png", format="jpeg")
    assert Image.open(io.BytesIO(jpeg.content)).mode == "RGB"


@pytest.mark.parametrize("params, field", [
    ({"method": "blur"}, "method"), ({"strength": 1}, "strength"), ({"strength": 1002}, "strength"),
    ({"strength": "strong"}, "strength"), ({"padding": -0.1}, "padding"), ({"padding": 2.5}, "padding"),
    ({"format": "gif"}, "format"), ({"quality": 0}, "quality"), ({"quality": 101}, "quality"),
    ({"confidence": 1.5}, "confidence"), ({"max_faces": -1}, "max_faces"),
])
def test_bad_parameters_get_a_clear_422(client, photos, params, field):
    response = mask(client, photos["yaoming.jpg"], **params)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}:")


def test_missing_or_bad_image(client):
    assert client.post("/api/v1/mask").status_code == 422
    response = mask(client, b"this is not an image", "notes.txt")
    assert response.status_code == 415 and "supported format" in response.json()["detail"]


def test_strength_changes_the_result(client, gdp_png):
    weak = pixels(mask(client, gdp_png, "gdp.png", format="png", method="pixelate", strength=4).content)
    strong = pixels(mask(client, gdp_png, "gdp.png", format="png", method="pixelate", strength=64).content)
    assert not np.array_equal(weak, strong)
