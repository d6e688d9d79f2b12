"""./face-api cluster up: the multi-node deployment rehearsed on one machine.

Real parts only, all on 127.0.0.1 and free ports:

* two embedded Triton servers (``python -m runtime triton``, each restarting its
  tritonserver when it dies);
* two frontend nodes (``python -m runtime frontend``: migrations + gunicorn),
  each with its own state folder, both listing both Triton servers in
  FACE_API_TRITON_URL and sharing the URL-signing key and the admin login;
* HAProxy in front of the frontends (health checks on /health; only requests
  that never reached a node are retried on another);
* one PostgreSQL database, one Redis and one S3 server (SeaweedFS), shared by both nodes.

Start order: the stores, the Triton servers, the frontends, HAProxy. Stop order
is the reverse: HAProxy first (no new requests), then the frontends (in-flight
requests finish), the Triton servers, the stores. ``Cluster`` is what the CLI
runs and what tests/integration/test_cluster.py and
benchmarks/cluster_throughput.py start.

The stores come from tests/support (the same helpers the integration tests use):
this is a development rehearsal, run from the checkout with the development
requirements (./face-api cluster bootstraps them).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from runtime.paths import ROOT, RUN
from runtime.ports import free_port

ADMIN_USERNAME = "admin"
BUCKET = "face-api-cluster"
CLI_DATABASE = "face_api_cluster"  # the CLI's throw-away database (tests get unique names)
FIRST_KEY = re.compile(r"^\[serve\]\s+(xyl_[A-Za-z0-9_-]+)\s*$", re.MULTILINE)


def say(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # "pid (comm) state ppid …": comm may hold spaces and parentheses.
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append((int(entry.name), command))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def http_status(url: str, timeout: float = 2) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


class Supervised:
    """One ``python -m runtime …`` supervisor in its own session, its output in ``log_path``.

    The supervisors start their child (tritonserver, gunicorn) in a session of its
    own too, so a stop that has to kill also kills the child's process group.
    """

    child_word = ""  # what the child's command line contains

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log_start = 0  # where this start's lines begin in the (appended) log

    def start(self) -> None:
        """Start the supervisor: a fresh log at the first start, appended to at restarts."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        restart = self.process is not None
        self._log_start = self.log_path.stat().st_size if restart and self.log_path.exists() else 0
        with self.log_path.open("ab" if restart else "wb") as log:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self, this_start_only: bool = True) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as file:
            file.seek(self._log_start if this_start_only else 0)
            return file.read().decode(errors="replace")

    def child(self) -> int | None:
        """The pid of the supervisor's child (tritonserver, the gunicorn master); None when there is none."""
        if not self.running:
            return None
        for pid, command in children(self.process.pid):
            if self.child_word in command:
                return pid
        return None

    def _check_alive(self, what: str) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise RuntimeError(f"{self.name} exited (code {code}) before {what}:\n{self.diagnosis()}")

    def diagnosis(self, chars: int = 3000) -> str:
        return f"--- {self.log_path} ---\n{self.log(this_start_only=False)[-chars:]}"

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the supervisor (it stops its child in order); past ``timeout``, SIGKILL
        of both process groups."""
        process = self.process
        if process is None:
            return
        child = self.child()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                say(f"{self.name} did not stop within {timeout:.0f} s; killing it")
        for group in (child, process.pid):  # whatever is left of either
            if group is not None:
                kill_group(group)
        process.wait()


class TritonNode(Supervised):
    """``python -m runtime triton`` on its own ports."""

    child_word = "tritonserver"

    def __init__(self, name: str, env: dict[str, str], folder: Path):
        self.http, self.grpc, self.metrics = free_port(), free_port(), free_port()
        env = {**env, "FACE_API_TRITON_HTTP_PORT": str(self.http),
               "FACE_API_TRITON_GRPC_PORT": str(self.grpc), "FACE_API_TRITON_METRICS_PORT": str(self.metrics)}
        super().__init__(name, [sys.executable, "-m", "runtime", "triton"], env, folder / f"{name}.log")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics}/metrics"

    @property
    def server_log(self) -> Path:
        return RUN / "triton" / f"tritonserver-{self.grpc}.log"  # where EmbeddedTriton writes it

    def ready(self) -> bool:
        """Every model loaded (Triton's strict readiness)."""
        return http_status(f"http://127.0.0.1:{self.http}/v2/health/ready") == 200

    def wait_launched(self, timeout: float) -> None:
        """Until the supervisor has linked the backends and launched tritonserver."""
        deadline = time.monotonic() + timeout
        while "starting tritonserver" not in self.log():
            self._check_alive("launching tritonserver")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not launch tritonserver within {timeout:.0f} s:\n"
                                   f"{self.diagnosis()}")
            time.sleep(0.2)

    def wait_ready(self, timeout: float, not_pid: int | None = None) -> None:
        """Until tritonserver (another one than ``not_pid``, after a kill) serves every model."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive("its models were ready")
            pid = self.child()
            if pid is not None and pid != not_pid and self.ready():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} was not ready within {timeout:.0f} s:\n{self.diagnosis()}")
            time.sleep(0.25)

    def kill_server(self) -> int:
        """SIGKILL tritonserver (not its supervisor, which restarts it); its pid."""
        pid = self.child()
        if pid is None:
            raise RuntimeError(f"{self.name} runs no tritonserver now")
        os.kill(pid, signal.SIGKILL)
        return pid

    def diagnosis(self, chars: int = 3000) -> str:
        report = super().diagnosis(chars)
        if self.server_log.exists():
            report += f"\n--- {self.server_log} ---\n{self.server_log.read_text(errors='replace')[-chars:]}"
        return report


class FrontendNode(Supervised):
    """``python -m runtime frontend --port P --workers N`` with a state folder of its own."""

    child_word = "gunicorn"

    def __init__(self, name: str, env: dict[str, str], folder: Path, workers: int,
                 extra: dict[str, str] | None = None):
        self.port = free_port()
        self.folder = folder / name
        # Anything local (the single-node limiter file, the local object store, the metric
        # files of the workers) lives in the node's own folder, as on separate machines.
        local = {"FACE_API_RATE_LIMIT_FILE": str(self.folder / "rate-limits.sqlite3"),
                 "FACE_API_STORAGE_DIR": str(self.folder / "objects"),
                 "PROMETHEUS_MULTIPROC_DIR": str(self.folder / "metrics")}
        env = {**env, **local, **(extra or {}), "FACE_API_PORT": str(self.port),
               "FACE_API_WORKERS": str(workers)}
        command = [sys.executable, "-m", "runtime", "frontend", "--port", str(self.port),
                   "--workers", str(workers)]
        super().__init__(name, command, env, folder / f"{name}.log")

    def start(self) -> None:
        # The supervisor imports prometheus_client with PROMETHEUS_MULTIPROC_DIR set, before
        # gunicorn would create the folder.
        (self.folder / "metrics").mkdir(parents=True, exist_ok=True)
        super().start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def first_key(self) -> str | None:
        """The API key this node printed when it found the database without keys."""
        match = FIRST_KEY.search(self.log(this_start_only=False))
        return match.group(1) if match else None

    def workers_started(self) -> bool:
        log = self.log()
        return 0 < log.count("Booting worker with pid") <= log.count("Application startup complete")

    def wait_ready(self, timeout: float) -> None:
        """Until /health says 200 and every gunicorn worker has finished its start-up."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive("it was healthy")
            if http_status(f"{self.url}/health") == 200 and self.workers_started():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} was not healthy within {timeout:.0f} s:\n{self.diagnosis()}")
            time.sleep(0.25)

    def kill(self) -> int:
        """SIGKILL the gunicorn master's process group (master and workers at once); the master's pid.
        Its supervisor then exits: ``start()`` brings the node back."""
        pid = self.child()
        if pid is None:
            raise RuntimeError(f"{self.name} runs no gunicorn now")
        os.killpg(pid, signal.SIGKILL)
        return pid


