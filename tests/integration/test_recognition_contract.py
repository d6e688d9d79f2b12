"""The recognition contract (/v1/*) through the real stack: every endpoint, JSON
and multipart, the documented shapes and defaults, faceless photos, aligned crops, and the
refusals (422 list shape, 401, 404, 413).

Whether the embeddings are right (parity with a reference, identities) is
test_recognition_identity.py's job; here they only have to be well-formed.
"""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from frontend import __version__
from tests.integration.conftest import PHOTO_FACES
from tests.reference.arcface_reference import align

VERSION = f"{__version__}+arcface_w600k_mbf"
DIM = 512
POSTS = ["/v1/detect", "/v1/feature", "/v1/feature-only", "/v1/multi-feature", "/v1/embeddings",
         "/v1/embeddings-only", "/v1/multi-embeddings", "/v1/score", "/v1/feature-score",
         "/v1/file/detect", "/v1/file/feature", "/v1/file/feature-only", "/v1/file/embeddings",
         "/v1/file/embeddings-only", "/v1/file/score"]
NO_FACE = {"processed": False, "confidence": 0.0,
           "boundingBox": {"left": 0, "top": 0, "right": 0, "bottom": 0},
           "landmarks": [{"x": 0, "y": 0}] * 5}
ALIGNED_FACE = {"processed": True, "confidence": 1.0,
                "boundingBox": {"left": 0, "top": 0, "right": 112, "bottom": 112},
                "landmarks": [{"x": 38, "y": 52}, {"x": 74, "y": 52}, {"x": 56, "y": 72},
                              {"x": 42, "y": 92}, {"x": 71, "y": 92}]}
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encoded(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, fmt)
    return buffer.getvalue()


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def problems(response: httpx.Response) -> list[dict]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    for item in detail:
        assert {"loc", "msg", "type"} <= set(item)
    return detail


def vector(feature: str) -> np.ndarray:
    raw = base64.b64decode(feature, validate=True)
    assert len(raw) == 4 * DIM
    return np.frombuffer(raw, "<f4")


def area(face: dict) -> int:
    box = face["boundingBox"]
    return (box["right"] - box["left"]) * (box["bottom"] - box["top"])


def area_slack(face: dict) -> int:
    """How far the area of the rounded box can be from the unrounded one (±0.5 px an edge)."""
    box = face["boundingBox"]
    return (box["right"] - box["left"]) + (box["bottom"] - box["top"]) + 1


def assert_face(face: dict) -> None:
    """A found face, shaped as DetectResult says."""
    assert set(face) == {"processed", "confidence", "boundingBox", "landmarks"}
    assert face["processed"] is True
    assert 0.5 <= face["confidence"] <= 1.0 and face["confidence"] == round(face["confidence"], 4)
    box = face["boundingBox"]
    assert set(box) == {"left", "top", "right", "bottom"}
    assert all(type(v) is int for v in box.values())
    assert box["left"] < box["right"] and box["top"] < box["bottom"]
    assert len(face["landmarks"]) == 5
    for point in face["landmarks"]:
        assert set(point) == {"x", "y"} and type(point["x"]) is int and type(point["y"]) is int
    assert face["landmarks"][0]["x"] < face["landmarks"][1]["x"]  # the eye on the image's left first


@pytest.fixture(scope="module")
def grey() -> bytes:
    """A photo without a face: flat grey."""
    return encoded(np.full((240, 320, 3), 128, np.uint8), "JPEG")


@pytest.fixture(scope="module")
def aligned(client, photos) -> bytes:
    """Yao Ming's face aligned onto the ArcFace template (112×112 PNG), from /api/v1/detect's
    landmarks (two decimals) and the reference alignment."""
    detection = ok(client.post("/api/v1/detect", files={"image": ("y.jpg", photos["yaoming.jpg"])}))
    points = [[detection["detections"][0]["landmarks"][n][k] for k in ("x", "y")] for n in LANDMARK_NAMES]
    rgb = np.asarray(Image.open(io.BytesIO(photos["yaoming.jpg"])).convert("RGB"))
    crop = align(rgb, np.array(points))
    assert crop.shape == (112, 112, 3)
    return encoded(crop)


@pytest.fixture(scope="module")
def players_faces(client, photos) -> list[dict]:
    return ok(client.post("/v1/detect", json={"image": b64(photos["players.jpg"])}))["faces"]


# --- health and info: no key needed ---

