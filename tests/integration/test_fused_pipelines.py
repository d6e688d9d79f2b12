"""CPU mode runs each detect and mask ensemble's steps inside one Triton model.

runtime/pipeline_runner.py loads the ensemble's own step models into one process and
calls them in the ensemble's order; FACE_API_CPU_FUSED_PIPELINES=false serves the
committed ensembles as they are (the shape NVIDIA's container serves on a GPU). Both
must give the same answers to the byte, through the real stack: detect, mask (the
masked JPEG) and recognition, whose BLS model calls the detect pipeline.
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import tritonclient.grpc as grpcclient

from tests.integration.conftest import LIMITS, PHOTO_FACES, batch_counts
from tests.integration.stack import start_stack

STEPS = {"face_letterbox", "scrfd_500m", "scrfd_postprocess", "face_mask"}


@pytest.fixture(scope="module")
def ensembles(tmp_path_factory):
    """A second stack that serves the ensembles unfused."""
    running = start_stack(tmp_path_factory.mktemp("ensembles"),
                          env={**LIMITS, "FACE_API_CPU_FUSED_PIPELINES": "false"})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def ensemble_client(ensembles):
    with httpx.Client(base_url=ensembles.url, timeout=60,
                      headers={"X-API-Key": ensembles.first_key}) as http:
        yield http


def loaded(stack) -> dict[str, grpcclient.model_config_pb2.ModelConfig]:
    triton = grpcclient.InferenceServerClient(f"127.0.0.1:{stack.triton_grpc}")
    try:
        ready = [m.name for m in triton.get_model_repository_index().models if m.state == "READY"]
        return {name: triton.get_model_config(name).config for name in ready}
    finally:
        triton.close()


def test_the_default_stack_runs_each_detect_and_mask_pipeline_as_one_model(stack, ensembles):
    fused = loaded(stack)
    for name in ("detect_scrfd_500m", "mask_scrfd_500m"):
        assert fused[name].backend == "python" and fused[name].platform == ""
        assert STEPS >= set(fused[name].parameters["fused_models"].string_value.split(","))
    assert not STEPS & set(fused), "the steps run inside their pipelines, not on their own"
    assert fused["recognize_arcface_w600k_mbf"].parameters["bls_models"].string_value  # unchanged

    unfused = loaded(ensembles)
    assert unfused["detect_scrfd_500m"].platform == "ensemble"
    assert unfused["mask_scrfd_500m"].platform == "ensemble"
    assert STEPS <= set(unfused)


def detections(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["detections"]


def test_fused_and_ensemble_pipelines_answer_alike(client, ensemble_client, photos):
    for name, photo in photos.items():
        upload = {"image": (name, photo, "image/jpeg")}
        fused = detections(client.post("/api/v1/detect", files=upload))
        assert len(fused) == PHOTO_FACES[name]
        assert fused == detections(ensemble_client.post("/api/v1/detect", files=upload))

        masked = [c.post("/api/v1/mask", params={"format": "png"}, files=upload)
                  for c in (client, ensemble_client)]
        assert [m.status_code for m in masked] == [200, 200], masked[0].text
        assert masked[0].content == masked[1].content, f"{name}: the masked photos differ"

    image = base64.b64encode(photos["players.jpg"]).decode()
    embedded = [c.post("/v1/multi-embeddings", json={"image": image}) for c in (client, ensemble_client)]
    assert [e.status_code for e in embedded] == [200, 200], embedded[0].text
    faces = [e.json()["embeddings_info_list"] for e in embedded]
    assert len(faces[0]) == PHOTO_FACES["players.jpg"] and faces[0] == faces[1]


def test_concurrent_photos_each_get_their_own_faces_in_both_shapes(client, ensemble_client, photos,
                                                                  ensembles):
    """Each fused instance runs one photo at a time, and so does the ensemble's detector
    (CPU mode turns SCRFD's dynamic batcher off: a batch costs more per photo there)."""
    names = sorted(PHOTO_FACES) * 4
    triton = grpcclient.InferenceServerClient(f"127.0.0.1:{ensembles.triton_grpc}")
    before = batch_counts(triton, "scrfd_500m")
    for http in (client, ensemble_client):
        def detect(name, http=http):
            return detections(http.post("/api/v1/detect", files={"image": (name, photos[name])}))

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(detect, names))
        assert [len(a) for a in answers] == [PHOTO_FACES[n] for n in names]
    after = batch_counts(triton, "scrfd_500m")
    triton.close()
    assert set(after) == {1}, f"the detector ran batches of several photos: {after}"
    assert after[1] - before.get(1, 0) == len(names)
