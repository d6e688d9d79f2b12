"""The pipeline catalog: declarations parsed, pipelines selected for the settings, what a
missing mask pipeline means, and the served view that follows Triton (against a stand-in)."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from google.protobuf import text_format
from PIL import Image
from tritonclient.grpc import model_config_pb2 as mc

from frontend.app import create_app
from frontend.inference.catalog import (
    NOTHING,
    SERVED,
    UNAVAILABLE,
    UNSUPPORTED,
    CatalogError,
    Pipeline,
    Unsupported,
    mask_state,
    pipeline_from_parameters,
    select,
)
from frontend.inference.served import ServedPipelines
from frontend.inference.triton import TritonUnavailable
from frontend.settings import MODEL_SETS, Settings

ENSEMBLES = Path(__file__).resolve().parents[2] / "ensembles"
ADMIN_PASSWORD = "a-password-for-tests"

# Declarations as the pipeline configs carry them (names made up: the catalog reads, never guesses).
DETECT = {"kind": "detect", "detector": "det_a", "input_size": "640x480", "landmarks": "true",
          "mask_pipeline": "hide_a", "licence": "MIT"}
MASK = {"kind": "mask", "detector": "det_a", "input_size": "640x480", "landmarks": "true",
        "detect_pipeline": "find_a"}
DETECT_B = {"kind": "detect", "detector": "det_b", "input_size": "320x320", "landmarks": "false"}
RECOGNIZE = {"kind": "recognize", "detector": "det_b", "input_size": "320x320", "landmarks": "true",
             "recognizer": "rec_x", "embedding_size": "128", "detect_pipeline": "find_b",
             "bls_models": "find_b,align,rec_x"}
LEAF = {"family": "scrfd", "licence": "MIT"}  # a leaf network: no kind, not a pipeline
DECLARED = {"find_a": DETECT, "hide_a": MASK, "find_b": DETECT_B, "embed_x": RECOGNIZE, "det_a": LEAF,
            "align": {}}


def parsed(declared: dict[str, dict[str, str]]) -> list[Pipeline]:
    found = (pipeline_from_parameters(name, params) for name, params in declared.items())
    return [pipeline for pipeline in found if pipeline is not None]


# --- parsing ---

def test_declarations_are_parsed():
    detect = pipeline_from_parameters("find_a", DETECT)
    assert detect == Pipeline(name="find_a", kind="detect", detector="det_a", input_size=(640, 480),
                              landmarks=True, licence="MIT", mask_pipeline="hide_a")
    recognize = pipeline_from_parameters("embed_x", RECOGNIZE)
    assert recognize.recognizer == "rec_x" and recognize.embedding_size == 128
    assert recognize.detect_pipeline == "find_b"
    assert pipeline_from_parameters("find_b", DETECT_B).mask_pipeline is None
    assert pipeline_from_parameters("find_b", DETECT_B).landmarks is False
    assert pipeline_from_parameters("det_a", LEAF) is None and pipeline_from_parameters("align", {}) is None
    assert detect.fused_models == ()  # an ensemble as committed
    fused = pipeline_from_parameters("find_a", {**DETECT, "fused_models": "prep, det_a,post,"})
    assert fused.fused_models == ("prep", "det_a", "post")  # as CPU mode serves it


@pytest.mark.parametrize(("change", "words"), [
    ({"kind": "classify"}, "kind is 'classify'"),
    ({"input_size": ""}, "must declare the parameter 'input_size'"),
    ({"input_size": "640"}, "it must read WIDTHxHEIGHT"),
    ({"input_size": "0x640"}, "it must read WIDTHxHEIGHT"),
    ({"input_size": "wide x high"}, "it must read WIDTHxHEIGHT"),
    ({"landmarks": "yes"}, "it must be true or false"),
    ({"detector": " "}, "must declare the parameter 'detector'"),
    ({"embedding_size": "big"}, "embedding_size is 'big'"),
    ({"embedding_size": "0"}, "embedding_size is '0'"),
    ({"recognizer": ""}, "must declare the parameter 'recognizer'"),
    ({"detect_pipeline": ""}, "must declare the parameter 'detect_pipeline'"),
])
def test_broken_declarations_say_what_is_wrong(change, words):
    with pytest.raises(CatalogError, match="embed_x: .*" + words.replace("(", r"\(")):
        pipeline_from_parameters("embed_x", {**RECOGNIZE, **change})


def test_a_mask_pipeline_names_its_detect_pipeline():
    with pytest.raises(CatalogError, match="hide_a: a mask pipeline must declare .* 'detect_pipeline'"):
        pipeline_from_parameters("hide_a", {**MASK, "detect_pipeline": ""})


def test_every_committed_pipeline_declares_itself():
    """The pipelines in ensembles/ parse, and the pipelines they pair with exist."""
    pipelines = {}
    for path in sorted(ENSEMBLES.glob("*/config.pbtxt")):
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        params = {key: value.string_value for key, value in config.parameters.items()}
        pipeline = pipeline_from_parameters(path.parent.name, params)
        assert pipeline is not None, f"{path} declares no kind"
        pipelines[pipeline.name] = pipeline
    assert {p.kind for p in pipelines.values()} == {"detect", "mask", "recognize"}
    for pipeline in pipelines.values():
        for pair in (pipeline.mask_pipeline, pipeline.detect_pipeline):
            assert pair is None or pair in pipelines, f"{pipeline.name} pairs with {pair}, which is not there"
            assert pair is None or pipelines[pair].detector == pipeline.detector


# --- selection ---

def test_selection_follows_the_declarations_not_the_names():
    chosen = select(parsed(DECLARED), "det_a", "rec_x")
    assert (chosen.detect.name, chosen.mask.name, chosen.recognize.name) == ("find_a", "hide_a", "embed_x")
    assert chosen.recognize_detect.name == "find_b"  # the recognizer's pair, not the configured detector
    other = select(parsed(DECLARED), "det_b", "rec_x")
    assert other.detect.name == "find_b" and other.mask is None
    assert select(parsed(DECLARED), "det_c", "rec_y") == NOTHING


def test_a_recognize_pipeline_whose_pair_is_not_served_has_no_detect():
    served = {name: params for name, params in DECLARED.items() if name != "find_b"}
    chosen = select(parsed(served), "det_a", "rec_x")
    assert chosen.recognize.name == "embed_x" and chosen.recognize_detect is None


def test_the_model_sets():
    assert Settings().models == "insightface"
    assert (Settings().detector, Settings().recognizer) == MODEL_SETS["insightface"]
    clean = Settings(models="licence-clean")
    assert (clean.detector, clean.recognizer) == MODEL_SETS["licence-clean"]
    assert MODEL_SETS["licence-clean"] != MODEL_SETS["insightface"]
    # An explicit detector or recognizer wins over the set's.
    overridden = Settings(models="licence-clean", detector="det_a")
    assert (overridden.detector, overridden.recognizer) == ("det_a", MODEL_SETS["licence-clean"].recognizer)
    assert Settings(recognizer="rec_x").detector == MODEL_SETS["insightface"].detector


def test_the_model_set_from_the_environment(monkeypatch):
    monkeypatch.setenv("FACE_API_MODELS", "licence-clean")
    monkeypatch.setenv("FACE_API_RECOGNIZER", "rec_x")
    settings = Settings()
    assert (settings.detector, settings.recognizer) == (MODEL_SETS["licence-clean"].detector, "rec_x")
    monkeypatch.setenv("FACE_API_MODELS", "free")
    with pytest.raises(ValueError, match="insightface"):
        Settings()


def test_the_licence_clean_set_selects_its_committed_pipelines():
    pipelines = []
    for path in sorted(ENSEMBLES.glob("*/config.pbtxt")):
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        pipelines.append(pipeline_from_parameters(
            path.parent.name, {key: value.string_value for key, value in config.parameters.items()}))
    for models in MODEL_SETS:
        settings = Settings(models=models)
        chosen = select(pipelines, settings.detector, settings.recognizer)
        assert chosen.detect is not None and chosen.detect.detector == settings.detector, models
        assert chosen.recognize is not None and chosen.recognize.recognizer == settings.recognizer, models
        assert chosen.recognize_detect is not None, models


# --- what a missing mask pipeline means ---

def test_mask_state():
    assert mask_state(select(parsed(DECLARED), "det_a", "rec_x")) == SERVED
    # The detector declares no mask pipeline: none will come (501).
    assert mask_state(select(parsed(DECLARED), "det_b", "rec_x")) == UNSUPPORTED
    # It declares one that is not served now (loading, unloaded): 503.
    no_mask = {name: params for name, params in DECLARED.items() if name != "hide_a"}
    assert mask_state(select(parsed(no_mask), "det_a", "rec_x")) == UNAVAILABLE
    # Nothing served at all: 503, not 501.
    assert mask_state(NOTHING) == UNAVAILABLE


# --- the served view, against a stand-in for TritonClient ---

class Endpoint:
    ready = True


class Endpoints:
    def __init__(self):
        self.endpoints = [Endpoint()]


class FakeTriton:
    """Answers the two questions the catalog asks: the ready models, and their parameters."""

    def __init__(self, declared: dict[str, dict[str, str]]):
        self.declared = dict(declared)
        self.endpoints = Endpoints()
        self.down = False
        self.index_reads = 0

    async def ready_models(self) -> dict[str, str]:
        if self.down:
            raise TritonUnavailable("down", server_down=True)
        self.index_reads += 1
        return dict.fromkeys(sorted(self.declared), "1")

    async def model_parameters(self, model: str) -> dict[str, str] | None:
        return self.declared.get(model)


def test_the_served_view_reads_triton_and_keeps_the_last_answer():
    async def scenario():
        triton = FakeTriton(DECLARED)
        served = ServedPipelines(triton, "det_a", "rec_x", refresh_s=60)
        assert served.selection == NOTHING
        with pytest.raises(TritonUnavailable, match="no detect pipeline of the detector det_a"):
            served.detect()
        await served.refresh()
        assert served.detect().name == "find_a" and served.mask().name == "hide_a"
        assert served.recognize().name == "embed_x" and served.recognize_detect().name == "find_b"
        assert set(served.pipelines) == {"find_a", "hide_a", "find_b", "embed_x"}  # no leaf, no helper
        triton.down = True
        with pytest.raises(TritonUnavailable):
            await served.refresh()
        assert served.detect().name == "find_a"  # the last answer stands while Triton is away
        triton.down = False
        del triton.declared["find_b"]  # unloaded
        await served.refresh()
        with pytest.raises(TritonUnavailable, match="pairs with find_b, which is not served"):
            served.recognize_detect()

    asyncio.run(scenario())


def test_a_detector_without_a_mask_pipeline_is_unsupported_not_unavailable():
    async def scenario():
        served = ServedPipelines(FakeTriton(DECLARED), "det_b", "rec_x", refresh_s=60)
        await served.refresh()
        assert served.detect().name == "find_b"
        with pytest.raises(Unsupported, match="the detector det_b has no mask pipeline"):
            served.mask()

    asyncio.run(scenario())


def test_a_broken_declaration_is_skipped_and_said_once(caplog):
    async def scenario():
        declared = {**DECLARED, "hide_a": {**MASK, "input_size": "big"}}
        served = ServedPipelines(FakeTriton(declared), "det_a", "rec_x", refresh_s=60)
        with caplog.at_level(logging.WARNING, logger="face_api.catalog"):
            await served.refresh()
            await served.refresh()
        assert "hide_a" not in served.pipelines and served.detect().name == "find_a"
        broken = [r for r in caplog.records if "hide_a: input_size is 'big'" in r.getMessage()]
        assert len(broken) == 1

    asyncio.run(scenario())


def test_the_served_view_refreshes_by_itself_and_when_asked():
    async def scenario():
        triton = FakeTriton({})
        served = ServedPipelines(triton, "det_a", "rec_x", refresh_s=0.05)
        await served.start()
        try:
            assert served.selection == NOTHING
            triton.declared = dict(DECLARED)  # loaded through the repository API
            for _ in range(100):
                await asyncio.sleep(0.02)
                if served.selection.detect is not None:
                    break
            assert served.detect().name == "find_a"
        finally:
            await served.close()

        slow = ServedPipelines(triton, "det_b", "rec_x", refresh_s=3600)
        await slow.start()
        try:
            before = triton.index_reads
            slow.refresh_soon()  # a request found a model missing
            for _ in range(100):
                await asyncio.sleep(0.02)
                if triton.index_reads > before:
                    break
            assert triton.index_reads > before
        finally:
            await slow.close()

    asyncio.run(scenario())


def test_nothing_is_asked_while_no_triton_server_is_ready():
    async def scenario():
        triton = FakeTriton(DECLARED)
        triton.endpoints.endpoints[0].ready = False
        served = ServedPipelines(triton, "det_a", "rec_x")
        await served.refresh()
        assert triton.index_reads == 0 and served.selection == NOTHING

    asyncio.run(scenario())


# --- the HTTP answers the catalog decides (no Triton runs: nothing reaches it) ---

def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 120, 120)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture(scope="module")
def app():
    return create_app(Settings(database_enabled=False, storage_enabled=False, api_key_enabled=False,
                               rate_limit_enabled=False, admin_password=ADMIN_PASSWORD,
                               detector="det_b", recognizer="rec_x"))


def test_mask_is_501_when_the_detector_has_no_mask_pipeline(app):
    with TestClient(app) as http:
        app.state.catalog.apply({p.name: p for p in parsed(DECLARED)})  # as if Triton said so
        for path, auth in (("/api/v1/mask", None), ("/api/v1/admin/test/mask", ("admin", ADMIN_PASSWORD))):
            response = http.post(path, files={"image": ("photo.jpg", jpeg())}, auth=auth)
            assert response.status_code == 501, (path, response.text)
            assert response.json() == {"detail": "masking is not available: the detector det_b has no "
                                                  "mask pipeline (FACE_API_DETECTOR can name one that has)"}
        health = http.get("/health").json()
        assert health["model"] == "det_b" and health["supports_landmarks"] is False
        assert health["mask_available"] is False


def test_mask_and_detect_are_503_while_nothing_is_served(app):
    with TestClient(app) as http:
        app.state.catalog.apply({})
        for path in ("/api/v1/mask", "/api/v1/detect"):
            response = http.post(path, files={"image": ("photo.jpg", jpeg())})
            assert response.status_code == 503, (path, response.text)
            assert response.headers["retry-after"] == "5"
        health = http.get("/health")
        assert health.status_code == 503 and health.json()["model_loaded"] is False
        assert health.json()["input_size"] is None


def test_the_mask_endpoints_document_501(app):
    paths = app.openapi()["paths"]
    assert "501" in paths["/api/v1/mask"]["post"]["responses"]
    assert "501" in paths["/api/v1/admin/test/mask"]["post"]["responses"]
    assert "501" not in paths["/api/v1/detect"]["post"]["responses"]