def test_health(stack):
    response = httpx.get(f"{stack.url}/v1/health")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "recognizer": "arcface_w600k_mbf", "detector": "scrfd_500m",
                               "model_loaded": True}


def test_info_server(stack):
    body = ok(httpx.get(f"{stack.url}/v1/info/server"))
    assert body["service"] == "face-api" and body["version"] == __version__
    assert body["triton"]["name"] == "triton" and body["triton"]["version"]
    assert [(m["name"], m["role"], m["ready"]) for m in body["models"]] == [
        ("detect_scrfd_500m", "detect_pipeline", True), ("scrfd_500m", "detector", True),
        ("recognize_arcface_w600k_mbf", "recognize_pipeline", True),
        ("arcface_w600k_mbf", "recognizer", True)]
    assert all(m["platform"] for m in body["models"])
    assert all(m["version"] == "1" for m in body["models"])  # the version directory Triton serves


def test_info_model(stack):
    body = ok(httpx.get(f"{stack.url}/v1/info/model"))
    assert {k: v for k, v in body.items() if k != "models"} == {
        "detector": "scrfd_500m", "recognizer": "arcface_w600k_mbf",
        "pipeline": "recognize_arcface_w600k_mbf", "detect_pipeline": "detect_scrfd_500m",
        "embedding_size": DIM, "feature_version": VERSION}
    assert {"detect_scrfd_500m", "scrfd_500m", "recognize_arcface_w600k_mbf",
            "arcface_w600k_mbf"} <= set(body["models"])
    assert body["models"] == sorted(body["models"])


def test_info_model_config_of_the_recognizer(stack):
    # CPU mode runs it inside the recognize pipeline: described as it runs there, without a
    # batcher (its config says cpu_mode_dynamic_batching: off)
    body = ok(httpx.get(f"{stack.url}/v1/info/model/arcface_w600k_mbf"))
    assert body["name"] == "arcface_w600k_mbf" and body["embedding_size"] == DIM
    assert body["max_batch_size"] > 0 and body["dynamic_batching"] is None
    assert body["parameters"]["cpu_mode_dynamic_batching"] == "off"
    assert body["inputs"] == [{"name": "input.1", "datatype": "FP32", "dims": [3, 112, 112]}]
    assert body["outputs"][0]["dims"] == [DIM] and body["outputs"][0]["datatype"] == "FP32"


def test_info_model_config_of_the_detector_run_inside_its_pipeline(stack):
    body = ok(httpx.get(f"{stack.url}/v1/info/model/scrfd_500m"))
    assert body["name"] == "scrfd_500m" and body["embedding_size"] is None
    assert body["inputs"] == [{"name": "input.1", "datatype": "FP32", "dims": [3, 640, 640]}]
    assert len(body["outputs"]) == 9
    pipeline = ok(httpx.get(f"{stack.url}/v1/info/model/detect_scrfd_500m"))
    assert pipeline["parameters"]["fused_models"] == "face_letterbox,scrfd_500m,scrfd_postprocess"
    assert "fused_configs" not in pipeline["parameters"]  # described one by one instead


def test_info_model_config_of_the_pipeline(stack):
    body = ok(httpx.get(f"{stack.url}/v1/info/model/recognize_arcface_w600k_mbf"))
    assert body["parameters"]["detect_pipeline"] == "detect_scrfd_500m"
    assert body["parameters"]["recognizer"] == "arcface_w600k_mbf"
    assert "IMAGE" in {t["name"] for t in body["inputs"]} and body["embedding_size"] is None


def test_info_model_config_of_an_unknown_model(stack):
    response = httpx.get(f"{stack.url}/v1/info/model/no_such_model")
    assert response.status_code == 404
    assert response.json()["detail"].startswith("unknown model 'no_such_model'")


# --- /v1/detect ---

@pytest.mark.parametrize("name", sorted(PHOTO_FACES))
def test_detect_finds_every_face(client, photos, name):
    body = ok(client.post("/v1/detect", json={"image": b64(photos[name])}))
    assert set(body) == {"seq", "faces"} and body["seq"] == 0
    assert len(body["faces"]) == PHOTO_FACES[name]
    for face in body["faces"]:
        assert_face(face)


def test_detect_echoes_seq(client, photos):
    for seq in (17, -4, 2**40):
        body = ok(client.post("/v1/detect", json={"image": b64(photos["yaoming.jpg"]), "seq": seq}))
        assert body["seq"] == seq


