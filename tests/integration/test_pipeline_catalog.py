"""The frontend learns its pipelines from Triton (frontend/inference/served.py), through stacks
whose detector is YuNet (FACE_API_DETECTOR=yunet_2023mar): one on the repositories as
shipped, one on a copy in which that detector has no mask pipeline.

What the frontend reports is compared with what Triton itself says it serves: the
repository index and each ready pipeline's declaration. The mask endpoints answer 501
while the detector declares no mask pipeline; once it has one, every face of the
sample photos must come back masked. A pipeline unloaded and loaded again through
Triton's repository API is followed without a restart.
"""

from __future__ import annotations

import base64
import io
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from tritonclient.grpc import InferenceServerClient

from frontend.inference.catalog import Selection, mask_state, pipeline_from_parameters, select
from tests.integration.conftest import LIMITS, PHOTO_FACES, SAMPLES
from tests.integration.stack import ADMIN_PASSWORD, repository_copy, start_stack

DETECTOR = "yunet_2023mar"
RECOGNIZER = "arcface_w600k_mbf"  # the default: it pairs with another detector
ADMIN = ("admin", ADMIN_PASSWORD)
NO_MASK = (f"masking is not available: the detector {DETECTOR} has no mask pipeline "
           "(FACE_API_DETECTOR can name one that has)")


def without_mask_pipeline(folder: Path) -> dict[str, str]:
    """A copy of the repositories in which the detector has no mask pipeline (none is declared,
    none is there): the environment of a stack that serves it."""
    env = repository_copy(folder)
    ensembles = folder / "ensembles"
    for config in ensembles.glob("*/config.pbtxt"):
        text = config.read_text()
        if f'"{DETECTOR}"' not in text:
            continue
        if '"kind", value: { string_value: "mask" }' in text:
            shutil.rmtree(config.parent)
        else:
            config.write_text("\n".join(line for line in text.split("\n") if '"mask_pipeline"' not in line))
    return env


