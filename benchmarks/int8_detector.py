"""The INT8 SCRFD-500M (./face-api models quantize scrfd_500m) against the FP32 one, in the same run.

Four pipelines on the same photos (yaoming.jpg, gdp.jpg, players.jpg in turn), each at every
concurrency: the in-process reference (tests/reference/scrfd_reference.py: TurboJPEG decode ->
letterbox -> onnxruntime -> decoded faces, threads sharing one session) with the FP32 network and
with the INT8 one, then POST /api/v1/detect of a stack started with FACE_API_DETECTOR=scrfd_500m
and of one started with FACE_API_DETECTOR=scrfd_500m_int8 (one after the other, same settings).
Prints req/s, p50 and p95, and the ratios INT8 / FP32 (in process, served) and served / in-process.
Each service measurement follows an untimed round of 4 × concurrency requests.

    .venv/bin/python -m benchmarks.int8_detector                    # storage-backed mode off
    .venv/bin/python -m benchmarks.int8_detector --storage on --requests 300

The INT8 weights are the repository's (model_repository/scrfd_500m_int8/1/model.onnx) when
present; otherwise the quantize command makes them in a temporary copy of the repositories, which
the stacks then serve.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks.detect_throughput import FP32_MODEL, run_in_process, run_service
from benchmarks.harness import SAMPLE_PHOTOS, service
from tests.integration.stack import ROOT, repository_copy

FP32, INT8 = "scrfd_500m", "scrfd_500m_int8"


@contextlib.contextmanager
def int8_weights() -> Iterator[tuple[Path, dict[str, str]]]:
    """(the INT8 model file, the stack's environment to serve it)."""
    weights = ROOT / "model_repository" / INT8 / "1" / "model.onnx"
    if weights.is_file():
        print(f"INT8 weights: {weights.relative_to(ROOT)}", flush=True)
        yield weights, {}
        return
    with tempfile.TemporaryDirectory(prefix="int8-bench-") as folder:
        env = repository_copy(Path(folder))
        print(f"no {weights.relative_to(ROOT)}: making it in a copy of the repositories …", flush=True)
        subprocess.run([sys.executable, "-m", "model_tools", "quantize", FP32,
                        "--repository", f"{folder}/model_repository", "--ensembles", f"{folder}/ensembles"],
                       cwd=ROOT, check=True)
        yield Path(folder) / "model_repository" / INT8 / "1" / "model.onnx", env


def ratio(rows: dict[tuple[str, int], dict], numerator: str, denominator: str, concurrency: int) -> str:
    top, bottom = rows[numerator, concurrency], rows[denominator, concurrency]
    return (f"req/s ×{top['throughput'] / bottom['throughput']:.2f}, "
            f"p50 ×{top['p50_ms'] / bottom['p50_ms']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=150, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--storage", choices=("on", "off"), default="off",
                        help="the stacks record every call (storage-backed mode) or not (default: off)")
    args = parser.parse_args()
    photos = [(ROOT / "samples" / name).read_bytes() for name in SAMPLE_PHOTOS]
    print(f"photos: {', '.join(SAMPLE_PHOTOS)}; {args.requests} requests per measurement", flush=True)

    rows: dict[tuple[str, int], dict] = {}
    labels = {"fp32": "in-process FP32", "int8": "in-process INT8",
              "served fp32": f"service, {FP32}", "served int8": f"service, {INT8}"}
    with int8_weights() as (weights, env):
        for concurrency in args.concurrency:
            print(f"in process, concurrency {concurrency} …", flush=True)
            rows["fp32", concurrency] = run_in_process(photos, concurrency, args.requests, FP32_MODEL,
                                                       labels["fp32"])
            rows["int8", concurrency] = run_in_process(photos, concurrency, args.requests, weights,
                                                       labels["int8"])
        for key, detector in (("served fp32", FP32), ("served int8", INT8)):
            with service(None, None, args.storage, env={**env, "FACE_API_DETECTOR": detector}) as (url, key_):
                for concurrency in args.concurrency:
                    print(f"{labels[key]}, concurrency {concurrency} …", flush=True)
                    # Not timed: the first batch of each size costs onnxruntime more (a batching
                    # detector meets sizes 1 to concurrency here).
                    asyncio.run(run_service(url, key_, photos, concurrency, 4 * concurrency))
                    rows[key, concurrency] = asyncio.run(run_service(url, key_, photos, concurrency,
                                                                     args.requests, labels[key]))

    print(f"\n{'pipeline':<26} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for concurrency in args.concurrency:
        for key in labels:
            row = rows[key, concurrency]
            print(f"{row['label']:<26} {concurrency:>4} {row['throughput']:>8.1f} {row['p50_ms']:>8.1f} "
                  f"{row['p95_ms']:>8.1f}")
    print()
    for concurrency in args.concurrency:
        print(f"concurrency {concurrency}: "
              f"in-process INT8 / FP32: {ratio(rows, 'int8', 'fp32', concurrency)}; "
              f"served INT8 / FP32: {ratio(rows, 'served int8', 'served fp32', concurrency)}; "
              f"served INT8 / in-process INT8: {ratio(rows, 'served int8', 'int8', concurrency)}")


if __name__ == "__main__":
    main()
