"""Locust load tests of a running face API: one user class per kind of client.

Point it at a service that is already up (./face-api serve, or compose.gpu.yml);
it starts nothing itself. The photos come from samples/, which `./face-api weights`
fills (yaoming.jpg, gdp.jpg, players.jpg); they are read once, at import.

    FACE_API_KEY=xyl_... .venv/bin/locust -f benchmarks/locustfile.py --headless -u 8 -r 8 -t 30s \\
        --host http://127.0.0.1:8080 --json

Name a user class after the options to run only that kind of client (several
names run side by side, users split evenly; none runs every class below):

    FACE_API_KEY=xyl_... .venv/bin/locust -f benchmarks/locustfile.py --headless -u 8 -r 8 -t 30s \\
        --host http://127.0.0.1:8080 DetectUser

* `DetectUser`: an API client detecting faces, `POST /api/v1/detect` on the
  three sample photos (1, 5 and 22 faces);
* `MaskUser`: an anonymisation pipeline, `POST /api/v1/mask` with the
  gaussian, pixelate, solid and elliptical methods, JPEG, PNG and WebP out;
* `RecognitionUser`: a client of the `/v1` contract, `/v1/file/score`,
  `/v1/file/embeddings`, `/v1/feature` (JSON, base64) and `/v1/feature-score`;
* `MixedUser`: all of them in one user, as a deployment might see them:
  40 % detect, 25 % mask, 20 % recognition, 10 % `/health`, 5 % admin browsing;
* `AdminUser`: an operator in the console, `/api/v1/admin/stats`, `/images`,
  `/jobs`, thumbnails, a download link, now and then a mask preview;
* `FaceApiUser`: the original mix of this file, detect on the three photos,
  mask gdp.jpg, `/health`.

`.venv/bin/python -m benchmarks.load_curve --scenario DetectUser` steps one
class through 1 to 32 users and draws the load curve (docs/performance.md).

Settings, from the environment:

* FACE_API_KEY is sent as X-API-Key (leave it unset for a service started with
  FACE_API_API_KEY_ENABLED=false). Raise the service's rate limits for a load
  test (FACE_API_RATE_LIMIT_DETECT / _MASK / _RECOGNITION), or the 429s are what
  you measure.
* FACE_API_ADMIN_USERNAME (default admin) and FACE_API_ADMIN_PASSWORD, else the
  password in .run/admin-password that `./face-api serve` writes, for the admin
  tasks. Each locust process logs in once (`POST /api/v1/admin/auth/login`) and
  its users share that cookie session, so a run stays within the login limit
  (FACE_API_RATE_LIMIT_ADMIN_LOGIN, 10 a minute); the mask preview, a POST,
  sends the session's CSRF token in X-CSRF-Token as the console does. The admin
  endpoints need storage-backed mode (the default).

-u: concurrent users (each sends its next request as soon as the last one is
answered: no wait time), -r: users started per second, -t: run time, --json:
the final statistics as JSON on stdout. Every request checks its answer: the
status, then the body's shape (JSON keys, an image of the asked format, the
face-count header); anything else is a failure whose message says what was
wrong, e.g. `HTTP 429: {"detail": "rate limit exceeded ..."}` or
`/v1/feature: 'feature' is not 2048 bytes of base64`.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from locust import HttpUser, constant

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
PHOTO_NAMES = ("yaoming.jpg", "gdp.jpg", "players.jpg")
ADMIN_PASSWORD_FILE = ROOT / ".run" / "admin-password"
ADMIN = "/api/v1/admin"
IMAGE_MAGIC = {"jpeg": (b"\xff\xd8\xff",), "png": (b"\x89PNG\r\n\x1a\n",), "webp": (b"RIFF",)}


def _load_photos() -> dict[str, bytes]:
    missing = [name for name in PHOTO_NAMES if not (SAMPLES / name).is_file()]
    if missing:
        raise SystemExit(f"{', '.join(missing)} missing from {SAMPLES}: run ./face-api weights first")
    return {name: (SAMPLES / name).read_bytes() for name in PHOTO_NAMES}


PHOTOS = _load_photos()
PHOTOS_BASE64 = {name: base64.b64encode(data).decode() for name, data in PHOTOS.items()}


def multipart(**files: tuple[str, bytes]) -> dict:
    """``client.post`` arguments uploading each (filename, bytes) as the multipart field of its name.

    Built once per body, not per request: the load generator often shares the
    service's cores, and requests assembling a multipart body on every call costs
    them. The bytes on the wire are those of ``files=``.
    """
    boundary = "face-api-locust-" + "0" * 16
    body = b""
    for field, (filename, data) in files.items():
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\""
                 "\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return {"data": body + f"--{boundary}--\r\n".encode(),
            "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}}


UPLOADS = {name: multipart(image=(name, data)) for name, data in PHOTOS.items()}
# Yao Ming's portrait against the team photo he is in (score ~0.63), and against gdp.jpg (~0.07).
SCORE_PAIRS = {
    "yaoming.jpg+players.jpg": multipart(image1=("yaoming.jpg", PHOTOS["yaoming.jpg"]),
                                         image2=("players.jpg", PHOTOS["players.jpg"])),
    "yaoming.jpg+gdp.jpg": multipart(image1=("yaoming.jpg", PHOTOS["yaoming.jpg"]),
                                     image2=("gdp.jpg", PHOTOS["gdp.jpg"])),
}


# --- checking answers ---

class Invalid(Exception):
    """The answer came back but is not what the endpoint promises; the message says why."""


def _describe(response) -> str:
    if response.status_code == 0:  # no HTTP answer at all: connection refused, reset, timeout
        return f"no response: {response.error!r}"
    return f"HTTP {response.status_code}: {(response.text or '')[:200]}"


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        raise Invalid("the response is not JSON") from None
    if not isinstance(body, dict):
        raise Invalid(f"the response is a JSON {type(body).__name__}, not an object")
    return body


def _need(body: dict, key: str, kind: type | tuple[type, ...]) -> object:
    value = body.get(key)
    if not isinstance(value, kind):
        raise Invalid(f"{key!r} is missing or not {getattr(kind, '__name__', kind)}: {str(value)[:80]}")
    return value


def _check_image(response, image_format: str) -> None:
    content_type = response.headers.get("content-type")
    if content_type != f"image/{image_format}":
        raise Invalid(f"Content-Type {content_type!r}, asked for image/{image_format}")
    if not response.content.startswith(IMAGE_MAGIC[image_format]):
        raise Invalid(f"the body does not start like a {image_format.upper()} file")


def _check_face_detect(value: object) -> None:
    if not isinstance(value, dict) or value.get("processed") is not True:
        raise Invalid(f"face_detect is not a found face: {str(value)[:120]}")


def _check_feature(body: dict) -> None:
    feature = _need(body, "feature", str)
    try:
        raw = base64.b64decode(feature, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("'feature' is not base64") from None
    if len(raw) not in (128 * 4, 512 * 4):  # SFace or ArcFace, float32
        raise Invalid(f"'feature' decodes to {len(raw)} bytes, not 128 or 512 float32")
    _need(body, "version", str)
    _check_face_detect(body.get("face_detect"))


def _check_page(body: dict) -> list:
    for key in ("total", "page", "per_page", "pages"):
        _need(body, key, int)
    return _need(body, "items", list)


class Checked:
    """``with user.check(...) as response``: sends the request and yields the response for the
    caller's checks, or None when the status already differs from ``expect`` (reported as a
    failure with the body's start). A check that raises ``Invalid`` marks the request failed
    with its message; otherwise it is a success. ``status`` is the status code afterwards."""

    def __init__(self, client, method: str, path: str, expect: int = 200, **kwargs):
        kwargs.setdefault("name", path)
        self._context = client.request(method, path, catch_response=True, **kwargs)
        self.expect = expect
        self.status = 0

    def __enter__(self):
        response = self._context.__enter__()
        self.status = response.status_code
        if response.status_code != self.expect:
            response.failure(_describe(response))
            return None
        return response

    def __exit__(self, kind, error, traceback) -> bool:
        if isinstance(error, Invalid):
            self._context.failure(str(error))
            self._context.__exit__(None, None, None)
            return True  # reported as a failure: the user goes on with its next task
        if error is None and self.status == self.expect:
            self._context.success()
        self._context.__exit__(kind, error, traceback)
        return False


# --- the users' common ground ---

class FaceApiClient(HttpUser):
    """What every user class here shares: no wait time, the API key, the admin session."""

    abstract = True
    wait_time = constant(0)  # closed loop: throughput is set by -u and the service's latency

    _admin_lock = threading.Lock()  # gevent's, once locust has patched the standard library
    # One admin session per locust process, shared by its users: the cookies, or why there are none.
    _admin_session: dict[str, str] | str | None = None

    def on_start(self) -> None:
        if os.environ.get("FACE_API_KEY"):
            self.client.headers["X-API-Key"] = os.environ["FACE_API_KEY"]
        self.features: list[str] = []  # /v1/feature answers, for /v1/feature-score
        self.image_ids: list[str] = []  # admin lists seen, for thumbnails and downloads
        self.job_ids: list[str] = []
        self.turns = 0

    def next_turn(self) -> int:
        """0, 1, 2, … (per user, over all its tasks): lets a task alternate its photos."""
        self.turns += 1
        return self.turns - 1

    def check(self, method: str, path: str, expect: int = 200, **kwargs) -> Checked:
        return Checked(self.client, method, path, expect, **kwargs)

    def admin_session(self) -> bool:
        """Put the process's admin session (cookies, CSRF header) on this user, logging in first
        if nobody has. Without one, the task counts as failed with the reason, and no request is
        sent: a wrong password would not get better by hammering the login."""
        cls = FaceApiClient
        with cls._admin_lock:
            if cls._admin_session is None:
                cls._admin_session = self._log_in()
        session = cls._admin_session
        if isinstance(session, str):
            self.environment.events.request.fire(
                request_type="GET", name="(no admin session)", response_time=0, response_length=0,
                exception=Invalid(session), context={}, response=None, url=None)
            time.sleep(1)  # (gevent's) instead of a busy loop of failures
            return False
        self.client.cookies.update(session)
        self.client.headers["X-CSRF-Token"] = session["face_api_csrf"]
        return True

    def _log_in(self) -> dict[str, str] | str:
        """The session's cookies, or why there is no session."""
        credentials = {"username": os.environ.get("FACE_API_ADMIN_USERNAME", "admin"),
                       "password": admin_password()}
        if not credentials["password"]:
            return (f"no admin password: set FACE_API_ADMIN_PASSWORD (or run ./face-api serve, which "
                    f"writes {ADMIN_PASSWORD_FILE})")
        with self.client.post(f"{ADMIN}/auth/login", json=credentials, catch_response=True) as response:
            cookies = response.cookies.get_dict()
            if response.status_code != 204:
                reason = f"login refused: {_describe(response)}"
            elif "face_api_session" not in cookies or "face_api_csrf" not in cookies:
                reason = f"login set no session and CSRF cookies: {sorted(cookies)}"
            else:
                return cookies
            response.failure(reason)
            return reason

    def forget_admin_session(self) -> None:
        """After a 401: the session expired or was revoked; the next admin task logs in again."""
        FaceApiClient._admin_session = None


