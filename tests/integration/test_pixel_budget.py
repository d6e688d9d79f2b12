"""Memory bounded by design, through the real stack: a per-worker budget of decoded pixels
(FACE_API_PIXEL_BUDGET, small here) makes requests beyond it wait, then answer 503 with
Retry-After, refuses a photo larger than the whole budget with 413, and gives every pixel
back; a detect request on a large JPEG holds (and decodes) only what the detector needs."""

from __future__ import annotations

import asyncio
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import LIMITS, ROOT, sample
from tests.integration.stack import start_stack
from tests.reference.scrfd_reference import ReferenceSCRFD

BUDGET = 6_000_000  # pixels per worker


def encoded(rgb: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, fmt, **({"quality": 95} if fmt == "JPEG" else {"compress_level": 1}))
    return out.getvalue()


def enlarged(name: str, factor: int) -> np.ndarray:
    photo = Image.open(sample(name)).convert("RGB")
    return np.asarray(photo.resize((photo.width * factor, photo.height * factor), Image.BICUBIC))


@pytest.fixture(scope="module")
def small_budget(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("budget"), env={
        **LIMITS, "FACE_API_API_KEY_ENABLED": "false", "FACE_API_STORAGE_ENABLED": "false",
        "FACE_API_MAX_UPLOAD_BYTES": str(40 * 1024 * 1024), "FACE_API_MAX_IMAGE_PIXELS": "30000000",
        "FACE_API_PIXEL_BUDGET": str(BUDGET), "FACE_API_PIXEL_BUDGET_WAIT_S": "0.3"})
    yield stack
    stack.stop()


def post(url: str, path: str, data: bytes, name: str) -> httpx.Response:
    return httpx.post(f"{url}{path}", files={"image": (name, data)}, timeout=120)


def test_a_photo_larger_than_the_whole_budget_is_413(small_budget):
    photo = encoded(np.full((2000, 3500, 3), 90, np.uint8), "PNG")  # 7 Mpx > 6 Mpx
    for path in ("/api/v1/mask", "/api/v1/detect", "/v1/file/detect"):
        response = post(small_budget.url, path, photo, "big.png")
        assert response.status_code == 413, (path, response.text)
        assert "FACE_API_PIXEL_BUDGET" in response.json()["detail"]


def test_requests_beyond_the_budget_wait_then_get_503_and_every_pixel_comes_back(small_budget):
    photo = encoded(np.asarray(Image.open(sample("gdp.jpg")).convert("RGB").resize((2000, 2000))), "PNG")

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=small_budget.url, timeout=120) as http:
            return await asyncio.gather(*(http.post("/api/v1/mask", files={"image": ("p.png", photo)})
                                          for _ in range(10)))

    responses = asyncio.run(burst())  # 4 Mpx each: one at a time per worker
    codes = sorted(r.status_code for r in responses)
    assert set(codes) == {200, 503}, codes
    for response in responses:
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
            assert "too many large photos" in response.json()["detail"]
    # Nothing is left held: one at a time, every request gets in again.
    for _ in range(3):
        assert post(small_budget.url, "/api/v1/mask", photo, "p.png").status_code == 200


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize(("name", "factor"), [("gdp.jpg", 5), ("players.jpg", 4)])
def test_a_large_jpeg_is_detected_from_a_reduced_decode_with_the_same_faces(small_budget, name, factor):
    """Enlarged (8-16 Mpx, over the budget as full pixels), the JPEG is still served: it is
    decoded reduced, and its faces match the full-size reference."""
    rgb = enlarged(name, factor)
    full = post(small_budget.url, "/api/v1/detect", encoded(rgb, "PNG"), "full.png")
    assert full.status_code == 413  # the same photo, decoded whole, does not fit the budget
    response = post(small_budget.url, "/api/v1/detect", encoded(rgb, "JPEG"), "big.jpg")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["image"]["width"], body["image"]["height"]) == (rgb.shape[1], rgb.shape[0])
    found = np.array([[d["bbox"][k] for k in ("x1", "y1", "x2", "y2")] for d in body["detections"]])
    expected = ReferenceSCRFD(ROOT / "model_repository/scrfd_500m/1/model.onnx").detect(rgb)
    clear = expected.boxes[expected.scores >= 0.6]
    assert len(clear) >= 1
    for box in clear:  # every clear face of the full-size photo is found where it is
        assert max(iou(box, other) for other in found) >= 0.85, box
    assert abs(len(found) - len(expected.boxes)) <= max(1, len(expected.boxes) // 10)

