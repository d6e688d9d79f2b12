"""The bulk CLI's planning and its conversation with the API, against a fake API (no stack)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from runtime import anonymize as cli


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_plan_mirrors_folders_and_names_outputs(tmp_path):
    inputs = tmp_path / "footage"
    for name in ("a.JPG", "b.bmp", "c.png", "sub/d.mov", "sub/e.webm", "sub/notes.txt", "out/old.jpg"):
        touch(inputs / name)
    out = inputs / "out"  # inside the input folder: earlier outputs are not inputs
    items, ignored = cli.plan([inputs, inputs / "c.png"], out)
    found = {item.output.relative_to(out).as_posix(): (item.kind, item.format) for item in items}
    assert found == {"footage/a.JPG": ("photo", "jpeg"), "footage/b.png": ("photo", "png"),
                     "footage/c.png": ("photo", "png"), "footage/sub/d.mp4": ("video", "mp4"),
                     "footage/sub/e.webm": ("video", "webm"), "c.png": ("photo", "png")}
    assert ignored == 1
    # b.bmp and c.png both become footage/b.png / footage/c.png: no clash; a real clash is reported.
    touch(inputs / "c.bmp")
    clash = [item for item in cli.plan([inputs], out)[0] if item.conflict]
    assert len(clash) == 1 and "also the output of" in clash[0].conflict

    webp = {i.output.name for i in cli.plan([inputs], out, photo_format="webp", container="mkv")[0]}
    assert {"a.webp", "b.webp", "d.mkv", "e.mkv"} <= webp

    with pytest.raises(cli.UsageError, match="no such file"):
        cli.plan([tmp_path / "missing"], out)
    with pytest.raises(cli.UsageError, match="neither a photo nor a video"):
        cli.plan([inputs / "sub" / "notes.txt"], out)


def test_retry_wait():
    def answer(status: int, **headers: str) -> httpx.Response:
        return httpx.Response(status, headers=headers)

    assert cli.retry_wait(answer(429, **{"Retry-After": "3"})) == 3
    assert cli.retry_wait(answer(429)) == cli.DEFAULT_RETRY_WAIT_S
    assert cli.retry_wait(answer(503, **{"Retry-After": "9999"})) == cli.MAX_RETRY_WAIT_S
    assert cli.retry_wait(answer(503)) is None  # no hint: a failure
    assert cli.retry_wait(answer(400, **{"Retry-After": "1"})) is None
    assert cli.retry_wait(answer(200)) is None


class FakeApi:
    """/api/v1/mask that asks to wait once; video jobs that go running -> done in three polls, one
    job at a time per key (as FACE_API_VIDEO_MAX_JOBS_PER_KEY=1 would)."""

    def __init__(self):
        self.mask_calls = 0
        self.polls: dict[str, int] = {}
        self.active: set[str] = set()
        self.refused = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.startswith("/files/") or request.headers["X-API-Key"] == "key"
        if request.url.path == "/api/v1/mask":
            self.mask_calls += 1
            if self.mask_calls == 1:
                return httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "slow down"})
            if b"not a photo" in request.read():
                return httpx.Response(415, json={"detail": "the upload is not an image"})
            assert request.url.params["format"] == "png" and request.url.params["method"] == "pixelate"
            return httpx.Response(200, content=b"masked", headers={"X-Face-Count": "3"})
        if request.url.path == "/api/v1/mask/video":
            assert request.url.params["container"] == "webm" and request.url.params["codec"] == "vp9"
            if self.active:
                self.refused += 1
                return httpx.Response(429, headers={"Retry-After": "10"}, json={"detail": "1 job at a time"})
            job = request.read().split(b"\r\n\r\n")[1].split(b"\r\n")[0].decode()  # the file's content
            self.active.add(job)
            return httpx.Response(202, json={"job_id": job, "status_url": f"/api/v1/mask/video/{job}",
                                             "state": "queued"})
        if request.url.path.startswith("/api/v1/mask/video/"):
            job = request.url.path.rsplit("/", 1)[1]
            self.polls[job] = self.polls.get(job, 0) + 1
            status = {"job_id": job, "state": "running", "error": None, "faces": None, "faces_masked": None,
                      "progress": {"frames_done": 10 * self.polls[job], "frames_total": 30}, "output": None}
            if job == "truncated":
                self.active.discard(job)
                status.update(state="failed", error="the video is truncated")
                return httpx.Response(200, json=status)
            if self.polls[job] >= 3:
                self.active.discard(job)
                status.update(state="done", faces=2, faces_masked=57, output={
                    "url": f"http://storage.example/files/{job}.webm", "content_type": "video/webm",
                    "size_bytes": 11})
            return httpx.Response(200, json=status)
        if request.url.path.startswith("/files/"):
            assert "X-API-Key" not in request.headers  # the key stays with the service
            return httpx.Response(200, content=b"video bytes")
        return httpx.Response(404, json={"detail": "not found"})


async def test_photos_and_videos_against_a_fake_api(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "POLL_S", 0)
    touch(tmp_path / "in" / "a.bmp")
    touch(tmp_path / "in" / "broken.png", b"not a photo")
    for name in ("clip1", "clip2", "clip3", "truncated"):
        touch(tmp_path / "in" / f"{name}.webm", name.encode())
    items, _ = cli.plan([tmp_path / "in"], tmp_path / "out")
    fake = FakeApi()

    async def run() -> list[cli.Outcome]:
        report = cli.PlainReport(len(items), Console())
        return await cli.anonymize(items, "http://api.example", "key", 4, False, {"method": "pixelate"}, {},
                                   report, transport=httpx.MockTransport(fake))

    outcomes = await run()
    by_name = {o.item.source.name: o for o in outcomes}
    assert by_name["a.bmp"].state == "done" and by_name["a.bmp"].faces == 3
    assert (tmp_path / "out" / "in" / "a.png").read_bytes() == b"masked"
    assert by_name["broken.png"].reason == "HTTP 415: the upload is not an image"
    for clip in ("clip1", "clip2", "clip3"):
        video = by_name[f"{clip}.webm"]
        assert video.state == "done" and video.faces == 2, video.reason
        assert "57 masked regions in 30 frames" in video.note
        assert (tmp_path / "out" / "in" / f"{clip}.webm").read_bytes() == b"video bytes"
    assert by_name["truncated.webm"].reason == "the job failed: the video is truncated"
    # Refused once (the run learns the service's limit), not once per 10 s while a job runs.
    assert 1 <= fake.refused <= 3, fake.refused
    assert not [p for p in (tmp_path / "out").rglob("*") if ".part-" in p.name]
    text = cli.summary(outcomes, 0, 1.0)
    assert text.startswith("6 files: 4 done, 0 skipped, 2 failed; 9 faces masked")

    # Done outputs are skipped next time, unless their input changed since.
    os.utime(tmp_path / "out" / "in" / "a.png", (1, 1))
    states = {o.item.source.name: o.state for o in await run()}
    assert states["clip1.webm"] == "skipped" and states["a.bmp"] == "done"
