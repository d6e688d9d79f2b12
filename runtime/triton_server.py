"""Run the tritonserver binary from nvidia-pytriton on the CPU, embedded.

Builds the Python-backend directory Triton needs (links into the wheel),
derives the CPU repository (runtime.cpu_repository), starts the server in its
own process group with explicit model control (only the models of its
runtime.selection.LoadPlan are loaded), waits until the pipelines the frontend
needs are ready, leaves a state file for ./face-api models reload
(runtime.server_state), and stops it cleanly: SIGTERM, a short exit timeout,
then SIGKILL, and removal of the shared-memory regions its Python stubs leave
in /dev/shm on a hard stop.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from frontend.inference.shared_memory import remove_leftovers
from runtime import cpu_repository, selection, server_state
from runtime.allocator import tuned_environment
from runtime.paths import ENSEMBLES, MODEL_REPOSITORY, ROOT, RUN

STUB_PYTHON = "3.11"  # the Python-backend stub built for Debian's libpython3.11


def pytriton_dir() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nvidia-pytriton is not installed in this environment: run ./face-api bootstrap")
    return Path(spec.submodule_search_locations[0]) / "tritonserver"


def prepare_backends(folder: Path) -> Path:
    """A backend directory whose python/ links the wheel's backend library, utils and stub."""
    server = pytriton_dir()
    python = folder / "python"
    python.mkdir(parents=True, exist_ok=True)
    stub = f"python_backend_stubs/{STUB_PYTHON}/triton_python_backend_stub"
    links = {
        "libtriton_python.so": server / "backends/python/libtriton_python.so",
        "triton_python_backend_utils.py": server / "backends/python/triton_python_backend_utils.py",
        "triton_python_backend_stub": server / stub,
    }
    for name, source in links.items():
        # Made under a name of its own, then renamed into place: several servers starting at
        # once (the cluster rehearsal) never find a half-made or vanished link.
        partial = python / f".{name}.{os.getpid()}"
        partial.unlink(missing_ok=True)
        partial.symlink_to(source)
        os.replace(partial, python / name)
    return folder


@dataclass
class EmbeddedTriton:
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    run_dir: Path = RUN / "triton"
    sources: list[Path] = field(default_factory=lambda: [MODEL_REPOSITORY, ENSEMBLES])
    onnx_tuning: cpu_repository.OnnxTuning = field(default_factory=cpu_repository.OnnxTuning)
    plan: selection.LoadPlan = field(default_factory=selection.LoadPlan)
    exit_timeout_s: int = 5
    log: callable = print
    process: subprocess.Popen | None = None
    repository: cpu_repository.DerivedRepository | None = None
    loaded: list[str] = field(default_factory=list)  # the models loaded at start, each after what it calls

    @property
    def shm_prefix(self) -> str:
        # Unique per launcher so cleanup never touches another server's regions.
        return f"faceapi{os.getpid()}_{self.grpc_port}_"

    @property
    def repository_path(self) -> Path:
        # One derived repository per server (keyed by its gRPC port): several servers,
        # test stacks say, can start side by side without replacing each other's.
        return self.run_dir / f"models-{self.grpc_port}"

    def start(self, timeout_s: float = 180.0) -> None:
        """Start the server with the plan's models loaded; block until the pipelines it asks for are ready."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        configs = cpu_repository.read_configs(self.sources)
        try:
            required = self.plan.roots(configs, self.log)
            wanted = selection.closure(configs, required)  # what must be servable (and checked)
            to_load = selection.closure(configs, required, fused=self.onnx_tuning.fuse_pipelines)
        except selection.SelectionError as error:
            raise RuntimeError(str(error)) from None
        self.log("deriving the CPU model repository …")
        cpu_repository.remove(self.repository_path)
        self.repository = cpu_repository.derive(
            self.sources, self.repository_path, self.onnx_tuning, log=self.log,
            checked=None if self.plan.everything else wanted, apart=True)
        missing = [m for m in wanted if m not in self.repository.served]
        if missing:
            reasons = "; ".join(f"{m}: {self.repository.skipped.get(m, 'unknown model')}" for m in missing)
            raise RuntimeError(f"required models cannot be served: {reasons}")
        self.loaded = list(self.repository.served) if self.plan.everything else to_load
        backends = prepare_backends(self.run_dir / "backends")
        log_path = self.run_dir / f"tritonserver-{self.grpc_port}.log"
        command = [
            str(pytriton_dir() / "bin/tritonserver"),
            f"--model-repository={self.repository.path}",
            # Only what is asked for is loaded; ./face-api models reload loads more (or again)
            # through the repository API.
            "--model-control-mode=explicit",
            *(f"--load-model={name}" for name in self.loaded),
            f"--backend-directory={backends}",
            "--backend-config=python,shm-default-byte-size=16777216",
            "--backend-config=python,shm-growth-byte-size=16777216",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}", "--allow-metrics=true",
            "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            "--log-verbose=0",
            # A pooled gRPC request/response keeps the largest photo it ever carried (34 MB
            # each for a 12 Mpx one, ~400 MB after a burst); a fresh one per request costs microseconds.
            "--grpc-infer-allocation-pool-size=0",
        ]
        env = tuned_environment(os.environ)  # inherited by every Python stub
        # The stub's embedded interpreter finds the venv (and its packages)
        # through the first python3 on PATH, and the models' shared code
        # (triton_python/) through the checkout on PYTHONPATH.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.log(f"starting tritonserver (gRPC :{self.grpc_port}, HTTP :{self.http_port}, "
                 f"metrics :{self.metrics_port}); log: {log_path}")
        self.log(f"loading {len(self.loaded)} of {len(self.repository.served)} servable models: "
                 f"{', '.join(self.loaded)}")
        with log_path.open("ab") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)
        self._wait_ready(required, timeout_s, log_path)
        server_state.write(self.state_path, server_state.ServerState(
            pid=os.getpid(), http_port=self.http_port, grpc_port=self.grpc_port,
            sources=[str(s) for s in self.sources], repository=str(self.repository.path),
            onnx_tuning=asdict(self.onnx_tuning), loaded=self.loaded))

    @property
    def state_path(self) -> Path:
        return server_state.path_for(self.run_dir, self.grpc_port)

    def _wait_ready(self, required: list[str], timeout_s: float, log_path: Path) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(required)
        next_note = time.monotonic() + 5
        while pending:
            if self.process.poll() is not None:
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(f"tritonserver exited with code {self.process.returncode}:\n"
                                   + "\n".join(tail))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"models not ready after {timeout_s:.0f} s: {', '.join(pending)}"
                                   f" (see {log_path})")
            pending = [m for m in pending if not self._ready(f"/v2/models/{m}/ready")]
            if pending and time.monotonic() > next_note:
                self.log(f"waiting for models: {', '.join(pending)}")
                next_note = time.monotonic() + 5
            time.sleep(0.25)
        self.log(f"tritonserver ready; serving {', '.join(sorted(self.loaded))}")

    def _ready(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGTERM, wait out the exit timeout, SIGKILL the group, clean /dev/shm."""
        if self.process is not None and self.process.poll() is None:
            self.log("stopping tritonserver …")
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=self.exit_timeout_s + 10)
            except subprocess.TimeoutExpired:
                self.log("tritonserver did not exit in time; killing it")
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait()
        if self.process is not None:
            _signal_group(self.process, signal.SIGKILL)  # stray stubs, if any
        remove_leftovers(self.shm_prefix)
        server_state.remove(self.state_path, os.getpid())
        if self.repository is not None:
            cpu_repository.remove(self.repository.path)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
