"""Recognition through the real stack: parity with an in-process reference, and
identity on real photos.

The reference (tests/reference/) is independent of the service: InsightFace's
SCRFD decoding on onnxruntime, the Umeyama alignment and ArcFace on onnxruntime.
Photos go up as PNG where parity is checked, so both sides see the same pixels.
"""

from __future__ import annotations

import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmarks import model_memory
from tests.integration.conftest import SAMPLES
from tests.reference.arcface_reference import ReferenceArcFace, align
from tests.reference.scrfd_reference import ReferenceSCRFD, decode_image
from triton_python.arena_policy import SHRINK_WHEN_IDLE_S

MODELS = SAMPLES.parent / "model_repository"
# The recommended match threshold for arcface_w600k_mbf (docs/api.md, measured by
# benchmarks/recognition_threshold.py).
THRESHOLD = 0.40
# Where Yao Ming stands in players.jpg (checked by eye): x1, y1, x2, y2.
YAO_IN_PLAYERS = (700, 120, 785, 215)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def box_of(face: dict) -> np.ndarray:
    b = face["boundingBox"]
    return np.array([b["left"], b["top"], b["right"], b["bottom"]], float)


def multi_embeddings(client, data: bytes, max_results: int = 128) -> list[dict]:
    response = client.post("/v1/multi-embeddings", json={"image": b64(data), "maxResults": max_results})
    assert response.status_code == 200, response.text
    return response.json()["embeddings_info_list"]