def _all(function: Callable[[Supervised], object], nodes: list[Supervised]) -> None:
    """``function`` on every node at once (stops and waits are mostly waiting)."""
    if nodes:
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(function, nodes))


class Cluster:
    """Two Triton servers, two frontend nodes, HAProxy, PostgreSQL, Redis and S3 on this machine.

    ``env`` (FACE_API_* variables) goes to every node after the cluster's own
    settings, so it can change them (rate limits, ONNX instances, …).
    ``database`` names the PostgreSQL database (replaced at start, dropped at
    stop); None gives a unique throw-away name.
    """

    def __init__(self, folder: Path, workers: int = 2, tritons: int = 2, frontends: int = 2,
                 env: dict[str, str] | None = None, port: int | None = None, database: str | None = None,
                 admin_password: str | None = None):
        self.folder = folder
        self.workers = workers
        self.triton_count = tritons
        self.frontend_count = frontends
        self.extra_env = env or {}
        self.port = port or free_port()
        self.database = database
        self.admin_username = ADMIN_USERNAME
        self.admin_password = admin_password or secrets.token_urlsafe(18)
        self.url_signing_key = secrets.token_hex(32)
        self.tritons: list[TritonNode] = []
        self.frontends: list[FrontendNode] = []
        self.haproxy = None  # tests.support.haproxy.HAProxy
        self.database_url = ""
        self.redis_url = ""
        self.s3 = None  # tests.support.s3_server.S3Server
        self.api_key: str | None = None
        self._exit = contextlib.ExitStack()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop()

    def start(self, timeout: float = 300) -> None:
        """Start everything and wait until HAProxy sees every frontend up; on any failure
        (or Ctrl-C), stop what was started and raise."""
        try:
            self._start(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, deadline: float) -> None:
        from tests.support.haproxy import HAProxy
        from tests.support.postgres import PostgresServer
        from tests.support.redis_server import redis_url
        from tests.support.s3_server import S3Server

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        started = time.monotonic()
        self.folder.mkdir(parents=True, exist_ok=True)
        postgres = PostgresServer.find_or_start()
        self._exit.callback(postgres.close)
        self.database_url = (postgres.fresh_database(self.database) if self.database
                             else postgres.create_database())
        self._exit.callback(postgres.drop_database, self.database_url)
        self.redis_url = self._exit.enter_context(redis_url())
        self.s3 = S3Server.local()
        self._exit.callback(self.s3.remove)

        base = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.tritons = [TritonNode(f"triton{i + 1}", {**base, **self.extra_env}, self.folder)
                        for i in range(self.triton_count)]
        self._exit.callback(_all, lambda node: node.stop(), self.tritons)
        for triton in self.tritons:
            # One after the other: the supervisors (re)link one shared backend folder as they start.
            say(f"starting {triton.name} (gRPC {triton.address}, metrics {triton.metrics_url})")
            triton.start()
            triton.wait_launched(min(120.0, left()))
        say(f"starting S3 (SeaweedFS) at {self.s3.endpoint}; PostgreSQL and Redis ({self.redis_url}) answer")
        self.s3.start(timeout=min(90.0, left()))  # while the Triton servers load their models

        frontend_env = {
            **base,
            "FACE_API_TRITON_URL": ",".join(triton.address for triton in self.tritons),
            "FACE_API_TRITON_SHARED_MEMORY": "false",  # several servers: photos travel in the gRPC messages
            "FACE_API_DATABASE_URL": self.database_url, "FACE_API_REDIS_URL": self.redis_url,
            **self.s3.env(BUCKET),
            "FACE_API_ADMIN_USERNAME": self.admin_username, "FACE_API_ADMIN_PASSWORD": self.admin_password,
            "FACE_API_URL_SIGNING_KEY": self.url_signing_key,
            "FACE_API_LOG_FORMAT": "json",
            # HAProxy (on this host) sets X-Forwarded-For: the nodes believe it, and only it.
            "FACE_API_TRUSTED_PROXIES": "127.0.0.1",
        }
        self.frontends = [FrontendNode(f"node{i + 1}", frontend_env, self.folder, self.workers,
                                       self.extra_env) for i in range(self.frontend_count)]
        self._exit.callback(_all, lambda node: node.stop(), self.frontends)
        for frontend in self.frontends:
            say(f"starting {frontend.name} on {frontend.url} ({self.workers} workers)")
            frontend.start()
        for triton in self.tritons:
            triton.wait_ready(left())
        for frontend in self.frontends:
            frontend.wait_ready(left())
        self.api_key = next((f.first_key for f in self.frontends if f.first_key), None)

        self.haproxy = HAProxy(self.folder, self.port, free_port(),
                               {frontend.name: frontend.port for frontend in self.frontends})
        self._exit.callback(self.haproxy.stop)
        self.haproxy.start()
        self.haproxy.wait_until({frontend.name: "UP" for frontend in self.frontends}, min(30.0, left()))
        say(f"ready in {time.monotonic() - started:.0f} s")

    def stop(self) -> None:
        """HAProxy, the frontends, the Triton servers, then the stores (the reverse of the start)."""
        self._exit.close()

    # --- what tests and the CLI look at ---

    def restart_frontend(self, frontend: FrontendNode, timeout: float = 120) -> None:
        """Start a stopped (or killed) frontend node again on its port, and wait until HAProxy has it back."""
        frontend.stop()
        frontend.start()
        frontend.wait_ready(timeout)
        self.haproxy.wait_until({frontend.name: "UP"}, 30)

    def health(self, frontend: FrontendNode) -> dict:
        import json

        try:
            with urllib.request.urlopen(f"{frontend.url}/health", timeout=5) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def summary(self) -> list[str]:
        lines = [f"API (HAProxy):   {self.url}    HAProxy stats: {self.haproxy.stats_url}",
                 f"HAProxy config:  {self.haproxy.config_path}"]
        for frontend in self.frontends:
            lines.append(f"frontend {frontend.name}:  {frontend.url}    log: {frontend.log_path}")
        for triton in self.tritons:
            lines.append(f"Triton {triton.name}: gRPC {triton.address}    metrics: {triton.metrics_url}"
                         f"    log: {triton.server_log}")
        from sqlalchemy.engine import make_url

        shown = make_url(self.database_url).render_as_string(hide_password=True)
        lines += [f"PostgreSQL:      {shown}",
                  f"Redis:           {self.redis_url}",
                  f"S3 (SeaweedFS):  {self.s3.endpoint}    bucket: {BUCKET}",
                  f"API key:         {self.api_key}",
                  f"admin login:     {self.admin_username} / {self.admin_password}"
                  f"    console: {self.url}/admin",
                  f"try:  curl -H 'X-API-Key: {self.api_key}' -F image=@samples/gdp.jpg "
                  f"{self.url}/api/v1/detect"]
        return lines


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def up(workers: int, port: int | None, folder: Path) -> int:
    """Start the cluster, print where everything is, watch it until Ctrl-C, stop it in order."""
    # Ctrl-C and SIGTERM stop in order (SIGINT explicitly: a shell starting us in the
    # background leaves it ignored).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    cluster = Cluster(folder, workers=workers, port=port, database=CLI_DATABASE)
    try:
        say("starting: PostgreSQL, Redis, S3, two Triton servers, two frontend nodes, HAProxy "
            "(a minute or two on a small machine)")
        cluster.start()
        for line in cluster.summary():
            say(line)
        say("running; Ctrl-C stops everything in order (HAProxy, frontends, Triton servers, stores)")
        watch(cluster)
        return 0
    except KeyboardInterrupt:
        return 0
    except Exception as error:
        say(f"error: {error}")
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the stop short
            signal.signal(sig, signal.SIG_IGN)
        say("stopping …")
        cluster.stop()
        say("stopped")


def watch(cluster: Cluster) -> None:
    """Say when a frontend node changes state in HAProxy or a supervisor exits (until Ctrl-C)."""
    states: dict[str, str] = cluster.haproxy.states()
    reported: set[str] = set()
    while True:
        time.sleep(1)
        now = cluster.haproxy.states()
        for name, state in now.items():
            if states.get(name) != state:
                say(f"HAProxy: {name} is {state}")
        states = now or states
        for node in [*cluster.tritons, *cluster.frontends]:
            if not node.running and node.name not in reported:
                reported.add(node.name)
                say(f"{node.name} exited (code {node.process.returncode}); see {node.log_path}")

