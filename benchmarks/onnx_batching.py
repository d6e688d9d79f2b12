"""Does a batch cost less per item than single items? onnxruntime on this CPU, per model.

Triton's dynamic batcher pays off only where a batch is cheaper per item. This
times each ONNX model of the repository alone (one onnxruntime thread, as CPU
mode runs it), at batch 1 and over a mix of batch sizes like the ones the
batcher forms under load, and prints CPU ms per item and the ratio. A ratio
above 1 is why a model's config says ``cpu_mode_dynamic_batching: off``.

    .venv/bin/python -m benchmarks.onnx_batching
    .venv/bin/python -m benchmarks.onnx_batching --models scrfd_500m --runs 120
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import onnxruntime as ort

from runtime import cpu_repository
from tests.integration.stack import ROOT

MIXED = (1, 2, 3, 4)


def session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ms_per_item(model: ort.InferenceSession, sizes: list[int], inputs: dict[int, dict]) -> float:
    outputs = [o.name for o in model.get_outputs()]
    for size in set(sizes):  # warm-up, one run per shape
        model.run(outputs, inputs[size])
    started = time.process_time()
    for size in sizes:
        model.run(outputs, inputs[size])
    return (time.process_time() - started) * 1000 / sum(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["scrfd_500m", "arcface_w600k_mbf"])
    parser.add_argument("--runs", type=int, default=60, help="onnxruntime calls per measurement")
    args = parser.parse_args()
    print(f"{'model':<20} {'batch 1 ms/item':>16} {'mixed 1-4 ms/item':>18} {'mixed / single':>15}  "
          "cpu_mode_dynamic_batching")
    for name in args.models:
        model_dir = ROOT / "model_repository" / name
        config = cpu_repository.read_config(model_dir)
        found = cpu_repository.onnx_weight(model_dir, config)
        if found is None or config.max_batch_size < max(MIXED):
            print(f"{name:<20} skipped (no weight file, or it cannot take batches of {max(MIXED)})")
            continue
        model = session(found[1])
        graph_input = model.get_inputs()[0]
        rng = np.random.default_rng(0)
        inputs = {size: {graph_input.name: rng.uniform(-1, 1, (size, *config.input[0].dims))
                         .astype(np.float32)} for size in MIXED}
        mix = random.Random(0)
        single = ms_per_item(model, [1] * args.runs, inputs)
        mixed = ms_per_item(model, [mix.choice(MIXED) for _ in range(args.runs)], inputs)
        setting = "on" if cpu_repository.keeps_dynamic_batching(config) else "off"
        print(f"{name:<20} {single:>16.2f} {mixed:>18.2f} {mixed / single:>15.2f}  {setting}")


if __name__ == "__main__":
    main()