def admin_password() -> str:
    if os.environ.get("FACE_API_ADMIN_PASSWORD"):
        return os.environ["FACE_API_ADMIN_PASSWORD"]
    try:
        return ADMIN_PASSWORD_FILE.read_text().strip()
    except OSError:
        return ""


# --- tasks: plain functions of the user, so that MixedUser can weigh them with the others ---

def _detect(user: FaceApiClient, name: str) -> None:
    # name= groups the statistics per photo (players.jpg has many faces, yaoming.jpg one).
    with user.check("POST", "/api/v1/detect", name=f"/api/v1/detect [{name}]", **UPLOADS[name]) as response:
        if response is not None:
            body = _json(response)
            detections = _need(body, "detections", list)
            summary = _need(body, "summary", dict)
            if summary.get("face_count") != len(detections) or not detections:
                raise Invalid(f"{len(detections)} detections, summary.face_count {summary.get('face_count')}")


def detect_yaoming(user: FaceApiClient) -> None:
    _detect(user, "yaoming.jpg")


def detect_gdp(user: FaceApiClient) -> None:
    _detect(user, "gdp.jpg")


def detect_players(user: FaceApiClient) -> None:
    _detect(user, "players.jpg")


def _mask(user: FaceApiClient, name: str, method: str, image_format: str, extra: str = "") -> None:
    path = f"/api/v1/mask?method={method}&format={image_format}{extra}"
    with user.check("POST", path, name=f"/api/v1/mask [{method} {image_format} {name}]",
                    **UPLOADS[name]) as response:
        if response is not None:
            _check_image(response, image_format)
            if not response.headers.get("x-face-count", "").isdigit():
                raise Invalid(f"X-Face-Count is {response.headers.get('x-face-count')!r}")


