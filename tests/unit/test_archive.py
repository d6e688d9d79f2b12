"""Pure logic of storage-backed mode (frontend/services/archive/): object keys, types,
ids, the stats' shape, and what a caller is told about the recording of its call."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from frontend.schemas import face_api as schema
from frontend.services.archive import naming, recording, stats
from frontend.services.detection import DetectParams
from frontend.services.masking import MaskParams

SHA = hashlib.sha256(b"photo").hexdigest()


@pytest.mark.parametrize("fmt, extension, content_type", [
    ("JPEG", "jpg", "image/jpeg"), ("MPO", "jpg", "image/jpeg"), ("PNG", "png", "image/png"),
    ("WEBP", "webp", "image/webp"), ("BMP", "bmp", "image/bmp"), ("GIF", "gif", "image/gif"),
    ("TIFF", "tiff", "image/tiff"), ("png", "png", "image/png"),
])
def test_originals_are_content_addressed_with_the_decoded_format(fmt, extension, content_type):
    assert naming.original_type(fmt) == (extension, content_type)
    assert naming.original_key(SHA, fmt) == f"originals/{SHA[:2]}/{SHA}.{extension}"


def test_an_unknown_format_is_kept_as_binary():
    assert naming.original_type("XCF") == ("bin", "application/octet-stream")


@pytest.mark.parametrize("output, extension", [("jpeg", "jpg"), ("png", "png"), ("webp", "webp")])
def test_processed_keys_are_per_job(output, extension):
    assert naming.processed_key("j-1", output) == f"processed/j-1.{extension}"


def test_ids_are_canonical_uuids_or_nothing():
    upper = "0F6B3C2E-1D4A-4C8B-9E2F-3A4B5C6D7E8F"
    assert naming.parse_id(upper) == upper.lower()
    for bad in ("", "42", "not-a-uuid", "0f6b3c2e-1d4a-4c8b-9e2f", "../etc/passwd", "x" * 1000):
        assert naming.parse_id(bad) is None


def test_the_window_is_the_24_clock_hours_ending_with_the_current_one():
    now = datetime(2024, 3, 10, 14, 37, 12, 5, tzinfo=UTC)
    starts = stats.hour_starts(now)
    assert len(starts) == 24
    assert starts[-1] == datetime(2024, 3, 10, 14, tzinfo=UTC)
    assert starts[0] == datetime(2024, 3, 9, 15, tzinfo=UTC)
    assert all(b - a == timedelta(hours=1) for a, b in zip(starts, starts[1:]))


def test_the_window_is_in_utc_whatever_the_caller_passes():
    india = timezone(timedelta(hours=5, minutes=30))
    starts = stats.hour_starts(datetime(2024, 3, 10, 20, 7, tzinfo=india))  # 14:37 UTC
    assert starts[-1] == datetime(2024, 3, 10, 14, tzinfo=UTC)


def test_activity_is_zero_filled_and_summed():
    starts = stats.hour_starts(datetime(2024, 3, 10, 14, 37, tzinfo=UTC))
    rows = [("detect", 23, 5, 9), ("mask", 23, 2, 3), ("detect", 0, 1, 0), ("mask", 10, 4, None)]
    activity = stats.shape_activity(starts, rows, new_images=3)
    assert [h.hour for h in activity.hourly] == starts
    assert (activity.hourly[23].detect, activity.hourly[23].mask, activity.hourly[23].faces) == (5, 2, 12)
    assert (activity.hourly[0].detect, activity.hourly[10].mask, activity.hourly[10].faces) == (1, 4, 0)
    assert sum(h.detect + h.mask for h in activity.hourly[1:10]) == 0
    assert (activity.jobs, activity.detect, activity.mask) == (12, 6, 6)
    assert (activity.faces, activity.images) == (12, 3)
    assert activity.since == starts[0]


def test_activity_ignores_what_it_cannot_place():
    starts = stats.hour_starts(datetime(2024, 3, 10, 14, tzinfo=UTC))
    rows = [("other", 3, 7, 7), ("detect", 24, 1, 1), ("mask", -1, 1, 1)]
    activity = stats.shape_activity(starts, rows, 0)
    assert activity.jobs == 0 and activity.faces == 0


def test_counts_list_every_expected_key():
    assert stats.count_by([("mask", 2), (None, 5), ("detect", 1), ("mask", 1)], ["detect", "mask"]) == {
        "detect": 1, "mask": 3}
    assert stats.count_by([], ["gaussian", "pixelate"]) == {"gaussian": 0, "pixelate": 0}


def test_the_caller_sees_ids_or_the_reason_never_both():
    assert recording.Recorded("i", "j", 1.0).headers() == {"X-Image-Id": "i", "X-Job-Id": "j"}
    assert recording.Recorded(storage_ms=2.0, error="object storage unavailable").headers() == {
        "X-Storage-Error": "object storage unavailable"}
    assert recording.Recorded().headers() == {}


def _body(faces: int = 2) -> schema.DetectResponse:
    return schema.DetectResponse(
        request_id="r", image=schema.ImageInfo(width=4, height=3, channels=3, size_bytes=10), detections=[],
        summary=schema.Summary(face_count=faces, avg_confidence=None, min_confidence=None,
                               max_confidence=None, total_face_area=0, face_area_ratio=0),
        processing=schema.Processing(model="scrfd_500m", input_size=[640, 640], confidence_threshold=0.5,
                                     nms_threshold=0.4, inference_ms=3.0, total_ms=7.5),
        profiling=schema.Profiling(decode_ms=1, preprocess_ms=1, blob_ms=1, inference_ms=3, postprocess_ms=1,
                                   nms_ms=1, total_ms=7.5, candidates_before_nms=4, candidates_after_nms=2,
                                   det_scale=1, input_resolution="4x3", det_resolution="640x640",
                                   input_bytes=10, input_pixels=12, model_name="scrfd_500m"))


def test_a_detect_job_keeps_the_parameters_and_the_payload_without_ids():
    job = recording.detect_job(_body(), DetectParams(0.6, 0.3, 5), api_key_id="k")
    assert (job.job_type, job.method, job.processed, job.api_key_id) == ("detect", None, None, "k")
    assert job.parameters == {"confidence": 0.6, "nms_threshold": 0.3, "max_faces": 5}
    assert (job.face_count, job.model, job.total_ms) == (2, "scrfd_500m", 7.5)
    assert "image_id" not in job.result and "job_id" not in job.result
    assert job.result["summary"]["face_count"] == 2


def test_a_mask_job_keeps_the_output_but_not_its_base64():
    body = schema.MaskResponse(
        **dict(_body(1)),
        masking=schema.Masking(method="pixelate", strength=16, padding=0.1, regions_masked=1),
        output=schema.MaskOutput(format="png", quality=95, size_bytes=3, image_base64="YWJj"))
    job = recording.mask_job(body, b"abc", "image/png", DetectParams(0.5, 0.4, 0),
                           MaskParams("pixelate", 16, 0.1, "png", 95), api_key_id=None)
    assert (job.job_type, job.method, job.processed) == ("mask", "pixelate", b"abc")
    assert job.processed_format == "png"
    assert job.processed_content_type == "image/png"
    assert job.parameters == {"confidence": 0.5, "nms_threshold": 0.4, "max_faces": 0, "method": "pixelate",
                              "strength": 16, "padding": 0.1, "format": "png", "quality": 95}
    assert job.result["output"] == {"format": "png", "quality": 95, "size_bytes": 3}
    assert job.result["masking"]["regions_masked"] == 1


def test_stamping_puts_the_ids_in_and_counts_the_recording_in_the_total():
    body = _body()
    started = time.perf_counter() - 0.05
    recording.stamp(body, recording.Recorded("i", "j", 12.5), started)
    assert (body.image_id, body.job_id, body.profiling.storage_ms) == ("i", "j", 12.5)
    assert body.processing.total_ms == body.profiling.total_ms >= 50.0
