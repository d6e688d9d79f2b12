"""A real PostgreSQL for tests, with a throw-away database per test.

Where the server comes from, in order:

1. ``FACE_API_TEST_POSTGRES_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``):
   that server; it must be reachable, and its user must be allowed to create
   databases;
2. otherwise ``postgresql://postgres@127.0.0.1:5432/postgres`` when it answers;
3. otherwise (or always, with ``FACE_API_TEST_POSTGRES_CLUSTER=1``) a
   throw-away cluster: ``initdb`` + ``pg_ctl`` from /usr/lib/postgresql/*/bin
   (Debian package ``postgresql``) in a temporary folder on a free port, run as
   user ``postgres`` when we are root, stopped and removed afterwards.

Every test database gets a unique name and is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from runtime.ports import free_port

ENV_URL = "FACE_API_TEST_POSTGRES_URL"
ENV_CLUSTER = "FACE_API_TEST_POSTGRES_CLUSTER"
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_S = 3.0
# Only databases whose names start so are ever dropped here.
THROWAWAY_PREFIXES = ("face_api_test_", "face_api_cluster")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL could be found or started; the message says what to do."""


def say(message: str) -> None:
    print(f"[postgres] {message}", file=sys.stderr, flush=True)


def _run(factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine to completion on a private loop (safe inside pytest-asyncio's loop)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(factory())
        except BaseException as error:  # handed to the caller's thread
            result["error"] = error

    thread = threading.Thread(target=target, name="postgres-support")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (user, password, host, port and options kept)."""
    return make_url(url).set(drivername="postgresql", database=name).render_as_string(hide_password=False)


def reachable(url: str, timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
    async def probe() -> bool:
        connection = await asyncpg.connect(with_database(url, make_url(url).database or "postgres"),
                                           timeout=timeout_s)
        try:
            return await connection.fetchval("SELECT 1") == 1
        finally:
            await connection.close()

    try:
        return bool(_run(probe))
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False


class PostgresServer:
    """A reachable server: `url` points at its maintenance database."""

    def __init__(self, url: str, cluster: ThrowawayCluster | None = None):
        self.url = url
        self.cluster = cluster

    @classmethod
    def find_or_start(cls) -> PostgresServer:
        if os.environ.get(ENV_CLUSTER, "").strip() in {"1", "true", "yes"}:
            return cls(*ThrowawayCluster.start_url())
        configured = os.environ.get(ENV_URL, "").strip()
        if configured:
            if not reachable(configured):
                raise PostgresUnavailable(
                    f"{ENV_URL}={make_url(configured).render_as_string(hide_password=True)} "
                    "does not answer: start that server, or unset the variable to use "
                    "127.0.0.1:5432 or a throw-away cluster")
            return cls(configured)
        if reachable(LOCAL_URL):
            return cls(LOCAL_URL)
        say("no PostgreSQL at 127.0.0.1:5432: starting a throw-away cluster")
        return cls(*ThrowawayCluster.start_url())

    def _execute(self, sql: str) -> None:
        """One statement on the maintenance database (CREATE/DROP DATABASE cannot run in a transaction)."""
        async def run() -> None:
            connection = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT_S)
            try:
                await connection.execute(sql)
            finally:
                await connection.close()

        _run(run)

    def create_database(self) -> str:
        """A new, empty database with a unique name; its URL."""
        name = f"face_api_test_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}"')
        return with_database(self.url, name)

    def fresh_database(self, name: str) -> str:
        """Database ``name``, dropped first if it exists (a throw-away one with a fixed name,
        such as the cluster rehearsal's); its URL."""
        assert name.startswith(THROWAWAY_PREFIXES), f"refusing to replace {name!r}"
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._execute(f'CREATE DATABASE "{name}"')
        return with_database(self.url, name)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        assert name and name.startswith(THROWAWAY_PREFIXES), f"refusing to drop {name!r}"
        # FORCE (PostgreSQL 13+) ends connections a failed test left open.
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self) -> Iterator[str]:
        url = self.create_database()
        try:
            yield url
        finally:
            self.drop_database(url)

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer.find_or_start()
    try:
        yield server
    finally:
        server.close()


def find_binaries() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl."""

    def version(path: str) -> tuple[int, ...]:
        parts = Path(path).parent.name.split(".")
        return tuple(int(part) for part in parts if part.isdigit())

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for folder in candidates:
        if all(os.access(Path(folder, tool), os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    raise PostgresUnavailable(
        "no PostgreSQL server is reachable and no initdb/pg_ctl were found under "
        f"/usr/lib/postgresql/*/bin to start one: install the Debian package 'postgresql' "
        f"(apt-get install postgresql), or point {ENV_URL} at a server")


class ThrowawayCluster:
    """initdb + pg_ctl in a temporary folder; trust auth on 127.0.0.1 only."""

    def __init__(self) -> None:
        self.bin = find_binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="face-api-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = free_port()
        self.run_as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.folder, ignore_errors=True)
                raise PostgresUnavailable(
                    "running as root, and there is no 'postgres' user to run a throw-away "
                    "cluster as: install the Debian package 'postgresql' (it creates the user)"
                ) from None
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self.run_as = ["runuser", "-u", "postgres", "--"]

    @classmethod
    def start_url(cls) -> tuple[str, ThrowawayCluster]:
        cluster = cls()
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
        return cluster.url, cluster

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _tool(self, name: str, *args: str, timeout_s: float = 120) -> None:
        command = [*self.run_as, str(self.bin / name), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PostgresUnavailable(
                f"{name} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}\n{log}")

    def start(self) -> None:
        started = time.monotonic()
        say(f"initdb {self.data} ({self.bin})")
        self._tool("initdb", "-D", str(self.data), "--username=postgres", "--auth=trust",
                   "--encoding=UTF8", "--locale=C", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.folder} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        say(f"starting PostgreSQL on 127.0.0.1:{self.port}")
        self._tool("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                   "-w", "-t", "60", "start")
        if not reachable(self.url, timeout_s=10):
            raise PostgresUnavailable(f"the throw-away cluster started but does not answer on {self.url}")
        say(f"throw-away cluster ready in {time.monotonic() - started:.1f} s")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._tool("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout_s=60)
            except (PostgresUnavailable, subprocess.TimeoutExpired) as error:
                say(f"could not stop the throw-away cluster: {error}")
        shutil.rmtree(self.folder, ignore_errors=True)
