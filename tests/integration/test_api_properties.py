"""Property-based test of the whole OpenAPI document (/openapi.json) against the real stack.

Schemathesis reads the document from the running server and, for every operation in it
(both contracts: /health, /api/v1/* with the admin API, and /v1/*), sends requests built
from the documented parameters and bodies over HTTP: its examples phase, its coverage
phase (the edge values of every documented bound, missing and unexpected parameters, other
methods) and its fuzzing phase (valid and invalid data). Every answer must then

* be no 5xx, except a 501 or 503 whose body is JSON with a ``detail`` (the only server
  errors the documents allow; the health checks' 503 is their documented health body);
* have a documented status code, the documented content type and a body that matches the
  documented schema (schemathesis' status_code_conformance, content_type_conformance and
  response_schema_conformance);
* name no server path: neither the repository's folder, the virtual environment, the
  stack's data folder, ``site-packages`` nor a ``Traceback``.

Credentials: most requests carry them (an API key made for this test in ``X-API-Key``,
HTTP Basic for the admin API), one in ten none and one in ten wrong ones. Random bytes are
never a photo, so a third of the generated bodies get a real photo (a 112x112 face for the
``-only`` endpoints, a real feature for ``feature-score``) in place of their image fields:
the answers of real inference are held to their schemas too. Likewise a third of the
generated image and job ids (and download links) name ones that exist, so the admin API
shows, thumbnails, redirects to and deletes real stored images and jobs.

The session stack is shared with the other integration tests, so this test leaves it
usable: generated requests never name the API keys they must not delete or deactivate
(the session's first key, which every other test uses, and this test's own key: their ids
are swapped for an unknown one), and the keys that generated requests created are
deleted at the end.

Bounds: ``MAX_EXAMPLES`` fuzzed requests per operation (plus the examples and coverage
phases), no Hypothesis deadline, no example database, a fixed seed: about 1,600 requests,
under a minute on two cores with the stack's start.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import uuid
import zlib
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from PIL import Image
from requests.structures import CaseInsensitiveDict
from schemathesis.checks import CheckContext
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import sample, unique_photo
from tests.integration.stack import ADMIN_PASSWORD, ROOT

MAX_EXAMPLES = 10
SEED = 20_240_601
KEYS = "/api/v1/admin/api-keys"
# The 5xx statuses the documents allow: 501 (storage disabled) and 503 (inference or storage
# unavailable), each only with a JSON {"detail": ...}.
DOCUMENTED_5XX = {501, 503}
# ...except the health checks, whose documented 503 is their health body ("status": "unavailable"),
# held to its schema by response_schema_conformance.
HEALTH_PATHS = {"/health", "/v1/health"}
# How a request is authenticated: mostly right, sometimes not at all or wrongly.
CREDENTIALS = ["valid"] * 8 + ["none", "wrong"]
REAL_EVERY = 3  # one generated request in three gets real images, or the id of a stored thing
IMAGE_FIELDS = ("image", "image1", "image2")
FEATURE_FIELDS = ("feature1", "feature2")

schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module")
def admin_http(stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=60, auth=("admin", ADMIN_PASSWORD)) as http:
        yield http


def all_keys(admin_http: httpx.Client) -> dict[str, dict]:
    found, page = {}, 1
    while True:
        body = admin_http.get(KEYS, params={"page": page, "per_page": 100}).raise_for_status().json()
        found.update({item["id"]: item for item in body["items"]})
        if page >= body["pages"]:
            return found
        page += 1


@pytest.fixture(scope="module")
def own_key(admin_http) -> Iterator[dict]:
    """An API key for this test alone: generated requests authenticate with it."""
    created = admin_http.post(KEYS, json={"name": "property test"})
    assert created.status_code == 201, created.text
    yield created.json()
    admin_http.delete(f"{KEYS}/{created.json()['id']}")


@pytest.fixture(scope="module")
def protected_key_ids(admin_http, api_key, own_key) -> Iterator[set[str]]:
    """The ids of the keys that generated requests must not touch; when the module is done,
    the keys that generated requests created are deleted."""
    before = all_keys(admin_http)
    first = [key_id for key_id, key in before.items()
             if api_key.startswith(key["key_prefix"]) and api_key.endswith(key["key_suffix"])]
    assert len(first) == 1, f"the session's first key is not listed: {before}"
    yield {first[0], own_key["id"]}
    for key_id in set(all_keys(admin_http)) - set(before):
        admin_http.delete(f"{KEYS}/{key_id}")


@pytest.fixture(scope="module")
def real_inputs(stack) -> dict[str, bytes | str]:
    """A photo with a face, a 112x112 face for the -only endpoints, and a feature of the
    served recognizer's size (a unit vector, as /v1/feature encodes it)."""
    photo = sample("yaoming.jpg").read_bytes()
    face = io.BytesIO()
    Image.open(io.BytesIO(photo)).convert("RGB").resize((112, 112)).save(face, "PNG")
    size = httpx.get(f"{stack.url}/v1/info/model", timeout=30).raise_for_status().json()["embedding_size"]
    vector = np.random.default_rng(0).standard_normal(size).astype("<f4")
    feature = base64.b64encode((vector / np.linalg.norm(vector)).astype("<f4").tobytes()).decode()
    return {"photo": photo, "face": face.getvalue(), "feature": feature}