def mask_gaussian_jpeg(user: FaceApiClient) -> None:
    _mask(user, "gdp.jpg", "gaussian", "jpeg")


def mask_pixelate_webp(user: FaceApiClient) -> None:
    _mask(user, "players.jpg", "pixelate", "webp", "&strength=12")


def mask_solid_png(user: FaceApiClient) -> None:
    _mask(user, "yaoming.jpg", "solid", "png")


def mask_elliptical_jpeg(user: FaceApiClient) -> None:
    _mask(user, "gdp.jpg", "elliptical", "jpeg", "&quality=85")


def score_files(user: FaceApiClient) -> None:
    pair = "yaoming.jpg+players.jpg" if user.next_turn() % 2 else "yaoming.jpg+gdp.jpg"
    with user.check("POST", "/v1/file/score", name=f"/v1/file/score [{pair}]",
                    **SCORE_PAIRS[pair]) as response:
        if response is not None:
            body = _json(response)
            score = _need(body, "score", (int, float))
            faces = _need(body, "face_detects", list)
            if not -1 <= score <= 1 or len(faces) != 2:
                raise Invalid(f"score {score}, {len(faces)} face_detects (want -1..1 and 2)")


def embeddings_file(user: FaceApiClient) -> None:
    with user.check("POST", "/v1/file/embeddings", name="/v1/file/embeddings [gdp.jpg]",
                    **UPLOADS["gdp.jpg"]) as response:
        if response is not None:
            body = _json(response)
            values = _need(body, "embeddings", list)
            if len(values) not in (128, 512) or not all(isinstance(v, float) for v in values):
                raise Invalid(f"'embeddings' holds {len(values)} values, not 128 or 512 floats")
            _check_face_detect(body.get("face_detect"))


