"""Only the selected models are loaded, and a model changed while the service runs is served
at the next request (``./face-api models reload``, through Triton's repository API).

The stack serves a temporary copy of model_repository/ and ensembles/ (weights linked,
not copied), so the real folders are never changed. The new detector is SCRFD-500M with
its score outputs passed through a square root: the same inputs and outputs, measurably
different scores, checked against onnxruntime run directly on the new file.
"""

from __future__ import annotations

import io

import httpx
import numpy as np
import onnx
import pytest
from onnx import helper
from PIL import Image

from model_tools.reload import reload_models
from runtime.repository_api import RepositoryApi
from tests.integration.conftest import SAMPLES
from tests.integration.stack import repository_copy, start_stack
from tests.reference.scrfd_reference import ReferenceSCRFD, decode_image

DEFAULT_PIPELINES = {"detect_scrfd_500m", "mask_scrfd_500m", "recognize_arcface_w600k_mbf"}
NOT_SELECTED = {"detect_yunet_2023mar", "recognize_sface_2021dec", "yunet_2023mar", "sface_2021dec"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reload")
    env = repository_copy(folder)
    stack = start_stack(folder, env={**env, "FACE_API_API_KEY_ENABLED": "false",
                                     "FACE_API_RATE_LIMIT_ENABLED": "false"})
    with httpx.Client(base_url=stack.url, timeout=60) as http:
        yield stack, http, folder
    stack.stop()


def square_root_scores(source, destination) -> None:
    """SCRFD with every score output replaced by its square root (a score s becomes √s)."""
    model = onnx.load(str(source))
    graph = model.graph
    for output in graph.output:
        if output.name.startswith("score_"):
            raw = f"{output.name}_before_sqrt"
            for node in graph.node:
                node.output[:] = [raw if name == output.name else name for name in node.output]
            graph.node.append(helper.make_node("Sqrt", [raw], [output.name]))
    destination.parent.mkdir(parents=True)
    onnx.save(model, str(destination))


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def scores(http: httpx.Client, rgb: np.ndarray) -> np.ndarray:
    response = http.post("/api/v1/detect", files={"image": ("photo.png", png(rgb))})
    assert response.status_code == 200, response.text
    return np.array([face["confidence"] for face in response.json()["detections"]])


def test_only_the_selected_pipelines_and_what_they_call_are_loaded(served):
    stack, _, _ = served
    index = RepositoryApi(stack.triton_http).index()
    ready = {name for name, state in index.items() if state == "READY"}
    assert DEFAULT_PIPELINES <= ready
    # detect and mask run their steps inside their own models, and recognize its detect
    # pipeline, face_align and the recognizer (CPU mode's fused pipelines)
    assert not {"scrfd_500m", "face_letterbox", "face_mask", "face_align", "arcface_w600k_mbf"} & ready, \
        sorted(ready)
    assert NOT_SELECTED <= set(index), sorted(index)  # in the repository, so they can be loaded later
    assert not NOT_SELECTED & ready, sorted(ready)


def test_a_new_detector_version_is_served_at_the_next_request(served):
    stack, http, folder = served
    rgb = decode_image(SAMPLES / "gdp.jpg")
    before = scores(http, rgb)
    original = folder / "model_repository/scrfd_500m/1/model.onnx"
    np.testing.assert_allclose(before, ReferenceSCRFD(original).detect(rgb).scores, atol=1e-3)

    new = folder / "model_repository/scrfd_500m/2/model.onnx"
    square_root_scores(original, new)
    lines = []
    assert reload_models(["detect_scrfd_500m"], log=lines.append, http_port=stack.triton_http) == 0, lines
    # the mask and recognize pipelines run the same detector inside them, so they are loaded again with it
    assert "loading mask_scrfd_500m …" in lines, lines
    assert "loading recognize_arcface_w600k_mbf …" in lines, lines

    after = scores(http, rgb)
    expected = ReferenceSCRFD(new).detect(rgb).scores
    assert len(after) == len(expected)
    np.testing.assert_allclose(after, expected, atol=1e-3)
    # The faces found before lead with their scores' square roots: clearly another network.
    np.testing.assert_allclose(after[: len(before)], np.sqrt(before), atol=2e-3)
    assert np.abs(after[: len(before)] - before).max() > 0.01
    index = RepositoryApi(stack.triton_http).index()
    assert not NOT_SELECTED & {name for name, state in index.items() if state == "READY"}

    # A version Triton cannot serve is refused before anything changes: the last one keeps serving.
    broken = folder / "model_repository/scrfd_500m/3/model.onnx"
    broken.parent.mkdir()
    broken.write_bytes(b"not an ONNX file")
    lines = []
    assert reload_models(None, log=lines.append, http_port=stack.triton_http) == 1
    assert any("scrfd_500m cannot be served" in line and "onnxruntime cannot load it" in line
               for line in lines), lines
    np.testing.assert_allclose(scores(http, rgb), expected, atol=1e-3)
