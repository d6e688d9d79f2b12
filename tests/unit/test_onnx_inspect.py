"""model_tools.onnx_inspect (and the leaf config and CLI around it) on small synthetic graphs.

Each graph is built with onnx.helper to look like an export of one family, output by
output: a strided convolution per stride and kind, flattened to (N,) A × k, with the
names, order and batch handling the test asks for.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import model_config_pb2 as mc

from model_tools import cli, leaf_config, onnx_inspect
from model_tools.onnx_inspect import Refused
from runtime.cpu_repository import mismatches

ROOT = Path(__file__).resolve().parents[2]
DEPTH = {"score": 1, "cls": 1, "obj": 1, "bbox": 4, "kps": 10}
SCRFD = ("score", "bbox", "kps")
YUNET = ("cls", "obj", "bbox", "kps")


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def detector(kinds=SCRFD, anchors=2, batch: int | str = "N", size: int | str = "H", batched=True,
             hard_coded=False, name=lambda kind, stride: f"{kind}_{stride}", shuffle=None,
             strides=(8, 16, 32), depth=None) -> onnx.ModelProto:
    """A detector-shaped graph: per stride and kind, Conv(k×k, stride) -> NHWC -> A × depth."""
    rng = np.random.default_rng(7)
    nodes, weights, outputs = [], [], []
    for stride in strides:
        for kind in kinds:
            k = (depth or DEPTH)[kind]
            tag = f"{kind}{stride}"
            weight = rng.standard_normal((anchors * k, 3, stride, stride)).astype(np.float32) * 0.01
            weights.append(numpy_helper.from_array(weight, f"w_{tag}"))
            nodes.append(helper.make_node("Conv", ["image", f"w_{tag}"], [f"conv_{tag}"],
                                          kernel_shape=[stride, stride], strides=[stride, stride]))
            nodes.append(helper.make_node("Transpose", [f"conv_{tag}"], [f"nhwc_{tag}"], perm=[0, 2, 3, 1]))
            if batched:
                shape = [0, -1, k]
            elif hard_coded:
                shape = [(640 // stride) ** 2 * anchors, k]
            else:
                shape = [-1, k]
            weights.append(numpy_helper.from_array(np.array(shape, np.int64), f"shape_{tag}"))
            nodes.append(helper.make_node("Reshape", [f"nhwc_{tag}", f"shape_{tag}"], [name(kind, stride)]))
            outputs.append(helper.make_tensor_value_info(name(kind, stride), TensorProto.FLOAT, None))
    if shuffle is not None:
        random.Random(shuffle).shuffle(outputs)
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, size, size])
    return _model(helper.make_graph(nodes, "detector", [image], outputs, weights))


def recogniser(size=112, batch: int | str = "N", embedding=64, outputs=1) -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((embedding, 3, size, size)).astype(np.float32) * 0.01
    nodes = [helper.make_node("Conv", ["data", "w"], ["conv"], kernel_shape=[size, size]),
             helper.make_node("Flatten", ["conv"], ["fc1"])]
    declared = [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [batch, embedding])]
    if outputs == 2:
        nodes.append(helper.make_node("Relu", ["fc1"], ["extra"]))
        declared.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [batch, embedding]))
    image = helper.make_tensor_value_info("data", TensorProto.FLOAT, [batch, 3, size, size])
    return _model(helper.make_graph(nodes, "recogniser", [image], declared,
                                    [numpy_helper.from_array(weight, "w")]))


def numbered(kind: str, stride: int) -> str:
    return str(100 + 10 * SCRFD.index(kind) + stride)


def shapes(model: onnx.ModelProto) -> dict[str, list]:
    return {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]
            for o in model.graph.output}


def items(count: int = 2, size: int = 640) -> np.ndarray:
    return np.random.default_rng(11).standard_normal((count, 3, size, size)).astype(np.float32)


# --- recognising the family -----------------------------------------------------------------


def test_scrfd_with_keypoints_and_the_served_names():
    found = onnx_inspect.inspect(detector())
    assert (found.family, found.landmarks, found.fixed_batch) == ("scrfd", True, False)
    assert list(found.outputs) == [f"{k}_{s}" for k in SCRFD for s in (8, 16, 32)]
    assert found.shapes["score_8"] == (12800, 1) and found.shapes["kps_32"] == (800, 10)
    assert found.served_input == "input.1" and found.height == 0  # any size, served at 640


def test_numbered_outputs_in_any_order_are_grouped_by_stride_and_kind():
    found = onnx_inspect.inspect(detector(name=numbered, shuffle=5))
    assert found.outputs == {f"{k}_{s}": numbered(k, s) for k in SCRFD for s in (8, 16, 32)}


def test_scrfd_without_keypoints():
    found = onnx_inspect.inspect(detector(kinds=("score", "bbox")))
    assert found.family == "scrfd" and not found.landmarks
    assert sorted(found.outputs) == sorted(f"{k}_{s}" for k in ("score", "bbox") for s in (8, 16, 32))
    assert any("no keypoints" in note for note in found.notes)


def test_yunet_cls_and_obj_by_name_whatever_the_order():
    model = detector(kinds=("obj", "cls", "bbox", "kps"), anchors=1, batch=1, size=640)
    found = onnx_inspect.inspect(model)
    assert found.family == "yunet" and found.fixed_batch and found.height == 640
    assert found.outputs["cls_16"] == "cls_16" and found.outputs["obj_16"] == "obj_16"
    assert found.served_input == "input"


def test_yunet_without_telling_names_takes_the_graph_order_and_says_so():
    model = detector(kinds=YUNET, anchors=1, batch=1, size=640, name=lambda k, s: f"out_{k[0]}{s}_{k}x"[:6])
    found = onnx_inspect.inspect(model)
    assert found.outputs["cls_8"] == "out_c8" and found.outputs["obj_8"] == "out_o8"
    assert any("graph order" in note for note in found.notes)


def test_recogniser():
    found = onnx_inspect.inspect(recogniser(batch=1, embedding=64))
    assert (found.family, found.embedding_size, found.fixed_batch) == ("arcface", 64, True)
    assert found.served_input == "data" and found.outputs == {"fc1": "fc1"}


@pytest.mark.parametrize("model, words", [
    (recogniser(outputs=2), "has 2 outputs"),
    (recogniser(size=96), "fixed at 96×96"),
    (recogniser(batch=4), "fixes the batch at 4"),
    (detector(size=320), "fixed at 320×320"),
    (detector(anchors=3), "3 anchors per cell"),
    (detector(strides=(8, 16, 32, 64)), "4 sizes"),
    (detector(kinds=("score", "bbox", "box"), depth={**DEPTH, "box": 4}), "SCRFD has score, bbox"),
    (detector(kinds=YUNET, anchors=2), "looks like YuNet but has 2 anchors"),
    (detector(depth={**DEPTH, "kps": 7}), "7 values per anchor"),
])
def test_refusals_say_why(model, words):
    with pytest.raises(Refused, match=words):
        onnx_inspect.inspect(model)


def test_refuses_two_inputs_and_integer_images():
    model = recogniser()
    model.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    with pytest.raises(Refused, match="has 2 inputs"):
        onnx_inspect.inspect(model)
    model = recogniser()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    with pytest.raises(Refused, match="UINT8"):
        onnx_inspect.inspect(model)


def test_refuses_a_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "photo.onnx"
    path.write_bytes(b"\xff\xd8 not a graph")
    with pytest.raises(Refused, match="not a readable ONNX file"):
        onnx_inspect.load(path)


# --- rewriting ---------------------------------------------------------------------------------


def test_rewrite_renames_and_keeps_a_dynamic_batch():
    model = detector(name=numbered, shuffle=2)
    found = onnx_inspect.inspect(model)
    rewritten = onnx_inspect.normalise(model, found)
    assert rewritten.dynamic_batch
    assert list(shapes(rewritten.model)) == list(found.outputs)
    assert shapes(rewritten.model)["bbox_16"] == ["batch", 3200, 4]
    assert rewritten.model.graph.input[0].name == "input.1"
    assert max(onnx_inspect.differences(model, rewritten.model, found, items()).values()) == 0


def test_outputs_without_a_batch_dimension_and_a_fixed_batch_become_batched():
    model = detector(batch=1, batched=False, name=numbered)  # like InsightFace's det_500m.onnx
    found = onnx_inspect.inspect(model)
    assert found.fixed_batch and not any(found.batched_outputs.values())
    rewritten = onnx_inspect.normalise(model, found)
    assert rewritten.dynamic_batch
    result = onnx_inspect.run(rewritten.model, {"input.1": items(3)})
    assert result["kps_8"].shape == (3, 12800, 10)
    assert max(onnx_inspect.differences(model, rewritten.model, found, items(3)).values()) < 1e-5


def test_a_graph_that_hard_codes_its_batch_is_served_one_item_per_call():
    model = detector(batch=1, size=640, batched=False, hard_coded=True)
    found = onnx_inspect.inspect(model)
    rewritten = onnx_inspect.normalise(model, found)
    assert not rewritten.dynamic_batch
    assert any("one item per call" in note for note in found.notes)
    assert rewritten.model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert shapes(rewritten.model)["score_32"] == [1, 800, 1]
    assert max(onnx_inspect.differences(model, rewritten.model, found, items()).values()) == 0
    assert leaf_config.max_batch_size(found, rewritten.dynamic_batch) == 1


def test_our_names_in_another_order_are_renamed_without_collisions():
    swap = {"score": "bbox", "bbox": "score", "kps": "kps"}
    model = detector(name=lambda kind, stride: f"{swap[kind]}_{40 - stride}")
    found = onnx_inspect.inspect(model)
    assert found.outputs["score_8"] == "bbox_32"
    rewritten = onnx_inspect.normalise(model, found)
    assert max(onnx_inspect.differences(model, rewritten.model, found, items()).values()) == 0


def test_yunet_keeps_its_batch_of_one():
    model = detector(kinds=YUNET, anchors=1, batch=1, size=640)
    found = onnx_inspect.inspect(model)
    rewritten = onnx_inspect.normalise(model, found)
    assert not rewritten.dynamic_batch and leaf_config.max_batch_size(found, False) == 0


def test_a_fixed_batch_recogniser_becomes_batched():
    model = recogniser(batch=1)
    found = onnx_inspect.inspect(model)
    rewritten = onnx_inspect.normalise(model, found)
    assert rewritten.dynamic_batch and shapes(rewritten.model) == {"fc1": ["batch", 64]}
    assert max(onnx_inspect.differences(model, rewritten.model, found, items(3, 112)).values()) < 1e-5


# --- the leaf config ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", [
    detector(batch=1, batched=False, name=numbered),
    detector(batch=1, size=640, batched=False, hard_coded=True),
    detector(kinds=YUNET, anchors=1, batch=1, size=640),
    recogniser(batch=1),
], ids=["scrfd", "scrfd-one-per-call", "yunet", "recogniser"])
def test_the_leaf_config_matches_the_rewritten_graph(model, tmp_path):
    found = onnx_inspect.inspect(model)
    rewritten = onnx_inspect.normalise(model, found)
    recognition = None if found.is_detector else leaf_config.Recognition("scrfd_500m", "0", "1", "BGR")
    text = leaf_config.render("added", found, rewritten.dynamic_batch, "file.onnx", "ab" * 32, "MIT",
                              cli.changes(found, rewritten.dynamic_batch), recognition)
    config = mc.ModelConfig()
    text_format.Parse(text, config)
    onnx.save(rewritten.model, str(tmp_path / "model.onnx"))
    assert mismatches(config, tmp_path / "model.onnx") == []
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params["family"] == found.family and params["licence"] == "MIT"
    assert "file.onnx" in text and "ab" * 32 in text
    if recognition:
        assert (params["detector"], params["mean"], params["std"], params["channel_order"]) == \
            ("scrfd_500m", "0", "1", "BGR")
    # As the shipped detectors: a lone request may use every core in CPU mode; recognisers
    # (whose second session would cost more memory) keep to their threads.
    assert params.get("cpu_mode_idle_threads") == (None if recognition else "on")
    # A model given a dynamic batcher runs without it in CPU mode, as the shipped ones do.
    assert params.get("cpu_mode_dynamic_batching") == ("off" if config.max_batch_size > 1 else None)
    assert config.HasField("dynamic_batching") == (config.max_batch_size > 1)


# --- the command, in a copy of the repositories (configs only, no weights) -----------------------


@pytest.fixture
def repositories(tmp_path, monkeypatch):
    weightless = shutil.ignore_patterns("*.onnx", "__pycache__")
    shutil.copytree(ROOT / "model_repository", tmp_path / "model_repository", ignore=weightless)
    shutil.copytree(ROOT / "ensembles", tmp_path / "ensembles", ignore=weightless)
    (tmp_path / "samples").mkdir()
    monkeypatch.setenv("FACE_API_TRITON_HTTP_PORT", "1")  # nothing answers there: "not running"
    monkeypatch.delenv("FACE_API_DETECTOR", raising=False)
    monkeypatch.delenv("FACE_API_RECOGNIZER", raising=False)
    monkeypatch.delenv("FACE_API_MODELS", raising=False)
    return tmp_path


def _run(repositories: Path, *argv: str) -> int:
    where = ["--repository", str(repositories / "model_repository"),
             "--ensembles", str(repositories / "ensembles")]
    extra = ["--samples", str(repositories / "samples")] if argv[0] == "add" else []
    return cli.main([*argv, *where, *extra])


def test_add_list_remove(repositories, capsys):
    onnx.save(detector(batch=1, batched=False, name=numbered), str(repositories / "det_tiny.onnx"))
    onnx.save(recogniser(batch=1), str(repositories / "rec_tiny.onnx"))
    assert _run(repositories, "add", str(repositories / "det_tiny.onnx")) == 0
    assert _run(repositories, "add", str(repositories / "rec_tiny.onnx"), "--detector", "det_tiny",
                "--licence", "MIT") == 0
    for pipeline in ("detect_det_tiny", "mask_det_tiny", "recognize_rec_tiny"):
        assert (repositories / "ensembles" / pipeline / "config.pbtxt").is_file()
    assert (repositories / "model_repository" / "det_tiny" / "1" / "model.onnx").is_file()
    capsys.readouterr()

    assert _run(repositories, "list") == 0
    listing = capsys.readouterr().out
    row = next(line for line in listing.splitlines() if line.startswith("rec_tiny"))
    assert "arcface" in row and "recognize_rec_tiny" in row and "MIT" in row and "not running" in row

    assert _run(repositories, "add", str(repositories / "det_tiny.onnx")) == 1  # exists: --force
    assert _run(repositories, "add", str(repositories / "det_tiny.onnx"), "--force") == 0
    assert (repositories / "ensembles" / "recognize_rec_tiny" / "config.pbtxt").is_file()  # rendered again
    helper_name = ["--name", "face_mask", "--force"]  # a helper model is never replaced
    assert _run(repositories, "add", str(repositories / "det_tiny.onnx"), *helper_name) == 1
    assert _run(repositories, "remove", "det_tiny") == 1  # rec_tiny pairs with it
    assert "pair with det_tiny" in capsys.readouterr().out
    assert _run(repositories, "remove", "scrfd_500m") == 1  # the configured detector
    assert _run(repositories, "remove", "rec_tiny") == 0
    assert _run(repositories, "remove", "det_tiny") == 0
    assert not (repositories / "ensembles" / "detect_det_tiny").exists()
    assert not (repositories / "model_repository" / "det_tiny").exists()


def test_add_refuses_with_the_reason_and_writes_nothing(repositories, capsys):
    onnx.save(detector(size=320), str(repositories / "small.onnx"))
    assert _run(repositories, "add", str(repositories / "small.onnx")) == 1
    assert "fixed at 320×320" in capsys.readouterr().out
    assert not (repositories / "model_repository" / "small").exists()


def test_a_detector_without_keypoints_is_added_but_no_recogniser_pairs_with_it(repositories, capsys):
    onnx.save(detector(kinds=("score", "bbox")), str(repositories / "boxes_only.onnx"))
    onnx.save(recogniser(), str(repositories / "rec.onnx"))
    assert _run(repositories, "add", str(repositories / "boxes_only.onnx")) == 0
    rendered = (repositories / "ensembles" / "detect_boxes_only" / "config.pbtxt").read_text()
    assert 'key: "landmarks", value: { string_value: "false" }' in rendered
    assert _run(repositories, "add", str(repositories / "rec.onnx"), "--detector", "boxes_only") == 1
    assert "finds no landmarks" in capsys.readouterr().out