def feature_json(user: FaceApiClient) -> None:
    name = "yaoming.jpg" if user.next_turn() % 2 else "gdp.jpg"
    with user.check("POST", "/v1/feature", name=f"/v1/feature [{name}, base64]",
                    json={"image": PHOTOS_BASE64[name]}) as response:
        if response is not None:
            body = _json(response)
            _check_feature(body)
            user.features = [*user.features[-1:], body["feature"]]


def feature_score(user: FaceApiClient) -> None:
    if len(user.features) < 2:
        feature_json(user)  # fetch the features to compare first
        return
    with user.check("POST", "/v1/feature-score", json={"feature1": user.features[0],
                                                      "feature2": user.features[1]}) as response:
        if response is not None:
            score = _need(_json(response), "score", (int, float))
            if not -1 <= score <= 1:
                raise Invalid(f"score {score} outside -1..1")


def health(user: FaceApiClient) -> None:
    with user.check("GET", "/health") as response:
        if response is not None and _json(response).get("status") != "ok":
            raise Invalid(f"status is {_json(response).get('status')!r}, not 'ok'")


def _admin(user: FaceApiClient, path: str, check: Callable[[object], None], name: str | None = None,
           **kwargs) -> None:
    """A GET of the admin API with the session, its answer checked by ``check``."""
    if not user.admin_session():
        return  # the failed login is what the statistics show
    checked = user.check("GET", f"{ADMIN}{path}", name=f"{ADMIN}{name or path}", **kwargs)
    with checked as response:
        if response is not None:
            check(response)
    if checked.status == 401:
        user.forget_admin_session()


def admin_stats(user: FaceApiClient) -> None:
    def check(response) -> None:
        body = _json(response)
        for key in ("images_total", "jobs_total", "faces_total"):
            _need(body, key, int)
        _need(body, "jobs_by_type", dict)
        _need(body, "last_24h", dict)

    _admin(user, "/stats", check)


def admin_images(user: FaceApiClient) -> None:
    def check(response) -> None:
        items = _check_page(_json(response))
        user.image_ids = [item["id"] for item in items if isinstance(item, dict) and "id" in item]
        if len(user.image_ids) != len(items):
            raise Invalid("an item of /images has no 'id'")

    _admin(user, "/images?per_page=24", check, name="/images")


def admin_jobs(user: FaceApiClient) -> None:
    def check(response) -> None:
        items = _check_page(_json(response))
        user.job_ids = [item["id"] for item in items
                        if isinstance(item, dict) and item.get("job_type") == "mask"]

    _admin(user, "/jobs?per_page=24", check, name="/jobs")


