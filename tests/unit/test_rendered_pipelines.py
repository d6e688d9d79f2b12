"""The pipelines in ensembles/ are model_tools/render.py's output, and the renderer reads any
detector's outputs (other names, another order, a fixed batch, no keypoints) from its config."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from frontend.inference.catalog import pipeline_from_parameters, select
from model_tools import render
from runtime.paths import ENSEMBLES, MODEL_REPOSITORY


def _config(text: str) -> mc.ModelConfig:
    config = mc.ModelConfig()
    text_format.Parse(text, config)
    return config


def _params(config: mc.ModelConfig) -> dict[str, str]:
    return {key: value.string_value for key, value in config.parameters.items()}


@pytest.fixture
def leaves(tmp_path) -> Path:
    """The leaf configs of the real repository, without weights (rendering needs none)."""
    target = tmp_path / "model_repository"
    for config in MODEL_REPOSITORY.glob("*/config.pbtxt"):
        (target / config.parent.name).mkdir(parents=True)
        shutil.copy(config, target / config.parent.name / "config.pbtxt")
    return target


def _edit(leaves: Path, model: str, old: str, new: str) -> None:
    path = leaves / model / "config.pbtxt"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def _steps(text: str) -> dict[str, mc.ModelEnsembling.Step]:
    return {step.model_name: step for step in _config(text).ensemble_scheduling.step}


# --- the committed pipelines ----------------------------------------------------------------------


def test_the_committed_pipelines_are_the_rendering():
    problems = render.drift(MODEL_REPOSITORY, ENSEMBLES)
    assert problems == [], "ensembles/ drifted; run `python -m model_tools render`:\n" + "\n".join(problems)


def test_every_detector_has_a_detect_and_a_mask_pipeline_that_pair():
    rendered = render.render_pipelines(MODEL_REPOSITORY)
    pipelines = [pipeline_from_parameters(name, _params(_config(files["config.pbtxt"])))
                 for name, files in rendered.items()]
    by_name = {p.name: p for p in pipelines}
    for detector in ("scrfd_500m", "scrfd_2.5g", "scrfd_10g", "yunet_2023mar"):
        chosen = select(pipelines, detector, "arcface_w600k_mbf")
        assert chosen.detect.name == f"detect_{detector}" and chosen.mask.name == f"mask_{detector}"
        assert chosen.detect.mask_pipeline == chosen.mask.name
        assert chosen.mask.detect_pipeline == chosen.detect.name
        assert chosen.detect.input_size == (640, 640) and chosen.detect.landmarks
    for recognizer, detector, size in (("arcface_w600k_mbf", "scrfd_500m", 512),
                                       ("sface_2021dec", "yunet_2023mar", 128)):
        pipeline = by_name[f"recognize_{recognizer}"]
        assert (pipeline.detector, pipeline.embedding_size) == (detector, size)
        assert pipeline.detect_pipeline == f"detect_{detector}"


def test_the_licence_clean_pair_is_complete_and_says_so():
    rendered = render.render_pipelines(MODEL_REPOSITORY)
    licences = {name: _params(_config(files["config.pbtxt"]))["licence"] for name, files in rendered.items()}
    assert licences["detect_yunet_2023mar"] == licences["mask_yunet_2023mar"] == "MIT"
    assert licences["recognize_sface_2021dec"] == "MIT (yunet_2023mar), Apache-2.0 (sface_2021dec)"
    mask = _config(rendered["mask_yunet_2023mar"]["config.pbtxt"])
    assert mask.max_batch_size == 0 and [s.model_name for s in mask.ensemble_scheduling.step] == [
        "yunet_letterbox", "yunet_2023mar", "yunet_postprocess", "face_mask"]
    assert {t.name: list(t.dims) for t in mask.input}["METHOD"] == [1, 1]


def test_recognize_parameters_come_from_the_recognizer_leaf():
    rendered = render.render_pipelines(MODEL_REPOSITORY)
    sface = _params(_config(rendered["recognize_sface_2021dec"]["config.pbtxt"]))
    assert {k: sface[k] for k in ("recognizer_input", "recognizer_output", "recognizer_max_batch_size",
                                  "mean", "std", "channel_order", "bls_models")} == {
        "recognizer_input": "data", "recognizer_output": "fc1", "recognizer_max_batch_size": "1",
        "mean": "0", "std": "1", "channel_order": "RGB",
        "bls_models": "detect_yunet_2023mar,face_align,sface_2021dec"}
    arcface = _params(_config(rendered["recognize_arcface_w600k_mbf"]["config.pbtxt"]))
    assert (arcface["recognizer_max_batch_size"], arcface["mean"], arcface["std"]) == ("32", "127.5", "127.5")
    assert "from triton_python.recognize_model import TritonPythonModel" in rendered[
        "recognize_sface_2021dec"]["1/model.py"]


def test_shared_python_code_is_imported_from_triton_python_never_linked():
    for root in (MODEL_REPOSITORY, ENSEMBLES):
        assert [p for p in root.rglob("*") if p.is_symlink()] == []
        for model_py in root.glob("*/1/model.py"):
            assert [p.name for p in model_py.parent.glob("*.py")] == ["model.py"], model_py
            imports = re.findall(r"^from (\S+) import", model_py.read_text(), re.MULTILINE)
            assert all(m.startswith("triton_python.") for m in imports if m != "__future__"), model_py


# --- any detector's outputs, read from its config ---------------------------------------------------


NUMBERED = {  # InsightFace's model packs name SCRFD outputs with numbers
    "score_8": "448", "score_16": "471", "score_32": "494", "bbox_8": "451", "bbox_16": "474",
    "bbox_32": "497", "kps_8": "454", "kps_16": "477", "kps_32": "500",
}


def test_numbered_outputs_in_another_order_map_by_shape(leaves):
    path = leaves / "scrfd_500m" / "config.pbtxt"
    anchors = {"8": 12800, "16": 3200, "32": 800}
    widths = {"score": 1, "bbox": 4, "kps": 10}
    order = ["kps_32", "score_8", "bbox_16", "bbox_8", "kps_16", "score_32", "kps_8", "score_16", "bbox_32"]
    outputs = ",\n".join(
        f'  {{ name: "{NUMBERED[t]}", data_type: TYPE_FP32, '
        f'dims: [ {anchors[t.split("_")[1]]}, {widths[t.split("_")[0]]} ] }}' for t in order)
    path.write_text(re.sub(r"output \[.*?\n\]", f"output [\n{outputs}\n]", path.read_text(), flags=re.S))

    detect = render.render_pipelines(leaves)["detect_scrfd_500m"]["config.pbtxt"]
    steps = _steps(detect)
    expected = {number: canonical for canonical, number in NUMBERED.items()}
    assert dict(steps["scrfd_500m"].output_map) == expected
    assert set(steps["scrfd_postprocess"].input_map) >= set(NUMBERED)


def test_a_fixed_batch_detector_gets_a_batch_zero_pipeline(leaves):
    _edit(leaves, "scrfd_500m", "max_batch_size: 8", "max_batch_size: 0")
    path = leaves / "scrfd_500m" / "config.pbtxt"
    path.write_text(re.sub(r"dims: \[ (\d+)", r"dims: [ 1, \1", path.read_text()))

    rendered = render.render_pipelines(leaves)
    for name in ("detect_scrfd_500m", "mask_scrfd_500m"):
        config = _config(rendered[name]["config.pbtxt"])
        assert config.max_batch_size == 0
        dims = {t.name: list(t.dims) for t in [*config.input, *config.output]}
        assert dims["IMAGE"] == [1, -1, -1, 3] and dims["BOXES"] == [1, -1, 4]
        assert "scrfd_500m fixes the batch at 1" in rendered[name]["config.pbtxt"]
    assert _config(rendered["detect_scrfd_2.5g"]["config.pbtxt"]).max_batch_size == 8


def test_a_detector_without_keypoints_renders_without_landmarks(leaves):
    path = leaves / "scrfd_2.5g" / "config.pbtxt"
    path.write_text("\n".join(line for line in path.read_text().splitlines() if '"kps_' not in line))
    _edit(leaves, "scrfd_2.5g", '  { name: "bbox_32",  data_type: TYPE_FP32, dims: [ 800, 4 ] },',
          '  { name: "bbox_32",  data_type: TYPE_FP32, dims: [ 800, 4 ] }')

    rendered = render.render_pipelines(leaves)
    detect = rendered["detect_scrfd_2.5g"]["config.pbtxt"]
    assert _params(_config(detect))["landmarks"] == "false"
    assert not any(key.startswith("kps_") for key in _steps(detect)["scrfd_postprocess"].input_map)

    _edit(leaves, "arcface_w600k_mbf", '"scrfd_500m"', '"scrfd_2.5g"')
    with pytest.raises(render.RenderError, match="gives no landmarks"):
        render.render_pipelines(leaves)


@pytest.mark.parametrize(("model", "old", "new", "message"), [
    ("scrfd_500m", "dims: [ 12800, 4 ]", "dims: [ -1, 4 ]", "concrete numbers"),
    ("scrfd_500m", '"scrfd"', '"retinaface"', "family 'retinaface' is none of"),
    ("yunet_2023mar", '"obj_16"', '"objectness_16"', "missing obj_16"),
    ("sface_2021dec", '"yunet_2023mar"', '"yunet_2099"', "its detector 'yunet_2099'"),
    ("scrfd_10g", 'parameters { key: "licence"', 'parameters { key: "license"', "'licence' is missing"),
    ("arcface_w600k_mbf", "dims: [ 3, 112, 112 ]", "dims: [ 3, 128, 128 ]", "aligned to [3, 112, 112]"),
])
def test_a_leaf_that_cannot_be_rendered_is_named_with_the_reason(leaves, model, old, new, message):
    _edit(leaves, model, old, new)
    with pytest.raises(render.RenderError, match=re.escape(message)):
        render.render_pipelines(leaves)


# --- writing and removing ---------------------------------------------------------------------------


def test_write_only_some_then_prune_and_remove(leaves, tmp_path):
    ensembles = tmp_path / "ensembles"
    assert render.write_pipelines(leaves, ensembles, only={"yunet_2023mar"}) == [
        "detect_yunet_2023mar", "mask_yunet_2023mar", "recognize_sface_2021dec"]
    assert sorted(p.name for p in ensembles.iterdir()) == [
        "detect_yunet_2023mar", "mask_yunet_2023mar", "recognize_sface_2021dec"]

    hand_written = ensembles / "detect_custom"
    hand_written.mkdir()
    (hand_written / "config.pbtxt").write_text('name: "detect_custom"\nplatform: "ensemble"\n')
    everything = render.write_pipelines(leaves, ensembles)
    assert render.drift(leaves, ensembles) == []

    shutil.rmtree(leaves / "scrfd_10g")
    assert render.drift(leaves, ensembles) == [
        "detect_scrfd_10g: rendered once, its leaf is gone (remove it)",
        "mask_scrfd_10g: rendered once, its leaf is gone (remove it)"]
    written = render.write_pipelines(leaves, ensembles)
    assert set(everything) - set(written) == {"detect_scrfd_10g", "mask_scrfd_10g"}
    assert not (ensembles / "detect_scrfd_10g").exists() and hand_written.is_dir()

    assert render.remove_pipelines_of("yunet_2023mar", ensembles) == [
        "detect_yunet_2023mar", "mask_yunet_2023mar", "recognize_sface_2021dec"]
    assert render.remove_pipelines_of("arcface_w600k_mbf", ensembles) == ["recognize_arcface_w600k_mbf"]
    assert (ensembles / "detect_scrfd_500m").is_dir()
