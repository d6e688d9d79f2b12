"""GET /api/v1/admin/images/{id}/thumbnail and /jobs/{id}/thumbnail through the real stack
(local object store, SQLite): small JPEGs of what detect and mask calls stored, cached by ETag.

The session stack is shared with other tests: every test uploads photos of its own.
"""

from __future__ import annotations

import io
import uuid

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import detect, mask, unique_photo

CACHE = "private, max-age=86400"


def jpeg(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == CACHE
    assert response.headers["etag"].startswith('"')
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "JPEG" and image.mode == "RGB"
    return image


def test_an_image_thumbnail_after_a_detect_call(client, admin):
    data = unique_photo("gdp.jpg")  # 500x665 PNG
    image_id = detect(client, data).json()["image_id"]
    assert image_id

    default = jpeg(admin.get(f"/images/{image_id}/thumbnail"))
    assert default.size == (241, 320)  # 500 * 320 / 665 = 240.6
    small = jpeg(admin.get(f"/images/{image_id}/thumbnail", params={"size": 64}))
    assert small.size == (48, 64)
    whole = jpeg(admin.get(f"/images/{image_id}/thumbnail", params={"size": 1024}))
    assert whole.size == (500, 665)  # never upscaled
    # The picture itself, not just its size: the thumbnail looks like the photo.
    reference = Image.open(io.BytesIO(data)).convert("RGB").resize(default.size, Image.Resampling.BOX)
    difference = np.abs(np.asarray(default, dtype=np.int16) - np.asarray(reference, dtype=np.int16)).mean()
    assert difference < 8, difference


def test_a_jpeg_upload_is_thumbnailed_upright(client, admin):
    # A landscape JPEG that says "rotate 90° clockwise": detect sees it portrait, and so does
    # the console.
    image = Image.open(io.BytesIO(unique_photo("players.jpg"))).convert("RGB")  # 1237x800
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif)
    body = detect(client, out.getvalue()).json()
    assert (body["image"]["width"], body["image"]["height"]) == (800, 1237)
    thumb = jpeg(admin.get(f"/images/{body['image_id']}/thumbnail", params={"size": 200}))
    assert thumb.size == (129, 200)


def test_a_job_thumbnail_after_a_mask_call(client, admin):
    response = mask(client, unique_photo("yaoming.jpg"), method="solid", format="png")
    assert response.status_code == 200, response.text
    job_id = response.headers["x-job-id"]
    masked = Image.open(io.BytesIO(response.content)).convert("RGB")

    thumb = jpeg(admin.get(f"/jobs/{job_id}/thumbnail", params={"size": 128}))
    assert thumb.size == (104, 128)  # 233x287 -> 103.9 x 128
    # It is the processed output (the face blacked out), not the original.
    reference = masked.resize(thumb.size, Image.Resampling.BOX)
    assert np.abs(np.asarray(thumb, dtype=np.int16) - np.asarray(reference, dtype=np.int16)).mean() < 8
    original = jpeg(admin.get(f"/images/{response.headers['x-image-id']}/thumbnail", params={"size": 128}))
    assert np.abs(np.asarray(thumb, dtype=np.int16) - np.asarray(original, dtype=np.int16)).mean() > 3
    assert (admin.get(f"/jobs/{job_id}/thumbnail", params={"size": 128}).headers["etag"]
            != admin.get(f"/images/{response.headers['x-image-id']}/thumbnail",
                         params={"size": 128}).headers["etag"])


def test_a_detect_job_has_no_thumbnail(client, admin):
    job_id = detect(client, unique_photo()).json()["job_id"]
    response = admin.get(f"/jobs/{job_id}/thumbnail")
    assert response.status_code == 404
    assert response.json() == {"detail": "this job has no processed image"}