@pytest.fixture(scope="module", params=["shipped", "without a mask pipeline"])
def stack(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("catalog")
    env = without_mask_pipeline(folder) if request.param != "shipped" else {}
    running = start_stack(folder, env={**LIMITS, **env, "FACE_API_DETECTOR": DETECTOR,
                                       "FACE_API_API_KEY_ENABLED": "false"})
    running.without_mask = request.param != "shipped"
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        yield client


def served(stack) -> Selection:
    """What Triton serves, read directly (not through the frontend), selected for the settings."""
    triton = InferenceServerClient(f"127.0.0.1:{stack.triton_grpc}")
    try:
        ready = [m.name for m in triton.get_model_repository_index().models if m.state == "READY"]
        pipelines = []
        for name in ready:
            config = triton.get_model_config(name).config
            params = {key: value.string_value for key, value in config.parameters.items()}
            pipeline = pipeline_from_parameters(name, params)
            if pipeline is not None:
                pipelines.append(pipeline)
    finally:
        triton.close()
    return select(pipelines, DETECTOR, RECOGNIZER)


def repository(stack, action: str, model: str) -> None:
    """Triton's repository API: load or unload ``model``."""
    response = httpx.post(f"http://127.0.0.1:{stack.triton_http}/v2/repository/models/{model}/{action}",
                          timeout=120)
    assert response.status_code == 200, response.text


def eventually(check, timeout: float = 20.0):
    """``check()``'s first truthy answer within ``timeout`` seconds (the catalog refreshes every 2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.25)


def post_photo(http: httpx.Client, path: str, data: bytes, auth=None, **params) -> httpx.Response:
    return http.post(path, params=params, files={"image": ("photo.jpg", data)}, auth=auth)


def test_health_reports_what_the_catalog_selected(http, stack):
    expected = served(stack)
    assert expected.detect is not None and expected.detect.detector == DETECTOR
    response = http.get("/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == DETECTOR and body["model_loaded"] is True
    assert body["input_size"] == list(expected.detect.input_size)
    assert body["supports_landmarks"] is expected.detect.landmarks
    assert body["mask_available"] is (expected.mask is not None)

    info = http.get("/v1/info/model").json()
    # /v1 keeps its recognizer's pair: the detect pipeline the recognize pipeline declares.
    assert info["pipeline"] == expected.recognize.name
    assert info["detect_pipeline"] == expected.recognize.detect_pipeline == expected.recognize_detect.name
    assert info["detector"] == expected.recognize.detector != DETECTOR
    assert info["embedding_size"] == expected.recognize.embedding_size
    v1 = http.get("/v1/health").json()
    assert v1 == {"status": "ok", "recognizer": RECOGNIZER, "detector": expected.recognize.detector,
                  "model_loaded": True}


@pytest.mark.parametrize("name", sorted(PHOTO_FACES))
def test_detect_serves_the_configured_detector(http, stack, name):
    expected = served(stack).detect
    response = post_photo(http, "/api/v1/detect", (SAMPLES / name).read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"]["face_count"] >= 1
    assert body["processing"]["model"] == body["profiling"]["model_name"] == DETECTOR
    assert body["processing"]["input_size"] == list(expected.input_size)


def masked_faces(http: httpx.Client, stack, name: str) -> None:
    """Every face that /detect finds on the sample is painted over by /mask (solid fill)."""
    data = (SAMPLES / name).read_bytes()
    found = post_photo(http, "/api/v1/detect", data).json()["detections"]
    response = post_photo(http, "/api/v1/admin/test/mask", data, auth=ADMIN, method="solid", format="png")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"]["face_count"] == len(found) >= 1
    assert body["masking"]["regions_masked"] == len(found)
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["output"]["image_base64"]))).convert("L"))
    for face in found:
        box = face["bbox"]
        # The middle half of the box: well inside what the fill covers, whatever the padding.
        w, h = box["x2"] - box["x1"], box["y2"] - box["y1"]
        x1, x2 = int(box["x1"] + w / 4), int(np.ceil(box["x2"] - w / 4))
        y1, y2 = int(box["y1"] + h / 4), int(np.ceil(box["y2"] - h / 4))
        inside = pixels[max(y1, 0):y2, max(x1, 0):x2]
        assert inside.size and inside.max() <= 8, f"{name}: the face at {box} is not masked"


def test_mask_answers_as_the_catalog_says(http, stack):
    state = mask_state(served(stack))
    if stack.without_mask:
        assert state == "unsupported"
    if state == "unsupported":  # the detector declares no mask pipeline
        for path, auth in (("/api/v1/mask", None), ("/api/v1/admin/test/mask", ADMIN)):
            response = post_photo(http, path, (SAMPLES / "yaoming.jpg").read_bytes(), auth=auth)
            assert response.status_code == 501, response.text
            assert response.json() == {"detail": NO_MASK}
        assert http.get("/health").json()["mask_available"] is False
        return
    assert state == "served"
    response = post_photo(http, "/api/v1/mask", (SAMPLES / "yaoming.jpg").read_bytes())
    assert response.status_code == 200, response.text
    assert response.headers["x-model"] == DETECTOR
    for name in sorted(PHOTO_FACES):
        masked_faces(http, stack, name)


def test_a_pipeline_unloaded_and_loaded_again_is_followed(http, stack):
    selection = served(stack)
    detect = selection.detect.name
    photo = (SAMPLES / "yaoming.jpg").read_bytes()
    mask_before = post_photo(http, "/api/v1/mask", photo).status_code
    assert mask_before in (200, 501)
    repository(stack, "unload", detect)
    try:
        assert eventually(lambda: post_photo(http, "/api/v1/detect", photo).status_code == 503)
        health = http.get("/health")
        assert health.status_code == 503 and health.json()["model_loaded"] is False
        if mask_before == 501:
            # Without its detect pipeline the detector's declarations are gone too: not served
            # now (503) rather than unsupported (501), once every worker has looked again.
            assert eventually(lambda: all(post_photo(http, "/api/v1/mask", photo).status_code == 503
                                          for _ in range(4)))
    finally:
        repository(stack, "load", detect)
    assert eventually(lambda: http.get("/health").status_code == 200)
    assert eventually(lambda: all(post_photo(http, "/api/v1/detect", photo).status_code == 200
                                  for _ in range(4)))  # each worker
    assert eventually(lambda: all(post_photo(http, "/api/v1/mask", photo).status_code == mask_before
                                  for _ in range(4)))
