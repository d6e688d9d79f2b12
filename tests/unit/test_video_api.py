"""The video job API and worker in process, without Triton: the service's checks, the
status, the router's refusals, and the worker's run of a job with the pipeline replaced
by a stand-in (the real pipeline runs in tests/integration/test_video_jobs.py)."""

from __future__ import annotations

import asyncio
import fractions
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient

from frontend.app import create_app
from frontend.auth.api_keys import ApiKeyStore
from frontend.errors import ApiError
from frontend.inference.catalog import Pipeline
from frontend.inference.triton import TritonUnavailable
from frontend.persistence import migrate
from frontend.persistence.database import create_database
from frontend.services import video as service
from frontend.settings import Settings
from frontend.storage import ObjectNotFound, ObjectStoreError, open_object_store
from frontend.video import jobs as queue
from frontend.video import pipeline as video_pipeline
from frontend.video import worker as video_worker
from frontend.video.io import VideoError

DETECT = Pipeline(name="detect_test", kind="detect", detector="test_detector", input_size=(640, 640),
                  landmarks=True)


def tiny_video(path: Path, frames: int = 6, size: tuple[int, int] = (64, 48), fps: int = 12) -> Path:
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(frames):
            rgb = np.full((size[1], size[0], 3), index * 30 % 255, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


# --- pure parts ---

def info(**changes):
    base = dict(width=1920, height=1080, fps=fractions.Fraction(25), frames=250, duration_s=10.0, rotation=0,
                has_audio=False, video_codec="h264", container="mp4", size_bytes=1000)
    return SimpleNamespace(**{**base, **changes})


def test_limits_refuse_long_and_large_videos():
    settings = Settings(video_max_duration_s=60, video_max_pixels=1920 * 1080)
    service.check_limits(info(), settings)
    with pytest.raises(ApiError) as long:
        service.check_limits(info(duration_s=61.0), settings)
    assert long.value.status_code == 413 and "FACE_API_VIDEO_MAX_DURATION_S" in long.value.detail
    with pytest.raises(ApiError) as large:
        service.check_limits(info(width=3840, height=2160), settings)
    assert large.value.status_code == 413 and "3840x2160" in large.value.detail


def test_original_types_come_from_the_name_then_the_demuxer():
    assert service.input_type("mp4", "clip.MOV") == ("mov", "video/quicktime")
    assert service.input_type("mkv", "upload") == ("mkv", "video/x-matroska")
    assert service.input_type("matroska,webm", None) == ("webm", "video/webm")
    assert service.input_type("something", "x.bin") == ("bin", "application/octet-stream")
    assert queue.output_key("abc", "webm") == ("processed/abc.webm", "video/webm")


def test_webm_takes_vp9_and_masking_parameters_are_checked():
    def request(**changes):
        base = dict(method="gaussian", strength=99, padding=0.1, max_missed=15, lookahead=8, container="mp4",
                    codec="h264", quality=23, audio=False)
        return service.VideoRequest.of(SimpleNamespace(confidence=0.5, nms_threshold=0.4, max_faces=0),
                                       **{**base, **changes})

    service.check_request(request())
    service.check_request(request(container="webm", codec="vp9"))
    with pytest.raises(ApiError) as refused:
        service.check_request(request(container="webm", codec="h264"))
    assert refused.value.status_code == 422
    options = video_worker.options_from({**request().parameters(), "from_a_newer_version": 1})
    assert options.method == "gaussian" and options.max_missed == 15 and options.container == "mp4"


def test_status_of_a_row():
    row = {"id": "j", "state": "running", "frames_done": 5, "frames_total": 20, "attempts": 1, "error": None,
           "parameters": {"method": "solid"}, "result": {"input": {"width": 64}}, "face_count": 0,
           "created_at": datetime(2026, 1, 1), "started_at": None, "finished_at": None}
    status = service.status_of(row, None)
    assert status.progress.fraction == 0.25 and status.faces is None and status.timings is None
    assert status.created_at.tzinfo is not None and status.input == {"width": 64}
    unknown = service.status_of({**row, "frames_total": None}, None)
    assert unknown.progress.fraction is None


@pytest.mark.parametrize(("error", "retry", "says"), [
    (VideoError("the video is truncated"), False, "not a usable video: the video is truncated"),
    (ObjectNotFound("k"), False, "no longer in object storage"),
    (TritonUnavailable("down"), True, "inference server was unavailable"),
    (ObjectStoreError("down"), True, "object storage was unavailable"),
    (RuntimeError("bug"), False, "internal error"),
])
def test_failures_say_why_and_whether_to_retry(error, retry, says):
    again, reason = video_worker.failure_of(error)
    assert again is retry and says in reason


# --- the API in process ---

@dataclass
class Service:
    app: object
    http: TestClient
    keys: tuple[str, str]
    settings: Settings


@pytest.fixture
def running(tmp_path, request):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    migrate.upgrade(url)

    async def two_keys():
        async with create_database(url) as db:
            return (await ApiKeyStore(db).create("one"))[1], (await ApiKeyStore(db).create("two"))[1]

    keys = asyncio.run(two_keys())
    overrides = getattr(request, "param", {})
    settings = Settings(database_url=url, storage_dir=str(tmp_path / "objects"), rate_limit_enabled=False,
                        admin_password="a-long-admin-password", url_signing_key="k" * 32,
                        video_max_bytes=200_000, video_max_jobs_per_key=2, **overrides)
    app = create_app(settings)
    with TestClient(app) as http:
        app.state.catalog = SimpleNamespace(detect=lambda: DETECT)  # Triton is not needed to queue
        yield Service(app, http, keys, settings)


def post(running: Service, path: Path, key_index: int = 0, **params):
    with path.open("rb") as file:
        return running.http.post("/api/v1/mask/video", params=params, files={"video": (path.name, file)},
                                 headers={"X-API-Key": running.keys[key_index]})


def test_a_video_is_queued_and_only_its_key_sees_it(running, tmp_path):
    created = post(running, tiny_video(tmp_path / "a.mp4"), method="solid", container="mkv")
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["state"] == "queued" and created.headers["location"] == body["status_url"]
    mine = running.http.get(body["status_url"], headers={"X-API-Key": running.keys[0]})
    assert mine.status_code == 200
    status = mine.json()
    assert status["progress"] == {"frames_done": 0, "frames_total": 6, "fraction": 0.0}
    assert status["parameters"]["container"] == "mkv" and status["parameters"]["method"] == "solid"
    assert status["input"]["width"] == 64 and status["input"]["fps"] == 12.0 and status["output"] is None
    assert running.http.get(body["status_url"], headers={"X-API-Key": running.keys[1]}).status_code == 404
    assert running.http.get(body["status_url"]).status_code == 401


def test_refusals(running, tmp_path):
    assert running.http.post("/api/v1/mask/video", files={"video": ("a.mp4", b"x")}).status_code == 401
    image = tmp_path / "photo.jpg"
    shutil.copy(Path(__file__).resolve().parents[2] / "samples" / "yaoming.jpg", image)
    refused = post(running, image)
    assert refused.status_code == 422 and "not a usable video" in refused.json()["detail"]
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 300_000)
    too_big = post(running, big)
    assert too_big.status_code == 413 and "FACE_API_VIDEO_MAX_BYTES" in too_big.json()["detail"]
    for _ in range(2):
        assert post(running, tiny_video(tmp_path / "ok.mp4")).status_code == 202
    third = post(running, tiny_video(tmp_path / "ok.mp4"))
    assert third.status_code == 429 and "FACE_API_VIDEO_MAX_JOBS_PER_KEY" in third.json()["detail"]
    assert post(running, tiny_video(tmp_path / "ok.mp4"), key_index=1).status_code == 202  # per key


