"""``./face-api models add`` on model files as users get them, made here from the shipped weights;
each is served and answers what the original answers.

* scrfd_numbered: SCRFD-500M re-saved with numbered outputs in another order (as InsightFace's
  model packs name them);
* scrfd_batch1: the same with a fixed batch of 1 and outputs without a batch dimension (the
  layout of InsightFace's det_500m.onnx); the tool makes its batch dynamic;
* scrfd_single: like scrfd_batch1, but the graph hard-codes its batch of 1 (it reshapes to fixed
  sizes), so it is served one photo per call;
* arcface_renamed: arcface_w600k_mbf's file under another name, paired with scrfd_batch1.

Each is added with ``python -m model_tools add`` into a temporary copy of model_repository/ and
ensembles/ (the real folders are never written). One stack serves the copy: its Triton loads
every new pipeline next to the originals, which the pipelines are compared with (boxes and
landmarks within 1 px, embeddings at cosine >= 0.999); frontends with FACE_API_DETECTOR /
FACE_API_RECOGNIZER set to the new names answer /health, /api/v1/detect, /api/v1/mask and
/v1/*, with no edit outside the two repositories.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
from onnx import TensorProto, helper
from PIL import Image

from runtime.ports import free_port
from tests.integration.conftest import PHOTO_FACES, SAMPLES
from tests.integration.stack import (
    ROOT,
    STARTED,
    Stack,
    all_workers_started,
    repository_copy,
    start_stack,
)
from tests.reference.scrfd_reference import decode_image

SHIPPED_DETECTOR = ROOT / "model_repository/scrfd_500m/1/model.onnx"
SHIPPED_RECOGNIZER = ROOT / "model_repository/arcface_w600k_mbf/1/model.onnx"
DETECTORS = ("scrfd_numbered", "scrfd_batch1", "scrfd_single")
RECOGNIZER = "arcface_renamed"
PAIRED = "scrfd_batch1"  # the detector arcface_renamed is added with
DEPTH = {"score": 1, "bbox": 4, "kps": 10}
DETECT_OUTPUTS = ("NUM_FACES", "SCORES", "BOXES", "LANDMARKS")


# --- model files as users get them ---------------------------------------------------------------


def _renumbered(model: onnx.ModelProto, batch_of_one: bool, hard_coded: bool) -> onnx.ModelProto:
    """Outputs renamed to fresh numbers in a shuffled order; with ``batch_of_one`` the input's batch
    is fixed at 1 and each output loses its batch dimension (through a Reshape that keeps the batch
    flexible, or with ``hard_coded`` one to fixed sizes, which only a batch of 1 fits)."""
    graph = model.graph
    used = {name for node in graph.node for name in [*node.input, *node.output]}
    number = 1 + max(int(name) for name in used if name.isdigit())
    order = [graph.output[i].name for i in (4, 0, 7, 2, 8, 1, 5, 3, 6)]
    outputs = []
    for offset, name in enumerate(order):
        fresh = str(number + 3 * offset)
        if batch_of_one:
            kind, stride = name.split("_")
            rows = (640 // int(stride)) ** 2 * 2 if hard_coded else -1
            graph.node.append(helper.make_node("Constant", [], [f"{fresh}_shape"], value=helper.make_tensor(
                f"{fresh}_shape", TensorProto.INT64, [2], [rows, DEPTH[kind]])))
            graph.node.append(helper.make_node("Reshape", [name, f"{fresh}_shape"], [fresh]))
        else:
            for node in graph.node:
                node.output[:] = [fresh if n == name else n for n in node.output]
        outputs.append(helper.make_tensor_value_info(fresh, TensorProto.FLOAT, None))
    del graph.output[:]
    graph.output.extend(outputs)
    if batch_of_one:
        dims = graph.input[0].type.tensor_type.shape.dim
        for index, size in enumerate([1, 3, 640, 640] if hard_coded else [1]):
            dims[index].Clear()
            dims[index].dim_value = size
    return model


def make_files(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {"scrfd_numbered": folder / "scrfd_numbered.onnx", "scrfd_batch1": folder / "det_500m.onnx",
             "scrfd_single": folder / "det_single.onnx", RECOGNIZER: folder / "w600k_mbf.onnx"}
    for name, batch_of_one, hard_coded in (("scrfd_numbered", False, False), ("scrfd_batch1", True, False),
                                           ("scrfd_single", True, True)):
        onnx.save(_renumbered(onnx.load(str(SHIPPED_DETECTOR)), batch_of_one, hard_coded), str(files[name]))
    files[RECOGNIZER].write_bytes(SHIPPED_RECOGNIZER.read_bytes())
    return files


def models_command(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model_tools", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


# --- fixtures: the files added to a copy, one stack serving them all ------------------------------


@pytest.fixture(scope="module")
def added(tmp_path_factory):
    """(folder, environment for the stack, the add command's output per model)."""
    folder = tmp_path_factory.mktemp("models-add")
    env = repository_copy(folder)
    where = ["--repository", str(folder / "model_repository"), "--ensembles", str(folder / "ensembles")]
    files = make_files(folder / "downloads")
    outputs = {}
    for name, path in files.items():
        extra = ["--detector", PAIRED, "--licence", "InsightFace: non-commercial research use only"] \
            if name == RECOGNIZER else []
        done = models_command("add", str(path), "--name", name, *where, *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs[name] = done.stdout
    return folder, env, outputs, files


@pytest.fixture(scope="module")
def stack(added):
    folder, env, _, _ = added
    originals = ["detect_scrfd_500m", "mask_scrfd_500m", "recognize_arcface_w600k_mbf"]
    new = [f"{kind}_{name}" for name in DETECTORS for kind in ("detect", "mask")]
    running = start_stack(folder, env={
        **env, "FACE_API_DETECTOR": DETECTORS[0], "FACE_API_RECOGNIZER": RECOGNIZER,
        "FACE_API_TRITON_LOAD": ",".join(originals + new), "FACE_API_ONNX_INSTANCES": "1",
        "FACE_API_API_KEY_ENABLED": "false", "FACE_API_RATE_LIMIT_ENABLED": "false", "FACE_API_WORKERS": "1"},
        timeout=300)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def triton(stack):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{stack.triton_grpc}")
    yield client
    client.close()


def start_frontend(folder: Path, triton_stack: Stack, env: dict[str, str], timeout: float = 120) -> Stack:
    """Only the frontend (python -m runtime frontend), towards the stack's Triton."""
    port = free_port()
    environment = {**os.environ, "FACE_API_DATABASE_URL": f"sqlite:///{folder}/frontend-{port}.sqlite3",
                   "FACE_API_RATE_LIMIT_FILE": str(folder / f"rate-limits-{port}.sqlite3"),
                   "FACE_API_STORAGE_DIR": str(folder / f"objects-{port}"), "FACE_API_PORT": str(port),
                   "FACE_API_TRITON_URL": f"127.0.0.1:{triton_stack.triton_grpc}", "FACE_API_WORKERS": "1",
                   "FACE_API_API_KEY_ENABLED": "false", "FACE_API_RATE_LIMIT_ENABLED": "false",
                   "FACE_API_ADMIN_PASSWORD": "admin-password-for-tests", "PYTHONUNBUFFERED": "1", **env}
    log_path = folder / f"frontend-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "runtime", "frontend"], cwd=ROOT, env=environment,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    frontend = Stack(process, f"http://127.0.0.1:{port}", triton_stack.triton_http, triton_stack.triton_grpc,
                     triton_stack.triton_metrics, log_path)
    STARTED.append(frontend)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the frontend exited with {process.returncode}:\n{frontend.diagnosis()}")
        try:
            healthy = httpx.get(f"{frontend.url}/health", timeout=2).status_code == 200
            if healthy and all_workers_started(frontend):
                return frontend
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    frontend.stop()
    raise RuntimeError(f"the frontend was not healthy within {timeout} s:\n{frontend.diagnosis()}")


@pytest.fixture(scope="module")
def frontends(added, stack):
    """Detector name -> a frontend whose FACE_API_DETECTOR is that detector (the stack's own for the
    first one)."""
    folder = added[0]
    started = {}
    for name in DETECTORS[1:]:
        started[name] = start_frontend(folder, stack, {"FACE_API_DETECTOR": name,
                                                       "FACE_API_RECOGNIZER": RECOGNIZER})
    yield {DETECTORS[0]: stack, **started}
    for frontend in started.values():
        frontend.stop()


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: decode_image(SAMPLES / name) for name in PHOTO_FACES}


