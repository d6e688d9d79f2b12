"""Video jobs through the real stack: POST /api/v1/mask/video, the status, the download, the
admin API, the limits, and a job that survives a restart of the service.

The stack is this module's own (small limits, a short lease), so that the restart test
can stop it and start it again on the same database and object store. The queue itself
runs on PostgreSQL at the end (the unit tests run it on SQLite).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from frontend.persistence import migrate
from frontend.persistence.database import create_database
from frontend.persistence.tables import images
from frontend.video import jobs as queue
from frontend.video.io import probe
from tests.integration.conftest import LIMITS, SAMPLES
from tests.integration.stack import ADMIN_PASSWORD, Stack, start_stack
from tests.support.videos import make_video

VIDEO_LIMITS = {**LIMITS, "FACE_API_VIDEO_WORKERS": "1", "FACE_API_VIDEO_MAX_BYTES": str(3 * 1024 * 1024),
                "FACE_API_VIDEO_MAX_DURATION_S": "90", "FACE_API_VIDEO_MAX_PIXELS": str(640 * 480),
                "FACE_API_VIDEO_MAX_JOBS_PER_KEY": "2", "FACE_API_VIDEO_LEASE_S": "6"}


# --- test videos ---

def clip(path: Path, frames: int = 24, size: tuple[int, int] = (320, 180), fps: int = 12,
         photo: str = "yaoming.jpg", codec: str = "libx264") -> Path:
    """A sample photo (scaled to the frame's height) moving left to right across a grey
    frame, written with PyAV: its faces are visible in every frame."""
    width, height = size
    source = Image.open(SAMPLES / photo).convert("RGB")
    source = source.resize((max(1, round(source.width * height / source.height)), height))
    with av.open(str(path), "w") as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = Image.new("RGB", size, (120, 120, 120))
            frame.paste(source, (int(max(0, width - source.width) * index / max(1, frames - 1)), 0))
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


def no_frames(path: Path) -> Path:
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        output.start_encoding()  # the header, then no frame at all
    return path


def frames_of(data: bytes, path: Path) -> tuple[int, Fraction, int, int]:
    """(frames decoded, frame rate, width, height) of a video's bytes."""
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, Fraction(stream.average_rate), stream.codec_context.width, stream.codec_context.height


# --- the stack ---

class Running:
    """The module's stack; the restart test replaces it with a new one on the same folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.stack: Stack = start_stack(folder, env=VIDEO_LIMITS)
        self.key = self.stack.first_key
        assert self.key, self.stack.log()[-2000:]

    def restart(self) -> None:
        self.stack.stop()
        self.stack = start_stack(self.folder, env=VIDEO_LIMITS)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.url, timeout=60, headers={"X-API-Key": self.key})


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    service = Running(tmp_path_factory.mktemp("video-stack"))
    yield service
    service.stack.stop()


@pytest.fixture
def client(running):
    with running.client() as http:
        yield http


def submit(client: httpx.Client, path: Path, **params) -> httpx.Response:
    with path.open("rb") as file:
        return client.post("/api/v1/mask/video", params=params, files={"video": (path.name, file)})


def wait_for(client: httpx.Client, status_url: str, until, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(status_url)
        assert status.status_code == 200, status.text
        body = status.json()
        if until(body):
            return body
        assert time.monotonic() < deadline, f"job still {body['state']}: {body}"
        assert body["state"] != "failed", body
        time.sleep(0.2)


# --- the API ---

def test_a_video_is_masked_in_the_background(running, client, tmp_path):
    source = clip(tmp_path / "pan.mp4", frames=24, fps=12)
    created = submit(client, source, method="pixelate", strength=12)
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["state"] == "queued" and created.headers["location"] == body["status_url"]
    assert body["status_url"] == f"/api/v1/mask/video/{body['job_id']}"

    seen = []
    done = wait_for(client, body["status_url"],
                    lambda b: seen.append(b["progress"]["frames_done"]) or b["state"] == "done")
    assert seen == sorted(seen)  # progress only moves forward
    assert done["progress"] == {"frames_done": 24, "frames_total": 24, "fraction": 1.0}
    assert done["parameters"]["method"] == "pixelate" and done["parameters"]["container"] == "mp4"
    assert done["input"]["width"] == 320 and done["input"]["frames"] == 24
    assert done["faces"] >= 1 and done["faces_masked"] >= 24 and done["error"] is None, done
    assert {"queued_ms", "download_ms", "upload_ms", "total_ms"} <= set(done["timings"])
    assert done["output"]["content_type"] == "video/mp4"

    download = httpx.get(running.stack.url + done["output"]["url"], timeout=60)
    assert download.status_code == 200 and download.headers["content-type"] == "video/mp4"
    assert len(download.content) == done["output"]["size_bytes"]
    assert frames_of(download.content, tmp_path / "out.mp4") == (24, Fraction(12), 320, 180)

    # The admin API lists it as a video job, with its state and progress; its original is an image row.
    with httpx.Client(base_url=f"{running.stack.url}/api/v1/admin", auth=("admin", ADMIN_PASSWORD),
                      timeout=60) as admin:
        listed = admin.get("/jobs", params={"job_type": "mask_video"}).json()["items"]
        job = next(j for j in listed if j["id"] == body["job_id"])
        assert job["state"] == "done" and job["progress"] == {"frames_done": 24, "frames_total": 24}
        assert job["processed_content_type"] == "video/mp4" and job["face_count"] == done["faces"]
        image = admin.get(f"/images/{job['image_id']}").json()
        assert image["content_type"] == "video/mp4" and (image["width"], image["height"]) == (320, 180)
        for thumbnail in (f"/jobs/{job['id']}/thumbnail", f"/images/{job['image_id']}/thumbnail"):
            answer = admin.get(thumbnail, params={"size": 64})
            assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg", thumbnail


def test_the_output_keeps_rotation_and_audio_when_asked(running, client, tmp_path):
    source, _ = make_video(tmp_path / "phone.mkv", "pan", size=(320, 180), frames=20, fps=20, audio=True,
                           rotation=90)
    created = submit(client, source, audio="true", container="mkv").json()
    done = wait_for(client, created["status_url"], lambda b: b["state"] == "done")
    assert done["input"]["rotation"] == 90 and done["input"]["has_audio"] is True
    assert done["output"]["content_type"] == "video/x-matroska"
    output = tmp_path / "out.mkv"
    output.write_bytes(httpx.get(running.stack.url + done["output"]["url"], timeout=60).content)
    kept = probe(output)
    assert (kept.frames, kept.fps, kept.width, kept.height) == (20, 20, 320, 180)
    assert kept.rotation == 90 and kept.has_audio
    without = submit(client, source).json()  # audio is off unless asked
    done = wait_for(client, without["status_url"], lambda b: b["state"] == "done")
    output.write_bytes(httpx.get(running.stack.url + done["output"]["url"], timeout=60).content)
    assert not probe(output).has_audio


def test_the_status_answers_only_the_key_that_submitted(running, client, tmp_path):
    created = submit(client, clip(tmp_path / "short.mp4", frames=6)).json()
    assert httpx.get(running.stack.url + created["status_url"]).status_code == 401
    other = httpx.get(running.stack.url + created["status_url"], headers={"X-API-Key": "xyl_not-a-key"})
    assert other.status_code == 401
    assert client.get("/api/v1/mask/video/not-a-job").status_code == 404
    wait_for(client, created["status_url"], lambda b: b["state"] == "done")


def test_without_an_api_key_nothing_is_queued(running, tmp_path):
    with clip(tmp_path / "a.mp4", frames=4).open("rb") as file:
        answer = httpx.post(running.stack.url + "/api/v1/mask/video", files={"video": ("a.mp4", file)})
    assert answer.status_code == 401 and "API key" in answer.json()["detail"]


@pytest.mark.parametrize("name", ["image", "random", "truncated", "no_frames", "empty"])
def test_unusable_uploads_are_refused_before_queueing(client, tmp_path, name):
    path = tmp_path / f"{name}.mp4"
    if name == "image":
        path.write_bytes((SAMPLES / "yaoming.jpg").read_bytes())
    elif name == "random":
        path.write_bytes(np.random.default_rng(1).bytes(50_000))
    elif name == "truncated":
        whole = clip(tmp_path / "whole.mkv", frames=24).read_bytes()
        path = tmp_path / "truncated.mkv"
        path.write_bytes(whole[: len(whole) // 2])
    elif name == "no_frames":
        no_frames(path)
    else:
        path.write_bytes(b"")
    answer = submit(client, path)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]


def test_videos_over_the_limits_get_413(client, tmp_path):
    too_large = tmp_path / "large.mp4"
    too_large.write_bytes(b"\0" * (3 * 1024 * 1024 + 1))
    answer = submit(client, too_large)
    assert answer.status_code == 413 and "FACE_API_VIDEO_MAX_BYTES" in answer.json()["detail"]
    wide = submit(client, clip(tmp_path / "wide.mp4", frames=2, size=(800, 608)))
    assert wide.status_code == 413 and "FACE_API_VIDEO_MAX_PIXELS" in wide.json()["detail"]
    long = submit(client, clip(tmp_path / "long.mp4", frames=100, size=(64, 64), fps=1))
    assert long.status_code == 413 and "FACE_API_VIDEO_MAX_DURATION_S" in long.json()["detail"]
    bad = submit(client, clip(tmp_path / "ok.mp4", frames=2), container="webm", codec="h264")
    assert bad.status_code == 422 and "vp9" in bad.json()["detail"]


def test_a_job_survives_a_restart_and_a_key_has_at_most_two(running, client, tmp_path):
    """Stop the service while a job runs: after the restart it runs again from the start and
    completes; nothing vanishes. Meanwhile the key's third job is refused with 429."""
    # 16 s of video, several seconds of work on 2 CPU cores: still running when the service
    # stops (200 frames once finished first on a fast machine)
    long = clip(tmp_path / "long.mp4", frames=400, size=(320, 180), fps=25)
    created = submit(client, long).json()
    running_now = wait_for(client, created["status_url"],
                           lambda b: b["state"] == "running" and b["progress"]["frames_done"] > 0)
    assert running_now["attempts"] == 1
    second = submit(client, clip(tmp_path / "second.mp4", frames=6))
    assert second.status_code == 202, second.text
    third = submit(client, clip(tmp_path / "third.mp4", frames=6))
    assert third.status_code == 429 and "FACE_API_VIDEO_MAX_JOBS_PER_KEY" in third.json()["detail"]

    running.restart()
    with running.client() as again:
        before = again.get(created["status_url"]).json()
        assert before["state"] in ("queued", "running")  # put back by the stopping worker, not lost
        done = wait_for(again, created["status_url"], lambda b: b["state"] == "done", timeout=120)
        assert done["attempts"] == 1  # the interrupted run was not counted against it
        assert done["progress"]["frames_done"] == 400
        wait_for(again, second.json()["status_url"], lambda b: b["state"] == "done")
    logs = "\n".join(path.read_text(errors="replace") for path in running.folder.glob("stack-*.log"))
    assert f"video job {created['job_id']} put back in the queue" in logs


def test_a_job_whose_worker_dies_runs_again(running, client, tmp_path):
    """A worker killed outright: serve starts another, the job's lease runs out, and the job
    runs again as its second attempt."""
    created = submit(client, clip(tmp_path / "crash.mp4", frames=120, fps=25)).json()
    wait_for(client, created["status_url"],
             lambda b: b["state"] == "running" and b["progress"]["frames_done"] > 0)
    started = f"video job {created['job_id']}: run 1 started"
    line = next(line for line in running.stack.log().split("\n") if started in line)
    os.kill(json.loads(line)["pid"], signal.SIGKILL)
    done = wait_for(client, created["status_url"], lambda b: b["state"] == "done", timeout=90)
    assert done["attempts"] == 2 and done["progress"]["frames_done"] == 120
    assert "exited with code -9; starting another" in running.stack.log()
    assert f"video job {created['job_id']} was abandoned by its worker" in running.stack.log()


# --- the queue on PostgreSQL ---

async def test_the_queue_on_postgresql(postgres_server):
    with postgres_server.database() as url:
        migrate.upgrade(url)
        databases_ = [create_database(url) for _ in range(3)]
        for db in databases_:
            await db.connect()
        try:
            db = databases_[0]
            t0 = datetime.now(UTC)
            ids = []
            for n in range(6):
                image_id = f"00000000-0000-4000-8000-{n:012d}"
                await db.execute(sa.insert(images).values(
                    id=image_id, sha256=f"{n:064d}", object_key=f"originals/{n}.mp4",
                    content_type="video/mp4",
                    width=64, height=48, channels=3, size_bytes=1, created_at=t0))
                ids.append(await queue.enqueue(db, queue.NewVideoJob(
                    image_id=image_id, method="gaussian", parameters={}, model="det", frames_total=1, info={},
                    api_key_id="k"), now=t0 + timedelta(seconds=n)))
            assert await queue.count_active(db, "k") == 6
            claims = await asyncio.gather(*(queue.claim(other, f"w{i}", 5.0)
                                             for i, other in enumerate(databases_ * 3)))
            taken = [c.id for c in claims if c is not None]
            assert sorted(taken) == sorted(ids)  # each once: SKIP LOCKED, never the same row twice
            held = next(c for c in claims if c is not None and c.id == ids[0])
            assert await queue.finish(db, held, output_key="processed/a.mp4", content_type="video/mp4",
                                      size_bytes=1, frames=1, faces=0, result={}, total_ms=1.0)
            queued, failed = await queue.requeue_expired(db, 1, now=datetime.now(UTC) + timedelta(seconds=10))
            assert sorted(failed) == sorted(ids[1:]) and queued == []
            assert await queue.count_active(db, "k") == 0
        finally:
            for each in databases_:
                await each.disconnect()
