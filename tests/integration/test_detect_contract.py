"""/health and /api/v1/detect against the documented face-api contract, through the real stack."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.conftest import PHOTO_FACES, detect

LANDMARKS = {"left_eye", "right_eye", "nose", "left_mouth", "right_mouth"}
PROFILING_FIELDS = {
    "decode_ms", "preprocess_ms", "blob_ms", "inference_ms", "postprocess_ms", "nms_ms", "mask_ms",
    "encode_ms", "storage_ms", "total_ms", "candidates_before_nms", "candidates_after_nms",
    "det_scale", "input_resolution", "det_resolution", "input_bytes", "output_bytes",
    "input_pixels", "model_name",
}


def test_health_reports_the_served_model(client, stack):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok", "model": "scrfd_500m", "model_loaded": True, "input_size": [640, 640],
        "supports_landmarks": True, "mask_available": True, "database_enabled": True, "database_ready": True,
        "storage_enabled": True, "storage_ready": True,
        "inference_endpoints": {f"127.0.0.1:{stack.triton_grpc}": True},
    }
    uuid.UUID(response.headers["x-request-id"])


@pytest.mark.parametrize("name", sorted(PHOTO_FACES))
def test_detect_finds_the_faces_of_each_sample(client, photos, name):
    response = detect(client, photos[name])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"]["face_count"] == PHOTO_FACES[name]
    assert len(body["detections"]) == PHOTO_FACES[name]


def test_detect_response_has_every_documented_field(client, photos):
    response = detect(client, photos["gdp.jpg"])
    body = response.json()
    assert set(body) == {"request_id", "image_id", "job_id", "image", "detections", "summary",
                         "processing", "profiling"}
    assert body["request_id"] == response.headers["x-request-id"]
    # The session stack runs in storage-backed mode (the default): the call was recorded.
    assert body["image_id"] == response.headers["x-image-id"]
    assert body["job_id"] == response.headers["x-job-id"]
    assert body["image"] == {"width": 500, "height": 665, "channels": 3,
                             "size_bytes": len(photos["gdp.jpg"])}
    assert set(body["profiling"]) == PROFILING_FIELDS
    assert set(body["processing"]) == {"model", "input_size", "confidence_threshold",
                                       "nms_threshold", "inference_ms", "total_ms"}
    for face in body["detections"]:
        assert set(face) == {"index", "bbox", "confidence", "landmarks", "size", "area", "center",
                             "relative"}
        assert set(face["landmarks"]) == LANDMARKS


def test_detection_fields_are_consistent(client, photos):
    body = detect(client, photos["players.jpg"]).json()
    width, height = body["image"]["width"], body["image"]["height"]
    confidences = [d["confidence"] for d in body["detections"]]
    assert confidences == sorted(confidences, reverse=True)
    assert [d["index"] for d in body["detections"]] == list(range(len(confidences)))
    for face in body["detections"]:
        box = face["bbox"]
        assert 0 <= box["x1"] < box["x2"] <= width and 0 <= box["y1"] < box["y2"] <= height
        w, h = box["x2"] - box["x1"], box["y2"] - box["y1"]
        assert face["size"]["width"] == pytest.approx(w, abs=0.02)
        assert face["size"]["height"] == pytest.approx(h, abs=0.02)
        assert face["area"] == pytest.approx(w * h, rel=1e-3)
        assert face["center"]["x"] == pytest.approx((box["x1"] + box["x2"]) / 2, abs=0.02)
        assert face["relative"]["x_center"] == pytest.approx(face["center"]["x"] / width, abs=1e-4)
        assert face["relative"]["height"] == pytest.approx(h / height, abs=1e-4)
        eyes = face["landmarks"]["left_eye"], face["landmarks"]["right_eye"]
        assert eyes[0]["x"] < eyes[1]["x"]  # left_eye is the one on the left of the image
        for point in face["landmarks"].values():  # landmarks of a frontal face sit in its box
            assert box["x1"] - 2 <= point["x"] <= box["x2"] + 2
    summary = body["summary"]
    assert summary["max_confidence"] == confidences[0] and summary["min_confidence"] == confidences[-1]
    assert summary["avg_confidence"] == pytest.approx(sum(confidences) / len(confidences), abs=1e-4)
    total_area = sum(d["area"] for d in body["detections"])
    assert summary["total_face_area"] == pytest.approx(total_area, abs=0.1)
    assert summary["face_area_ratio"] == pytest.approx(total_area / (width * height), abs=1e-4)


def test_processing_and_profiling_are_measured(client, photos):
    body = detect(client, photos["players.jpg"], confidence=0.6, nms_threshold=0.3).json()
    processing, profiling = body["processing"], body["profiling"]
    assert processing["model"] == profiling["model_name"] == "scrfd_500m"
    assert processing["input_size"] == [640, 640]
    assert processing["confidence_threshold"] == 0.6 and processing["nms_threshold"] == 0.3
    assert profiling["input_resolution"] == "1237x800" and profiling["det_resolution"] == "640x640"
    assert profiling["input_pixels"] == 1237 * 800
    assert profiling["det_scale"] == pytest.approx(640 / 1237, abs=1e-6)  # the long side's scale
    assert profiling["candidates_before_nms"] >= profiling["candidates_after_nms"] == len(body["detections"])
    for field in ("decode_ms", "preprocess_ms", "blob_ms", "inference_ms", "postprocess_ms", "nms_ms"):
        assert profiling[field] > 0, field
    assert profiling["inference_ms"] > profiling["preprocess_ms"] + profiling["postprocess_ms"]
    assert profiling["total_ms"] >= profiling["inference_ms"] + profiling["decode_ms"]
    assert profiling["mask_ms"] is None and profiling["encode_ms"] is None
    assert profiling["output_bytes"] is None and profiling["storage_ms"] > 0  # storage-backed mode


def test_defaults_match_the_contract(client, photos):
    processing = detect(client, photos["yaoming.jpg"]).json()["processing"]
    assert processing["confidence_threshold"] == 0.5 and processing["nms_threshold"] == 0.4


def test_max_faces_keeps_the_most_confident(client, photos):
    everyone = detect(client, photos["players.jpg"]).json()["detections"]
    top = detect(client, photos["players.jpg"], max_faces=3).json()
    assert [d["bbox"] for d in top["detections"]] == [d["bbox"] for d in everyone[:3]]
    assert top["profiling"]["candidates_after_nms"] == len(everyone)


def test_confidence_threshold_filters(client, photos):
    low = detect(client, photos["players.jpg"], confidence=0.3).json()["detections"]
    high = detect(client, photos["players.jpg"], confidence=0.8).json()["detections"]
    assert len(high) < 22 < len(low) + 1
    assert all(d["confidence"] >= 0.8 for d in high)
    assert all(d["confidence"] >= 0.3 for d in low)


def test_nms_threshold_one_keeps_overlapping_boxes(client, photos):
    merged = detect(client, photos["gdp.jpg"]).json()["profiling"]
    unmerged = detect(client, photos["gdp.jpg"], nms_threshold=1.0).json()
    assert unmerged["profiling"]["candidates_after_nms"] == merged["candidates_before_nms"]
    assert len(unmerged["detections"]) > 5


def test_a_photo_without_faces(client):
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (320, 240), (30, 120, 200)).save(buffer, "PNG")
    body = detect(client, buffer.getvalue(), "sky.png").json()
    assert body["detections"] == []
    assert body["summary"] == {"face_count": 0, "avg_confidence": None, "min_confidence": None,
                               "max_confidence": None, "total_face_area": 0.0, "face_area_ratio": 0.0}
