"""The recognition contract's face shapes, ordering and selection, image loading and model
descriptions: pure functions, no Triton."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError
from PIL import Image

from frontend.errors import ApiError
from frontend.schemas import recognition as schema
from frontend.services.recognition.faces import (
    ALIGNED_TEMPLATE,
    aligned_face,
    face_detect,
    no_face,
    sort_order,
)
from frontend.services.recognition.images import check_aligned, load_image, merge
from frontend.services.recognition.models import describe_model, embedding_size_of, fused_config

# Four faces: (score, x1, y1, x2, y2), in Triton's order (best first).
FACES = np.array([
    [0.95, 300.0, 40.0, 340.0, 90.0],  # small, right, top
    [0.90, 10.0, 200.0, 110.0, 330.0],  # largest, leftmost, lowest
    [0.80, 150.0, 100.0, 210.0, 170.0],  # middle
    [0.70, 150.0, 100.0, 210.0, 170.0],  # the same box: ties keep Triton's order
], np.float32)
SCORES, BOXES = FACES[:, 0], FACES[:, 1:]


def png(width: int, height: int, colour=(128, 128, 128)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(("sort_type", "expected"), [
    (0, [0, 1, 2, 3]),  # confidence, high to low
    (1, [1, 2, 3, 0]),  # area, large to small
    (2, [1, 2, 3, 0]),  # left edge, left to right
    (3, [0, 2, 3, 1]),  # top edge, top to bottom
])
def test_sort_orders(sort_type, expected):
    assert sort_order(SCORES, BOXES, sort_type) == expected


def test_sort_by_confidence_does_not_trust_the_input_order():
    assert sort_order(np.array([0.5, 0.9, 0.7]), np.zeros((3, 4)), 0) == [1, 2, 0]


def test_sorting_nothing_and_unknown_types():
    assert sort_order(np.zeros(0), np.zeros((0, 4)), 2) == []
    with pytest.raises(ValueError):
        sort_order(SCORES, BOXES, 4)


def test_face_detect_rounds_half_to_even_and_keeps_four_digits():
    points = [[38.5, 51.5], [73.5, 51.4999], [56.0252, 71.7366], [41.5, 92.5], [70.7299, 92.2041]]
    face = face_detect(np.float32(0.987654), [10.5, 11.5, 100.49, 120.51], points)
    assert face.model_dump() == {
        "processed": True, "confidence": 0.9877,
        "boundingBox": {"left": 10, "top": 12, "right": 100, "bottom": 121},
        "landmarks": [{"x": 38, "y": 52}, {"x": 74, "y": 51}, {"x": 56, "y": 72}, {"x": 42, "y": 92},
                      {"x": 71, "y": 92}],
    }
    assert all(type(v) is int for v in face.boundingBox.model_dump().values())


def test_no_face_shape():
    assert no_face().model_dump() == {
        "processed": False, "confidence": 0.0,
        "boundingBox": {"left": 0, "top": 0, "right": 0, "bottom": 0},
        "landmarks": [{"x": 0, "y": 0}] * 5,
    }


def test_aligned_face_is_the_whole_crop_with_the_template_points():
    face = aligned_face().model_dump()
    assert face["processed"] is True and face["confidence"] == 1.0
    assert face["boundingBox"] == {"left": 0, "top": 0, "right": 112, "bottom": 112}
    points = [(p["x"], p["y"]) for p in face["landmarks"]]
    assert points == [(round(x), round(y)) for x, y in ALIGNED_TEMPLATE]
    assert points == [(38, 52), (74, 52), (56, 72), (42, 92), (71, 92)]


def test_responses_for_no_face_serialise_as_documented():
    feature = schema.FeatureResponse(version="0.2.0+arcface_w600k_mbf", feature="", face_detect=no_face())
    assert feature.model_dump()["feature"] == "" and feature.model_dump()["face_detect"]["processed"] is False
    embeddings = schema.EmbeddingsResponse(version="v", embeddings=[], face_detect=no_face())
    assert set(embeddings.model_dump()) == {"version", "embeddings", "face_detect"}
    assert schema.MultiFeatureResponse(version="v").model_dump() == {"version": "v", "feature_info_list": []}
    assert schema.MultiEmbeddingsResponse(version="v").model_dump() == {"version": "v",
                                                                        "embeddings_info_list": []}
    assert schema.DetectResponse(seq=7).model_dump() == {"seq": 7, "faces": []}
    score = schema.ScoreResponse(score=0.0, face_detects=[aligned_face(), no_face()]).model_dump()
    assert score["score"] == 0.0 and [f["processed"] for f in score["face_detects"]] == [True, False]


def test_load_image_from_base64_and_bytes():
    data = png(40, 30)
    assert load_image(data, "image", 10_000, 10_000).shape == (30, 40, 3)
    text = "data:image/png;base64," + base64.b64encode(data).decode()
    assert load_image(text, "image1", 10_000, 10_000).shape == (30, 40, 3)


@pytest.mark.parametrize("data", [b"", b"definitely not an image", png(40, 30)[:60]])
def test_unusable_images_are_422_at_their_field(data):
    with pytest.raises(RequestValidationError) as error:
        load_image(data, "image2", 10_000, 10_000)
    (found,) = error.value.errors()
    assert found["loc"] == ("body", "image2") and found["type"] == "value_error"


def test_too_many_bytes_or_pixels_stay_413():
    data = png(40, 30)
    with pytest.raises(ApiError) as error:
        load_image(base64.b64encode(data).decode(), "image", len(data) - 1, 10_000)
    assert error.value.status_code == 413 and "FACE_API_MAX_UPLOAD_BYTES" in error.value.detail
    with pytest.raises(ApiError) as error:
        load_image(png(40, 30), "image", 10_000, 1000)
    assert error.value.status_code == 413 and "FACE_API_MAX_IMAGE_PIXELS" in error.value.detail


def test_aligned_crops_must_be_112_square():
    check_aligned(np.zeros((112, 112, 3), np.uint8), "image")
    with pytest.raises(RequestValidationError) as error:
        check_aligned(np.zeros((112, 113, 3), np.uint8), "image")
    (found,) = error.value.errors()
    assert "113x112 pixels" in found["msg"] and "112x112" in found["msg"]


def test_merge_keeps_every_422_and_prefers_a_413():
    first = RequestValidationError([{"loc": ("body", "image1"), "msg": "a", "type": "value_error"}])
    second = RequestValidationError([{"loc": ("body", "image2"), "msg": "b", "type": "value_error"}])
    assert [p["loc"][1] for p in merge([first, second]).errors()] == ["image1", "image2"]
    too_big = ApiError(413, "too big")
    assert merge([first, too_big]) is too_big
    assert merge([]) is None


ARCFACE_CONFIG = {  # as Triton's get_model_config(as_json=True) spells it
    "name": "arcface_w600k_mbf", "platform": "onnxruntime_onnx", "backend": "onnxruntime",
    "max_batch_size": 32,
    "input": [{"name": "input.1", "data_type": "TYPE_FP32", "dims": ["3", "112", "112"]}],
    "output": [{"name": "516", "data_type": "TYPE_FP32", "dims": ["512"]}],
    "dynamic_batching": {"max_queue_delay_microseconds": "2000"},
}


def test_describe_a_recognizer():
    described = describe_model(ARCFACE_CONFIG, "arcface_w600k_mbf").model_dump()
    assert described == {
        "name": "arcface_w600k_mbf", "platform": "onnxruntime_onnx", "backend": "onnxruntime",
        "max_batch_size": 32,
        "inputs": [{"name": "input.1", "datatype": "FP32", "dims": [3, 112, 112]}],
        "outputs": [{"name": "516", "datatype": "FP32", "dims": [512]}],
        "dynamic_batching": {"max_queue_delay_microseconds": "2000"}, "parameters": {},
        "embedding_size": 512,
    }


def test_describe_a_recognizer_not_served_and_a_pipeline():
    sface = {"name": "sface_2021dec", "backend": "onnxruntime",
             "input": [{"name": "data", "dataType": "TYPE_FP32", "dims": [1, 3, 112, 112]}],
             "output": [{"name": "fc1", "dataType": "TYPE_FP32", "dims": [1, 128]}]}
    described = describe_model(sface, "arcface_w600k_mbf")
    assert described.embedding_size == 128 and described.max_batch_size == 0
    assert described.dynamic_batching is None and described.inputs[0].datatype == "FP32"
    pipeline = {"name": "recognize_arcface_w600k_mbf", "platform": "ensemble", "max_batch_size": 1,
                "input": [{"name": "IMAGE", "data_type": "TYPE_UINT8", "dims": ["-1", "-1", "3"]},
                          {"name": "MAX_FACES", "data_type": "TYPE_INT32", "dims": ["1"]}],
                "output": [{"name": "EMBEDDINGS", "data_type": "TYPE_FP32", "dims": ["-1", "512"]}],
                "parameters": {"detect_pipeline": {"string_value": "detect_scrfd_500m"},
                               "recognizer": {"stringValue": "arcface_w600k_mbf"}}}
    described = describe_model(pipeline, "arcface_w600k_mbf")
    assert described.embedding_size is None and described.backend == ""
    assert described.parameters == {"detect_pipeline": "detect_scrfd_500m", "recognizer": "arcface_w600k_mbf"}
    assert described.inputs[0].dims == [-1, -1, 3]


def test_a_model_run_inside_a_pipeline_is_described_from_the_pipelines_config():
    inside = {**ARCFACE_CONFIG, "backend": "python", "platform": ""}
    del inside["dynamic_batching"]  # CPU mode runs it without a batcher
    pipeline = {"name": "recognize_arcface_w600k_mbf", "backend": "python",
                "parameters": {"fused_models": {"string_value": "face_align,arcface_w600k_mbf"},
                               "fused_configs": {"string_value": json.dumps({"arcface_w600k_mbf": inside})}}}
    found = fused_config(pipeline, "arcface_w600k_mbf")
    assert found == inside
    described = describe_model(found, "arcface_w600k_mbf")
    assert described.embedding_size == 512 and described.dynamic_batching is None
    assert described.inputs[0].dims == [3, 112, 112]
    # the pipeline's own description leaves the inside models' configs out
    described = describe_model(pipeline, "arcface_w600k_mbf")
    assert described.parameters == {"fused_models": "face_align,arcface_w600k_mbf"}
    assert fused_config(pipeline, "face_align") is None  # not among the configs it carries
    assert fused_config({"parameters": {"fused_configs": {"string_value": "not json"}}}, "x") is None
    assert fused_config(None, "arcface_w600k_mbf") is None


def test_embedding_size():
    assert embedding_size_of(ARCFACE_CONFIG) == 512
    assert embedding_size_of({"output": [{"name": "x", "dims": ["-1"]}]}) is None
    assert embedding_size_of({}) is None
