"""python -m runtime {weights,serve,triton,frontend,cluster,anonymize}: see ./face-api for the front door."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["anonymize"]:
        # Its own parser (./face-api anonymize --help); its HTTP client loads only for it, never
        # into the long-lived serve supervisor.
        from runtime.anonymize import main as anonymize

        return anonymize(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m runtime")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("weights", help="fetch and verify the model weights")
    fetch.add_argument("--force", action="store_true", help="replace corrupted files")
    serve = commands.add_parser("serve", help="Triton on the CPU + the REST frontend")
    serve.add_argument("--port", type=int, help="frontend port (default: FACE_API_PORT or 8080)")
    serve.add_argument("--workers", type=int, help="gunicorn workers (default: FACE_API_WORKERS)")
    commands.add_parser("triton", help="only the embedded Triton server, until Ctrl-C")
    alone = commands.add_parser("frontend", help="only the REST frontend, towards the Triton servers "
                                                 "of FACE_API_TRITON_URL (no Triton started here)")
    alone.add_argument("--port", type=int, help="frontend port (default: FACE_API_PORT or 8080)")
    alone.add_argument("--workers", type=int, help="gunicorn workers (default: FACE_API_WORKERS)")
    cluster = commands.add_parser("cluster", help="the multi-node deployment rehearsed on this machine: "
                                                  "two Triton servers, two frontends, HAProxy, PostgreSQL, "
                                                  "Redis, S3")
    cluster.add_argument("action", choices=["up"], help="up: start it and keep it running until Ctrl-C")
    cluster.add_argument("--workers", type=int, default=2, help="gunicorn workers per frontend node (2)")
    cluster.add_argument("--port", type=int, help="HAProxy's port (default: a free one)")
    cluster.add_argument("--folder", type=Path,
                         help="logs, node folders, HAProxy config (default: .run/cluster)")
    commands.add_parser("anonymize", help="mask the faces of photos, videos and folders through the API "
                                          "(python -m runtime anonymize --help)")
    args = parser.parse_args(argv)

    if args.command == "weights":
        from runtime import weights

        try:
            weights.fetch_all(force=args.force, log=lambda m: print(f"[weights] {m}", flush=True))
        except weights.WeightError as error:
            print(f"[weights] error: {error}", file=sys.stderr)
            return 1
        return 0

    if args.command == "cluster":
        from runtime.cluster import up
        from runtime.paths import RUN

        return up(args.workers, args.port, args.folder or RUN / "cluster")

    from runtime.serve import serve

    return serve(port=getattr(args, "port", None), workers=getattr(args, "workers", None),
                 frontend=args.command in ("serve", "frontend"), triton_here=args.command != "frontend")


if __name__ == "__main__":
    sys.exit(main())
