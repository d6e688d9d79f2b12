"""The service's detections equal an independent in-process reference, photo by photo.

tests/reference/scrfd_reference.py decodes SCRFD the way InsightFace publishes
it, sharing no code with the service. Same faces, boxes and landmarks within
1 px, scores within 1e-3, on every sample photo and on transformed copies
(mirrored, downscaled, re-compressed, portrait crop) that exercise other
letterbox shapes.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import PHOTO_FACES, ROOT, batch_counts, detect, sample
from tests.reference.scrfd_reference import ReferenceSCRFD, decode_image

NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


@pytest.fixture(scope="module")
def reference() -> ReferenceSCRFD:
    return ReferenceSCRFD(ROOT / "model_repository/scrfd_500m/1/model.onnx")


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def variants() -> list[tuple[str, np.ndarray]]:
    cases = []
    for name in sorted(PHOTO_FACES):
        rgb = decode_image(sample(name))
        cases.append((name, rgb))
        cases.append((f"{name}:mirrored", np.ascontiguousarray(rgb[:, ::-1])))
        small = Image.fromarray(rgb).resize((rgb.shape[1] * 2 // 3, rgb.shape[0] * 2 // 3))
        cases.append((f"{name}:downscaled", np.asarray(small)))
        cases.append((f"{name}:portrait-crop", np.ascontiguousarray(rgb[:, : max(1, rgb.shape[0] * 3 // 5)])))
    return cases


CASES = variants()


def service_faces(body) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    faces = body["detections"]
    scores = np.array([f["confidence"] for f in faces])
    boxes = np.array([[f["bbox"][k] for k in ("x1", "y1", "x2", "y2")] for f in faces]).reshape(-1, 4)
    points = np.array([[[f["landmarks"][n]["x"], f["landmarks"][n]["y"]] for n in NAMES]
                       for f in faces]).reshape(-1, 5, 2)
    return scores, boxes, points


@pytest.mark.parametrize("params", [{}, {"confidence": 0.3, "nms_threshold": 0.5}])
@pytest.mark.parametrize("label, rgb", CASES, ids=[label for label, _ in CASES])
def test_service_matches_the_reference(client, reference, label, rgb, params):
    # PNG is lossless: the service decodes exactly the pixels the reference sees.
    response = detect(client, png(rgb), "photo.png", **params)
    assert response.status_code == 200, response.text
    expected = reference.detect(rgb, params.get("confidence", 0.5), params.get("nms_threshold", 0.4))
    scores, boxes, points = service_faces(response.json())
    assert len(scores) == len(expected.scores), label
    np.testing.assert_allclose(scores, expected.scores, atol=1e-3)
    np.testing.assert_allclose(boxes, expected.boxes, atol=1.0)
    np.testing.assert_allclose(points, expected.landmarks, atol=1.0)
    profiling = response.json()["profiling"]
    assert profiling["candidates_before_nms"] == expected.candidates_before_nms
    assert profiling["det_scale"] == pytest.approx(expected.det_scale, abs=1e-5)


@pytest.mark.parametrize("name", sorted(PHOTO_FACES))
def test_jpeg_path_matches_the_reference(client, reference, name):
    """TurboJPEG decoding (the service) and Pillow decoding (the reference) agree too."""
    response = detect(client, sample(name).read_bytes())
    expected = reference.detect(decode_image(sample(name)))
    scores, boxes, points = service_faces(response.json())
    assert len(scores) == len(expected.scores) == PHOTO_FACES[name]
    np.testing.assert_allclose(boxes, expected.boxes, atol=1.0)
    np.testing.assert_allclose(points, expected.landmarks, atol=1.0)


def test_concurrent_requests_match_the_reference_one_photo_per_detector_run(client, stack, reference):
    """Concurrent photos give each its own faces, and in CPU mode the detector runs them one
    at a time (its config turns the dynamic batcher off there: batches cost more per photo).
    The default stack runs the detector inside the detect pipeline's own model
    (test_fused_pipelines.py checks the unfused ensemble's detector the same way)."""
    import tritonclient.grpc as grpcclient

    triton = grpcclient.InferenceServerClient(f"127.0.0.1:{stack.triton_grpc}")
    runner = "detect_scrfd_500m"
    config = triton.get_model_config(runner).config
    assert "scrfd_500m" in config.parameters["fused_models"].string_value.split(",")
    assert not config.HasField("dynamic_batching")

    names = sorted(PHOTO_FACES) * 4
    before = batch_counts(triton, runner)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda name: detect(client, sample(name).read_bytes()), names))
    after = batch_counts(triton, runner)
    for name, response in zip(names, responses):
        assert response.status_code == 200, response.text
        expected = reference.detect(decode_image(sample(name)))
        _, boxes, _ = service_faces(response.json())
        np.testing.assert_allclose(boxes, expected.boxes, atol=1.0)
    assert set(after) == {1}, f"the detector ran batches of several photos: {after}"
    assert after[1] - before.get(1, 0) == len(names)
