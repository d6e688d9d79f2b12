"""The video job queue (frontend/video/jobs.py) on a migrated SQLite file: claim, lease, progress,
finish, fail, release, expiry and the per-key count. PostgreSQL runs the same functions in
tests/integration/test_video_jobs.py."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from frontend.persistence import migrate
from frontend.persistence.database import create_database
from frontend.persistence.tables import images, jobs
from frontend.video import jobs as queue

LEASE_S = 30.0
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def database(tmp_path):
    url = f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    migrate.upgrade(url)
    db = create_database(url)
    await db.connect()
    yield db
    await db.disconnect()


async def new_image(db) -> str:
    image_id = str(uuid.uuid4())
    await db.execute(sa.insert(images).values(
        id=image_id, sha256=uuid.uuid4().hex * 2, object_key=f"originals/{image_id}.mp4",
        content_type="video/mp4", width=64, height=48, channels=3, size_bytes=1000, created_at=T0))
    return image_id


async def enqueue(db, key: str | None = "key-1", at: datetime = T0) -> str:
    return await queue.enqueue(db, queue.NewVideoJob(
        image_id=await new_image(db), method="gaussian", parameters={"method": "gaussian"}, model="det",
        frames_total=48, info={"width": 64}, api_key_id=key), now=at)


async def state(db, job_id: str):
    return await db.fetch_one(sa.select(jobs).where(jobs.c.id == job_id))


async def test_claims_oldest_first_and_only_once(database):
    later = await enqueue(database, at=T0 + timedelta(seconds=5))
    first = await enqueue(database, at=T0)
    one = await queue.claim(database, "w1", LEASE_S, now=T0)
    two = await queue.claim(database, "w2", LEASE_S, now=T0)
    assert (one.id, two.id) == (first, later)
    assert one.attempt == 1 and one.worker == "w1" and one.parameters == {"method": "gaussian"}
    assert await queue.claim(database, "w3", LEASE_S, now=T0) is None
    row = await state(database, first)
    assert row["state"] == "running" and row["claimed_by"] == "w1" and row["attempts"] == 1


async def test_concurrent_claims_never_share_a_job(database, tmp_path):
    ids = {await enqueue(database) for _ in range(6)}
    others = [create_database(str(database.url)) for _ in range(3)]  # as other worker processes
    for other in others:
        await other.connect()
    try:
        claims = await asyncio.gather(*(queue.claim(db, f"w{i}-{n}", LEASE_S)
                                         for n in range(3) for i, db in enumerate([database, *others])))
    finally:
        for other in others:
            await other.disconnect()
    taken = [c.id for c in claims if c is not None]
    assert sorted(taken) == sorted(ids)  # every job once, nobody got the same one


async def test_progress_finish_and_a_lost_claim(database):
    job_id = await enqueue(database)
    held = await queue.claim(database, "w1", LEASE_S, now=T0)
    assert await queue.progress(database, held, 10, 50, LEASE_S, now=T0 + timedelta(seconds=1))
    row = await state(database, job_id)
    assert (row["frames_done"], row["frames_total"]) == (10, 50)
    assert await queue.finish(database, held, output_key="processed/x.mp4", content_type="video/mp4",
                              size_bytes=123, frames=50, faces=2, result={"frames": 50}, total_ms=10.5)
    row = await state(database, job_id)
    assert row["state"] == "done" and row["processed_key"] == "processed/x.mp4" and row["face_count"] == 2
    assert row["frames_done"] == row["frames_total"] == 50 and row["claimed_by"] is None
    # Done: the worker's claim no longer holds; nothing it writes lands.
    assert not await queue.progress(database, held, 1, 1, LEASE_S)
    assert not await queue.fail(database, held, "late")
    assert (await state(database, job_id))["state"] == "done"


async def test_fail_keeps_the_reason(database):
    job_id = await enqueue(database)
    held = await queue.claim(database, "w1", LEASE_S)
    assert await queue.fail(database, held, "the video is truncated")
    row = await state(database, job_id)
    assert row["state"] == "failed" and row["error"] == "the video is truncated"


async def test_release_puts_it_back_without_counting_the_run(database):
    job_id = await enqueue(database)
    held = await queue.claim(database, "w1", LEASE_S)
    assert await queue.release(database, held)
    row = await state(database, job_id)
    assert row["state"] == "queued" and row["attempts"] == 0 and row["claimed_by"] is None
    again = await queue.claim(database, "w2", LEASE_S)
    assert again.id == job_id and again.attempt == 1
    assert not await queue.renew(database, held, LEASE_S)  # the first worker's claim is gone


async def test_expired_leases_are_queued_again_then_failed(database):
    job_id = await enqueue(database)
    for attempt in (1, 2):
        held = await queue.claim(database, f"w{attempt}", LEASE_S, now=T0)
        assert held.attempt == attempt
        # Not expired yet: nothing moves.
        assert await queue.requeue_expired(database, 2, now=T0 + timedelta(seconds=10)) == ([], [])
        queued, failed = await queue.requeue_expired(database, 2, now=T0 + timedelta(seconds=LEASE_S + 1))
        if attempt == 1:
            assert (queued, failed) == ([job_id], [])
            assert (await state(database, job_id))["state"] == "queued"
            assert not await queue.renew(database, held, LEASE_S)  # the dead worker's claim is void
        else:
            assert (queued, failed) == ([], [job_id])
    row = await state(database, job_id)
    assert row["state"] == "failed" and "interrupted 2 times" in row["error"]


async def test_a_renewed_lease_does_not_expire(database):
    await enqueue(database)
    held = await queue.claim(database, "w1", LEASE_S, now=T0)
    assert await queue.renew(database, held, LEASE_S, now=T0 + timedelta(seconds=20))
    assert await queue.requeue_expired(database, 3, now=T0 + timedelta(seconds=LEASE_S + 1)) == ([], [])


async def test_retry_or_fail(database):
    job_id = await enqueue(database)
    held = await queue.claim(database, "w1", LEASE_S)
    assert await queue.retry_or_fail(database, held, "the inference server is unavailable", 2) == "queued"
    held = await queue.claim(database, "w1", LEASE_S)
    assert held.attempt == 2
    assert await queue.retry_or_fail(database, held, "the inference server is unavailable", 2) == "failed"
    row = await state(database, job_id)
    assert row["state"] == "failed" and row["error"].endswith("(tried 2 times)")


async def test_count_active_per_key(database):
    first = await enqueue(database, "a", at=T0)
    await enqueue(database, "a", at=T0 + timedelta(seconds=1))
    await enqueue(database, "b", at=T0 + timedelta(seconds=2))
    await enqueue(database, None, at=T0 + timedelta(seconds=3))
    assert await queue.count_active(database, "a") == 2
    assert await queue.count_active(database, None) == 1
    held = await queue.claim(database, "w", LEASE_S)
    assert held.id == first
    assert await queue.count_active(database, "a") == 2  # running counts too
    await queue.fail(database, held, "x")  # finished jobs no longer do
    assert await queue.count_active(database, "a") == 1


def test_throttle_lets_one_call_through_per_interval():
    now = [0.0]
    throttle = queue.Throttle(1.0, clock=lambda: now[0])
    assert throttle.ready()
    now[0] = 0.5
    assert not throttle.ready()
    now[0] = 1.0
    assert throttle.ready()
    assert not throttle.ready()


async def test_photo_jobs_are_recorded_without_queue_columns(database, tmp_path):
    """The recorder inserts photo jobs without naming the queue's columns: they take the
    database's defaults (a Python-side default would be sent as NULL by `databases`)."""
    from frontend.services.archive import Archive, NewJob, Upload
    from frontend.storage.local import LocalObjectStore
    from frontend.storage.signing import UrlSigner

    archive = Archive(database, LocalObjectStore(tmp_path / "objects", UrlSigner(b"k" * 32, 60)))
    _, job_id = await archive.record(Upload(b"photo", "JPEG", 4, 3, 3), NewJob(
        job_type="detect", parameters={}, result={}, face_count=0, model="det", total_ms=1.0))
    row = await state(database, job_id)
    assert row["attempts"] == 0 and row["state"] is None and row["frames_done"] is None
