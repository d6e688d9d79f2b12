"""The multi-node rehearsal (runtime/cluster.py, ./face-api cluster up) under failures.

One cluster for the module: two Triton servers, two frontend nodes (2 workers
each), HAProxy, PostgreSQL, Redis and S3. What a multi-node deployment promises:
a Triton server killed under load costs no request (each call that finds it
gone is retried on the other server) and is used again once it is back; a
frontend node killed under load costs at most the requests in flight on it
(HAProxy routes around it); the rate limits, the stored images and the admin
sessions are the same whichever node answers.

The figures (requests during each failure, retries, failures) are written to the
terminal as the tests run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime.cluster import Cluster, FrontendNode, TritonNode
from tests.integration.conftest import sample, unique_photo

CLIENTS = 3  # concurrent clients of the load tests
MASK_LIMIT = 10  # per key and hour: GCRA refills one per 6 minutes, so none comes back during the test
PHOTO = sample("yaoming.jpg").read_bytes()
LOGIN = "/api/v1/admin/auth/login"
DETECT_PIPELINE = "detect_scrfd_500m"  # FACE_API_DETECTOR's default
# The load tests must not be throttled; mask has a small limit of its own for the limit test.
ENV = {"FACE_API_RATE_LIMIT_DETECT": "1000000/minute", "FACE_API_RATE_LIMIT_MASK": f"{MASK_LIMIT}/hour",
       "FACE_API_RATE_LIMIT_RECOGNITION": "1000000/minute",
       "FACE_API_RATE_LIMIT_ADMIN_LOGIN": "1000000/minute"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = Cluster(tmp_path_factory.mktemp("cluster"), workers=2, env=ENV)
    running.start()
    try:
        assert running.api_key, "no frontend node printed a first API key"
        yield running
    finally:
        running.stop()


@pytest.fixture
def both_nodes(cluster) -> tuple[FrontendNode, FrontendNode]:
    """Both frontend nodes running (a test before may have killed one)."""
    for node in cluster.frontends:
        if not node.running:
            cluster.restart_frontend(node)
    return cluster.frontends[0], cluster.frontends[1]


def report(request, line: str) -> None:
    """A figure for whoever runs the tests, whether or not pytest captures output."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None:
        print(f"[cluster] {line}")
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line(f"\n[cluster] {line}")


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | None  # None: no HTTP answer at all
    detail: str = ""


class Load:
    """``clients`` threads sending detect requests back to back to ``url`` until ``stop()``."""

    def __init__(self, url: str, key: str, clients: int = CLIENTS):
        self.url, self.key, self.clients = url, key, clients
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60, headers={"X-API-Key": self.key}) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = http.post("/api/v1/detect", files={"image": ("y.jpg", PHOTO)})
                    outcome = Outcome(started, time.monotonic(), response.status_code,
                                      "" if response.status_code == 200 else response.text[:200])
                except httpx.HTTPError as error:
                    outcome = Outcome(started, time.monotonic(), None, repr(error))
                with self._lock:
                    self.outcomes.append(outcome)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200]

    def during(self, start: float, end: float) -> list[Outcome]:
        """The requests that were in flight at some moment between ``start`` and ``end``."""
        return [o for o in self.outcomes if o.started <= end and o.ended >= start]


def triton_successes(triton: TritonNode, model: str = DETECT_PIPELINE) -> float:
    """nv_inference_request_success of ``model`` on that server (reset when it restarts)."""
    text = httpx.get(triton.metrics_url, timeout=10).raise_for_status().text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name in ("nv_inference_request_success", "nv_inference_request_success_total")
               and s.labels.get("model") == model)


def retries_logged(cluster: Cluster) -> int:
    """How many calls the frontends retried on another Triton server so far."""
    return sum(node.log(this_start_only=False).count("could not answer") for node in cluster.frontends)


def session_cookies(response: httpx.Response) -> dict[str, str]:
    cookies = {}
    for line in response.headers.get_list("set-cookie"):
        name, value = line.split(";", 1)[0].split("=", 1)
        cookies[name] = value
    return cookies


def test_images_and_admin_sessions_are_shared_by_the_nodes(cluster, both_nodes):
    node_a, node_b = both_nodes
    photo = unique_photo("gdp.jpg")
    detected = httpx.post(f"{node_a.url}/api/v1/detect", headers={"X-API-Key": cluster.api_key},
                          files={"image": ("p.png", photo)}, timeout=60)
    assert detected.status_code == 200, detected.text
    image_id = detected.json()["image_id"]
    assert image_id, detected.headers.get("x-storage-error")

    login = httpx.post(f"{node_a.url}{LOGIN}", timeout=30,
                       json={"username": cluster.admin_username, "password": cluster.admin_password})
    assert login.status_code == 204, login.text
    cookies = session_cookies(login)
    cookie_header = "; ".join(f"{name}={value}" for name, value in cookies.items())
    with httpx.Client(base_url=f"{node_b.url}/api/v1/admin", timeout=30,
                      headers={"Cookie": cookie_header}) as on_b:
        assert on_b.get("/auth/session").json() == {"authenticated": True, "username": cluster.admin_username}
        listed = on_b.get("/images")  # newest first
        assert listed.status_code == 200, listed.text
        assert image_id in [item["id"] for item in listed.json()["items"]]

        redirect = on_b.get(f"/images/{image_id}/download")
        assert redirect.status_code == 302, redirect.text
        location = redirect.headers["location"]
        assert location.startswith(cluster.s3.endpoint) and "X-Amz-Signature=" in location  # presigned
        downloaded = httpx.get(location, timeout=30)
        assert downloaded.status_code == 200 and downloaded.content == photo

        deleted = on_b.delete(f"/images/{image_id}", headers={"X-CSRF-Token": cookies["face_api_csrf"]})
        assert deleted.status_code == 204, deleted.text
    gone = httpx.get(f"{node_a.url}/api/v1/admin/images/{image_id}", timeout=30,
                     auth=(cluster.admin_username, cluster.admin_password))
    assert gone.status_code == 404
    assert httpx.get(location, timeout=30).status_code == 404  # the object left S3 too


