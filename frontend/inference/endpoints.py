"""Several Triton servers behind one frontend: which to ask, and what to do when one fails.

FACE_API_TRITON_URL names one or more servers, comma-separated: ``host:port`` or
``dns:///name:port``. A name is resolved to all its addresses (a Kubernetes
headless Service gives one per Triton pod) and resolved again every
``refresh_s``, so pods that come and go are followed.

Each address gets its own gRPC channel and every call picks the next *ready*
address in turn: balancing is per call, so one long-lived HTTP/2 connection
cannot pin a frontend's traffic to one server. A background check asks each
server "ready?" every ``check_s`` seconds; a call that finds a server
unavailable takes it out at once and is retried, once, on another ready
server (inference is idempotent; the photo is already in memory). The check
brings a server back as soon as it answers ready again, and the channels'
reconnect backoff is capped at a second so that this is quick.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tritonclient.utils import InferenceServerException

log = logging.getLogger("face_api.triton")

T = TypeVar("T")
DNS_PREFIX = "dns:///"
# tritonclient's defaults (messages up to 2 GiB) plus a short reconnect backoff: gRPC's own
# grows to two minutes, which kept a worker away from a Triton long after it was back.
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class EndpointUnavailable(Exception):
    """This server could not do it: it did not answer (``server_down``: down, overloaded,
    past the deadline), or it lacks what was asked for (a model not loaded there)."""

    def __init__(self, message: str = "", server_down: bool = False):
        super().__init__(message)
        self.server_down = server_down


@dataclass(frozen=True)
class Target:
    """One entry of FACE_API_TRITON_URL."""

    host: str
    port: int
    resolve: bool  # a name to expand into all its addresses (not an IP literal)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_targets(url: str) -> list[Target]:
    """The entries of FACE_API_TRITON_URL; ValueError naming the bad one."""
    targets = []
    for entry in (part.strip() for part in url.split(",")):
        if not entry:
            continue
        spec = entry.removeprefix(DNS_PREFIX)
        host, sep, port = spec.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"invalid Triton address {entry!r}: use host:port or dns:///name:port, "
                             "several separated by commas")
        targets.append(Target(host, int(port), resolve=not _is_ip(host)))
    if not targets:
        raise ValueError("FACE_API_TRITON_URL names no Triton server")
    return targets


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(address: str) -> bool:
    """Whether ``host:port`` is on this host (where /dev/shm is shared)."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    return _is_ip(host) and ipaddress.ip_address(host).is_loopback


def resolve(target: Target) -> list[str]:
    """The addresses behind a target, sorted; the target itself when it is an IP or does not resolve."""
    if not target.resolve:
        return [target.address]
    try:
        found = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as error:
        log.warning("cannot resolve %s (%s); trying it as it is", target.host, error)
        return [target.address]
    hosts = sorted({info[4][0] for info in found})
    return [Target(host, target.port, False).address for host in hosts] or [target.address]


@dataclass(eq=False)
class Endpoint:
    address: str
    client: Any  # tritonclient.grpc.aio.InferenceServerClient (or a stand-in in unit tests)
    ready: bool = False  # what the last check or call said
    checked: bool = False  # a check has answered at least once
    local: bool = field(init=False)

    def __post_init__(self) -> None:
        self.local = is_loopback(self.address)


def grpc_client(address: str):
    """A tritonclient.grpc.aio.InferenceServerClient (imported here: settings import this module in
    the gunicorn master, which should not load gRPC before it forks the workers)."""
    from tritonclient.grpc.aio import InferenceServerClient

    return InferenceServerClient(address, channel_args=CHANNEL_ARGS)


class EndpointPool:
    """The Triton servers of one frontend worker, checked in the background."""

    def __init__(self, url: str, check_s: float = 1.0, refresh_s: float = 30.0,
                 client_factory: Callable[[str], Any] = grpc_client,
                 resolver: Callable[[Target], list[str]] = resolve):
        self.targets = parse_targets(url)
        self.check_s = check_s
        self.refresh_s = refresh_s
        self._factory = client_factory
        self._resolver = resolver
        self.endpoints: list[Endpoint] = []
        self._turn = 0
        self._task: asyncio.Task | None = None
        self._sync_addresses()

    # --- membership ---

    def _resolve_all(self) -> list[str]:
        """Every target's addresses now, in order, without repeats (blocking: DNS)."""
        return list(dict.fromkeys(a for target in self.targets for a in self._resolver(target)))

    def _sync_addresses(self, wanted: list[str] | None = None) -> list[Endpoint]:
        """Follow the targets' current addresses; the endpoints that left (to close)."""
        wanted = self._resolve_all() if wanted is None else wanted
        known = {endpoint.address: endpoint for endpoint in self.endpoints}
        self.endpoints = [known.get(address) or Endpoint(address, self._factory(address))
                          for address in wanted]
        return [endpoint for address, endpoint in known.items() if address not in wanted]

    # --- choice ---

    def pick(self, exclude: Endpoint | None = None) -> Endpoint | None:
        """The next ready endpoint in turn; when none is known to be ready, the next one at all
        (the last check may be out of date: a busy server can miss a check's deadline).
        None when only ``exclude`` is left."""
        candidates = [e for e in self.endpoints if e is not exclude]
        if not candidates:
            return None
        ready = [e for e in candidates if e.ready] or candidates
        self._turn = (self._turn + 1) % len(ready)
        return ready[self._turn]

    async def run(self, call: Callable[[Endpoint], Awaitable[T]], idempotent: bool = True) -> T:
        """``call`` on the next endpoint; if that one is unavailable, once more on another ready
        endpoint (idempotent calls only). EndpointUnavailable when neither could answer."""
        first = self.pick()
        if first is None:
            raise EndpointUnavailable("no Triton server is configured", server_down=True)
        try:
            return await call(first)
        except EndpointUnavailable as error:
            if error.server_down:
                first.ready = False  # out until the check finds it ready again
            second = self.pick(exclude=first) if idempotent else None
            if second is None:
                raise
            log.warning("Triton at %s could not answer (%s); retrying on %s", first.address, error,
                        second.address)
            return await call(second)

    # --- background checks ---

    async def check(self) -> None:
        """Ask every endpoint whether it is ready, all at once."""
        async def one(endpoint: Endpoint) -> None:
            try:
                ready = bool(await endpoint.client.is_server_ready(client_timeout=max(self.check_s, 1.0)))
            except InferenceServerException:
                ready = False
            if ready != endpoint.ready and endpoint.checked:
                log.warning("Triton at %s is %s", endpoint.address, "ready again" if ready else "not ready")
            endpoint.ready, endpoint.checked = ready, True

        await asyncio.gather(*(one(endpoint) for endpoint in self.endpoints))

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._keep_checking())

    async def _keep_checking(self) -> None:
        since_refresh = 0.0
        while True:
            await asyncio.sleep(self.check_s)
            since_refresh += self.check_s
            try:
                if since_refresh >= self.refresh_s and any(t.resolve for t in self.targets):
                    since_refresh = 0.0
                    wanted = await asyncio.to_thread(self._resolve_all)
                    for gone in self._sync_addresses(wanted):  # (channels are made on the loop)
                        await gone.client.close()
                await self.check()
            except Exception as error:  # the checks must outlive any one failure
                log.warning("Triton endpoint check failed: %r", error)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for endpoint in self.endpoints:
            await endpoint.client.close()
