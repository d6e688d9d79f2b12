"""The state file a running embedded Triton leaves, so that a command can find it.

``.run/triton/server-<gRPC port>.json`` says which ports the server listens on,
which repositories it serves from, where its derived CPU repository is, how ONNX
models run in it and what it loaded at start. ``./face-api models reload`` reads
it to derive the repository again and to reach Triton's repository API. The
launcher (serve, or ``runtime triton``) writes it once Triton is ready and
removes it when it stops; a file whose launcher has died is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


class NoServer(RuntimeError):
    """No running embedded Triton matches."""


@dataclass
class ServerState:
    pid: int  # the launcher's: the file counts while it lives
    http_port: int
    grpc_port: int
    sources: list[str]
    repository: str
    onnx_tuning: dict = field(default_factory=dict)
    loaded: list[str] = field(default_factory=list)


def path_for(run_dir: Path, grpc_port: int) -> Path:
    return run_dir / f"server-{grpc_port}.json"


def write(path: Path, state: ServerState) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(partial, path)


def remove(path: Path, pid: int) -> None:
    """Remove the file if ``pid`` wrote it (a later launcher on the same port may own it now)."""
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(run_dir: Path) -> list[ServerState]:
    """The state of every embedded Triton whose launcher still runs."""
    found = []
    for path in sorted(run_dir.glob("server-*.json")):
        try:
            state = ServerState(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if _alive(state.pid):
            found.append(state)
    return found


def find(run_dir: Path, http_port: int | None = None) -> ServerState:
    """The running server listening on ``http_port``, or the only one running."""
    servers = running(run_dir)
    if http_port is not None:
        for state in servers:
            if state.http_port == http_port:
                return state
        raise NoServer(f"no embedded Triton started from this checkout listens on HTTP port {http_port} "
                       f"(state files in {run_dir}); is ./face-api serve running?")
    if not servers:
        raise NoServer(f"no embedded Triton started from this checkout is running (no live state file "
                       f"in {run_dir}); start one with ./face-api serve")
    if len(servers) > 1:
        ports = ", ".join(str(s.http_port) for s in servers)
        raise NoServer(f"several embedded Triton servers run (HTTP ports {ports}): say which with "
                       "FACE_API_TRITON_HTTP_PORT")
    return servers[0]