def admin_thumbnail(user: FaceApiClient) -> None:
    """A gallery tile: the thumbnail of a listed image or, every other time, of a mask job's output."""
    if not user.image_ids:
        admin_images(user)  # the gallery is listed before its thumbnails are shown
        return
    turn = user.next_turn()
    kind, ids = ("jobs", user.job_ids) if user.job_ids and turn % 2 else ("images", user.image_ids)
    _admin(user, f"/{kind}/{ids[turn % len(ids)]}/thumbnail?size=320",
           lambda response: _check_image(response, "jpeg"), name=f"/{kind}/{{id}}/thumbnail")


def admin_download(user: FaceApiClient) -> None:
    """The original behind an image's download link: a 302, then the signed URL it names."""
    if not user.image_ids:
        admin_images(user)
        return
    location: list[str] = []

    def check(response) -> None:
        if not response.headers.get("location"):
            raise Invalid("a 302 without a Location")
        location.append(response.headers["location"])

    _admin(user, f"/images/{user.image_ids[0]}/download", check, name="/images/{id}/download",
           expect=302, allow_redirects=False)
    if location:
        with user.check("GET", location[0], name="(download link)") as response:
            if response is not None and not response.content:
                raise Invalid("the download is empty")


def admin_preview(user: FaceApiClient) -> None:
    """The console's test page: a POST, so the cookie session must send its CSRF token."""
    if not user.admin_session():
        return
    with user.check("POST", f"{ADMIN}/test/mask?method=pixelate&format=jpeg", name=f"{ADMIN}/test/mask",
                    **UPLOADS["yaoming.jpg"]) as response:
        if response is not None:
            body = _json(response)
            _need(body, "detections", list)
            output = _need(body, "output", dict)
            if not output.get("image_base64"):
                raise Invalid("'output' has no image_base64")


DETECT_TASKS = {detect_yaoming: 4, detect_gdp: 4, detect_players: 2}
MASK_TASKS = {mask_gaussian_jpeg: 4, mask_pixelate_webp: 2, mask_solid_png: 2, mask_elliptical_jpeg: 2}
RECOGNITION_TASKS = {score_files: 3, embeddings_file: 3, feature_json: 3, feature_score: 1}
ADMIN_TASKS = {admin_stats: 2, admin_images: 3, admin_jobs: 2, admin_thumbnail: 6, admin_download: 2,
               admin_preview: 1}


def blend(*parts: tuple[dict[Callable, int], int]) -> dict[Callable, float]:
    """One task table from (tasks, share in percent) pairs: each table keeps its inner weights."""
    table: dict[Callable, float] = {}
    for tasks, share in parts:
        total = sum(tasks.values())
        for function, weight in tasks.items():
            table[function] = table.get(function, 0) + share * weight / total
    return table


# --- the user classes (select one by name on the locust command line) ---

class DetectUser(FaceApiClient):
    """An API client that detects faces: /api/v1/detect on the three sample photos (4:4:2)."""

    tasks = DETECT_TASKS


class MaskUser(FaceApiClient):
    """An anonymisation pipeline: /api/v1/mask with each method and output format."""

    tasks = MASK_TASKS


class RecognitionUser(FaceApiClient):
    """A recognition client of the /v1 contract: scores of two photos, embeddings, base64 features."""

    tasks = RECOGNITION_TASKS


class MixedUser(FaceApiClient):
    """All clients at once, in proportions a deployment might see."""

    tasks = {function: round(weight * 10) for function, weight in blend(
        (DETECT_TASKS, 40), (MASK_TASKS, 25), (RECOGNITION_TASKS, 20), ({health: 1}, 10),
        (ADMIN_TASKS, 5)).items()}


class AdminUser(FaceApiClient):
    """An operator browsing the console: statistics, the gallery with thumbnails, the jobs, a download."""

    def on_start(self) -> None:
        super().on_start()
        self.admin_session()

    tasks = ADMIN_TASKS


class FaceApiUser(FaceApiClient):
    """The original mix of this file: detect on the three photos, mask gdp.jpg, /health."""

    tasks = {detect_yaoming: 4, detect_gdp: 4, detect_players: 2, mask_gaussian_jpeg: 3, health: 1}


SCENARIOS = {cls.__name__: cls for cls in (DetectUser, MaskUser, RecognitionUser, MixedUser, AdminUser,
                                           FaceApiUser)}