@pytest.fixture(scope="module")
def stored(stack, own_key, admin_http, real_inputs) -> dict[str, str]:
    """Path (and query) parameters that name things that exist: a stored image, a mask job
    of it, the download link of that job's output, and an image for DELETE alone (the others
    must outlive the DELETE operations, which may come first)."""
    headers = {"X-API-Key": own_key["key"]}
    files = {"image": ("photo.jpg", real_inputs["photo"])}
    detected = httpx.post(f"{stack.url}/api/v1/detect", headers=headers, files=files, timeout=60)
    masked = httpx.post(f"{stack.url}/api/v1/mask", headers=headers, files=files, params={"format": "png"},
                        timeout=60)
    assert detected.status_code == masked.status_code == 200, (detected.text, masked.headers)
    job = admin_http.get(f"/api/v1/admin/jobs/{masked.headers['X-Job-Id']}").raise_for_status().json()
    link = httpx.URL(job["processed_url"])
    doomed = httpx.post(f"{stack.url}/api/v1/detect", headers=headers, timeout=60,
                        files={"image": ("other.png", unique_photo())})
    assert doomed.status_code == 200, doomed.text
    return {"image_id": detected.json()["image_id"], "job_id": job["id"],
            "doomed_image_id": doomed.json()["image_id"], "key": link.path.removeprefix("/api/v1/files/"),
            "expires": link.params["expires"], "signature": link.params["signature"]}


@pytest.fixture(scope="module")
def api_schema(stack, protected_key_ids):
    config = schemathesis.Config.from_dict({"seed": SEED, "generation": {"max-examples": MAX_EXAMPLES}})
    return schemathesis.openapi.from_url(f"{stack.url}/openapi.json", config=config, timeout=30)


@pytest.fixture
def nodeid_shim(request) -> None:
    """schemathesis 4.32's lazy schemas (from_fixture) read and rename the test's ``_nodeid``,
    which pytest 9.2 no longer has (it keeps the id elsewhere): give it one to read."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def digest(case) -> int:
    """A number drawn from the generated request itself, so that the choices made from it
    (credentials, real images) are the same when Hypothesis replays or shrinks the request."""
    headers = sorted((name.lower(), value) for name, value in (case.headers or {}).items()
                     if name.lower() not in ("x-api-key", "authorization"))
    generated = (case.method, case.path_parameters, case.query, headers, case.cookies, case.body,
                 case.media_type)
    return zlib.crc32(repr(generated).encode())


def authenticate(case, credentials: str, api_key: str) -> None:
    """Credentials as the operation's security asks: ``valid``, ``wrong`` or ``none``."""
    security = {name for requirement in case.operation.definition.raw.get("security", [])
                for name in requirement}
    if case.headers is None:
        case.headers = CaseInsensitiveDict()
    for name in ("X-API-Key", "Authorization"):
        case.headers.pop(name, None)
    if credentials == "none":
        return
    if "APIKeyHeader" in security:
        case.headers["X-API-Key"] = api_key if credentials == "valid" else "xyl_" + "A" * 43
    if "AdminBasic" in security:
        password = ADMIN_PASSWORD if credentials == "valid" else "not-the-password"
        case.headers["Authorization"] = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()