def test_rate_limits_hold_across_both_nodes(cluster, both_nodes):
    created = httpx.post(f"{both_nodes[0].url}/api/v1/admin/api-keys", json={"name": "cluster-limits"},
                         auth=(cluster.admin_username, cluster.admin_password), timeout=30)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    answers: Counter = Counter()
    for i in range(2 * MASK_LIMIT):  # alternating: node1, node2, node1, …
        node = both_nodes[i % 2]
        response = httpx.post(f"{node.url}/api/v1/mask", headers={"X-API-Key": key},
                              files={"image": ("y.jpg", PHOTO)}, timeout=60)
        answers[node.name, response.status_code] += 1
    total = Counter()
    for (_, status), count in answers.items():
        total[status] += count
    assert total == {200: MASK_LIMIT, 429: MASK_LIMIT}, answers
    half = MASK_LIMIT // 2  # each node used half the allowance, then refused: it saw the other's use
    assert answers == {("node1", 200): half, ("node2", 200): half,
                       ("node1", 429): half, ("node2", 429): half}


def test_a_triton_server_killed_under_load_costs_no_request(cluster, both_nodes, request):
    victim = cluster.tritons[0]
    retries_before = retries_logged(cluster)
    with Load(cluster.url, cluster.api_key) as load:
        time.sleep(3)
        killed_at = time.monotonic()
        pid = victim.kill_server()
        victim.wait_ready(timeout=120, not_pid=pid)  # its supervisor restarts it
        back_at = time.monotonic()
        time.sleep(1.5)  # every worker's check (each second) has seen it ready
        served_when_back = triton_successes(victim)
        time.sleep(5)
    served_later = triton_successes(victim)
    failures = load.failures()
    during = load.during(killed_at, back_at)
    report(request, f"Triton kill: {len(load.outcomes)} requests through HAProxy ({CLIENTS} clients), "
                    f"{len(during)} while {victim.name} was down or restarting "
                    f"({back_at - killed_at:.1f} s), "
                    f"{len(failures)} failed; {retries_logged(cluster) - retries_before} calls retried on "
                    f"the other Triton")
    assert not failures, failures[:5]
    assert during, "no request was in flight while the server was away"
    for node in cluster.frontends:
        assert cluster.health(node)["inference_endpoints"] == {t.address: True for t in cluster.tritons}
    assert served_later > served_when_back, "no call reached the restarted Triton server"


def test_a_frontend_node_killed_under_load_costs_at_most_its_requests_in_flight(cluster, both_nodes,
                                                                                request):
    """Only requests the node had already taken may fail: those in flight on it, and those HAProxy
    connected to it in the few milliseconds its dying processes still held the listening socket
    (the kernel accepts connections until the last one exits; a client whose request failed sends
    the next one at once, so it can land there). Nothing sent later fails."""
    victim = both_nodes[1]
    with Load(cluster.url, cluster.api_key) as load:
        time.sleep(3)
        killed_at = time.monotonic()
        victim.kill()
        cluster.haproxy.wait_until({victim.name: "DOWN"}, timeout=20)
        down_at = time.monotonic()
        time.sleep(4)
    failures = load.failures()
    in_flight = [o for o in failures if o.started <= killed_at]
    at_the_kill = [o for o in failures if o.started > killed_at]
    after = [o for o in load.outcomes if o.started > killed_at + 1]
    kinds = dict(Counter(o.status or o.detail.split("(")[0] for o in failures))
    delays = ", ".join(f"{1000 * (o.started - killed_at):.0f} ms" for o in at_the_kill) or "-"
    report(request, f"frontend kill: {len(load.outcomes)} requests through HAProxy ({CLIENTS} clients), "
                    f"{len(failures)} failed: {len(in_flight)} in flight on {victim.name} when it was "
                    f"killed, {len(at_the_kill)} sent to it as it died ({delays} after the kill); {kinds}; "
                    f"HAProxy marked it DOWN {down_at - killed_at:.1f} s after the kill")
    assert len(in_flight) <= CLIENTS, in_flight
    assert len(at_the_kill) <= CLIENTS, at_the_kill
    assert after and all(o.status == 200 for o in after), "a request sent after the node was gone failed"