def test_detect_sort_types(client, photos, players_faces):
    image = b64(photos["players.jpg"])
    confidences = [f["confidence"] for f in players_faces]
    assert confidences == sorted(confidences, reverse=True)  # 0, the default
    # The service sorts on the unrounded coordinates; the whole pixels it reports may
    # differ from them by half a pixel per edge.
    keys = {1: (lambda f: -area(f), area_slack),
            2: (lambda f: f["boundingBox"]["left"], lambda f: 1),
            3: (lambda f: f["boundingBox"]["top"], lambda f: 1)}
    for sort_type, (key, slack) in keys.items():
        faces = ok(client.post("/v1/detect", json={"image": image, "detectSortType": sort_type}))["faces"]
        for before, after in zip(faces, faces[1:]):
            assert key(before) <= key(after) + slack(before), (sort_type, before, after)
        assert sorted(map(str, faces)) == sorted(map(str, players_faces))  # the same faces, reordered


def test_detect_max_results_cuts_after_sorting(client, photos, players_faces):
    image = b64(photos["players.jpg"])
    top = ok(client.post("/v1/detect", json={"image": image, "maxResults": 3}))["faces"]
    assert top == players_faces[:3]
    by_left = ok(client.post("/v1/detect", json={"image": image, "detectSortType": 2}))["faces"]
    left = ok(client.post("/v1/detect", json={"image": image, "maxResults": 2, "detectSortType": 2}))["faces"]
    assert left == by_left[:2]


def test_file_detect_equals_json_detect(client, photos):
    fields = {"seq": 9, "maxResults": 4, "detectSortType": 1}
    by_json = ok(client.post("/v1/detect", json={"image": b64(photos["players.jpg"]), **fields}))
    by_file = ok(client.post("/v1/file/detect", files={"image": ("p.jpg", photos["players.jpg"])},
                             data={k: str(v) for k, v in fields.items()}))
    assert by_file == by_json and by_file["seq"] == 9 and len(by_file["faces"]) == 4


def test_detect_without_faces(client, grey):
    assert ok(client.post("/v1/detect", json={"image": b64(grey), "seq": 3})) == {"seq": 3, "faces": []}


# --- features and embeddings ---

def test_feature_shape(client, photos):
    body = ok(client.post("/v1/feature", json={"image": b64(photos["yaoming.jpg"])}))
    assert set(body) == {"version", "feature", "face_detect"} and body["version"] == VERSION
    assert_face(body["face_detect"])
    assert abs(np.linalg.norm(vector(body["feature"]).astype(np.float64)) - 1.0) < 1e-5


def test_feature_takes_the_largest_face(client, photos, players_faces):
    body = ok(client.post("/v1/feature", json={"image": b64(photos["players.jpg"])}))
    largest = max(players_faces, key=area)
    assert body["face_detect"] == largest


def test_embeddings_are_the_feature_as_numbers(client, photos):
    image = b64(photos["gdp.jpg"])
    feature = ok(client.post("/v1/feature", json={"image": image}))
    embeddings = ok(client.post("/v1/embeddings", json={"image": image}))
    assert set(embeddings) == {"version", "embeddings", "face_detect"} and embeddings["version"] == VERSION
    assert embeddings["face_detect"] == feature["face_detect"]
    values = np.array(embeddings["embeddings"], np.float32)
    assert values.shape == (DIM,)
    assert np.abs(values - vector(feature["feature"])).max() < 1e-5


def test_file_twins_answer_like_json(client, photos):
    data = photos["yaoming.jpg"]
    for json_path, file_path, field in (("/v1/feature", "/v1/file/feature", "feature"),
                                        ("/v1/embeddings", "/v1/file/embeddings", "embeddings")):
        by_json = ok(client.post(json_path, json={"image": b64(data)}))
        by_file = ok(client.post(file_path, files={"image": ("y.jpg", data)}))
        assert by_file["face_detect"] == by_json["face_detect"] and by_file["version"] == VERSION
        a = vector(by_json[field]) if field == "feature" else np.array(by_json[field], np.float32)
        b = vector(by_file[field]) if field == "feature" else np.array(by_file[field], np.float32)
        assert float(a @ b) > 0.9999


def test_base64_with_a_data_url_prefix(client, photos):
    plain = ok(client.post("/v1/feature", json={"image": b64(photos["yaoming.jpg"])}))
    prefixed = ok(client.post("/v1/feature",
                              json={"image": "data:image/jpeg;base64," + b64(photos["yaoming.jpg"])}))
    assert prefixed["face_detect"] == plain["face_detect"]


