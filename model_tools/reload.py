"""./face-api models reload [NAME...]: serve what the repositories hold now, without a restart.

Finds the running embedded Triton (its state file, runtime/server_state.py; with
several, FACE_API_TRITON_HTTP_PORT says which), derives its CPU repository again
in place (new or changed weights and configs, pipelines added since it started),
then asks Triton's repository API to load the named models again: by default
every model loaded now; for a pipeline, the models it calls too, loaded first;
and every other loaded model whose derived folder changed with them (a fused CPU
pipeline that runs the same detector).
A named model that has left the repositories is unloaded. Nothing is swapped in
when a named model cannot be served (its weights do not match its config, say):
the command says why and exits non-zero, and Triton keeps serving what it served.
The frontend notices the change at its next catalog refresh.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

from runtime import cpu_repository, server_state
from runtime.paths import RUN
from runtime.repository_api import Refused, RepositoryApi
from runtime.selection import SelectionError, closure

STATE_DIR = RUN / "triton"


def _entry(repository: Path, name: str) -> str | None:
    """Where the derived repository's entry ``name`` points (None: no such entry)."""
    link = repository / name
    return os.readlink(link) if link.is_symlink() else None


def _port_from_environment() -> int | None:
    value = os.environ.get("FACE_API_TRITON_HTTP_PORT", "").strip()
    return int(value) if value.isdigit() else None


def reload_models(names: list[str] | None, log=print, *, http_port: int | None = None,
                  state_dir: Path = STATE_DIR) -> int:
    """Derive the running server's repository again and load ``names`` (None: what is loaded now).
    0 when Triton loaded every one; 1, with the reason logged, otherwise."""
    try:
        state = server_state.find(state_dir, http_port or _port_from_environment())
    except server_state.NoServer as error:
        log(f"error: {error}")
        return 1
    api = RepositoryApi(state.http_port)
    try:
        return _reload(state, api, names, log, state_dir)
    except (urllib.error.URLError, OSError) as error:
        log(f"error: Triton on HTTP port {state.http_port} does not answer ({error})")
        return 1


def _reload(state: server_state.ServerState, api: RepositoryApi, names: list[str] | None, log,
            state_dir: Path) -> int:
    sources = [Path(s) for s in state.sources]
    configs = cpu_repository.read_configs(sources)
    loaded = api.ready()
    asked = list(dict.fromkeys(names)) if names else loaded
    gone = [n for n in asked if n not in configs]
    unknown = [n for n in gone if n not in loaded]
    if unknown:
        log(f"error: no model named {', '.join(unknown)} in {', '.join(state.sources)}")
        return 1
    tuning = cpu_repository.OnnxTuning(**state.onnx_tuning)
    roots = [n for n in asked if n in configs]
    try:
        wanted = closure(configs, roots)  # to check and derive
        to_load = closure(configs, roots, fused=tuning.fuse_pipelines)
    except SelectionError as error:
        log(f"error: {error}")
        return 1

    repository = Path(state.repository)
    prepared = cpu_repository.prepare(sources, repository, tuning, checked=wanted)
    refused = {m: prepared.skipped.get(m, "unknown model") for m in wanted if m not in prepared.served}
    if refused:
        for name, reason in refused.items():
            log(f"error: {name} cannot be served: {reason}")
        log("nothing was changed; Triton serves what it served")
        return 1
    before = {name: _entry(repository, name) for name in loaded}
    cpu_repository.publish(prepared)
    # A loaded model that runs a changed model inside it (a fused pipeline of the same
    # detector, say) is loaded again too, as its steps would be shared in an ensemble.
    to_load += [name for name in loaded if name in prepared.served and name not in to_load
                and _entry(repository, name) != before[name]]

    for name in to_load:
        log(f"loading {name} …")
        try:
            api.load(name)
        except Refused as error:
            log(f"error: Triton refused to load {name}: {error}")
            return 1
    for name in gone:
        log(f"unloading {name} (no longer in the repositories) …")
        try:
            api.unload(name)
        except Refused as error:
            log(f"error: Triton refused to unload {name}: {error}")
            return 1
    state.loaded = api.ready()
    server_state.write(server_state.path_for(state_dir, state.grpc_port), state)
    log(f"loaded {len(to_load)} models; Triton serves {len(state.loaded)}: {', '.join(state.loaded)}")
    return 0
