"""Storage-backed mode through the real stack (local object store, SQLite): every detect and
mask call recorded, the admin images/jobs/stats/test-mask endpoints, and deletion.

The session stack is shared with other tests, so every test uploads photos of its own
(a pixel changed: new bytes, new image) and checks what it added, not absolute totals.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from PIL import Image

from tests.integration.conftest import PHOTO_FACES, detect, mask

STORAGE_ENDPOINTS = [("GET", "/stats"), ("GET", "/images"), ("GET", "/images/{id}"),
                     ("DELETE", "/images/{id}"), ("GET", "/images/{id}/download"), ("GET", "/jobs"),
                     ("GET", "/jobs/{id}"), ("GET", "/jobs/{id}/download")]


def fresh(photo: bytes, fmt: str = "PNG") -> bytes:
    """``photo`` with one pixel set at random: bytes no other test uploads."""
    image = Image.open(io.BytesIO(photo)).convert("RGB")
    image.putpixel((0, 0), tuple(secrets.token_bytes(3)))
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return out.getvalue()


def download(admin: httpx.Client, path: str) -> httpx.Response:
    """Follow the admin API's 302 to the object, as a browser does (the link needs no credentials)."""
    redirect = admin.get(path)
    assert redirect.status_code == 302, redirect.text
    with httpx.Client(timeout=60) as anonymous:
        location = urljoin(str(admin.base_url), redirect.headers["location"])
        return anonymous.get(location, follow_redirects=True)


def stored_files(objects: Path) -> set[str]:
    return {p.relative_to(objects).as_posix() for p in objects.rglob("*") if p.is_file()
            and not p.name.startswith(".")}


def test_detect_records_the_upload_and_a_job(client, admin, photos):
    data = fresh(photos["gdp.jpg"])
    response = detect(client, data, confidence=0.6)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image_id"] and body["job_id"]
    assert response.headers["x-image-id"] == body["image_id"]
    assert response.headers["x-job-id"] == body["job_id"]
    assert "x-storage-error" not in response.headers
    assert body["profiling"]["storage_ms"] > 0
    assert body["profiling"]["total_ms"] >= body["profiling"]["storage_ms"]

    image = admin.get(f"/images/{body['image_id']}").json()
    assert image["sha256"] == hashlib.sha256(data).hexdigest()
    assert (image["content_type"], image["width"], image["height"], image["channels"]) == (
        "image/png", 500, 665, 3)
    assert image["size_bytes"] == len(data) and image["job_count"] == 1
    assert image["processed_url"] is None
    assert [job["id"] for job in image["jobs"]] == [body["job_id"]]

    job = admin.get(f"/jobs/{body['job_id']}").json()
    assert (job["image_id"], job["job_type"], job["method"], job["face_count"]) == (
        body["image_id"], "detect", None, PHOTO_FACES["gdp.jpg"])
    assert job["parameters"] == {"confidence": 0.6, "nms_threshold": 0.4, "max_faces": 0}
    assert job["api_key_id"] is not None  # the stack's first key made the call
    assert job["processed_url"] is None and job["model"] == "scrfd_500m"
    assert job["result"]["detections"] == body["detections"]
    assert job["result"]["request_id"] == body["request_id"]
    assert download(admin, f"/images/{body['image_id']}/download").content == data


