"""python -m runtime {weights,serve,triton}: see ./face-api for the front door."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("weights", help="fetch and verify the model weights")
    fetch.add_argument("--force", action="store_true", help="replace corrupted files")
    serve = commands.add_parser("serve", help="Triton on the CPU + the REST frontend")
    serve.add_argument("--port", type=int, help="frontend port (default: FACE_API_PORT or 8080)")
    serve.add_argument("--workers", type=int, help="gunicorn workers (default: FACE_API_WORKERS)")
    commands.add_parser("triton", help="only the embedded Triton server, until Ctrl-C")
    args = parser.parse_args(argv)

    if args.command == "weights":
        from runtime import weights

        try:
            weights.fetch_all(force=args.force, log=lambda m: print(f"[weights] {m}", flush=True))
        except weights.WeightError as error:
            print(f"[weights] error: {error}", file=sys.stderr)
            return 1
        return 0

    from runtime.serve import serve

    return serve(port=getattr(args, "port", None), workers=getattr(args, "workers", None),
                 frontend=args.command == "serve")


if __name__ == "__main__":
    sys.exit(main())
