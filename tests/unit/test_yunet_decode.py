"""Unit tests of triton_python/yunet_decode.py and the pipeline's shared parts.

Synthetic YuNet outputs with planted faces decode to hand-computed boxes,
landmarks and scores; the full path (threshold, unscale, NMS, max_faces, clip,
padding) runs through detections.faces_for_batch exactly as the Triton model
calls it; on real model outputs the decode equals OpenCV's FaceDetectorYN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_python import detections  # shared with SCRFD's postprocess
from triton_python.yunet_decode import decode_candidates, deltas_to_boxes, face_scores

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "model_repository"

SIZE = 640
STRIDES = (8, 16, 32)


def _cells(stride):
    return (SIZE // stride) ** 2


def _zero_outputs():
    """YuNet-shaped outputs for one image: stride -> (cls, obj, bbox, kps), nothing scoring."""
    return {
        stride: (
            np.zeros((_cells(stride), 1), np.float32),
            np.zeros((_cells(stride), 1), np.float32),
            np.zeros((_cells(stride), 4), np.float32),
            np.zeros((_cells(stride), 10), np.float32),
        )
        for stride in STRIDES
    }


def _plant(outputs, stride, row, col, cls, obj, bbox, kps):
    index = row * (SIZE // stride) + col
    c, o, b, k = outputs[stride]
    c[index, 0], o[index, 0], b[index], k[index] = cls, obj, bbox, kps


# --- the pieces -------------------------------------------------------------------


def test_face_scores_are_the_geometric_mean_of_clipped_scores():
    cls = np.float32([0.81, 1.5, 0.25, -0.2, 0.64, 0.0])
    obj = np.float32([1.0, 0.64, 0.25, 0.9, 1.7, 1.0])
    np.testing.assert_allclose(face_scores(cls, obj), [0.9, 0.8, 0.25, 0.0, 0.8, 0.0], rtol=1e-6)
    assert face_scores(cls, obj).dtype == np.float32


def test_deltas_to_boxes_hand_computed():
    cells = np.float32([[16, 160], [0, 0]])  # (c * s, r * s) at stride 16: column 1, row 10; origin
    deltas = np.float32([[0.5, 0.25, np.log(2), np.log(3)], [0, 0, 0, 0]])
    # centre (16 + 8, 160 + 4) = (24, 164), size (32, 48); at the origin a stride-sized box.
    np.testing.assert_allclose(deltas_to_boxes(cells, deltas, 16), [[8, 140, 40, 188], [-8, -8, 8, 8]],
                               rtol=1e-6)


# --- decode_candidates --------------------------------------------------------------


def _planted_outputs():
    outputs = _zero_outputs()
    # stride 8, row 3, column 5 (index 3*80+5, not 5*80+3): score sqrt(0.81 * 1) = 0.9
    _plant(outputs, 8, 3, 5, 0.81, 1.0, [0.5, -0.5, np.log(4), np.log(2)],
           [0, 0, 1, 0, 0.5, 0.5, 0, 1, 1, 1])
    # stride 16, row 10, column 2: score sqrt(0.49) = 0.7 (cls clipped from 1.3 to 1)
    _plant(outputs, 16, 10, 2, 1.3, 0.49, [0, 0, 0, 0], [-1, -1, 1, -1, 0, 0, -1, 1, 1, 1])
    # stride 32, row 19, column 0: score 0.8
    _plant(outputs, 32, 19, 0, 0.8, 0.8, [1, 1, np.log(2), np.log(2)], [0.25, 0.5, 0.75, 0.5, 0.5, 1,
                                                                        0.25, 1.5, 0.75, 1.5])
    return outputs


def test_decode_candidates_planted_faces():
    scores, boxes, points = decode_candidates(_planted_outputs(), SIZE, 0.5)
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.8], rtol=1e-6)  # strides ascending
    # stride 8, cell (c 5, r 3) -> origin (40, 24); centre ((5 + .5) * 8, (3 - .5) * 8) = (44, 20),
    # size (32, 16) -> (28, 12, 60, 28); landmarks ((k + c) * 8, (k + r) * 8).
    # stride 16, cell (c 2, r 10) -> origin (32, 160), size 16 -> (24, 152, 40, 168).
    # stride 32, cell (c 0, r 19) -> origin (0, 608); centre (32, 640), size 64 -> (0, 608, 64, 672).
    np.testing.assert_allclose(boxes, [[28, 12, 60, 28], [24, 152, 40, 168], [0, 608, 64, 672]],
                               rtol=1e-6)
    np.testing.assert_allclose(points[0], [[40, 24], [48, 24], [44, 28], [40, 32], [48, 32]], rtol=1e-6)
    np.testing.assert_allclose(points[1], [[16, 144], [48, 144], [32, 160], [16, 176], [48, 176]],
                               rtol=1e-6)
    np.testing.assert_allclose(points[2], [[8, 624], [24, 624], [16, 640], [8, 656], [24, 656]], rtol=1e-6)
    assert points.shape == (3, 5, 2) and boxes.dtype == np.float32 and points.dtype == np.float32


def test_decode_candidates_cells_are_row_major():
    outputs = _zero_outputs()
    _plant(outputs, 16, 1, 7, 1.0, 1.0, [0, 0, 0, 0], np.zeros(10))  # row 1, column 7
    _, boxes, points = decode_candidates(outputs, SIZE, 0.5)
    np.testing.assert_allclose(boxes, [[7 * 16 - 8, 16 - 8, 7 * 16 + 8, 16 + 8]])
    np.testing.assert_allclose(points[0], [[7 * 16, 16]] * 5)


def test_decode_candidates_threshold_is_inclusive():
    outputs = _zero_outputs()
    _plant(outputs, 8, 0, 1, 0.25, 1.0, [0, 0, 0, 0], np.zeros(10))  # score exactly 0.5
    _plant(outputs, 8, 0, 2, 0.2499, 1.0, [0, 0, 0, 0], np.zeros(10))  # just below
    scores, boxes, _ = decode_candidates(outputs, SIZE, 0.5)
    np.testing.assert_array_equal(scores, [0.5])
    np.testing.assert_array_equal(boxes, [[4, -4, 12, 4]])
    assert len(decode_candidates(outputs, SIZE, 0.49)[0]) == 2


def test_decode_candidates_nothing_above_threshold():
    scores, boxes, points = decode_candidates(_planted_outputs(), SIZE, 0.95)
    assert scores.shape == (0,) and boxes.shape == (0, 4) and points.shape == (0, 5, 2)


def test_decode_candidates_objectness_gates_a_confident_class():
    outputs = _zero_outputs()
    _plant(outputs, 32, 5, 5, 1.0, 0.0, [0, 0, 0, 0], np.zeros(10))
    assert len(decode_candidates(outputs, SIZE, 0.01)[0]) == 0


# --- the whole post-processing, as yunet_postprocess/1/model.py runs it ----------------


def _postprocess(outputs, scale, size, confidence=0.5, nms_threshold=0.4, max_faces=0):
    """One request at batch 1, shaped as Triton hands it to the model (leading 1 everywhere)."""
    batched = {s: tuple(t[None] for t in outs) for s, outs in outputs.items()}

    def decode(i, threshold):
        return decode_candidates({s: tuple(t[i] for t in outs) for s, outs in batched.items()},
                                 SIZE, threshold)

    return detections.faces_for_batch(
        decode, np.float32([scale]), np.int32([size]), np.float32([confidence]),
        np.float32([nms_threshold]), np.int32([max_faces]))


def _overlapping_faces():
    outputs = _zero_outputs()
    # Two stride-16 cells side by side predicting nearly the same 64×64 face (IoU ~0.78),
    # and a separate face lower down.
    _plant(outputs, 16, 10, 10, 0.81, 1.0, [0.5, 0.5, np.log(4), np.log(4)], np.tile([0.5, 0.5], 5))
    _plant(outputs, 16, 10, 11, 0.64, 1.0, [0.0, 0.5, np.log(4), np.log(4)], np.tile([-0.5, 0.5], 5))
    _plant(outputs, 32, 15, 4, 0.49, 1.0, [0.5, 0.5, np.log(2), np.log(2)], np.tile([0.5, 0.5], 5))
    return outputs


def test_postprocess_unscales_suppresses_and_pads():
    # A 1280×960 photo letterboxed to 640×480: scale 0.5 on both axes.
    out = _postprocess(_overlapping_faces(), (0.5, 0.5), (960, 1280))
    assert set(out) == {"NUM_FACES", "SCORES", "BOXES", "LANDMARKS", "CANDIDATES", "DECODE_MS", "NMS_MS"}
    assert out["NUM_FACES"].tolist() == [[2]]
    assert out["CANDIDATES"].tolist() == [[3, 2]]  # before NMS, after NMS
    np.testing.assert_allclose(out["SCORES"], [[0.9, 0.7]], rtol=1e-6)
    # Detector boxes (136, 136, 200, 200) and (112, 464, 176, 528) doubled onto the photo,
    # the second clipped at the photo's bottom edge (y 960).
    np.testing.assert_allclose(out["BOXES"], [[[272, 272, 400, 400], [224, 928, 352, 960]]], rtol=1e-6)
    np.testing.assert_allclose(out["LANDMARKS"][0, 0], [[336, 336]] * 5, rtol=1e-6)
    assert out["SCORES"].shape == (1, 2) and out["BOXES"].shape == (1, 2, 4)
    assert out["LANDMARKS"].shape == (1, 2, 5, 2)
    assert out["DECODE_MS"].shape == out["NMS_MS"].shape == (1, 1)
    assert out["SCORES"].dtype == np.float32 and out["NUM_FACES"].dtype == np.int32


def test_postprocess_nms_threshold_decides_the_pair():
    out = _postprocess(_overlapping_faces(), (0.5, 0.5), (960, 1280), nms_threshold=0.9)
    assert out["NUM_FACES"].tolist() == [[3]] and out["CANDIDATES"].tolist() == [[3, 3]]
    np.testing.assert_allclose(out["SCORES"], [[0.9, 0.8, 0.7]], rtol=1e-6)


def test_postprocess_max_faces_keeps_the_most_confident():
    out = _postprocess(_overlapping_faces(), (0.5, 0.5), (960, 1280), max_faces=1)
    assert out["NUM_FACES"].tolist() == [[1]]
    assert out["CANDIDATES"].tolist() == [[3, 2]]  # counted before the cap
    np.testing.assert_allclose(out["SCORES"], [[0.9]], rtol=1e-6)


def test_postprocess_confidence_and_per_axis_scale_and_clip():
    # 600 wide × 400 high -> letterboxed 640 × 426: scale_x 640/600, scale_y 426/400.
    scale = (640 / 600, 426 / 400)
    out = _postprocess(_overlapping_faces(), scale, (400, 600), confidence=0.75)
    assert out["NUM_FACES"].tolist() == [[1]] and out["CANDIDATES"].tolist() == [[2, 1]]
    x1, y1, x2, y2 = out["BOXES"][0, 0]
    np.testing.assert_allclose([x1, y1, x2, y2], [136 / scale[0], 136 / scale[1], 200 / scale[0],
                                                  200 / scale[1]], rtol=1e-6)
    # The lone face at stride 32 sits at the canvas bottom (y up to 512 > 426): clipped to the photo.
    out = _postprocess(_overlapping_faces(), scale, (400, 600), confidence=0.6)
    assert out["BOXES"][0, :, 3].max() == 400
    assert out["LANDMARKS"][0, :, :, 1].max() == pytest.approx(496 / scale[1])  # landmarks unclipped


def test_postprocess_no_face_gives_empty_rows():
    out = _postprocess(_zero_outputs(), (1.0, 1.0), (640, 640))
    assert out["NUM_FACES"].tolist() == [[0]] and out["CANDIDATES"].tolist() == [[0, 0]]
    assert out["SCORES"].shape == (1, 0) and out["BOXES"].shape == (1, 0, 4)
    assert out["LANDMARKS"].shape == (1, 0, 5, 2)


@pytest.mark.parametrize(("confidence", "nms_threshold", "max_faces", "ok"), [
    (0.5, 0.4, 0, True), (0.0, 1.0, 3, True), (1.5, 0.4, 0, False), (0.5, -0.1, 0, False),
    (0.5, 0.4, -1, False),
])
def test_invalid_parameters(confidence, nms_threshold, max_faces, ok):
    problem = detections.invalid_parameters(np.float32([confidence]), np.float32([nms_threshold]),
                                            np.int32([max_faces]))
    assert (problem is None) == ok


# --- real model outputs: the decode equals OpenCV's FaceDetectorYN ---------------------


@pytest.mark.parametrize("photo", ["yaoming.jpg", "gdp.jpg", "players.jpg"])
def test_decode_matches_opencv_on_real_outputs(photo):
    onnxruntime = pytest.importorskip("onnxruntime")
    from tests.reference.scrfd_reference import decode_image, letterbox
    from tests.reference.yunet_reference import ReferenceYuNet

    weight = MODELS / "yunet_2023mar" / "1" / "model.onnx"
    canvas, _ = letterbox(decode_image(ROOT / "samples" / photo))
    bgr = np.ascontiguousarray(canvas[:, :, ::-1])
    session = onnxruntime.InferenceSession(str(weight), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    raw = dict(zip(names, session.run(None, {"input": bgr.transpose(2, 0, 1)[None].astype(np.float32)})))
    outputs = {s: tuple(raw[f"{kind}_{s}"][0] for kind in ("cls", "obj", "bbox", "kps")) for s in STRIDES}

    # NMS threshold 1 keeps every candidate on both sides (IoU <= 1 always), so this compares
    # the decode alone: OpenCV's NMS runs on integer boxes without the +1, ours does not.
    expected = ReferenceYuNet(weight).detect_canvas(bgr, 0.5, 1.0)
    scores, boxes, points = decode_candidates(outputs, SIZE, 0.5)
    keep = detections.nms(boxes, scores, 1.0)
    scores, boxes, points = scores[keep], boxes[keep], points[keep]
    assert len(scores) == len(expected) > 0
    np.testing.assert_allclose(scores, expected[:, 14], atol=1e-4)
    x, y, w, h = expected[:, :4].T
    np.testing.assert_allclose(boxes, np.stack([x, y, x + w, y + h], axis=1), atol=0.05)
    np.testing.assert_allclose(points, expected[:, 4:14].reshape(-1, 5, 2), atol=0.05)


# --- a drop-in twin of the SCRFD pipeline ---------------------------------------------------


def _config(path: Path) -> mc.ModelConfig:
    config = mc.ModelConfig()
    text_format.Parse(path.read_text(), config)
    return config


def test_the_pipeline_looks_like_detect_scrfd_500m_at_batch_one():
    scrfd = _config(ROOT / "ensembles" / "detect_scrfd_500m" / "config.pbtxt")
    yunet = _config(ROOT / "ensembles" / "detect_yunet_2023mar" / "config.pbtxt")
    assert yunet.max_batch_size == 0 and scrfd.max_batch_size > 0
    for kind in ("input", "output"):
        assert [(t.name, t.data_type, [1, *t.dims]) for t in getattr(scrfd, kind)] == [
            (t.name, t.data_type, list(t.dims)) for t in getattr(yunet, kind)]
    assert [s.model_name for s in yunet.ensemble_scheduling.step] == [
        "yunet_letterbox", "yunet_2023mar", "yunet_postprocess"]


def test_yunet_letterbox_parameters_make_a_raw_bgr_blob():
    from triton_python.letterbox import to_blob

    params = {k: v.string_value for k, v in _config(MODELS / "yunet_letterbox" / "config.pbtxt")
              .parameters.items()}
    assert params["input_size"] == "640"
    canvas = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    blob = to_blob(canvas, float(params["mean"]), float(params["std"]), params["channel_order"] == "BGR")
    np.testing.assert_array_equal(blob, canvas[:, :, ::-1].transpose(2, 0, 1).astype(np.float32))