def feature_of(client, data: bytes) -> str:
    response = client.post("/v1/feature", json={"image": b64(data)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["face_detect"]["processed"], body
    return body["feature"]


def feature_score(client, a: str, b: str) -> float:
    response = client.post("/v1/feature-score", json={"feature1": a, "feature2": b})
    assert response.status_code == 200, response.text
    return response.json()["score"]


@pytest.fixture(scope="module")
def reference():
    return (ReferenceSCRFD(MODELS / "scrfd_500m/1/model.onnx", threads=1),
            ReferenceArcFace(MODELS / "arcface_w600k_mbf/1/model.onnx"))


@pytest.fixture(scope="module")
def rgb() -> dict[str, np.ndarray]:
    return {name: decode_image(SAMPLES / name) for name in ("yaoming.jpg", "players.jpg", "gdp.jpg")}


@pytest.mark.parametrize("name", ["yaoming.jpg", "players.jpg", "gdp.jpg"])
def test_embeddings_match_the_reference(client, reference, rgb, name):
    detector, recognizer = reference
    expected = detector.detect(rgb[name])
    expected_embeddings = recognizer.embed([align(rgb[name], points) for points in expected.landmarks])
    served = multi_embeddings(client, png(rgb[name]))
    assert len(served) == len(expected.scores) > 0
    for face, box, embedding in zip(served, expected.boxes, expected_embeddings):
        assert np.abs(box_of(face["face_detect"]) - box).max() <= 1.0
        vector = np.asarray(face["embeddings"], np.float32)
        assert abs(np.linalg.norm(vector) - 1.0) < 1e-4
        assert float(vector @ embedding) >= 0.999


@pytest.mark.parametrize("name", ["players.jpg", "gdp.jpg"])
def test_v1_detect_equals_api_v1_detect(client, photos, name):
    v1 = client.post("/v1/detect", json={"image": b64(photos[name]), "detectSortType": 0})
    public = client.post("/api/v1/detect", files={"image": (name, photos[name])})
    assert v1.status_code == 200 and public.status_code == 200
    faces, detections = v1.json()["faces"], public.json()["detections"]
    assert len(faces) == len(detections) > 0
    # The same pipeline answers both; /v1 gives whole pixels, /api/v1 two decimals, so a
    # coordinate may round to the neighbouring pixel when it sits on a half.
    for face, detection in zip(faces, detections):
        bbox = detection["bbox"]
        assert np.abs(box_of(face) - [bbox[k] for k in ("x1", "y1", "x2", "y2")]).max() <= 0.51
        assert abs(face["confidence"] - detection["confidence"]) <= 1e-4
        points = [detection["landmarks"][k] for k in
                  ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")]
        got = np.array([(p["x"], p["y"]) for p in face["landmarks"]], float)
        assert np.abs(got - [(p["x"], p["y"]) for p in points]).max() <= 0.51


def test_yaoming_picks_yao_among_the_players(client, photos):
    yao = feature_of(client, photos["yaoming.jpg"])
    players = client.post("/v1/multi-feature", json={"image": b64(photos["players.jpg"])}).json()
    scores = [(feature_score(client, yao, face["feature"]), box_of(face["face_detect"]))
              for face in players["feature_info_list"]]
    scores.sort(key=lambda pair: -pair[0])
    (best, best_box), (second, _) = scores[0], scores[1]
    x1, y1, x2, y2 = YAO_IN_PLAYERS
    centre = (best_box[:2] + best_box[2:]) / 2
    assert x1 <= centre[0] <= x2 and y1 <= centre[1] <= y2, f"picked the face at {best_box}"
    assert best >= THRESHOLD + 0.15, f"Yao scored only {best:.3f}"
    assert second <= THRESHOLD - 0.15, f"another player scored {second:.3f}"


@pytest.mark.parametrize("change", ["mirrored", "half size", "1.7x size", "jpeg quality 25"])
def test_a_face_matches_its_altered_copy(client, rgb, change):
    photo = rgb["yaoming.jpg"]
    altered = {
        "mirrored": lambda: png(np.ascontiguousarray(photo[:, ::-1])),
        "half size": lambda: png(cv2.resize(photo, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)),
        "1.7x size": lambda: png(cv2.resize(photo, None, fx=1.7, fy=1.7, interpolation=cv2.INTER_CUBIC)),
        "jpeg quality 25": lambda: jpeg(photo, 25),
    }[change]()
    response = client.post("/v1/score", json={"image1": b64(png(photo)), "image2": b64(altered)})
    assert response.status_code == 200, response.text
    assert response.json()["score"] >= THRESHOLD + 0.4


def test_different_people_score_below_the_threshold(client, photos):
    faces = [face for name in ("players.jpg", "gdp.jpg")
             for face in client.post("/v1/multi-feature", json={"image": b64(photos[name])})
             .json()["feature_info_list"]]
    vectors = np.stack([np.frombuffer(base64.b64decode(f["feature"]), "<f4") for f in faces])
    similarity = vectors @ vectors.T
    distinct = similarity[np.triu_indices(len(vectors), 1)]
    assert len(vectors) == 27 and distinct.max() < THRESHOLD


def test_feature_score_equals_score_of_the_images(client, photos, rgb):
    half = png(cv2.resize(rgb["gdp.jpg"], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    scored = client.post("/v1/score", json={"image1": b64(photos["yaoming.jpg"]), "image2": b64(half)})
    assert scored.status_code == 200, scored.text
    by_features = feature_score(client, feature_of(client, photos["yaoming.jpg"]), feature_of(client, half))
    assert abs(scored.json()["score"] - by_features) <= 1e-6


def test_concurrent_faces_each_get_their_own_embedding_inside_the_recognize_pipeline(
        client, stack, reference, rgb):
    """CPU mode runs the recognizer inside the recognize pipeline's processes rather than as a
    shared batched model: concurrent one-face requests still each get their own face's
    embedding, and Triton counts every one of them at the pipeline."""
    import tritonclient.grpc as grpcclient

    detector, recognizer = reference
    players = rgb["players.jpg"]
    crops = [align(players, points) for points in detector.detect(players).landmarks]
    expected = recognizer.embed(crops)
    triton = grpcclient.InferenceServerClient(f"127.0.0.1:{stack.triton_grpc}")
    ready = {m["name"] for m in triton.get_model_repository_index(as_json=True)["models"]
             if m.get("state") == "READY"}
    assert "recognize_arcface_w600k_mbf" in ready and "arcface_w600k_mbf" not in ready, sorted(ready)

    def served() -> int:
        stats = triton.get_inference_statistics("recognize_arcface_w600k_mbf", as_json=True)["model_stats"][0]
        return int(stats["inference_stats"]["success"].get("count", 0))

    before = served()
    # One face per request (embeddings-only), 16 at a time.
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(
            lambda crop: client.post("/v1/embeddings-only", json={"image": b64(png(crop))}), crops * 3))
    for i, answer in enumerate(answers):
        assert answer.status_code == 200, answer.text
        vector = np.asarray(answer.json()["embeddings"], np.float32)
        assert float(vector @ expected[i % len(crops)]) >= 0.999, i
    assert served() - before == len(answers)


def recognizer_pss(stack) -> int:
    """PSS in bytes of the recognize pipeline's stubs, which run the recognizer (CPU mode)."""
    snapshot = model_memory.snapshot(stack.process.pid)
    assert len(snapshot["stub recognize_arcface_w600k_mbf"]) == 2, snapshot.keys()
    return model_memory.total({"": snapshot["stub recognize_arcface_w600k_mbf"]})


def test_the_recognizer_keeps_its_arena_through_group_photos_and_gives_it_back_when_quiet(
        stack, client, photos):
    """A 22-face batch grows onnxruntime's arena; shrinking it after every such batch cost the
    next one ~10 %, so the arena shrinks only once the recognizer is quiet (SHRINK_WHEN_IDLE_S)."""
    body = {"image": b64(photos["players.jpg"]), "maxResults": 128}
    time.sleep(SHRINK_WHEN_IDLE_S + 1.5)  # whatever earlier tests left has been given back
    quiet = recognizer_pss(stack)
    for _ in range(4):  # both instances run group photos, one after the other
        response = client.post("/v1/multi-embeddings", json=body)
        assert response.status_code == 200 and len(response.json()["embeddings_info_list"]) == 22
    busy = recognizer_pss(stack)
    time.sleep(SHRINK_WHEN_IDLE_S + 1.5)
    after = recognizer_pss(stack)
    mb = 1 << 20
    assert busy - quiet > 60 * mb, (quiet / mb, busy / mb)  # kept between group photos
    assert busy - after > 60 * mb, (busy / mb, after / mb)  # given back once quiet
