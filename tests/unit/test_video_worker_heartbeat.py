"""The video worker's heartbeat file (FACE_API_VIDEO_HEARTBEAT_FILE): touched on every turn of the
poll loop and at every lease renewal while a job runs, so that a liveness probe reading its age
(deploy/kubernetes/base/video-worker.yaml) tells a stuck worker from an idle or a busy one."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from types import SimpleNamespace

from frontend.settings import Settings
from frontend.video import jobs as queue
from frontend.video import worker as video_worker

OLD = 1_000_000_000.0  # 2001: an mtime no beat leaves


def mtime(path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


async def until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def worker(settings: Settings) -> video_worker.Worker:
    return video_worker.Worker(settings, database=None, objects=None, triton=None, catalog=None, name="test")


def test_no_file_no_heartbeat(tmp_path):
    beating = worker(Settings(video_heartbeat_file=None))
    assert beating.heartbeat is None
    beating.beat()
    assert list(tmp_path.iterdir()) == []


def test_the_idle_loop_beats_on_every_poll(tmp_path, monkeypatch):
    heartbeat = tmp_path / "heartbeat"
    polls = []

    async def claim(database, name, lease_s):
        polls.append(mtime(heartbeat))  # touched before each claim
        if heartbeat.exists():
            os.utime(heartbeat, (OLD, OLD))
        return None

    async def requeue_expired(database, max_attempts):
        return [], []

    monkeypatch.setattr(queue, "claim", claim)
    monkeypatch.setattr(queue, "requeue_expired", requeue_expired)
    beating = worker(Settings(video_heartbeat_file=str(heartbeat), video_poll_s=0.01))

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(beating.run(stop))
        await asyncio.wait_for(until(lambda: len(polls) >= 3), 5)
        stop.set()
        await asyncio.wait_for(task, 5)

    started = time.time()
    asyncio.run(scenario())
    assert len(polls) >= 3 and all(mtime >= started - 1 for mtime in polls), polls


def test_a_running_job_beats_at_every_lease_renewal(tmp_path, monkeypatch):
    heartbeat = tmp_path / "heartbeat"
    renewals = []

    async def renew(database, held, lease_s):
        renewals.append(mtime(heartbeat))  # touched since the last renewal
        if heartbeat.exists():
            os.utime(heartbeat, (OLD, OLD))
        return True

    monkeypatch.setattr(queue, "renew", renew)
    beating = worker(Settings(video_heartbeat_file=str(heartbeat)))
    beating.lease_s = 0.03  # (the setting's least is 2 s)

    async def scenario():
        work = asyncio.create_task(asyncio.sleep(3600))  # a job that runs longer than the test
        keeper = asyncio.create_task(beating._keep_lease(SimpleNamespace(id="job"), work, asyncio.Event()))
        await asyncio.wait_for(until(lambda: len(renewals) >= 3), 5)
        work.cancel()
        await asyncio.wait_for(keeper, 5)

    started = time.time()
    asyncio.run(scenario())
    assert len(renewals) >= 3 and all(mtime >= started - 1 for mtime in renewals), renewals


def test_a_heartbeat_that_cannot_be_written_is_logged_once(tmp_path, caplog):
    beating = worker(Settings(video_heartbeat_file=str(tmp_path / "missing-folder" / "heartbeat")))
    with caplog.at_level(logging.WARNING, logger="face_api.video"):
        for _ in range(3):
            beating.beat()  # never raises: the worker goes on, the probe sees the stale file
    assert len([r for r in caplog.records if "heartbeat" in r.getMessage()]) == 1
    (tmp_path / "missing-folder").mkdir()
    beating.beat()
    assert (tmp_path / "missing-folder" / "heartbeat").is_file()