# --- what add wrote ----------------------------------------------------------------------------


def test_add_recognises_each_file_and_says_what_it_changed(added):
    folder, _, outputs, files = added
    for name in DETECTORS:
        assert "SCRFD face detector with 5 keypoints" in outputs[name], outputs[name]
        assert f"detect_{name}, mask_{name}" in outputs[name], outputs[name]
    assert "ArcFace-style recogniser" in outputs[RECOGNIZER]
    assert f"recognize_{RECOGNIZER}" in outputs[RECOGNIZER]
    configs = {name: (folder / "model_repository" / name / "config.pbtxt").read_text() for name in files}
    for name, path in files.items():
        assert f"from {path.name}," in configs[name]
        assert hashlib.sha256(path.read_bytes()).hexdigest() in configs[name]
    assert "max_batch_size: 8" in configs["scrfd_numbered"] and "max_batch_size: 8" in configs["scrfd_batch1"]
    assert "now dynamic" in configs["scrfd_batch1"]
    assert "max_batch_size: 1" in configs["scrfd_single"] and "one item per call" in configs["scrfd_single"]
    assert f'string_value: "{PAIRED}"' in configs[RECOGNIZER]


def test_the_real_repositories_are_untouched(added):
    for name in (*DETECTORS, RECOGNIZER):
        assert not (ROOT / "model_repository" / name).exists()
    assert not any((ROOT / "ensembles").glob("*_scrfd_numbered"))


