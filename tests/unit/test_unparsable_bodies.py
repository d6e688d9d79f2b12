"""A request body that cannot be parsed at all (JSON that is not UTF-8, a broken multipart
envelope) is a validation error, 422 in the path's shape, not FastAPI's and Starlette's
undocumented 400 (found by tests/integration/test_api_properties.py). No Triton is asked:
parsing fails before any endpoint runs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from frontend.app import create_app
from frontend.settings import Settings

JSON = {"content-type": "application/json"}
BROKEN_MULTIPART = b"--b\r\nNone--b--\r\n"
PASSWORD = "a-long-enough-password"


@pytest.fixture(scope="module")
def client():
    app = create_app(Settings(database_enabled=False, storage_enabled=False, api_key_enabled=False,
                              rate_limit_enabled=False, admin_password=PASSWORD))
    with TestClient(app) as http:
        yield http


@pytest.mark.parametrize("body", [b"\x80", b'{"image": "\xff"}', b"Y\xe93O"])
@pytest.mark.parametrize("path", ["/v1/detect", "/v1/feature", "/v1/score", "/v1/feature-score"])
def test_json_that_is_not_utf8_on_v1_is_a_validation_list(client, path, body):
    response = client.post(path, content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": [{"loc": ["body"], "type": "json_invalid",
                                           "msg": "the JSON body cannot be read (JSON must be UTF-8 text)"}]}


@pytest.mark.parametrize("path", ["/api/v1/admin/auth/login", "/api/v1/admin/api-keys"])
def test_json_that_is_not_utf8_on_the_face_api_is_a_sentence(client, path):
    response = client.post(path, content=b"\x80", headers=JSON, auth=("admin", PASSWORD))
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": "request: the JSON body cannot be read (JSON must be UTF-8 text)"}


@pytest.mark.parametrize("path", ["/v1/file/feature-only", "/v1/file/detect", "/v1/file/score"])
def test_a_broken_multipart_body_on_v1_is_a_validation_list(client, path):
    response = client.post(path, content=BROKEN_MULTIPART,
                           headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body"] and problem["type"] == "value_error"
    assert problem["msg"].startswith("the multipart/form-data body cannot be read (")


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=b", "multipart/form-data"])
@pytest.mark.parametrize("path", ["/api/v1/detect", "/api/v1/mask"])
def test_a_broken_multipart_body_on_the_face_api_is_a_sentence(client, path, content_type):
    response = client.post(path, content=BROKEN_MULTIPART, headers={"content-type": content_type})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("request: the multipart/form-data body cannot be read (")


def test_other_http_errors_keep_their_status(client):
    assert client.get("/no/such/page").json() == {"detail": "Not Found"}
    response = client.put("/api/v1/detect")
    assert (response.status_code, response.json()) == (405, {"detail": "Method Not Allowed"})