def test_multi_feature_and_embeddings(client, photos, players_faces):
    image = b64(photos["players.jpg"])
    features = ok(client.post("/v1/multi-feature", json={"image": image}))
    assert set(features) == {"version", "feature_info_list"} and features["version"] == VERSION
    assert [f["face_detect"] for f in features["feature_info_list"]] == players_faces  # best first
    for item in features["feature_info_list"]:
        assert set(item) == {"feature", "face_detect"}
        vector(item["feature"])
    embeddings = ok(client.post("/v1/multi-embeddings", json={"image": image, "maxResults": 5}))
    assert set(embeddings) == {"version", "embeddings_info_list"}
    assert [e["face_detect"] for e in embeddings["embeddings_info_list"]] == players_faces[:5]
    for item, feature in zip(embeddings["embeddings_info_list"], features["feature_info_list"]):
        assert set(item) == {"embeddings", "face_detect"} and len(item["embeddings"]) == DIM
        assert float(np.array(item["embeddings"], np.float32) @ vector(feature["feature"])) > 0.9999


def test_multi_max_results(client, photos):
    body = ok(client.post("/v1/multi-feature", json={"image": b64(photos["gdp.jpg"]), "maxResults": 2}))
    assert len(body["feature_info_list"]) == 2
    body = ok(client.post("/v1/multi-embeddings", json={"image": b64(photos["gdp.jpg"])}))
    assert len(body["embeddings_info_list"]) == PHOTO_FACES["gdp.jpg"]


def test_no_face(client, grey):
    image = b64(grey)
    assert ok(client.post("/v1/feature", json={"image": image})) == {
        "version": VERSION, "feature": "", "face_detect": NO_FACE}
    assert ok(client.post("/v1/embeddings", json={"image": image})) == {
        "version": VERSION, "embeddings": [], "face_detect": NO_FACE}
    assert ok(client.post("/v1/file/feature", files={"image": ("g.jpg", grey)}))["face_detect"] == NO_FACE
    assert ok(client.post("/v1/multi-feature", json={"image": image})) == {
        "version": VERSION, "feature_info_list": []}
    assert ok(client.post("/v1/multi-embeddings", json={"image": image})) == {
        "version": VERSION, "embeddings_info_list": []}


# --- aligned crops ---

def test_feature_only_of_an_aligned_crop(client, photos, aligned):
    body = ok(client.post("/v1/feature-only", json={"image": b64(aligned)}))
    assert body["version"] == VERSION and body["face_detect"] == ALIGNED_FACE
    from_photo = ok(client.post("/v1/feature", json={"image": b64(photos["yaoming.jpg"])}))
    assert float(vector(body["feature"]) @ vector(from_photo["feature"])) > 0.9  # the same face


def test_only_endpoints_agree(client, aligned):
    feature = vector(ok(client.post("/v1/feature-only", json={"image": b64(aligned)}))["feature"])
    for path, kwargs in (("/v1/embeddings-only", {"json": {"image": b64(aligned)}}),
                         ("/v1/file/embeddings-only", {"files": {"image": ("a.png", aligned)}}),
                         ("/v1/file/feature-only", {"files": {"image": ("a.png", aligned)}})):
        body = ok(client.post(path, **kwargs))
        assert body["face_detect"] == ALIGNED_FACE
        values = vector(body["feature"]) if "feature" in body else np.array(body["embeddings"], np.float32)
        assert float(values @ feature) > 0.9999, path


@pytest.mark.parametrize("path", ["/v1/feature-only", "/v1/embeddings-only"])
def test_only_endpoints_refuse_other_sizes(client, photos, path):
    (found,) = problems(client.post(path, json={"image": b64(photos["yaoming.jpg"])}))
    assert found["loc"] == ["body", "image"] and "112x112" in found["msg"]
    width, height = Image.open(io.BytesIO(photos["yaoming.jpg"])).size
    assert f"{width}x{height}" in found["msg"]


def test_file_only_endpoints_refuse_other_sizes(client):
    crop = encoded(np.zeros((96, 112, 3), np.uint8))
    (found,) = problems(client.post("/v1/file/feature-only", files={"image": ("c.png", crop)}))
    assert "112x96 pixels" in found["msg"]


# --- scores ---