def test_list_shows_what_is_served(added, stack):
    folder = added[0]
    done = models_command("list", "--repository", str(folder / "model_repository"),
                          "--ensembles", str(folder / "ensembles"),
                          env={"FACE_API_TRITON_HTTP_PORT": str(stack.triton_http)})
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    for name in DETECTORS:
        assert f"detect_{name}*" in rows[name] and f"mask_{name}*" in rows[name], rows[name]
        assert " yes " in rows[name] and "unknown: check the model's source" in rows[name]
    assert f"recognize_{RECOGNIZER}*" in rows[RECOGNIZER]


# --- served through Triton, against the originals -------------------------------------------------


def _tensor(name: str, array: np.ndarray, datatype: str) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def _infer(triton, pipeline: str, inputs: list, outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
    result = triton.infer(pipeline, inputs, outputs=[grpcclient.InferRequestedOutput(n) for n in outputs])
    return {name: result.as_numpy(name) for name in outputs}


def _detection_inputs(rgb: np.ndarray) -> list:
    return [_tensor("IMAGE", rgb[None], "UINT8"), _tensor("CONFIDENCE", np.float32([[0.5]]), "FP32"),
            _tensor("NMS_THRESHOLD", np.float32([[0.4]]), "FP32"),
            _tensor("MAX_FACES", np.int32([[0]]), "INT32")]


def detect(triton, pipeline: str, rgb: np.ndarray) -> dict[str, np.ndarray]:
    found = {name: value[0] for name, value in _infer(triton, pipeline, _detection_inputs(rgb),
                                                       DETECT_OUTPUTS).items()}
    count = int(found["NUM_FACES"][0])
    return {name: found[name][:count] for name in ("SCORES", "BOXES", "LANDMARKS")}


def same_faces(found: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert len(found["SCORES"]) == len(expected["SCORES"])
    assert np.abs(found["BOXES"] - expected["BOXES"]).max(initial=0) <= 1.0
    assert np.abs(found["LANDMARKS"] - expected["LANDMARKS"]).max(initial=0) <= 1.0
    assert np.abs(found["SCORES"] - expected["SCORES"]).max(initial=0) <= 1e-3


@pytest.mark.parametrize("name", DETECTORS)
def test_detect_pipeline_finds_what_the_original_finds(triton, photos, name):
    for photo, rgb in photos.items():
        found = detect(triton, f"detect_{name}", rgb)
        assert len(found["SCORES"]) == PHOTO_FACES[photo], photo
        same_faces(found, detect(triton, "detect_scrfd_500m", rgb))


@pytest.mark.parametrize("name", DETECTORS)
def test_mask_pipeline_masks_what_the_original_masks(triton, photos, name):
    def inputs() -> list:  # fresh tensors per call
        return [*_detection_inputs(photos["gdp.jpg"]),
                _tensor("METHOD", np.array([[b"gaussian"]], dtype=object), "BYTES"),
                _tensor("STRENGTH", np.int32([[31]]), "INT32"),
                _tensor("PADDING", np.float32([[0.1]]), "FP32")]

    outputs = ("MASKED", "REGIONS", "MASK_MS", *DETECT_OUTPUTS)  # as the frontend asks for them
    mine = _infer(triton, f"mask_{name}", inputs(), outputs)
    theirs = _infer(triton, "mask_scrfd_500m", inputs(), outputs)
    assert int(mine["REGIONS"].ravel()[0]) == PHOTO_FACES["gdp.jpg"] == int(theirs["REGIONS"].ravel()[0])
    differing = np.any(mine["MASKED"] != theirs["MASKED"], axis=-1).mean()
    assert differing < 1e-3, differing


def embed(triton, pipeline: str, rgb: np.ndarray) -> dict[str, np.ndarray]:
    return _infer(triton, pipeline, [_tensor("IMAGE", rgb, "UINT8")],
                  ("NUM_FACES", "SCORES", "BOXES", "LANDMARKS", "EMBEDDINGS"))


def test_recognize_pipeline_embeds_like_the_original(triton, photos):
    for photo, rgb in photos.items():
        mine = embed(triton, f"recognize_{RECOGNIZER}", rgb)
        theirs = embed(triton, "recognize_arcface_w600k_mbf", rgb)
        assert int(mine["NUM_FACES"][0]) == PHOTO_FACES[photo] == int(theirs["NUM_FACES"][0]), photo
        same_faces(mine, theirs)
        assert mine["EMBEDDINGS"].shape == theirs["EMBEDDINGS"].shape == (PHOTO_FACES[photo], 512)
        cosine = np.sum(mine["EMBEDDINGS"] * theirs["EMBEDDINGS"], axis=1)  # unit length both
        assert cosine.min() >= 0.999, (photo, cosine.min())


# --- through the API, with the settings naming the new models ---------------------------------------


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name", DETECTORS)
def test_health_detect_and_mask_with_the_new_detector(frontends, name):
    url = frontends[name].url
    with httpx.Client(base_url=url, timeout=120) as http:
        assert http.get("/health").status_code == 200
        for photo, faces in PHOTO_FACES.items():
            data = (SAMPLES / photo).read_bytes()
            response = http.post("/api/v1/detect", files={"image": (photo, data)})
            assert response.status_code == 200, response.text
            assert len(response.json()["detections"]) == faces, photo
        response = http.post("/api/v1/mask", files={"image": ("gdp.jpg", (SAMPLES / "gdp.jpg").read_bytes())})
        assert response.status_code == 200, response.text
        assert response.headers["x-face-count"] == str(PHOTO_FACES["gdp.jpg"])
        assert response.headers["x-model"] == name
        Image.open(io.BytesIO(response.content)).verify()


def test_recognition_api_with_the_new_recognizer(frontends, photos):
    with httpx.Client(base_url=frontends[DETECTORS[0]].url, timeout=120) as http:
        health = http.get("/v1/health")
        assert health.status_code == 200, health.text
        assert health.json() == {"status": "ok", "recognizer": RECOGNIZER, "detector": PAIRED,
                                 "model_loaded": True}
        image = base64.b64encode(_png(photos["gdp.jpg"])).decode()
        faces = http.post("/v1/detect", json={"image": image})
        assert faces.status_code == 200 and len(faces.json()["faces"]) == PHOTO_FACES["gdp.jpg"]
        embeddings = http.post("/v1/multi-embeddings", json={"image": image})
        assert embeddings.status_code == 200, embeddings.text
        body = embeddings.json()
        assert body["version"].endswith(f"+{RECOGNIZER}")
        vectors = np.array([item["embeddings"] for item in body["embeddings_info_list"]])
        assert vectors.shape == (PHOTO_FACES["gdp.jpg"], 512)
        same = http.post("/v1/score", json={"image1": image, "image2": image})
        assert same.status_code == 200 and same.json()["score"] > 0.99, same.text