@pytest.mark.parametrize("kind, noun", [("images", "image"), ("jobs", "job")])
@pytest.mark.parametrize("bad_id", ["not-a-uuid", str(uuid.uuid4()), "1" * 300])
def test_unknown_ids_are_404(admin, kind, noun, bad_id):
    response = admin.get(f"/{kind}/{bad_id}/thumbnail")
    assert response.status_code == 404
    assert response.json() == {"detail": f"no {noun} with id {bad_id!r}"}


def test_if_none_match_answers_304(client, admin):
    response = mask(client, unique_photo(), format="jpeg")
    image_id, job_id = response.headers["x-image-id"], response.headers["x-job-id"]
    for path in (f"/images/{image_id}/thumbnail", f"/jobs/{job_id}/thumbnail"):
        first = admin.get(path)
        tag = first.headers["etag"]
        assert admin.get(path).headers["etag"] == tag  # stable
        cached = admin.get(path, headers={"If-None-Match": tag})
        assert cached.status_code == 304 and cached.content == b""
        assert cached.headers["etag"] == tag and cached.headers["cache-control"] == CACHE
        assert admin.get(path, headers={"If-None-Match": f'"stale", W/{tag}'}).status_code == 304
        assert admin.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200
        other_size = admin.get(path, params={"size": 100}, headers={"If-None-Match": tag})
        assert other_size.status_code == 200 and other_size.headers["etag"] != tag


def test_a_deleted_image_is_404_even_with_its_etag(client, admin):
    response = mask(client, unique_photo(), format="webp")
    image_id, job_id = response.headers["x-image-id"], response.headers["x-job-id"]
    tags = {path: admin.get(path).headers["etag"]
            for path in (f"/images/{image_id}/thumbnail", f"/jobs/{job_id}/thumbnail")}
    assert admin.delete(f"/images/{image_id}").status_code == 204
    for path, tag in tags.items():
        gone = admin.get(path, headers={"If-None-Match": tag})
        assert gone.status_code == 404 and "no " in gone.json()["detail"], path


def test_an_object_missing_from_storage_is_404_not_500(client, admin, objects):
    response = mask(client, unique_photo(), format="jpeg")
    image_id, job_id = response.headers["x-image-id"], response.headers["x-job-id"]
    sha = admin.get(f"/images/{image_id}").json()["sha256"]
    (objects / "processed" / f"{job_id}.jpg").unlink()  # lost behind the database's back
    (objects / "originals" / sha[:2] / f"{sha}.png").unlink()
    lost = admin.get(f"/jobs/{job_id}/thumbnail")
    assert lost.status_code == 404
    assert lost.json() == {"detail": "the processed image is no longer in object storage"}
    lost = admin.get(f"/images/{image_id}/thumbnail")
    assert lost.status_code == 404
    assert lost.json() == {"detail": "the original image is no longer in object storage"}


@pytest.mark.parametrize("kind", ["images", "jobs"])
def test_thumbnails_need_the_admin(stack, kind):
    with httpx.Client(base_url=f"{stack.url}/api/v1/admin", timeout=30) as anonymous:
        response = anonymous.get(f"/{kind}/{uuid.uuid4()}/thumbnail")
        assert response.status_code == 401 and isinstance(response.json()["detail"], str)
        wrong = anonymous.get(f"/{kind}/{uuid.uuid4()}/thumbnail", auth=("admin", "wrong-password"))
        assert wrong.status_code == 401


@pytest.fixture(scope="module")
def masked(client) -> httpx.Response:
    response = mask(client, unique_photo(), format="jpeg")
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("size", ["31", "1025", "0", "-5", "big"])
def test_sizes_out_of_range_are_422(admin, masked, size):
    for path in (f"/images/{masked.headers['x-image-id']}/thumbnail",
                 f"/jobs/{masked.headers['x-job-id']}/thumbnail"):
        refused = admin.get(path, params={"size": size})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"].startswith("size: ")


def test_the_size_range_is_inclusive(client, admin):
    image_id = detect(client, unique_photo("players.jpg")).json()["image_id"]
    for size in (32, 1024):
        assert max(jpeg(admin.get(f"/images/{image_id}/thumbnail", params={"size": size})).size) == size
