"""A real Redis for tests: the machine's own (127.0.0.1:6379), or a throw-away redis-server."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

from runtime.ports import free_port


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """FACE_API_TEST_REDIS_URL, else the local server, else a redis-server started (and stopped) here."""
    if os.environ.get("FACE_API_TEST_REDIS_URL"):
        yield os.environ["FACE_API_TEST_REDIS_URL"]
        return
    if _reachable("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("no Redis reachable at 127.0.0.1:6379 and no redis-server to start one: "
                           "install the Debian package redis-server or set FACE_API_TEST_REDIS_URL")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", folder],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not _reachable("127.0.0.1", port):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the throw-away redis-server did not start")
                time.sleep(0.1)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)
