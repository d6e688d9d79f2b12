"""The /v1 HTTP surface up to the point where Triton would be asked: request validation and
its error shape (FastAPI's list on /v1, a sentence on /api/v1), size limits, keys and limits
wiring, the OpenAPI description. No request here reaches Triton (none is running)."""

from __future__ import annotations

import base64
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from frontend.app import create_app
from frontend.auth.access import PROTECTED
from frontend.settings import Settings

LIMIT = 100_000  # FACE_API_MAX_UPLOAD_BYTES for these tests
JUNK = base64.b64encode(b"this is no image at all").decode()


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 90, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def app():
    return create_app(Settings(database_enabled=False, storage_enabled=False, api_key_enabled=False,
                               rate_limit_enabled=False, max_upload_bytes=LIMIT))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as http:
        yield http


def problems(response) -> list[dict]:
    """The 422 list shape, checked field by field."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    for item in detail:
        assert set(item) == {"loc", "msg", "type"}
        assert isinstance(item["loc"], list)
        assert isinstance(item["msg"], str) and isinstance(item["type"], str)
    return detail


def test_malformed_json_is_a_validation_list(client):
    response = client.post("/v1/detect", content=b'{"image": ', headers={"content-type": "application/json"})
    assert problems(response)[0]["type"] == "json_invalid"


@pytest.mark.parametrize("path", ["/v1/detect", "/v1/feature", "/v1/feature-only", "/v1/multi-feature",
                                  "/v1/embeddings", "/v1/embeddings-only", "/v1/multi-embeddings"])
def test_missing_image(client, path):
    found = problems(client.post(path, json={}))
    assert found == [{"loc": ["body", "image"], "msg": "Field required", "type": "missing"}]


def test_missing_images_and_features(client):
    assert {tuple(p["loc"]) for p in problems(client.post("/v1/score", json={}))} == {
        ("body", "image1"), ("body", "image2")}
    found = problems(client.post("/v1/feature-score", json={"feature1": "AAAA"}))
    assert {tuple(p["loc"]) for p in found} == {("body", "feature2")}


def test_bad_base64(client):
    (found,) = problems(client.post("/v1/feature", json={"image": "this is not base64!"}))
    assert found["loc"] == ["body", "image"] and found["type"] == "base64_decode"
    assert found["msg"].startswith("image is not valid base64")


def test_a_data_url_prefix_is_accepted(client):
    # The prefix is stripped and the base64 decoded: what fails is the image itself.
    (found,) = problems(client.post("/v1/embeddings", json={"image": "data:image/jpeg;base64," + JUNK}))
    assert found["loc"] == ["body", "image"] and found["type"] == "value_error"
    assert "not an image" in found["msg"]


@pytest.mark.parametrize("image", ["", "data:image/png;base64,"])
def test_empty_images(client, image):
    (found,) = problems(client.post("/v1/feature", json={"image": image}))
    assert found["loc"] == ["body", "image"]


def test_truncated_image(client):
    (found,) = problems(client.post("/v1/multi-feature", json={"image": b64(png(64, 64)[:50])}))
    assert found["loc"] == ["body", "image"] and "truncated" in found["msg"]


@pytest.mark.parametrize(("body", "field"), [
    ({"maxResults": 0}, "maxResults"), ({"maxResults": -3}, "maxResults"),
    ({"maxResults": 10_001}, "maxResults"), ({"detectSortType": 9}, "detectSortType"),
    ({"detectSortType": -1}, "detectSortType"), ({"seq": "first"}, "seq"),
])
def test_detect_parameters(client, body, field):
    (found,) = problems(client.post("/v1/detect", json={"image": JUNK, **body}))
    assert found["loc"] == ["body", field]


def test_multi_max_results_must_be_positive(client):
    for path in ("/v1/multi-feature", "/v1/multi-embeddings"):
        (found,) = problems(client.post(path, json={"image": JUNK, "maxResults": 0}))
        assert found["loc"] == ["body", "maxResults"]


def test_multipart_detect_parameters(client):
    files = {"image": ("x.jpg", b"junk")}
    (found,) = problems(client.post("/v1/file/detect", files=files, data={"detectSortType": "9"}))
    assert found["loc"] == ["body", "detectSortType"]
    (found,) = problems(client.post("/v1/file/detect", files=files, data={"maxResults": "0"}))
    assert found["loc"] == ["body", "maxResults"]
    # Form fields are strings: "2" is detectSortType 2 (the junk image is what fails).
    (found,) = problems(client.post("/v1/file/detect", files=files, data={"detectSortType": "2", "seq": "5"}))
    assert found["loc"] == ["body", "image"]


def test_multipart_missing_and_unusable_files(client):
    (found,) = problems(client.post("/v1/file/score", files={"image1": ("a.png", png(8, 8))}))
    assert found == {"loc": ["body", "image2"], "msg": "Field required", "type": "missing"}
    (found,) = problems(client.post("/v1/file/feature", files={"image": ("a.jpg", b"junk")}))
    assert found["loc"] == ["body", "image"] and found["type"] == "value_error"


def test_score_reports_both_bad_images(client):
    found = problems(client.post("/v1/score", json={"image1": JUNK, "image2": "%%%"}))
    assert [(p["loc"][1], p["type"]) for p in found] == [("image1", "value_error"),
                                                         ("image2", "base64_decode")]


@pytest.mark.parametrize("path", ["/v1/feature-only", "/v1/embeddings-only"])
def test_only_endpoints_want_exactly_112_square(client, path):
    (found,) = problems(client.post(path, json={"image": b64(png(100, 112))}))
    assert found["loc"] == ["body", "image"]
    assert "100x112 pixels" in found["msg"] and "112x112" in found["msg"]


@pytest.mark.parametrize("path", ["/v1/file/feature-only", "/v1/file/embeddings-only"])
def test_file_only_endpoints_want_exactly_112_square(client, path):
    (found,) = problems(client.post(path, files={"image": ("face.png", png(224, 224))}))
    assert "224x224 pixels" in found["msg"]


def test_feature_score_refuses_bad_features(client):
    four = b64(b"\x00\x00\x80\x3f" * 4)
    (found,) = problems(client.post("/v1/feature-score", json={"feature1": "not base64!", "feature2": four}))
    assert found["loc"] == ["body", "feature1"] and found["type"] == "base64_decode"
    (found,) = problems(client.post("/v1/feature-score",
                                    json={"feature1": four, "feature2": b64(b"\x00" * 6)}))
    assert found["loc"] == ["body", "feature2"] and "6 bytes" in found["msg"]
    (found,) = problems(client.post("/v1/feature-score",
                                    json={"feature1": four, "feature2": b64(b"\x00" * 8)}))
    assert "differ in length (16 and 8 bytes)" in found["msg"]


def test_decoded_image_over_the_limit_is_413_with_a_sentence(client):
    response = client.post("/v1/feature", json={"image": b64(b"\xff\xd8\xff" + b"\x00" * LIMIT)})
    assert response.status_code == 413
    assert response.json() == {"detail": f"image is larger than {LIMIT} bytes (FACE_API_MAX_UPLOAD_BYTES)"}


def test_v1_bodies_may_be_three_uploads_long(client):
    # Twice the upload limit passes the Content-Length check on /v1 (and fails as JSON)...
    body = b"{" + b" " * (2 * LIMIT) + b"}"
    assert client.post("/v1/score", content=body, headers={"content-type": "application/json"}
                       ).status_code == 422
    # ... but not on /api/v1, nor past three uploads on /v1.
    assert client.post("/api/v1/detect", content=body,
                       headers={"content-type": "application/json"}).status_code == 413
    response = client.post("/v1/score", content=b" " * (3 * LIMIT + 70_000),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and isinstance(response.json()["detail"], str)


def test_the_face_api_keeps_its_sentence_shape(client):
    response = client.post("/api/v1/detect", params={"confidence": 2})
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert "confidence" in response.json()["detail"]


def test_every_v1_post_is_keyed_and_rate_limited_and_no_get_is(app):
    paths = {path: set(operations) for path, operations in app.openapi()["paths"].items()
             if path.startswith("/v1/")}
    posts = {path for path, methods in paths.items() if "post" in methods}
    gets = {path for path, methods in paths.items() if "get" in methods}
    assert len(posts) == 15
    assert {path: PROTECTED.get(path) for path in posts} == {path: "recognition" for path in posts}
    assert not gets & set(PROTECTED)
    assert gets == {"/v1/health", "/v1/info/server", "/v1/info/model", "/v1/info/model/{model_name}"}


def test_the_recognition_rate_limit(tmp_path):
    settings = Settings(database_enabled=False, storage_enabled=False, api_key_enabled=False,
                        rate_limit_enabled=True, rate_limit_file=str(tmp_path / "limits.sqlite3"),
                        rate_limit_recognition="2/minute")
    with TestClient(create_app(settings)) as http:
        answers = [http.post(path, json={}) for path in ("/v1/feature", "/v1/score", "/v1/detect")]
    assert [a.status_code for a in answers] == [422, 422, 429]  # one allowance for every /v1 endpoint
    assert answers[0].headers["x-ratelimit-limit"] == "2"
    assert answers[2].json()["detail"].startswith("rate limit exceeded: 2/minute for the /v1 endpoints")


def test_recognition_settings():
    assert Settings().recognizer == "arcface_w600k_mbf"
    assert Settings(recognizer="sface_2021dec").recognizer == "sface_2021dec"
    assert Settings().rate_limit_recognition == "300/minute"
    assert (Settings().recognition_confidence, Settings().recognition_nms_threshold) == (0.5, 0.4)
