"""Locust load test of a running face API: /api/v1/detect and /api/v1/mask with the sample photos.

Point it at a service that is already up (./face-api serve, or compose.gpu.yml);
it starts nothing itself. The photos come from samples/, which `./face-api weights`
fills (yaoming.jpg, gdp.jpg, players.jpg); they are read once, at import.

    FACE_API_KEY=xyl_... .venv/bin/locust -f benchmarks/locustfile.py --headless -u 8 -r 8 -t 30s \\
        --host http://127.0.0.1:8080 --json

FACE_API_KEY is sent as X-API-Key (leave it unset for a service started with
FACE_API_API_KEY_ENABLED=false). Raise the service's rate limits for a load
test (FACE_API_RATE_LIMIT_DETECT / _MASK), or the 429s are what you measure.

-u: concurrent users (each sends its next request as soon as the last one is
answered: no wait time), -r: users started per second, -t: run time, --json:
the final statistics as JSON on stdout. A request counts as failed unless it
returns 200 with a JSON body holding `detections` (for /mask: 200 with an
image/jpeg body and an X-Face-Count header; for /health: 200).
"""

from __future__ import annotations

import os
from pathlib import Path

from locust import HttpUser, constant, task

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PHOTO_NAMES = ("yaoming.jpg", "gdp.jpg", "players.jpg")


def _load_photos() -> dict[str, bytes]:
    missing = [name for name in PHOTO_NAMES if not (SAMPLES / name).is_file()]
    if missing:
        raise SystemExit(f"{', '.join(missing)} missing from {SAMPLES}: run ./face-api weights first")
    return {name: (SAMPLES / name).read_bytes() for name in PHOTO_NAMES}


PHOTOS = _load_photos()


def _describe(response) -> str:
    if response.status_code == 0:  # no HTTP answer at all: connection refused, reset, timeout
        return f"no response: {response.error!r}"
    return f"HTTP {response.status_code}: {(response.text or '')[:200]}"


class FaceApiUser(HttpUser):
    wait_time = constant(0)  # closed loop: throughput is set by -u and the service's latency

    def on_start(self) -> None:
        if os.environ.get("FACE_API_KEY"):
            self.client.headers["X-API-Key"] = os.environ["FACE_API_KEY"]

    def _detect(self, name: str) -> None:
        files = {"image": (name, PHOTOS[name], "image/jpeg")}
        # name= groups the statistics per photo (players.jpg has many faces, yaoming.jpg one).
        with self.client.post("/api/v1/detect", files=files, name=f"/api/v1/detect [{name}]",
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(_describe(response))
                return
            try:
                body = response.json()
            except ValueError:
                response.failure("the response is not JSON")
                return
            if not isinstance(body, dict) or "detections" not in body:
                response.failure("the response has no 'detections' key")
            else:
                response.success()

    @task(4)
    def detect_yaoming(self) -> None:
        self._detect("yaoming.jpg")

    @task(4)
    def detect_gdp(self) -> None:
        self._detect("gdp.jpg")

    @task(2)
    def detect_players(self) -> None:
        self._detect("players.jpg")

    @task(3)
    def mask_gdp(self) -> None:
        files = {"image": ("gdp.jpg", PHOTOS["gdp.jpg"], "image/jpeg")}
        with self.client.post("/api/v1/mask?method=gaussian&format=jpeg", files=files,
                              name="/api/v1/mask [gdp.jpg]", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(_describe(response))
            elif (response.headers.get("content-type") != "image/jpeg"
                  or "x-face-count" not in response.headers):
                response.failure("not a JPEG with X-Face-Count")
            else:
                response.success()

    @task(1)
    def health(self) -> None:
        with self.client.get("/health", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(_describe(response))
            else:
                response.success()
