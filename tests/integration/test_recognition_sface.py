"""The licence-clean pair (YuNet + SFace, FACE_API_RECOGNIZER=sface_2021dec) through
its own real stack: parity with OpenCV's own implementation, and identity.

The reference is OpenCV's C++ code, independent of the service's: YuNet via
FaceDetectorYN (tests/reference/yunet_reference.py), then FaceRecognizerSF's
alignCrop and feature.
"""

from __future__ import annotations

import base64

import cv2
import httpx
import numpy as np
import pytest

from tests.integration.conftest import SAMPLES
from tests.integration.stack import start_stack
from tests.integration.test_recognition_identity import YAO_IN_PLAYERS, box_of, png
from tests.reference.scrfd_reference import decode_image
from tests.reference.yunet_reference import ReferenceYuNet

MODELS = SAMPLES.parent / "model_repository"
THRESHOLD = 0.45  # the recommended SFace match threshold (docs/api.md)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def sface(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("sface"), env={
        "FACE_API_RECOGNIZER": "sface_2021dec", "FACE_API_API_KEY_ENABLED": "false",
        "FACE_API_RATE_LIMIT_ENABLED": "false"})
    with httpx.Client(base_url=stack.url, timeout=60) as http:
        yield http
    stack.stop()


def reference_embeddings(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(boxes, unit embeddings) from OpenCV's YuNet, alignCrop and SFace."""
    found = ReferenceYuNet(MODELS / "yunet_2023mar/1/model.onnx").detect(rgb)
    recognizer = cv2.FaceRecognizerSF.create(str(MODELS / "sface_2021dec/1/model.onnx"), "")
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    vectors = []
    for box, points, score in zip(found.boxes, found.landmarks, found.scores):
        row = np.concatenate([box[:2], box[2:] - box[:2], points.ravel(), [score]]).astype(np.float32)
        vectors.append(recognizer.feature(recognizer.alignCrop(bgr, row[None])).ravel())
    vectors = np.stack(vectors)
    return found.boxes, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("name", ["yaoming.jpg", "gdp.jpg"])
def test_sface_embeddings_match_opencv(sface, name):
    rgb = decode_image(SAMPLES / name)
    boxes, expected = reference_embeddings(rgb)
    response = sface.post("/v1/multi-embeddings", json={"image": b64(png(rgb))})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"].endswith("+sface_2021dec")
    served = body["embeddings_info_list"]
    assert len(served) == len(expected) > 0
    for face, box, vector in zip(served, boxes, expected):
        assert np.abs(box_of(face["face_detect"]) - box).max() <= 1.0
        embedding = np.asarray(face["embeddings"], np.float32)
        assert embedding.shape == (128,)
        assert float(embedding @ vector) >= 0.999


def test_sface_picks_yao_among_the_players(sface):
    yao = sface.post("/v1/feature", json={"image": b64((SAMPLES / "yaoming.jpg").read_bytes())}).json()
    players = sface.post("/v1/multi-feature",
                         json={"image": b64((SAMPLES / "players.jpg").read_bytes())}).json()
    target = np.frombuffer(base64.b64decode(yao["feature"]), "<f4")
    scored = sorted(((float(np.frombuffer(base64.b64decode(f["feature"]), "<f4") @ target),
                      box_of(f["face_detect"])) for f in players["feature_info_list"]), key=lambda p: -p[0])
    (best, box), (second, _) = scored[0], scored[1]
    x1, y1, x2, y2 = YAO_IN_PLAYERS
    centre = (box[:2] + box[2:]) / 2
    assert x1 <= centre[0] <= x2 and y1 <= centre[1] <= y2, f"picked the face at {box}"
    assert best >= THRESHOLD + 0.15 and second < THRESHOLD


def test_sface_detect_uses_yunet(sface):
    rgb = decode_image(SAMPLES / "gdp.jpg")
    expected = ReferenceYuNet(MODELS / "yunet_2023mar/1/model.onnx").detect(rgb)
    response = sface.post("/v1/detect", json={"image": b64(png(rgb))})
    assert response.status_code == 200, response.text
    faces = response.json()["faces"]
    assert len(faces) == len(expected.scores)
    for face, box in zip(faces, expected.boxes):
        assert np.abs(box_of(face) - box).max() <= 1.0