@pytest.mark.parametrize("running", [{"video_workers": 0}], indirect=True)
def test_no_workers_no_video_jobs(running, tmp_path):
    refused = post(running, tiny_video(tmp_path / "a.mp4"))
    assert refused.status_code == 501 and "FACE_API_VIDEO_WORKERS=0" in refused.json()["detail"]


def test_the_admin_api_lists_video_jobs_with_their_state(running, tmp_path):
    created = post(running, tiny_video(tmp_path / "a.mp4")).json()
    auth = ("admin", "a-long-admin-password")
    listed = running.http.get("/api/v1/admin/jobs", params={"job_type": "mask_video"}, auth=auth).json()
    assert listed["total"] == 1
    job = listed["items"][0]
    assert job["id"] == created["job_id"] and job["job_type"] == "mask_video" and job["state"] == "queued"
    assert job["progress"] == {"frames_done": 0, "frames_total": 6} and job["processed_url"] is None
    image = running.http.get(f"/api/v1/admin/images/{job['image_id']}", auth=auth).json()
    assert image["content_type"] == "video/mp4" and image["jobs"][0]["id"] == job["id"]
    thumbnail = running.http.get(f"/api/v1/admin/images/{job['image_id']}/thumbnail", auth=auth)
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    stats = running.http.get("/api/v1/admin/stats", auth=auth).json()
    assert stats["jobs_by_type"]["mask_video"] == 1


