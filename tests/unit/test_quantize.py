"""model_tools.quantize without quantising: how two detections of a photo are compared (the
tolerances the INT8 detector is held to), the calibration set, the INT8 leaf config (the committed
one is the command's output), the nodes kept in floating point, and what the command refuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2 as mc

from model_tools import cli, quantize
from model_tools.quantize import Tolerances, agreement, box_iou, calibration_images, match

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = ROOT / "model_repository"
THRESHOLD = 0.5


def faces(*rows) -> quantize.Faces:
    """Faces from (score, x1, y1, x2, y2) rows; landmarks at fixed places inside each box."""
    scores = np.array([row[0] for row in rows], np.float32)
    boxes = np.array([row[1:] for row in rows], np.float32).reshape(-1, 4)
    offsets = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]], np.float32)
    size = boxes[:, 2:] - boxes[:, :2]
    landmarks = boxes[:, None, :2] + offsets[None] * size[:, None]
    return scores, boxes, landmarks


FP32 = faces((0.87, 100, 100, 160, 170), (0.66, 300, 40, 324, 70), (0.502, 500, 500, 517, 520))


# --- comparing detections ---------------------------------------------------------------------------

def test_box_iou():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])
    assert box_iou(np.zeros((0, 4)), np.zeros((2, 4))).shape == (0, 2)


def test_match_pairs_each_face_once_best_overlap_first():
    a = np.array([[0, 0, 10, 10], [4, 0, 14, 10], [50, 50, 60, 60]])
    b = np.array([[1, 0, 11, 10], [100, 100, 110, 110]])
    assert match(a, b) == [(0, 0)]  # a[1] overlaps b[0] too, less; a[2] and b[1] are alone


def test_the_same_faces_agree():
    found = agreement("p.jpg", FP32, FP32, THRESHOLD)
    assert (found.reference, found.found, found.problems, found.lost, found.extra) == (3, 3, [], [], [])
    assert found.min_iou == 1.0 and found.max_landmark_px == 0.0 and found.max_score_change == 0.0
    assert found.line() == ("p.jpg: FP32 3 faces, INT8 3; box IoU ≥ 1.000 (median 1.000), landmarks within "
                            "0.00 px, scores within 0.000")


def test_small_changes_are_within_the_tolerances():
    int8 = faces((0.85, 101, 100, 161, 171), (0.69, 300, 41, 324, 71), (0.51, 500, 500, 517, 520))
    found = agreement("p.jpg", FP32, int8, THRESHOLD)
    assert found.problems == [] and found.min_iou > 0.9
    assert found.max_score_change == pytest.approx(0.03, abs=1e-6)


def test_a_face_near_the_threshold_may_fall_either_side():
    int8 = faces((0.87, 100, 100, 160, 170), (0.66, 300, 40, 324, 70), (0.48, 500, 500, 517, 520))
    found = agreement("p.jpg", FP32, int8, THRESHOLD)
    assert found.found == 2 and found.problems == []
    assert found.lost == ["a 17 px face scoring 0.502 (0.480 in the other)"]
    assert "only FP32: a 17 px face scoring 0.502" in found.line()
    back = agreement("p.jpg", int8, FP32, THRESHOLD)  # the other way round: an extra face
    assert back.extra == ["a 17 px face scoring 0.502 (0.480 in the other)"] and back.problems == []


@pytest.mark.parametrize("int8, words", [
    (faces((0.87, 100, 100, 160, 170), (0.66, 300, 40, 324, 70)), "INT8 misses a 17 px face scoring 0.502"),
    (faces((0.87, 100, 100, 160, 170), (0.60, 300, 40, 324, 70), (0.51, 500, 500, 517, 520)),
     "score 0.660 → 0.600"),
    (faces((0.87, 104, 100, 164, 170), (0.66, 300, 40, 324, 70), (0.51, 500, 500, 517, 520)),
     "moved (IoU 0.875 < 0.9)"),
    (faces((0.87, 100, 100, 160, 170), (0.66, 300, 40, 324, 70), (0.51, 500, 500, 517, 520),
           (0.7, 700, 700, 740, 750)), "INT8 invents a 40 px face scoring 0.700"),
])
def test_what_is_outside_the_tolerances_is_named(int8, words):
    found = agreement("p.jpg", FP32, int8, THRESHOLD)
    assert any(words in problem for problem in found.problems), found.problems


def test_a_landmark_that_moved_too_far_is_named():
    int8 = faces(*[(s, *b) for s, b in zip(FP32[0], FP32[1])])
    int8[2][0, 2] += [3.5, 0.0]  # the nose of the first face
    found = agreement("p.jpg", FP32, int8, THRESHOLD)
    assert found.max_landmark_px == pytest.approx(3.5)
    assert [p for p in found.problems if "a landmark moved 3.5 px" in p]
    assert agreement("p.jpg", FP32, int8, THRESHOLD, Tolerances(landmark_px=4.0)).problems == []


def test_faces_neither_reports_are_ignored():
    quiet = faces((0.47, 0, 0, 20, 20))
    found = agreement("p.jpg", quiet, faces((0.46, 30, 30, 50, 50)), THRESHOLD)
    assert (found.reference, found.found, found.ious, found.problems) == (0, 0, [], [])


# --- the calibration set ------------------------------------------------------------------------------

def test_calibration_images_put_faces_at_every_scale():
    rgb = np.arange(200 * 300 * 3, dtype=np.uint32).reshape(200, 300, 3).astype(np.uint8)
    boxes = np.array([[100, 50, 140, 100], [10, 10, 30, 30], [200, 150, 220, 170], [0, 0, 5, 5]])
    images = calibration_images(rgb, boxes)
    assert len(images) == 2 + 9 + 1 + 2 * quantize.FACES_ZOOMED
    np.testing.assert_array_equal(images[1], rgb[:, ::-1])
    assert all(image.shape == (100, 150, 3) for image in images[2:11])
    np.testing.assert_array_equal(images[10], rgb[100:200, 150:300])
    padded = images[11]
    assert padded.shape == (400, 600, 3) and not padded[200:].any() and not padded[:, 300:].any()
    first_zooms = images[12:14]  # around the 50 px tall face centred at (120, 75): 100 and 200 px
    assert first_zooms[0].shape == (100, 100, 3)
    np.testing.assert_array_equal(first_zooms[0], rgb[25:125, 70:170])
    np.testing.assert_array_equal(first_zooms[1], rgb[0:175, 20:220])  # cut off at the photo's top


def test_calibration_images_of_a_photo_without_faces():
    assert len(calibration_images(np.zeros((64, 64, 3), np.uint8), np.zeros((0, 4)))) == 12


# --- the INT8 leaf config -----------------------------------------------------------------------------

def _parsed(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def test_the_committed_int8_config_is_the_commands_output():
    source = (REPOSITORY / "scrfd_500m" / "config.pbtxt").read_text()
    expected = quantize.leaf_config(source, "scrfd_500m", "scrfd_500m_int8")
    assert (REPOSITORY / "scrfd_500m_int8" / "config.pbtxt").read_text() == expected, (
        "run ./face-api models quantize scrfd_500m (and commit its config and pipelines)")


def test_the_int8_config_keeps_the_tensors_family_and_licence():
    source = _parsed((REPOSITORY / "scrfd_500m" / "config.pbtxt").read_text())
    int8 = _parsed(quantize.leaf_config((REPOSITORY / "scrfd_500m" / "config.pbtxt").read_text(),
                                        "scrfd_500m", "fast"))
    assert int8.name == "fast" and int8.max_batch_size == source.max_batch_size
    assert list(int8.input) == list(source.input) and list(int8.output) == list(source.output)
    for key in ("family", "licence"):
        assert int8.parameters[key].string_value == source.parameters[key].string_value
    assert int8.parameters["quantised_from"].string_value == "scrfd_500m"
    assert source.parameters["cpu_mode_dynamic_batching"].string_value == "off"
    assert int8.parameters["cpu_mode_dynamic_batching"].string_value == "on"


def test_a_config_that_does_not_name_its_model_is_refused():
    with pytest.raises(cli.Failed, match="no line 'name: \"scrfd_500m\"'"):
        quantize.leaf_config('name: "other"\n', "scrfd_500m", "x")


def test_only_the_score_sigmoids_stay_in_floating_point():
    nodes = [helper.make_node("Sigmoid", ["x"], ["inner"], name="inside"),
             helper.make_node("Relu", ["inner"], ["y"], name="relu"),
             helper.make_node("Sigmoid", ["y"], ["score_8"], name="score"),
             helper.make_node("Relu", ["y"], ["bbox_8"], name="bbox")]
    value = helper.make_tensor_value_info
    outputs = [value("score_8", TensorProto.FLOAT, [1]), value("bbox_8", TensorProto.FLOAT, [1])]
    graph = helper.make_graph(nodes, "g", [value("x", TensorProto.FLOAT, [1])], outputs)
    assert quantize.float_nodes(helper.make_model(graph)) == ["score"]


# --- what the command refuses (before quantising anything) -------------------------------------------

@pytest.fixture
def repositories(tmp_path) -> tuple[Path, Path]:
    """The real leaf configs (no weights) and an empty ensembles folder."""
    leaves = tmp_path / "model_repository"
    for config in REPOSITORY.glob("*/config.pbtxt"):
        (leaves / config.parent.name).mkdir(parents=True)
        shutil.copy(config, leaves / config.parent.name / "config.pbtxt")
    (tmp_path / "ensembles").mkdir()
    return leaves, tmp_path / "ensembles"


@pytest.mark.parametrize("argv, words", [
    (["nothing"], "no network named 'nothing'"),
    (["scrfd_500m", "--name", "scrfd_500m"], "--name must differ"),
    (["scrfd_500m", "--name", "bad name"], "'bad name' cannot name a model"),
    (["scrfd_500m", "--name", "face_letterbox"], "is not an ONNX network"),
    (["scrfd_500m", "--name", "scrfd_10g"], "exists and is not made from scrfd_500m"),
    (["yunet_2023mar"], "is not a SCRFD detector (family 'yunet')"),
    (["scrfd_500m_int8", "--name", "again"], "is itself quantised (from scrfd_500m)"),
    (["scrfd_10g"], "has no weights"),
])
def test_the_command_refuses(repositories, capsys, argv, words):
    leaves, ensembles = repositories
    code = cli.main(["quantize", *argv, "--repository", str(leaves), "--ensembles", str(ensembles)])
    assert code == 1
    assert words in capsys.readouterr().out
    untouched = sorted(config.parent.name for config in REPOSITORY.glob("*/config.pbtxt"))
    assert sorted(folder.name for folder in leaves.iterdir()) == untouched


AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"


@pytest.mark.parametrize("cpuinfo, machine, signed", [
    (AVX2_ONLY, "x86_64", False),  # u8 × s8 pairs would saturate in 16 bits
    (AVX2_ONLY.replace("bmi2", "bmi2 avx512f avx512_vnni"), "x86_64", True),
    (AVX2_ONLY.replace("bmi2", "bmi2 avx_vnni"), "x86_64", True),
    ("processor\t: 0\n", "x86_64", False),  # no flags line: the safe choice
    ("", "aarch64", True),  # ARM's dot products are exact
])
def test_signed_weights_only_where_the_cpu_multiplies_them_exactly(cpuinfo, machine, signed):
    assert quantize.signed_weights_are_exact(cpuinfo, machine) is signed
