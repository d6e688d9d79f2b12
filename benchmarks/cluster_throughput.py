"""Detect throughput through HAProxy with one Triton server and with two, same frontends, same run.

Starts the rehearsal cluster (runtime/cluster.py: two frontend nodes behind
HAProxy, two Triton servers, PostgreSQL, Redis, S3), measures POST
/api/v1/detect through HAProxy with both Triton servers, stops the second one
(the frontends stop calling it within a second), measures again, and prints a
table and the two/one ratio. On one machine both Triton servers share the same
cores, so no gain is expected: the point is that balancing over two costs
nothing. On separate machines (or GPUs) the second server adds its capacity.

    .venv/bin/python -m benchmarks.cluster_throughput
    .venv/bin/python -m benchmarks.cluster_throughput --requests 600 --concurrency 8 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.harness import LIFTED_LIMITS, SAMPLE_PHOTOS, client, summary, time_requests, upload
from runtime.cluster import Cluster
from runtime.paths import SAMPLES


async def measure(url: str, api_key: str, photos: list[bytes], concurrency: int, requests: int,
                  label: str) -> dict:
    uploads = [upload(photo) for photo in photos]
    failed = 0
    async with client(url, api_key, concurrency, timeout=60) as http:
        async def one(i: int) -> None:
            nonlocal failed
            response = await http.post("/api/v1/detect", **uploads[i % len(uploads)])
            failed += response.status_code != 200

        for i in range(2 * concurrency):  # warm-up: every worker and connection in use
            await one(i)
        failed = 0
        latencies, elapsed = await time_requests(one, concurrency, requests)
    return {**summary(label, concurrency, latencies, elapsed), "failed": failed}


def wait_for_endpoints(cluster: Cluster, wanted: dict[str, bool], timeout: float = 30) -> None:
    """Until every frontend's /health lists the Triton servers as ``wanted``, then one more check
    interval, so that every worker's own check agrees."""
    deadline = time.monotonic() + timeout
    while any(cluster.health(node).get("inference_endpoints") != wanted for node in cluster.frontends):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the frontends do not see the Triton servers as {wanted}")
        time.sleep(0.5)
    time.sleep(1.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per frontend node")
    parser.add_argument("--rounds", type=int, default=1, help="two-then-one measurements to make")
    parser.add_argument("--storage", choices=("on", "off"), default="on",
                        help="record every call (storage-backed mode, the default) or not")
    args = parser.parse_args()
    photos = [(SAMPLES / name).read_bytes() for name in SAMPLE_PHOTOS]
    env = {**LIFTED_LIMITS, "FACE_API_STORAGE_ENABLED": "true" if args.storage == "on" else "false"}
    print(f"photos: {', '.join(SAMPLE_PHOTOS)}; {args.requests} requests per measurement at concurrency "
          f"{args.concurrency}; storage {args.storage}", flush=True)

    rows = []
    with Cluster(Path(tempfile.mkdtemp(prefix="bench-cluster-")), workers=args.workers, env=env) as cluster:
        first, second = cluster.tritons
        both = {first.address: True, second.address: True}
        for round_ in range(args.rounds):
            if round_:
                print(f"starting {second.name} again …", flush=True)
                second.start()
                second.wait_ready(180)
                wait_for_endpoints(cluster, both)
            print("measuring with two Triton servers …", flush=True)
            rows.append(asyncio.run(measure(cluster.url, cluster.api_key, photos, args.concurrency,
                                            args.requests, "two Triton servers")))
            print(f"stopping {second.name} …", flush=True)
            second.stop()
            wait_for_endpoints(cluster, {first.address: True, second.address: False})
            print("measuring with one Triton server …", flush=True)
            rows.append(asyncio.run(measure(cluster.url, cluster.api_key, photos, args.concurrency,
                                            args.requests, "one Triton server")))

    print(f"\n{'through HAProxy (2 frontends)':<30} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'failed':>6}")
    for row in rows:
        print(f"{row['label']:<30} {row['concurrency']:>4} {row['throughput']:>8.1f} {row['p50_ms']:>8.1f} "
              f"{row['p95_ms']:>8.1f} {row['failed']:>6}")
    two = [r["throughput"] for r in rows if r["label"].startswith("two")]
    one = [r["throughput"] for r in rows if r["label"].startswith("one")]
    print(f"\nthroughput two / one Triton servers = {sum(two) / len(two) / (sum(one) / len(one)):.2f}")


if __name__ == "__main__":
    main()
