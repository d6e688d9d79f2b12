"""The Triton endpoint balancer (frontend/inference/endpoints.py) on stand-in servers:
address parsing, per-call round robin over ready servers, one retry (never two, never
for a non-idempotent call), readiness checks that take a server out and bring it back,
and DNS names that expand to several servers and change."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from tritonclient.utils import InferenceServerException

from frontend.inference.endpoints import (
    EndpointPool,
    EndpointUnavailable,
    Target,
    is_loopback,
    parse_targets,
    resolve,
)
from frontend.settings import Settings


class FakeServer:
    """Answers the readiness check like Triton would; ``up`` False: it does not answer."""

    def __init__(self, address: str):
        self.address = address
        self.up = True
        self.ready = True
        self.closed = False

    async def is_server_ready(self, client_timeout=None) -> bool:
        if not self.up:
            raise InferenceServerException("failed to connect", status="StatusCode.UNAVAILABLE")
        return self.ready

    async def close(self) -> None:
        self.closed = True


def pool_of(url: str, addresses: dict[str, list[str]] | None = None) -> tuple[EndpointPool, dict]:
    servers: dict[str, FakeServer] = {}

    def factory(address: str) -> FakeServer:
        servers[address] = FakeServer(address)
        return servers[address]

    def resolver(target: Target) -> list[str]:
        return (addresses or {}).get(target.host, [target.address])

    return EndpointPool(url, check_s=0.01, client_factory=factory, resolver=resolver), servers


def answering(log: list[str], down: set[str] = frozenset(), missing: set[str] = frozenset()):
    """A call that records which server it went to, failing on those ``down`` or ``missing``."""
    async def call(endpoint):
        log.append(endpoint.address)
        if endpoint.address in down:
            raise EndpointUnavailable("down", server_down=True)
        if endpoint.address in missing:
            raise EndpointUnavailable("no such model here")
        return endpoint.address
    return call


# --- addresses ---

def test_addresses_are_parsed():
    assert parse_targets("127.0.0.1:8001") == [Target("127.0.0.1", 8001, False)]
    assert parse_targets(" a:1 , dns:///triton.ns.svc:8001,[::1]:9") == [
        Target("a", 1, True), Target("triton.ns.svc", 8001, True), Target("::1", 9, False)]
    assert Target("::1", 9, False).address == "[::1]:9"


@pytest.mark.parametrize("url", ["", "host", "host:", ":8001", "host:port", "host:70000", "a:1,,b"])
def test_bad_addresses_are_refused_with_the_entry_named(url):
    if url == "a:1,,b":
        with pytest.raises(ValueError, match="'b'"):
            parse_targets(url)
        return
    with pytest.raises(ValueError):
        parse_targets(url)


def test_settings_refuse_a_bad_triton_url():
    with pytest.raises(ValidationError, match="invalid Triton address"):
        Settings(triton_url="127.0.0.1:8001,nonsense")


def test_loopback_addresses_share_this_host():
    assert is_loopback("127.0.0.1:8001") and is_loopback("[::1]:8001") and is_loopback("localhost:1")
    assert not is_loopback("10.0.0.5:8001") and not is_loopback("triton:8001")


def test_a_name_resolves_to_all_its_addresses():
    found = resolve(Target("localhost", 8001, True))
    assert "127.0.0.1:8001" in found and found == sorted(found)
    assert resolve(Target("10.1.2.3", 8001, False)) == ["10.1.2.3:8001"]


# --- choosing a server ---

async def test_calls_take_turns_over_the_ready_servers():
    pool, servers = pool_of("a:1,b:1,c:1")
    await pool.check()
    servers["b:1"].ready = False
    await pool.check()
    log: list[str] = []
    for _ in range(4):
        await pool.run(answering(log))
    assert log.count("a:1") == 2 and log.count("c:1") == 2 and "b:1" not in log


async def test_with_no_server_known_ready_a_call_still_tries_one():
    pool, _ = pool_of("a:1")  # never checked: not known ready
    assert await pool.run(answering([])) == "a:1"


async def test_an_unavailable_server_is_retried_once_elsewhere_and_taken_out():
    pool, _ = pool_of("a:1,b:1")
    await pool.check()
    log: list[str] = []
    results = [await pool.run(answering(log, down={"a:1"})) for _ in range(3)]
    assert results == ["b:1"] * 3
    assert log.count("a:1") == 1  # after its failure no call went there
    assert not next(e for e in pool.endpoints if e.address == "a:1").ready


async def test_never_retried_twice():
    pool, _ = pool_of("a:1,b:1,c:1")
    await pool.check()
    log: list[str] = []
    with pytest.raises(EndpointUnavailable):
        await pool.run(answering(log, down={"a:1", "b:1", "c:1"}))
    assert len(log) == 2


async def test_a_non_idempotent_call_is_not_retried():
    pool, _ = pool_of("a:1,b:1")
    await pool.check()
    log: list[str] = []
    with pytest.raises(EndpointUnavailable):
        await pool.run(answering(log, down={"a:1", "b:1"}), idempotent=False)
    assert len(log) == 1


async def test_a_server_without_the_model_is_skipped_but_stays_in():
    pool, _ = pool_of("a:1,b:1")
    await pool.check()
    log: list[str] = []
    results = {await pool.run(answering(log, missing={"a:1"})) for _ in range(2)}
    assert results == {"b:1"}
    assert all(endpoint.ready for endpoint in pool.endpoints)


async def test_the_retry_goes_to_another_server_even_if_its_last_check_missed():
    """A busy server can miss a readiness check's deadline; it is still worth the one retry."""
    pool, servers = pool_of("a:1,b:1")
    await pool.check()
    servers["b:1"].ready = False
    await pool.check()
    log: list[str] = []
    assert await pool.run(answering(log, down={"a:1"})) == "b:1"
    assert log == ["a:1", "b:1"]


