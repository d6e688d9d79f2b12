"""Rate limits hold across gunicorn workers: the embedded single-node store (a SQLite
file) with API keys off (limits per client address), and Redis with keys on (per key,
on PostgreSQL) in test_access_postgres_redis.py."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from frontend.ratelimit import Rate, RedisStore
from tests.integration.conftest import metric, sample
from tests.integration.stack import ADMIN_PASSWORD, start_stack
from tests.support.redis_server import redis_url

TINY = sample("yaoming.jpg").read_bytes()


async def burst(url: str, path: str, count: int, headers: dict | None = None) -> list[httpx.Response]:
    """``count`` concurrent uploads, so that both workers take some."""
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers or {}) as http:
        return await asyncio.gather(*(http.post(path, files={"image": ("y.jpg", TINY)})
                                      for _ in range(count)))


def statuses(responses: list[httpx.Response]) -> dict[int, int]:
    counted: dict[int, int] = {}
    for response in responses:
        counted[response.status_code] = counted.get(response.status_code, 0) + 1
    return counted


def assert_refusals_are_documented(responses: list[httpx.Response], rate: str) -> None:
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["detail"].startswith(f"rate limit exceeded: {rate}")
            assert response.headers["x-ratelimit-remaining"] == "0"


@pytest.fixture(scope="module")
def single_node(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("limits"), env={
        "FACE_API_API_KEY_ENABLED": "false", "FACE_API_WORKERS": "2",
        "FACE_API_RATE_LIMIT_DETECT": "5/minute", "FACE_API_RATE_LIMIT_MASK": "3/minute",
        "FACE_API_RATE_LIMIT_ADMIN_LOGIN": "3/minute"})
    yield stack
    stack.stop()


def keep_refused_until_both_workers_answered(stack, path: str, headers: dict | None = None) -> None:
    """After the allowance is spent, every worker must refuse: it sees the others' use.

    Which worker accepts a connection is up to the kernel, so keep asking (every
    answer must be a 429) until the request log lines show both workers answering.
    """
    for _ in range(40):
        if len(stack.worker_pids()) >= 2:
            return
        responses = asyncio.run(burst(stack.url, path, 4, headers))
        assert statuses(responses) == {429: 4}
        time.sleep(0.1)
    raise AssertionError(f"only workers {stack.worker_pids()} answered")


def test_detect_limit_holds_across_workers(single_node):
    responses = asyncio.run(burst(single_node.url, "/api/v1/detect", 12))
    assert statuses(responses) == {200: 5, 429: 7}
    assert_refusals_are_documented(responses, "5/minute")
    ok = [r for r in responses if r.status_code == 200]
    assert sorted(int(r.headers["x-ratelimit-remaining"]) for r in ok) == [0, 1, 2, 3, 4]
    keep_refused_until_both_workers_answered(single_node, "/api/v1/detect")


def test_each_endpoint_has_its_own_limit(single_node):
    responses = asyncio.run(burst(single_node.url, "/api/v1/mask", 6))
    assert statuses(responses) == {200: 3, 429: 3}
    assert_refusals_are_documented(responses, "3/minute")


def from_address(stack, address: str, **kwargs) -> httpx.Client:
    """A client that connects from `address` (any 127.x.y.z is this host): its own allowance.
    One kept-alive connection, so one worker answers all its requests."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=stack.url, timeout=30, transport=transport, **kwargs)


def assert_login_refusal(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert "set-cookie" not in response.headers
    assert int(response.headers["retry-after"]) >= 1
    assert re.fullmatch(r"too many login attempts: 3/minute; retry in \d+ s", response.json()["detail"])


def test_admin_login_is_limited_per_address(single_node):
    """Every attempt counts, good or bad; past the limit even the right password gets 429."""
    def login(http: httpx.Client, password: str) -> httpx.Response:
        return http.post("/api/v1/admin/auth/login", json={"username": "admin", "password": password})

    with from_address(single_node, "127.0.0.2") as http:
        first = [login(http, "wrong-password-guess") for _ in range(2)]
        assert [r.status_code for r in first] == [401, 401]
        assert [r.headers["x-ratelimit-remaining"] for r in first] == ["2", "1"]
        assert login(http, ADMIN_PASSWORD).status_code == 204  # the third attempt, still allowed
        assert_login_refusal(login(http, ADMIN_PASSWORD))
        assert_login_refusal(login(http, "wrong-password-guess"))
    with from_address(single_node, "127.0.0.3") as other:
        assert login(other, ADMIN_PASSWORD).status_code == 204


def test_wrong_basic_passwords_spend_the_login_allowance(single_node):
    """Otherwise HTTP Basic would be a way around the login limit for a password guesser."""
    session = "/api/v1/admin/auth/session"
    with from_address(single_node, "127.0.0.4") as http:
        for _ in range(5):  # right passwords cost nothing
            assert http.get(session, auth=("admin", ADMIN_PASSWORD)).status_code == 200
        wrong = [http.get(session, auth=("admin", f"guess-{i}-password")).status_code for i in range(3)]
        assert wrong == [401, 401, 401]
        assert_login_refusal(http.get(session, auth=("admin", "guess-4-password")))
        # Locked out: the right password gets the same answer, so the answer tells nothing.
        assert_login_refusal(http.get(session, auth=("admin", ADMIN_PASSWORD)))
        assert_login_refusal(http.post("/api/v1/admin/auth/login",
                                       json={"username": "admin", "password": ADMIN_PASSWORD}))
    with from_address(single_node, "127.0.0.5") as other:
        assert other.get(session, auth=("admin", ADMIN_PASSWORD)).status_code == 200


def test_redis_store_shares_one_allowance_between_clients():
    """Two independent clients (as two nodes would be) against one Redis."""
    rate = Rate(4, 60.0)

    async def main(url: str) -> tuple[list[bool], list[bool]]:
        prefix = f"face-api-test:{time.time_ns()}:"
        stores = [RedisStore(url, prefix=prefix) for _ in range(2)]
        try:
            first = [(await stores[i % 2].hit("caller", rate)).allowed for i in range(6)]
            other = [(await stores[0].hit("someone-else", rate)).allowed for _ in range(2)]
            return first, other
        finally:
            for store in stores:
                await store.close()

    with redis_url() as url:
        first, other = asyncio.run(main(url))
    assert first == [True] * 4 + [False] * 2
    assert other == [True, True]


def test_refusals_are_counted_by_limit(single_node):
    """face_api_rate_limit_refusals_total: one per 429, under the limit that refused it
    (the detect allowance is spent by the tests above, within the minute)."""
    def refusals(limit: str) -> float:
        return metric(single_node.url, "face_api_rate_limit_refusals_total", limit=limit)

    detect_before, mask_before = refusals("detect"), refusals("mask")
    responses = asyncio.run(burst(single_node.url, "/api/v1/detect", 3))
    assert statuses(responses) == {429: 3}
    assert refusals("detect") == detect_before + 3
    assert refusals("mask") == mask_before
