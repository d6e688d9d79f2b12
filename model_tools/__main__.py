"""python -m model_tools: ``render [--check]`` (model_tools/render.py); every other
command (add, list, remove, reload) is model_tools/cli.py's."""

from __future__ import annotations

import importlib.util
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["render"]:
        from model_tools.render import main as render

        return render(argv[1:])
    if importlib.util.find_spec("model_tools.cli") is None:
        print("usage: python -m model_tools render [--check]", file=sys.stderr)
        return 2
    from model_tools.cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