def test_score_of_a_face_with_itself(client, photos):
    body = ok(client.post("/v1/score", json={"image1": b64(photos["yaoming.jpg"]),
                                             "image2": b64(photos["yaoming.jpg"])}))
    assert set(body) == {"score", "face_detects"}
    assert body["score"] == pytest.approx(1.0, abs=1e-4) and body["score"] == round(body["score"], 6)
    assert len(body["face_detects"]) == 2 and body["face_detects"][0] == body["face_detects"][1]
    assert_face(body["face_detects"][0])


def test_score_and_feature_score_agree(client, photos):
    one, two = photos["yaoming.jpg"], photos["gdp.jpg"]
    scored = ok(client.post("/v1/score", json={"image1": b64(one), "image2": b64(two)}))
    by_file = ok(client.post("/v1/file/score", files={"image1": ("a.jpg", one), "image2": ("b.jpg", two)}))
    features = [ok(client.post("/v1/feature", json={"image": b64(d)})) for d in (one, two)]
    by_features = ok(client.post("/v1/feature-score", json={"feature1": features[0]["feature"],
                                                            "feature2": features[1]["feature"]}))
    assert set(by_features) == {"score"}
    assert -1.0 <= scored["score"] <= 1.0
    assert by_file["score"] == pytest.approx(scored["score"], abs=1e-5)
    assert by_features["score"] == pytest.approx(scored["score"], abs=1e-5)
    assert scored["face_detects"] == [f["face_detect"] for f in features]


def test_score_with_a_faceless_image(client, photos, grey):
    body = ok(client.post("/v1/score", json={"image1": b64(photos["yaoming.jpg"]), "image2": b64(grey)}))
    assert body["score"] == 0.0
    assert body["face_detects"][0]["processed"] is True and body["face_detects"][1] == NO_FACE


# --- refusals ---

def test_bad_base64(client):
    (found,) = problems(client.post("/v1/feature", json={"image": "not*base64"}))
    assert found["loc"] == ["body", "image"] and found["msg"].startswith("image is not valid base64")


def test_undecodable_and_truncated_images(client, photos):
    (found,) = problems(client.post("/v1/detect", json={"image": b64(b"GIF89a but not really")}))
    assert found["loc"] == ["body", "image"]
    (found,) = problems(client.post("/v1/file/score", files={
        "image1": ("a.jpg", photos["yaoming.jpg"]), "image2": ("b.jpg", photos["gdp.jpg"][:2000])}))
    assert found["loc"] == ["body", "image2"] and "truncated" in found["msg"]


def test_feature_of_the_wrong_length(client, photos):
    feature = ok(client.post("/v1/feature", json={"image": b64(photos["yaoming.jpg"])}))["feature"]
    short = b64(np.ones(128, "<f4").tobytes())
    found = problems(client.post("/v1/feature-score", json={"feature1": short, "feature2": short}))
    assert {tuple(p["loc"]) for p in found} == {("body", "feature1"), ("body", "feature2")}
    assert f"{4 * DIM} bytes" in found[0]["msg"]
    (found,) = problems(client.post("/v1/feature-score", json={"feature1": feature, "feature2": short}))
    assert "differ in length" in found["msg"]


def test_image_over_the_upload_limit_is_413(client):
    # The stack's FACE_API_MAX_UPLOAD_BYTES is 4 MiB (conftest.LIMITS).
    too_big = b"\xff\xd8\xff" + bytes(4 * 1024 * 1024)
    response = client.post("/v1/feature", json={"image": b64(too_big)})
    assert response.status_code == 413
    assert "FACE_API_MAX_UPLOAD_BYTES" in response.json()["detail"]


@pytest.mark.parametrize("path", POSTS)
def test_posts_need_a_key(stack, path):
    response = httpx.post(f"{stack.url}{path}", json={"image": "AAAA"})
    assert response.status_code == 401
    assert response.json() == {"detail": "missing API key: send it in the X-API-Key header"}
    response = httpx.post(f"{stack.url}{path}", json={"image": "AAAA"}, headers={"x-api-key": "xyl_nope"})
    assert response.status_code == 401 and response.json() == {"detail": "invalid API key"}


def test_the_key_header_as_the_contract_spells_it(stack, api_key, photos):
    response = httpx.post(f"{stack.url}/v1/detect", json={"image": b64(photos["yaoming.jpg"])},
                          headers={"x-api-key": api_key}, timeout=60)
    assert response.status_code == 200, response.text
    assert int(response.headers["x-ratelimit-limit"]) > 0
