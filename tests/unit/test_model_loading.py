"""What the embedded Triton loads (runtime/selection.py), the derived repository brought up to
date in place (runtime/cpu_repository.py), and the state file that finds a running server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from runtime import cpu_repository, server_state
from runtime.paths import ENSEMBLES, MODEL_REPOSITORY, model_sources
from runtime.selection import LoadPlan, SelectionError, closure, selected_pipelines

CONFIGS = cpu_repository.read_configs([MODEL_REPOSITORY, ENSEMBLES])


def quiet(_message: str) -> None:
    pass


def test_the_default_settings_select_their_three_pipelines():
    assert selected_pipelines(CONFIGS, "scrfd_500m", "arcface_w600k_mbf", quiet) == [
        "detect_scrfd_500m", "mask_scrfd_500m", "recognize_arcface_w600k_mbf"]


def test_a_recognizer_brings_the_detect_pipeline_it_pairs_with():
    chosen = selected_pipelines(CONFIGS, "scrfd_500m", "sface_2021dec", quiet)
    assert chosen[:2] == ["detect_scrfd_500m", "mask_scrfd_500m"]
    assert chosen[2:] == ["recognize_sface_2021dec", "detect_yunet_2023mar"]


def test_an_unknown_detector_is_named_with_the_choices():
    with pytest.raises(SelectionError, match=r"'scrfd_1t'.*detectors with one: .*scrfd_500m"):
        selected_pipelines(CONFIGS, "scrfd_1t", "arcface_w600k_mbf", quiet)


def test_the_closure_puts_each_model_after_what_it_calls():
    order = closure(CONFIGS, ["recognize_arcface_w600k_mbf", "mask_scrfd_500m"])
    for name in order:
        _, config = CONFIGS[name]
        if config.platform == "ensemble" or "bls_models" in config.parameters:
            for called in cpu_repository.pipeline_models(config):
                assert order.index(called) < order.index(name), (called, name)
    assert {"arcface_w600k_mbf", "detect_scrfd_500m", "scrfd_500m", "face_mask"} <= set(order)
    assert not {"yunet_2023mar", "sface_2021dec", "detect_yunet_2023mar"} & set(order)
    assert len(order) == len(set(order))


def test_a_fused_pipeline_loads_without_its_steps():
    unfused = closure(CONFIGS, ["recognize_arcface_w600k_mbf", "mask_scrfd_500m"])
    fused = closure(CONFIGS, ["recognize_arcface_w600k_mbf", "mask_scrfd_500m"], fused=True)
    # detect and mask run their steps inside; recognize (a BLS model) runs its detect pipeline,
    # face_align and the recognizer inside
    assert fused == ["recognize_arcface_w600k_mbf", "mask_scrfd_500m"]
    assert {"face_letterbox", "scrfd_500m", "scrfd_postprocess", "face_mask", "detect_scrfd_500m",
            "face_align", "arcface_w600k_mbf"} <= set(unfused) - set(fused)


def test_only_an_ensemble_of_single_models_is_fusable():
    assert cpu_repository.fusable(CONFIGS["detect_scrfd_500m"][1], CONFIGS)
    assert cpu_repository.fusable(CONFIGS["mask_yunet_2023mar"][1], CONFIGS)
    assert not cpu_repository.fusable(CONFIGS["recognize_arcface_w600k_mbf"][1], CONFIGS)  # BLS
    assert not cpu_repository.fusable(CONFIGS["scrfd_500m"][1], CONFIGS)  # a single model
    nested = mc.ModelConfig()
    nested.CopyFrom(CONFIGS["detect_scrfd_500m"][1])
    nested.ensemble_scheduling.step[0].model_name = "mask_scrfd_500m"  # a step that is a pipeline
    assert not cpu_repository.fusable(nested, CONFIGS)


def test_a_bls_pipeline_runs_inside_what_keeps_no_dynamic_batcher():
    inside = cpu_repository.in_process_models
    assert inside(CONFIGS["detect_scrfd_500m"][1], CONFIGS) == ["face_letterbox", "scrfd_500m",
                                                                "scrfd_postprocess"]
    assert inside(CONFIGS["recognize_arcface_w600k_mbf"][1], CONFIGS) == [
        "detect_scrfd_500m", "face_align", "arcface_w600k_mbf"]
    # SFace's export fixes the batch at one: it has no batcher either
    assert inside(CONFIGS["recognize_sface_2021dec"][1], CONFIGS) == [
        "detect_yunet_2023mar", "face_align", "sface_2021dec"]
    assert inside(CONFIGS["scrfd_500m"][1], CONFIGS) == []  # a single model
    int8 = mc.ModelConfig()
    int8.CopyFrom(CONFIGS["recognize_arcface_w600k_mbf"][1])
    int8.parameters["bls_models"].string_value = "detect_scrfd_500m_int8,face_align,arcface_w600k_mbf"
    # the INT8 detector keeps its batcher in CPU mode, so its pipeline stays shared
    assert inside(int8, CONFIGS) == ["face_align", "arcface_w600k_mbf"]
    batched = {**CONFIGS, "arcface_w600k_mbf": (CONFIGS["arcface_w600k_mbf"][0], mc.ModelConfig())}
    batched["arcface_w600k_mbf"][1].CopyFrom(CONFIGS["arcface_w600k_mbf"][1])
    batched["arcface_w600k_mbf"][1].parameters["cpu_mode_dynamic_batching"].string_value = "on"
    assert inside(CONFIGS["recognize_arcface_w600k_mbf"][1], batched) == ["detect_scrfd_500m", "face_align"]


def test_a_name_that_is_not_in_the_repositories_is_refused():
    with pytest.raises(SelectionError, match="no model named 'detect_nothing'"):
        closure(CONFIGS, ["detect_nothing"])


@pytest.mark.parametrize("value, extra, everything", [
    ("", (), False), ("detect_yunet_2023mar", ("detect_yunet_2023mar",), False),
    (" all ", (), True), ("a, b,all", ("a", "b"), True)])
def test_the_load_setting(value, extra, everything):
    plan = LoadPlan.from_environment("d", "r", {"FACE_API_TRITON_LOAD": value})
    assert (plan.extra, plan.everything) == (extra, everything)


def test_the_repositories_setting(tmp_path):
    assert model_sources({}) == [MODEL_REPOSITORY, ENSEMBLES]
    assert model_sources({"FACE_API_TRITON_REPOSITORIES": f"{tmp_path}/a, {tmp_path}/b"}) == [
        tmp_path / "a", tmp_path / "b"]


@pytest.fixture
def repository(tmp_path) -> Path:
    """SCRFD-500M (its weights linked) with its letterbox, postprocess and detect pipeline."""
    source = tmp_path / "source"
    for name in ("face_letterbox", "scrfd_postprocess", "scrfd_500m"):
        shutil.copytree(MODEL_REPOSITORY / name, source / name, ignore=shutil.ignore_patterns("*.onnx"))
    (source / "scrfd_500m/1/model.onnx").symlink_to(MODEL_REPOSITORY / "scrfd_500m/1/model.onnx")
    shutil.copytree(ENSEMBLES / "detect_scrfd_500m", source / "detect_scrfd_500m")
    return source


def break_config(model_dir: Path) -> None:
    text = (model_dir / "config.pbtxt").read_text()
    (model_dir / "config.pbtxt").write_text(text.replace('"score_8"', '"score_eight"'))


def test_only_checked_models_pay_for_the_onnx_comparison(repository, tmp_path):
    break_config(repository / "scrfd_500m")
    unchecked = cpu_repository.derive([repository], tmp_path / "a", log=quiet, checked=["face_letterbox"])
    assert "scrfd_500m" in unchecked.served  # listed; refused when something asks to load it
    checked = cpu_repository.derive([repository], tmp_path / "b", log=quiet, checked=["scrfd_500m"])
    assert "output 'score_eight' is not in the graph" in checked.skipped["scrfd_500m"]


def test_deriving_again_swaps_only_what_changed(repository, tmp_path):
    target = tmp_path / "out"
    cpu_repository.derive([repository], target, log=quiet)
    entries = {entry.name: os.readlink(entry) for entry in target.iterdir()}
    assert all((target / name).is_symlink() for name in entries)

    cpu_repository.derive([repository], target, log=quiet)
    assert {entry.name: os.readlink(entry) for entry in target.iterdir()} == entries

    (repository / "scrfd_500m/2").mkdir()
    (repository / "scrfd_500m/2/model.onnx").symlink_to(MODEL_REPOSITORY / "scrfd_500m/1/model.onnx")
    cpu_repository.derive([repository], target, log=quiet)
    assert os.readlink(target / "scrfd_500m") != entries["scrfd_500m"]
    assert (target / "scrfd_500m/2/model.onnx").is_file() and not (target / "scrfd_500m/1").exists()
    assert not Path(entries["scrfd_500m"]).exists()  # the old folder is gone from the store
    assert os.readlink(target / "face_letterbox") == entries["face_letterbox"]


def test_a_model_that_can_no_longer_be_served_keeps_its_entry(repository, tmp_path):
    target = tmp_path / "out"
    cpu_repository.derive([repository], target, log=quiet)
    before = os.readlink(target / "scrfd_500m")
    (repository / "scrfd_500m/3").mkdir()
    (repository / "scrfd_500m/3/model.onnx").write_bytes(b"not ONNX")
    again = cpu_repository.derive([repository], target, log=quiet)
    assert "onnxruntime cannot load it" in again.skipped["scrfd_500m"]
    assert os.readlink(target / "scrfd_500m") == before and Path(before).is_dir()

    shutil.rmtree(repository / "detect_scrfd_500m")
    cpu_repository.derive([repository], target, log=quiet)
    assert not (target / "detect_scrfd_500m").exists()  # gone from the sources: gone here


def state(pid: int, http_port: int) -> server_state.ServerState:
    return server_state.ServerState(pid=pid, http_port=http_port, grpc_port=http_port + 1,
                                    sources=[], repository="")


def test_the_state_file_finds_the_running_server(tmp_path):
    with pytest.raises(server_state.NoServer, match="start one with ./face-api serve"):
        server_state.find(tmp_path)
    dead = 2**22 + 12345  # above pid_max's default: no such process
    server_state.write(server_state.path_for(tmp_path, 101), state(dead, 100))
    server_state.write(server_state.path_for(tmp_path, 201), state(os.getpid(), 200))
    assert server_state.find(tmp_path).http_port == 200
    server_state.write(server_state.path_for(tmp_path, 301), state(os.getppid(), 300))
    with pytest.raises(server_state.NoServer, match="FACE_API_TRITON_HTTP_PORT"):
        server_state.find(tmp_path)
    assert server_state.find(tmp_path, 300).pid == os.getppid()
    with pytest.raises(server_state.NoServer, match="HTTP port 100"):
        server_state.find(tmp_path, 100)

    server_state.remove(server_state.path_for(tmp_path, 201), os.getppid())  # not its writer: kept
    assert server_state.path_for(tmp_path, 201).exists()
    server_state.remove(server_state.path_for(tmp_path, 201), os.getpid())
    assert not server_state.path_for(tmp_path, 201).exists()


def test_the_onnx_comparison_gives_the_same_answer_in_a_child_process(repository, tmp_path):
    break_config(repository / "scrfd_500m")
    here = cpu_repository.prepare([repository], tmp_path / "a")
    apart = cpu_repository.prepare([repository], tmp_path / "b", apart=True)
    assert apart.skipped == here.skipped and "scrfd_500m" in apart.skipped