def test_mask_records_the_output_too(client, admin, photos):
    data = fresh(photos["yaoming.jpg"], "JPEG")
    response = mask(client, data, method="pixelate", strength=16, format="png")
    assert response.status_code == 200, response.text
    image_id, job_id = response.headers["x-image-id"], response.headers["x-job-id"]
    assert float(response.headers["x-storage-ms"]) > 0
    assert float(response.headers["x-total-ms"]) >= float(response.headers["x-storage-ms"])

    job = admin.get(f"/jobs/{job_id}").json()
    assert (job["job_type"], job["method"], job["face_count"]) == ("mask", "pixelate", 1)
    assert job["parameters"] == {"confidence": 0.5, "nms_threshold": 0.4, "max_faces": 0,
                                 "method": "pixelate", "strength": 16, "padding": 0.15, "format": "png",
                                 "quality": 95}
    assert job["processed_content_type"] == "image/png"
    assert job["processed_size_bytes"] == len(response.content)
    assert job["result"]["masking"] == {"method": "pixelate", "strength": 16, "padding": 0.15,
                                        "regions_masked": 1}
    assert job["result"]["output"] == {"format": "png", "quality": 95, "size_bytes": len(response.content)}
    assert job["result"]["profiling"]["output_bytes"] == len(response.content)
    assert download(admin, f"/jobs/{job_id}/download").content == response.content

    image = admin.get(f"/images/{image_id}").json()
    # The same object; the signatures differ when the two links were signed in different seconds.
    assert image["content_type"] == "image/jpeg"
    assert urlsplit(image["processed_url"]).path == urlsplit(job["processed_url"]).path
    assert image["processed_job_id"] == job_id
    original = download(admin, f"/images/{image_id}/download")
    assert original.content == data and original.headers["content-type"] == "image/jpeg"


def test_the_same_bytes_are_one_image(client, admin, photos):
    data = fresh(photos["yaoming.jpg"])
    before = admin.get("/stats").json()
    first = detect(client, data).json()
    second = detect(client, data).json()
    masked = mask(client, data, method="solid")
    assert first["image_id"] == second["image_id"] == masked.headers["x-image-id"]
    assert len({first["job_id"], second["job_id"], masked.headers["x-job-id"]}) == 3
    image = admin.get(f"/images/{first['image_id']}").json()
    assert image["job_count"] == 3
    assert [j["id"] for j in image["jobs"]] == [masked.headers["x-job-id"], second["job_id"], first["job_id"]]
    after = admin.get("/stats").json()
    assert after["images_total"] == before["images_total"] + 1
    assert after["images_bytes"] == before["images_bytes"] + len(data)


def test_concurrent_uploads_of_the_same_bytes_are_one_image(client, admin, photos):
    data = fresh(photos["yaoming.jpg"])
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: detect(client, data).json(), range(8)))
    assert len({body["image_id"] for body in bodies}) == 1 and None not in {b["image_id"] for b in bodies}
    assert len({body["job_id"] for body in bodies}) == 8
    assert admin.get(f"/images/{bodies[0]['image_id']}").json()["job_count"] == 8


def test_stats_count_what_was_done(client, admin, photos):
    before = admin.get("/stats").json()
    data = fresh(photos["gdp.jpg"])
    detect(client, data)
    masked = mask(client, data, method="elliptical")
    after = admin.get("/stats").json()
    assert after["jobs_total"] == before["jobs_total"] + 2
    assert after["jobs_by_type"] == {"detect": before["jobs_by_type"]["detect"] + 1,
                                     "mask": before["jobs_by_type"]["mask"] + 1,
                                     "mask_video": before["jobs_by_type"]["mask_video"]}
    assert after["jobs_by_method"]["elliptical"] == before["jobs_by_method"]["elliptical"] + 1
    assert set(after["jobs_by_method"]) == {"gaussian", "pixelate", "solid", "elliptical"}
    assert after["faces_total"] == before["faces_total"] + 2 * PHOTO_FACES["gdp.jpg"]
    assert after["processed_bytes"] == before["processed_bytes"] + len(masked.content)
    recent, earlier = after["last_24h"], before["last_24h"]
    assert (recent["detect"], recent["mask"]) == (earlier["detect"] + 1, earlier["mask"] + 1)
    assert recent["jobs"] == recent["detect"] + recent["mask"] == sum(
        h["detect"] + h["mask"] for h in recent["hourly"])
    assert len(recent["hourly"]) == 24 and recent["hourly"][0]["hour"] == recent["since"]
    assert recent["hourly"][-1]["detect"] >= 1 and recent["hourly"][-1]["mask"] >= 1
    assert recent["images"] == earlier["images"] + 1
    assert after["cleanup_pending"] == 0


