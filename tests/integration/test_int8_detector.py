"""The INT8 SCRFD-500M that ``./face-api models quantize scrfd_500m`` makes, against the FP32 network
it is made from, on every sample photo; then served.

The command runs into a temporary copy of model_repository/ and ensembles/ (the real folders are
never written), from the shipped FP32 weights. Then:

* in process, both networks decoded by tests/reference/scrfd_reference.py (InsightFace's decoding,
  sharing no code with the command's own check, which decodes with the pipelines' code): every face
  either network reports at the API's threshold (0.5) is found by the other within the documented
  tolerances (``model_tools.quantize.TOLERANCES``: box IoU ≥ 0.9, each landmark within 3 px, the
  score within 0.05), and on these photos the INT8 network reports exactly the FP32 faces
  (docs/models.md, "A quantised detector");
* a stack serving the copy with FACE_API_DETECTOR=scrfd_500m_int8: /api/v1/detect answers what the
  in-process INT8 network finds (1 px, 1e-3), hence the FP32 faces within the same tolerances, and
  Triton's statistics show that the INT8 detect pipeline, not the FP32 one, ran (CPU mode runs each
  network inside its pipeline's model).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image

from model_tools.quantize import TOLERANCES, agreement, match, signed_weights_are_exact
from tests.integration.conftest import PHOTO_FACES, SAMPLES, batch_counts
from tests.integration.stack import ROOT, repository_copy, start_stack
from tests.reference.scrfd_reference import ReferenceSCRFD, decode_image

SOURCE, INT8 = "scrfd_500m", "scrfd_500m_int8"
THRESHOLD = 0.5  # the API's default confidence
BELOW = THRESHOLD - TOLERANCES.score_change  # how far down both are decoded, so no face falls between
NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


def real_files() -> dict[str, int]:
    """The real repositories' files of the INT8 model and its pipelines: path -> modification time."""
    folders = [ROOT / "model_repository" / INT8,
               *(ROOT / "ensembles" / f"{kind}_{INT8}" for kind in ("detect", "mask"))]
    return {str(path): path.stat().st_mtime_ns for folder in folders for path in folder.rglob("*")
            if path.is_file()}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """(folder, the stack's environment, the command's output, the real files before): the INT8
    network made in a copy."""
    folder = tmp_path_factory.mktemp("int8")
    real = real_files()
    env = repository_copy(folder)
    copied = folder / "model_repository" / INT8 / "1" / "model.onnx"
    copied.unlink(missing_ok=True)  # (a link to the real repository's, when that has one)
    done = subprocess.run(
        [sys.executable, "-m", "model_tools", "quantize", SOURCE,
         "--repository", str(folder / "model_repository"), "--ensembles", str(folder / "ensembles")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert done.returncode == 0, done.stdout + done.stderr
    assert copied.is_file() and not copied.is_symlink()
    return folder, env, done.stdout, real


@pytest.fixture(scope="module")
def networks(made) -> dict[str, ReferenceSCRFD]:
    folder = made[0]
    return {"fp32": ReferenceSCRFD(ROOT / "model_repository" / SOURCE / "1" / "model.onnx", threads=1),
            "int8": ReferenceSCRFD(folder / "model_repository" / INT8 / "1" / "model.onnx", threads=1)}


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: decode_image(SAMPLES / name) for name in sorted(PHOTO_FACES)}


def faces(result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return result.scores, result.boxes, result.landmarks


# --- what the command wrote -------------------------------------------------------------------------


def test_the_command_writes_the_committed_config_and_pipelines(made):
    folder, _, output, _ = made
    for path in (f"model_repository/{INT8}/config.pbtxt", f"ensembles/detect_{INT8}/config.pbtxt",
                 f"ensembles/mask_{INT8}/config.pbtxt"):
        assert (folder / path).read_text() == (ROOT / path).read_text(), path
    assert f"pipelines: detect_{INT8}, mask_{INT8}" in output
    for photo, count in PHOTO_FACES.items():
        assert f"{photo}: FP32 {count} face" in output, output


def test_the_int8_file_is_integer(made):
    import onnx

    model = onnx.load(str(made[0] / "model_repository" / INT8 / "1" / "model.onnx"))
    kinds = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= kinds
    # INT8, or UINT8 where this CPU's kernels would saturate with signed weights (no VNNI)
    kind = onnx.TensorProto.INT8 if signed_weights_are_exact() else onnx.TensorProto.UINT8
    weights = [t for t in model.graph.initializer if t.data_type == kind and len(t.dims) == 4]
    assert len(weights) >= 60, "every convolution's weights are stored in 8 bits"


# --- in process: INT8 against FP32 ------------------------------------------------------------------


@pytest.mark.parametrize("photo", sorted(PHOTO_FACES))
def test_int8_finds_the_fp32_faces_within_the_tolerances(networks, photos, photo):
    rgb = photos[photo]
    fp32 = faces(networks["fp32"].detect(rgb, BELOW))
    int8 = faces(networks["int8"].detect(rgb, BELOW))
    found = agreement(photo, fp32, int8, THRESHOLD)
    print(found.line())
    assert found.problems == [], found.problems
    # What docs/models.md reports for the sample photos: the same faces, none near the line lost.
    assert found.reference == found.found == PHOTO_FACES[photo], found.line()
    assert found.lost == found.extra == []
    assert found.min_iou >= TOLERANCES.min_iou


# --- served --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(made):
    folder, env, _, _ = made
    running = start_stack(folder, env={
        **env, "FACE_API_DETECTOR": INT8, "FACE_API_ONNX_INSTANCES": "1", "FACE_API_WORKERS": "1",
        "FACE_API_API_KEY_ENABLED": "false", "FACE_API_RATE_LIMIT_ENABLED": "false"}, timeout=300)
    yield running
    running.stop()


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def service_faces(body: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    found = body["detections"]
    scores = np.array([f["confidence"] for f in found], np.float32)
    boxes = np.array([[f["bbox"][k] for k in ("x1", "y1", "x2", "y2")] for f in found],
                     np.float32).reshape(-1, 4)
    points = np.array([[[f["landmarks"][n]["x"], f["landmarks"][n]["y"]] for n in NAMES] for f in found],
                      np.float32).reshape(-1, 5, 2)
    return scores, boxes, points


def test_the_api_detects_with_the_int8_network(stack, networks, photos):
    triton = grpcclient.InferenceServerClient(f"127.0.0.1:{stack.triton_grpc}")
    # CPU mode runs each detector inside its detect pipeline's model (runtime/pipeline_runner.py)
    runners = (f"detect_{SOURCE}", f"detect_{INT8}")
    config = triton.get_model_config(runners[1]).config
    assert INT8 in config.parameters["fused_models"].string_value.split(",")
    assert config.HasField("dynamic_batching")  # the INT8 network keeps its batcher in CPU mode
    before = {model: sum(batch_counts(triton, model).values()) for model in runners}
    with httpx.Client(base_url=stack.url, timeout=120) as http:
        for photo, rgb in photos.items():
            response = http.post("/api/v1/detect", files={"image": (photo, (SAMPLES / photo).read_bytes())})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["processing"]["model"] == INT8
            assert len(body["detections"]) == PHOTO_FACES[photo], photo

            # PNG: the service decodes exactly the pixels the in-process networks see.
            response = http.post("/api/v1/detect", params={"confidence": BELOW},
                                 files={"image": ("photo.png", png(rgb))})
            assert response.status_code == 200, response.text
            served = service_faces(response.json())
            expected = networks["int8"].detect(rgb, BELOW)
            pairs = match(expected.boxes, served[1], 0.9)  # (faces of equal scores come in either order)
            assert len(served[0]) == len(expected.scores) == len(pairs), photo
            mine, theirs = [i for i, _ in pairs], [j for _, j in pairs]
            np.testing.assert_allclose(served[0][theirs], expected.scores[mine], atol=1e-3)
            np.testing.assert_allclose(served[1][theirs], expected.boxes[mine], atol=1.0)
            np.testing.assert_allclose(served[2][theirs], expected.landmarks[mine], atol=1.0)
            found = agreement(photo, faces(networks["fp32"].detect(rgb, BELOW)), served, THRESHOLD)
            assert found.problems == [] and found.reference == found.found == PHOTO_FACES[photo], found.line()
    after = {model: sum(batch_counts(triton, model).values()) for model in runners}
    triton.close()
    assert after[runners[1]] > before[runners[1]] and after[runners[0]] == before[runners[0]], (before, after)


def test_the_real_repositories_are_untouched(made):
    assert real_files() == made[3]
