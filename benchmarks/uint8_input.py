"""What a uint8 detector input would save: the letterbox's float blob against normalisation
folded into the detector's graph, in one process, same run.

Today face_letterbox writes a 3×640×640 float32 blob ((x − 127.5) / 128, 4.9 MB) that
Triton hands to SCRFD. The alternative: the letterbox writes its uint8 640×640×3 canvas
(1.2 MB) and a derived SCRFD graph starts with Cast → Transpose → Sub → Mul. This
benchmark derives that graph in memory from the shipped weights, checks that both paths
give the same outputs on every sample photo, then times per photo (process CPU time,
onnxruntime on one thread, the two paths alternating):

* float path: ``to_blob`` (normalise + HWC → CHW) + one copy of the blob + the network;
* uint8 path: one copy of the canvas + the derived network.

(One copy each stands for the hand-over between processes; the service copies the blob
more than once, so its saving would be somewhat larger.) The letterbox's resize and pad
is the same on both sides and left out.

    .venv/bin/python -m benchmarks.uint8_input --rounds 300
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from benchmarks.detect_throughput import FP32_MODEL
from benchmarks.harness import SAMPLE_PHOTOS
from tests.integration.stack import ROOT
from triton_python.letterbox import letterbox, to_blob

MEAN, STD, SIZE = 127.5, 128.0, 640  # face_letterbox's parameters for SCRFD


def uint8_graph(model: onnx.ModelProto, size: int, mean: float, std: float) -> tuple[onnx.ModelProto, str]:
    """``model`` with its float NCHW input replaced by a uint8 N×size×size×3 one and the
    letterbox's normalisation as its first nodes. Returns (the model, its new input's name)."""
    graph = model.graph
    old = graph.input[0]
    new_name = "image_uint8"
    new_input = helper.make_tensor_value_info(new_name, TensorProto.UINT8, ["N", size, size, 3])
    prefix = [
        helper.make_node("Cast", [new_name], ["image_float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["image_float"], ["image_chw"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["image_chw", "input_mean"], ["image_centred"]),
        helper.make_node("Mul", ["image_centred", "input_scale"], [old.name]),
    ]
    rest = [tensor for tensor in graph.input if tensor.name != old.name]
    del graph.input[:]
    graph.input.extend([new_input, *rest])
    for node in reversed(prefix):
        graph.node.insert(0, node)
    graph.initializer.extend([numpy_helper.from_array(np.array(mean, np.float32), "input_mean"),
                              numpy_helper.from_array(np.array(1 / std, np.float32), "input_scale")])
    onnx.checker.check_model(model)
    return model, new_name


def session(model: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300, help="photos timed on each path")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    original = onnx.load(str(FP32_MODEL))
    float_input = original.graph.input[0].name
    derived, uint8_input = uint8_graph(onnx.load(str(FP32_MODEL)), SIZE, MEAN, STD)
    float_net, uint8_net = session(original.SerializeToString()), session(derived.SerializeToString())

    photos = [cv2.cvtColor(cv2.imread(str(ROOT / "samples" / name)), cv2.COLOR_BGR2RGB)
              for name in SAMPLE_PHOTOS]
    canvases = [letterbox(photo, SIZE)[0] for photo in photos]

    def float_path(canvas: np.ndarray) -> list[np.ndarray]:
        blob = to_blob(canvas, MEAN, STD, swap_rb=False)[None]
        return float_net.run(None, {float_input: blob.copy()})

    def uint8_path(canvas: np.ndarray) -> list[np.ndarray]:
        return uint8_net.run(None, {uint8_input: canvas[None].copy()})

    worst = max(float(np.abs(a - b).max()) for canvas in canvases
                for a, b in zip(float_path(canvas), uint8_path(canvas)))
    print(f"largest output difference over {len(canvases)} photos: {worst:.2e}")

    times: dict[str, list[float]] = {"float blob": [], "uint8 + folded": []}
    paths = {"float blob": float_path, "uint8 + folded": uint8_path}
    for i in range(args.rounds):
        canvas = canvases[i % len(canvases)]
        order = list(paths) if i % 2 else list(reversed(paths))  # neither side always first
        for name in order:
            started = time.process_time()
            paths[name](canvas)
            times[name].append((time.process_time() - started) * 1000)
    blob_ms = []
    for canvas in canvases * 20:
        started = time.process_time()
        to_blob(canvas, MEAN, STD, swap_rb=False)
        blob_ms.append((time.process_time() - started) * 1000)

    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:<16} median {medians[name]:6.2f} ms  mean {statistics.mean(values):6.2f} ms "
              f"CPU per photo")
    print(f"to_blob alone    median {statistics.median(blob_ms):6.2f} ms")
    saved = medians["float blob"] - medians["uint8 + folded"]
    pixels = 3 * SIZE * SIZE
    print(f"saved per photo: {saved:.2f} ms ({saved / medians['float blob']:.1%} of the float path); "
          f"bytes handed to the detector: {pixels * 4 / 1e6:.1f} MB -> {pixels / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
