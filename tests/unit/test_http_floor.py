"""benchmarks/http_floor.py answers each photo with the body /api/v1/detect gives for it, so
that the floor it measures moves the same bytes as the service."""

import pytest
from fastapi.testclient import TestClient

from benchmarks.harness import SAMPLE_PHOTOS, upload
from benchmarks.http_floor import create_app
from frontend.schemas.face_api import DetectResponse
from tests.integration.stack import ROOT
from tests.reference.scrfd_reference import ReferenceSCRFD, decode_image

MODEL = ROOT / "model_repository/scrfd_500m/1/model.onnx"


@pytest.mark.parametrize("name", SAMPLE_PHOTOS)
def test_the_empty_endpoint_answers_the_contract_body_of_each_photo(name):
    photo = ROOT / "samples" / name
    expected = ReferenceSCRFD(MODEL).detect(decode_image(photo))
    with TestClient(create_app()) as client:
        response = client.post("/floor", **upload(photo.read_bytes()))
    assert response.status_code == 200
    body = DetectResponse.model_validate_json(response.content)
    assert body.summary.face_count == len(expected.scores) > 0
    assert [d.confidence for d in body.detections] == [round(float(s), 4) for s in expected.scores]
    assert body.image.size_bytes == photo.stat().st_size and body.image_id and body.job_id


def test_the_mask_floor_answers_the_masked_jpeg_of_each_photo():
    from turbojpeg import TurboJPEG

    turbo = TurboJPEG()
    with TestClient(create_app("mask")) as client:
        for name in SAMPLE_PHOTOS:
            photo = (ROOT / "samples" / name).read_bytes()
            response = client.post("/floor", **upload(photo))
            assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
            assert turbo.decode_header(response.content)[:2] == turbo.decode_header(photo)[:2]
            assert response.content != photo  # masked, not echoed