def test_images_are_listed_newest_first(client, admin, photos):
    ids = [detect(client, fresh(photos["yaoming.jpg"])).json()["image_id"] for _ in range(3)]
    listed = admin.get("/images", params={"per_page": 3}).json()
    assert [item["id"] for item in listed["items"]] == ids[::-1]
    item = listed["items"][0]
    assert set(item) == {"id", "sha256", "content_type", "width", "height", "channels", "size_bytes",
                         "job_count", "original_url", "processed_url", "processed_job_id", "created_at"}
    assert item["job_count"] == 1 and item["processed_url"] is None and item["processed_job_id"] is None


def test_pagination_edges(client, admin, photos):
    detect(client, fresh(photos["yaoming.jpg"]))
    whole = admin.get("/images", params={"per_page": 1}).json()
    total = whole["total"]
    assert (whole["page"], whole["per_page"], whole["pages"], len(whole["items"])) == (1, 1, total, 1)
    last = admin.get("/images", params={"per_page": 1, "page": total}).json()
    assert len(last["items"]) == 1
    if total > 1:
        assert last["items"][0]["id"] != whole["items"][0]["id"]
    beyond = admin.get("/images", params={"per_page": 1, "page": total + 1}).json()
    assert (beyond["items"], beyond["total"], beyond["pages"]) == ([], total, total)
    assert beyond["page"] == total + 1
    every = admin.get("/images", params={"per_page": 100}).json()
    assert every["pages"] == -(-total // 100) and len(every["items"]) == min(total, 100)
    for params in ({"page": 0}, {"per_page": 0}, {"per_page": 101}, {"page": "x"}):
        refused = admin.get("/images", params=params)
        assert refused.status_code == 422, params
        assert isinstance(refused.json()["detail"], str)
        assert admin.get("/jobs", params=params).status_code == 422


def test_jobs_filter_by_type_and_method(client, admin, photos):
    data = fresh(photos["yaoming.jpg"])
    mask(client, data, method="pixelate")
    detect(client, data)
    everything = admin.get("/jobs", params={"per_page": 100}).json()
    masks = admin.get("/jobs", params={"job_type": "mask", "per_page": 100}).json()
    detects = admin.get("/jobs", params={"job_type": "detect", "per_page": 100}).json()
    assert masks["total"] + detects["total"] == everything["total"]
    assert {j["job_type"] for j in masks["items"]} == {"mask"}
    assert {j["job_type"] for j in detects["items"]} == {"detect"}
    assert all(j["method"] is None for j in detects["items"])
    pixelated = admin.get("/jobs", params={"method": "pixelate"}).json()
    assert pixelated["total"] >= 1 and {j["method"] for j in pixelated["items"]} == {"pixelate"}
    assert admin.get("/jobs", params={"job_type": "detect", "method": "pixelate"}).json()["total"] == 0
    newest = everything["items"][0]
    assert newest["job_type"] == "detect" and newest["created_at"] >= everything["items"][1]["created_at"]
    assert "result" not in newest
    for params in ({"job_type": "recognize"}, {"method": "blur"}):
        refused = admin.get("/jobs", params=params)
        assert refused.status_code == 422 and isinstance(refused.json()["detail"], str), params


def test_delete_removes_metadata_and_objects(client, admin, photos, objects):
    data = fresh(photos["gdp.jpg"])
    first = mask(client, data, format="webp")
    second = mask(client, data, format="jpeg")
    image_id = first.headers["x-image-id"]
    sha = hashlib.sha256(data).hexdigest()
    keys = {f"originals/{sha[:2]}/{sha}.png", f"processed/{first.headers['x-job-id']}.webp",
            f"processed/{second.headers['x-job-id']}.jpg"}
    assert keys <= stored_files(objects)
    original_link = admin.get(f"/images/{image_id}/download").headers["location"]

    deleted = admin.delete(f"/images/{image_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert not keys & stored_files(objects)
    for path in (f"/images/{image_id}", f"/jobs/{first.headers['x-job-id']}",
                 f"/images/{image_id}/download", f"/jobs/{second.headers['x-job-id']}/download"):
        gone = admin.get(path)
        assert gone.status_code == 404 and "no " in gone.json()["detail"], path
    assert admin.delete(f"/images/{image_id}").status_code == 404
    assert admin.get("/stats").json()["cleanup_pending"] == 0
    with httpx.Client(timeout=60) as anonymous:  # the old link finds nothing
        assert anonymous.get(urljoin(str(admin.base_url), original_link)).status_code == 404

    again = detect(client, data).json()  # uploaded anew: a new image, its object stored again
    assert again["image_id"] != image_id
    assert download(admin, f"/images/{again['image_id']}/download").content == data


def test_a_detect_job_has_no_processed_image(client, admin, photos):
    job_id = detect(client, fresh(photos["yaoming.jpg"])).json()["job_id"]
    response = admin.get(f"/jobs/{job_id}/download")
    assert response.status_code == 404
    assert response.json() == {"detail": "this job has no processed image"}


@pytest.mark.parametrize("method, path", STORAGE_ENDPOINTS[2:5] + STORAGE_ENDPOINTS[6:])
@pytest.mark.parametrize("bad_id", ["not-a-uuid", str(uuid.uuid4()), "1" * 300])
def test_unknown_and_malformed_ids_are_404(admin, method, path, bad_id):
    response = admin.request(method, path.format(id=bad_id))
    assert response.status_code == 404
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("method, path", STORAGE_ENDPOINTS + [("POST", "/test/mask")])
def test_every_storage_endpoint_needs_the_admin(stack, method, path):
    with httpx.Client(base_url=f"{stack.url}/api/v1/admin", timeout=30) as anonymous:
        response = anonymous.request(method, path.format(id=uuid.uuid4()))
    assert response.status_code == 401 and isinstance(response.json()["detail"], str)


def test_the_preview_answers_json_and_records_a_job(admin, photos):
    data = fresh(photos["gdp.jpg"], "JPEG")
    response = admin.post("/test/mask", params={"method": "gaussian", "format": "webp", "quality": 80},
                          files={"image": ("photo.jpg", data)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"request_id", "image_id", "job_id", "image", "detections", "summary", "processing",
                         "profiling", "masking", "output"}
    assert body["masking"] == {"method": "gaussian", "strength": 199, "padding": 0.15,
                               "regions_masked": PHOTO_FACES["gdp.jpg"]}
    output = base64.b64decode(body["output"]["image_base64"])
    assert body["output"] == {"format": "webp", "quality": 80, "size_bytes": len(output),
                              "image_base64": body["output"]["image_base64"]}
    assert Image.open(io.BytesIO(output)).format == "WEBP"
    assert body["summary"]["face_count"] == len(body["detections"]) == PHOTO_FACES["gdp.jpg"]
    assert body["profiling"]["mask_ms"] > 0 and body["profiling"]["output_bytes"] == len(output)
    assert body["profiling"]["storage_ms"] > 0

    job = admin.get(f"/jobs/{body['job_id']}").json()
    assert (job["job_type"], job["method"], job["api_key_id"]) == ("mask", "gaussian", None)
    assert "image_base64" not in job["result"]["output"]
    assert download(admin, f"/jobs/{body['job_id']}/download").content == output


@pytest.mark.parametrize("params", [{"method": "blur"}, {"strength": 1}, {"format": "gif"},
                                    {"confidence": 2}, {"quality": 0}])
def test_the_preview_validates_like_mask(admin, photos, params):
    response = admin.post("/test/mask", params=params, files={"image": ("photo.jpg", photos["yaoming.jpg"])})
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)


def test_the_preview_refuses_what_mask_refuses(admin):
    response = admin.post("/test/mask", files={"image": ("photo.jpg", b"not an image")})
    assert response.status_code in (400, 415) and isinstance(response.json()["detail"], str)
    assert admin.post("/test/mask").status_code == 422


def test_the_preview_and_mask_share_their_parameters(stack):
    spec = httpx.get(f"{stack.url}/openapi.json", timeout=30).json()

    def parameters(path: str) -> dict:
        return {p["name"]: p["schema"] for p in spec["paths"][path]["post"]["parameters"]}

    assert parameters("/api/v1/admin/test/mask") == parameters("/api/v1/mask")