def use_real_inputs(case, inputs: dict[str, bytes | str]) -> None:
    """Real images (and features) in place of the generated ones, where the body has them."""
    if not isinstance(case.body, dict):
        return
    multipart = case.media_type == "multipart/form-data"
    photo = inputs["face"] if case.operation.path.endswith("-only") else inputs["photo"]
    for field in IMAGE_FIELDS:
        if field in case.body:
            case.body[field] = photo if multipart else base64.b64encode(photo).decode()
    for field in FEATURE_FIELDS:
        if field in case.body:
            case.body[field] = inputs["feature"]


def name_stored_things(case, stored: dict[str, str]) -> None:
    """The id of a stored image or job, or a real download link, in place of a generated one."""
    parameters = case.path_parameters or {}
    if "image_id" in parameters:
        parameters["image_id"] = stored["doomed_image_id" if case.method.upper() == "DELETE" else "image_id"]
    if "job_id" in parameters:
        parameters["job_id"] = stored["job_id"]
    if "key" in parameters:
        parameters["key"] = stored["key"]
        case.query = {**(case.query or {}), "expires": stored["expires"], "signature": stored["signature"]}


def documented_server_errors_only(ctx: CheckContext, response, case) -> bool | None:
    """No 5xx but a 501 or 503 with a JSON detail (or a health check's 503)."""
    if response.status_code < 500:
        return None
    assert response.status_code in DOCUMENTED_5XX, f"server error {response.status_code}"
    if case.operation.path in HEALTH_PATHS:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{response.status_code} without a JSON body: {response.text[:200]!r}") from None
    assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"], (
        f"{response.status_code} without a detail: {body!r}")
    return None


def no_server_paths(stack):
    """A check: no response names the server's own paths or shows Python's tracebacks."""
    forbidden = [str(ROOT), sys.prefix, str(stack.log_path.parent), "site-packages", "Traceback"]

    def no_server_path_in_the_body(ctx: CheckContext, response, case) -> bool | None:
        text = response.content.decode("utf-8", "replace")
        named = [word for word in forbidden if word in text]
        assert not named, f"the response names {named}: {text[:500]!r}"
        return None

    return no_server_path_in_the_body


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_documented_contract(case, nodeid_shim, stack, own_key, protected_key_ids,
                                                       real_inputs, stored):
    if (case.path_parameters or {}).get("key_id") in protected_key_ids:
        case.path_parameters["key_id"] = str(uuid.uuid4())
    drawn = digest(case)
    authenticate(case, CREDENTIALS[drawn % len(CREDENTIALS)], own_key["key"])
    if drawn // len(CREDENTIALS) % REAL_EVERY == 0:
        use_real_inputs(case, real_inputs)
        name_stored_things(case, stored)
    response = case.call(timeout=60, allow_redirects=False)
    case.validate_response(response, checks=[
        documented_server_errors_only, status_code_conformance, content_type_conformance,
        response_schema_conformance, no_server_paths(stack)])


def test_the_session_key_still_works(stack, api_key, protected_key_ids):
    """After the property test: the key that every other test uses is still there and active."""
    response = httpx.post(f"{stack.url}/api/v1/detect", headers={"X-API-Key": api_key},
                          files={"image": ("x.jpg", b"not an image")}, timeout=60)
    assert response.status_code == 415, response.text