# --- the worker, with a stand-in pipeline ---

async def run_worker(settings: Settings, stop_after, fake_anonymize, monkeypatch):
    """Run one Worker until ``stop_after(database)`` says so; the database for inspection."""
    monkeypatch.setattr(video_pipeline, "anonymize", fake_anonymize)
    database = create_database(settings.database_url)
    await database.connect()
    objects = open_object_store(settings)
    await objects.start()
    stop = asyncio.Event()
    catalog = SimpleNamespace(detect=lambda: DETECT)
    worker = video_worker.Worker(settings, database, objects, triton=None, catalog=catalog,
                                 name="test-worker")
    task = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(200):
            if await stop_after(database):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the worker did not get there")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    return database, objects


def test_the_worker_runs_a_job_to_done(running, tmp_path, monkeypatch):
    created = post(running, tiny_video(tmp_path / "a.mp4")).json()
    settings = running.settings.model_copy(update={"video_poll_s": 0.05})

    async def fake(src, dst, triton, pipeline, options, progress):
        assert pipeline is DETECT and options.container == "mp4"
        shutil.copy(src, dst)
        for done in (3, 6):
            await progress(done, 6)
        return video_pipeline.VideoResult(frames=6, faces_masked=4, tracks=2, timings={"total_ms": 5.0})

    async def scenario():
        async def done(db):
            row = await queue.get(db, created["job_id"])
            return row["state"] == "done"

        database, objects = await run_worker(settings, done, fake, monkeypatch)
        row = await queue.get(database, created["job_id"])
        assert row["processed_key"] == f"processed/{created['job_id']}.mp4"
        assert await objects.exists(row["processed_key"])
        assert row["result"]["faces_masked"] == 4 and row["face_count"] == 2
        assert row["result"]["timings"]["pipeline_ms"] == 5.0
        await database.disconnect()

    asyncio.run(scenario())
    status = running.http.get(created["status_url"], headers={"X-API-Key": running.keys[0]}).json()
    assert status["state"] == "done" and status["output"]["url"].startswith("/api/v1/files/processed/")
    download = running.http.get(status["output"]["url"])
    assert download.status_code == 200 and download.headers["content-type"] == "video/mp4"
    assert download.content == (tmp_path / "a.mp4").read_bytes()


def test_a_stopping_worker_puts_its_job_back(running, tmp_path, monkeypatch):
    created = post(running, tiny_video(tmp_path / "a.mp4")).json()
    settings = running.settings.model_copy(update={"video_poll_s": 0.05})
    started = asyncio.Event()

    async def endless(src, dst, triton, pipeline, options, progress):
        started.set()
        await asyncio.sleep(3600)

    async def scenario():
        async def working(db):
            return started.is_set()

        database, _ = await run_worker(settings, working, endless, monkeypatch)
        row = await queue.get(database, created["job_id"])
        assert row["state"] == "queued" and row["attempts"] == 0 and row["claimed_by"] is None
        await database.disconnect()

    asyncio.run(scenario())


def test_a_bad_video_fails_with_its_reason(running, tmp_path, monkeypatch):
    created = post(running, tiny_video(tmp_path / "a.mp4")).json()
    settings = running.settings.model_copy(update={"video_poll_s": 0.05})

    async def broken(src, dst, triton, pipeline, options, progress):
        raise VideoError("the video is damaged at frame 3")

    async def scenario():
        async def failed(db):
            return (await queue.get(db, created["job_id"]))["state"] == "failed"

        database, _ = await run_worker(settings, failed, broken, monkeypatch)
        await database.disconnect()

    asyncio.run(scenario())
    status = running.http.get(created["status_url"], headers={"X-API-Key": running.keys[0]}).json()
    assert status["error"] == "not a usable video: the video is damaged at frame 3"
    assert status["finished_at"] is not None and status["output"] is None