async def test_one_server_down_and_no_other_is_an_error():
    pool, _ = pool_of("a:1")
    await pool.check()
    with pytest.raises(EndpointUnavailable):
        await pool.run(answering([], down={"a:1"}))


# --- background checks ---

async def test_checks_take_a_server_out_and_bring_it_back():
    pool, servers = pool_of("a:1,b:1")
    await pool.start()
    try:
        servers["a:1"].up = False
        await asyncio.sleep(0.1)
        log: list[str] = []
        for _ in range(4):
            await pool.run(answering(log))
        assert set(log) == {"b:1"}  # no call found the dead server: the check took it out first
        servers["a:1"].up = True
        await asyncio.sleep(0.1)
        log.clear()
        for _ in range(4):
            await pool.run(answering(log))
        assert set(log) == {"a:1", "b:1"}
    finally:
        await pool.close()
    assert all(server.closed for server in servers.values())


async def test_dns_names_follow_the_servers_that_come_and_go():
    addresses = {"triton-headless": ["10.0.0.1:8001", "10.0.0.2:8001"]}
    pool, servers = pool_of("dns:///triton-headless:8001", addresses)
    assert [e.address for e in pool.endpoints] == ["10.0.0.1:8001", "10.0.0.2:8001"]
    first = pool.endpoints[0]
    addresses["triton-headless"] = ["10.0.0.1:8001", "10.0.0.3:8001"]
    gone = pool._sync_addresses()
    assert [e.address for e in pool.endpoints] == ["10.0.0.1:8001", "10.0.0.3:8001"]
    assert pool.endpoints[0] is first  # kept with its channel and state
    assert [e.address for e in gone] == ["10.0.0.2:8001"]


@pytest.mark.parametrize(("url", "shared"), [
    ("127.0.0.1:8001", True),                      # the embedded Triton on this host
    ("localhost:8001", True),
    ("127.0.0.1:8001,127.0.0.1:9001", False),      # a region is registered with one server only
    ("10.1.2.3:8001", False),                      # another host cannot map our /dev/shm
    ("dns:///triton-headless.example:8001", False),  # a name may stand for several servers
])
async def test_shared_memory_only_towards_a_single_triton_on_this_host(url, shared):
    from frontend.inference.triton import TritonClient

    client = TritonClient(url, timeout_s=1.0, shared_memory_prefix="faceapi-test-")
    try:
        assert (client._slots is not None) is shared
    finally:
        await client.close()
