"""The video job queue: rows of the ``jobs`` table (job_type "mask_video") with a state.

    queued ──claim──▶ running ──finish──▶ done
       ▲                 │ └────fail────▶ failed
       └─release/expire──┘   (expired after FACE_API_VIDEO_MAX_ATTEMPTS runs: failed)

A worker claims the oldest queued job in one statement and holds it under a lease
(``lease_until``) that it renews while it works. Every write a worker makes is
conditional on still holding that claim (same worker, same attempt, still running), so
a worker that lost its job (lease expired and the job went to another worker, or an
admin deleted it) changes nothing and learns so from the False it gets back.

Why one ``UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING`` rather than a transaction
of a SELECT and an UPDATE: it is atomic on both databases without holding a connection
across statements. On SQLite a writing statement takes the database's write lock before
it reads (what BEGIN IMMEDIATE does for a transaction), so two workers never pick the
same row and neither fails on a stale snapshot; on PostgreSQL the inner SELECT has FOR
UPDATE SKIP LOCKED, so concurrent workers skip the row one of them is taking instead of
queueing behind it.

A job survives any stop: a worker that is told to stop puts its job back (``release``,
the run not counted); one that dies leaves a lease that runs out, and ``requeue_expired``
(at every worker's start and then periodically) queues the job again, or fails it with
a reason once it has been interrupted ``max_attempts`` times.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import databases
import sqlalchemy as sa

from frontend.persistence.tables import jobs

# Output container -> (extension, content type) of the masked video.
OUTPUT_TYPES = {"mp4": ("mp4", "video/mp4"), "webm": ("webm", "video/webm"),
                "mkv": ("mkv", "video/x-matroska")}


def output_key(job_id: str, container: str) -> tuple[str, str]:
    """(object key, content type) of a job's masked video."""
    extension, content_type = OUTPUT_TYPES[container]
    return f"processed/{job_id}.{extension}", content_type

JOB_TYPE = "mask_video"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
ACTIVE = (QUEUED, RUNNING)
STATES = (QUEUED, RUNNING, DONE, FAILED)
ERROR_CHARS = 2000


@dataclass(frozen=True)
class NewVideoJob:
    image_id: str  # the video's original (an images row, content type video/...)
    method: str
    parameters: dict[str, Any]  # the request's query parameters, defaults filled in
    model: str  # the detector that will run
    frames_total: int | None  # as the container says; None when it does not
    info: dict[str, Any]  # what the probe found, kept in the job's result
    api_key_id: str | None = None


@dataclass(frozen=True)
class Claim:
    """A running job as its worker holds it: every write names (id, worker, attempt)."""

    id: str
    worker: str
    attempt: int
    image_id: str
    parameters: dict[str, Any]
    info: dict[str, Any]  # what probing the upload found (the result's "input")
    model: str
    created_at: datetime
    started_at: datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def _is_sqlite(database: databases.Database) -> bool:
    return database.url.dialect == "sqlite"


def interrupted_error(max_attempts: int) -> str:
    return (f"the job was interrupted {max_attempts} times (its worker stopped or died while it ran); "
            "given up (FACE_API_VIDEO_MAX_ATTEMPTS)")


async def enqueue(database: databases.Database, job: NewVideoJob, now: datetime | None = None) -> str:
    """Insert a queued job; its id."""
    job_id = str(uuid.uuid4())
    await database.execute(sa.insert(jobs).values(
        id=job_id, image_id=job.image_id, job_type=JOB_TYPE, method=job.method, parameters=job.parameters,
        result={"input": job.info}, face_count=0, model=job.model, total_ms=0.0,
        api_key_id=job.api_key_id, created_at=now or now_utc(), state=QUEUED, attempts=0,
        frames_done=0, frames_total=job.frames_total))
    return job_id


def _active_of(api_key_id: str | None) -> sa.ColumnElement[bool]:
    caller = jobs.c.api_key_id.is_(None) if api_key_id is None else jobs.c.api_key_id == api_key_id
    return sa.and_(caller, jobs.c.job_type == JOB_TYPE, jobs.c.state.in_(ACTIVE))


async def count_active(database: databases.Database, api_key_id: str | None) -> int:
    """Queued and running jobs of one API key (None: of the callers without a key)."""
    return int(await database.fetch_val(sa.select(sa.func.count()).select_from(jobs)
                                         .where(_active_of(api_key_id))))


async def claim(database: databases.Database, worker: str, lease_s: float,
                now: datetime | None = None) -> Claim | None:
    """Take the oldest queued job (atomically, see the module's docstring); None when there is none."""
    now = now or now_utc()
    oldest = (sa.select(jobs.c.id).where(jobs.c.state == QUEUED)
              .order_by(jobs.c.created_at, jobs.c.id).limit(1))
    if not _is_sqlite(database):
        oldest = oldest.with_for_update(skip_locked=True)
    row = await database.fetch_one(
        sa.update(jobs).where(jobs.c.id == oldest.scalar_subquery(), jobs.c.state == QUEUED)
        .values(state=RUNNING, attempts=jobs.c.attempts + 1, claimed_by=worker[:100],
                lease_until=now + timedelta(seconds=lease_s), started_at=now, frames_done=0, error=None)
        .returning(jobs.c.id, jobs.c.attempts, jobs.c.image_id, jobs.c.parameters, jobs.c.result,
                   jobs.c.model, jobs.c.created_at))
    if row is None:
        return None
    created = row["created_at"]
    if created.tzinfo is None:  # SQLite: naive UTC
        created = created.replace(tzinfo=UTC)
    return Claim(id=row["id"], worker=worker[:100], attempt=int(row["attempts"]), image_id=row["image_id"],
                 parameters=row["parameters"], info=(row["result"] or {}).get("input") or {},
                 model=row["model"], created_at=created, started_at=now)


def _held(held: Claim) -> sa.ColumnElement[bool]:
    return sa.and_(jobs.c.id == held.id, jobs.c.state == RUNNING, jobs.c.claimed_by == held.worker,
                   jobs.c.attempts == held.attempt)


async def _update_held(database: databases.Database, held: Claim, **values: Any) -> bool:
    """Apply ``values`` while the claim still holds; whether it did."""
    row = await database.fetch_one(sa.update(jobs).where(_held(held)).values(**values).returning(jobs.c.id))
    return row is not None


async def renew(database: databases.Database, held: Claim, lease_s: float,
                now: datetime | None = None) -> bool:
    """Extend the lease; False: the job is no longer ours (stop working on it)."""
    return await _update_held(database, held, lease_until=(now or now_utc()) + timedelta(seconds=lease_s))


async def progress(database: databases.Database, held: Claim, done: int, total: int | None,
                   lease_s: float, now: datetime | None = None) -> bool:
    """Record frames done (and the total, once known); renews the lease too."""
    values: dict[str, Any] = {"frames_done": int(done),
                              "lease_until": (now or now_utc()) + timedelta(seconds=lease_s)}
    if total is not None:
        values["frames_total"] = int(total)
    return await _update_held(database, held, **values)


async def finish(database: databases.Database, held: Claim, *, output_key: str, content_type: str,
                 size_bytes: int, frames: int, faces: int, result: dict[str, Any], total_ms: float,
                 now: datetime | None = None) -> bool:
    """Mark done with its output; False when the job was no longer ours (the output is then nobody's)."""
    return await _update_held(
        database, held, state=DONE, processed_key=output_key, processed_content_type=content_type,
        processed_size_bytes=int(size_bytes), frames_done=int(frames), frames_total=int(frames),
        face_count=int(faces), result=result, total_ms=round(float(total_ms), 2),
        finished_at=now or now_utc(), claimed_by=None, lease_until=None)


async def fail(database: databases.Database, held: Claim, error: str, now: datetime | None = None) -> bool:
    """Mark failed with a reason the caller will read."""
    return await _update_held(database, held, state=FAILED, error=error[:ERROR_CHARS],
                              finished_at=now or now_utc(), claimed_by=None, lease_until=None)


async def release(database: databases.Database, held: Claim) -> bool:
    """Put the job back in the queue, this run not counted (the worker was told to stop)."""
    return await _update_held(database, held, state=QUEUED, attempts=jobs.c.attempts - 1, claimed_by=None,
                              lease_until=None, started_at=None, frames_done=0)


async def retry_or_fail(database: databases.Database, held: Claim, error: str,
                        max_attempts: int) -> str | None:
    """After a run that failed for a passing reason (the inference server or storage away):
    queued again while runs are left, else failed with ``error``. The new state; None when
    the job was no longer ours."""
    if held.attempt >= max_attempts:
        reason = f"{error} (tried {held.attempt} times)"
        return FAILED if await fail(database, held, reason) else None
    queued = await _update_held(database, held, state=QUEUED, claimed_by=None, lease_until=None,
                                started_at=None, frames_done=0, error=error[:ERROR_CHARS])
    return QUEUED if queued else None


async def requeue_expired(database: databases.Database, max_attempts: int,
                          now: datetime | None = None) -> tuple[list[str], list[str]]:
    """Jobs whose worker went away without a word (lease run out): (queued again, failed)."""
    now = now or now_utc()
    expired = sa.and_(jobs.c.job_type == JOB_TYPE, jobs.c.state == RUNNING, jobs.c.lease_until < now)
    failed = await database.fetch_all(
        sa.update(jobs).where(expired, jobs.c.attempts >= max_attempts)
        .values(state=FAILED, error=interrupted_error(max_attempts), finished_at=now, claimed_by=None,
                lease_until=None).returning(jobs.c.id))
    queued = await database.fetch_all(
        sa.update(jobs).where(expired, jobs.c.attempts < max_attempts)
        .values(state=QUEUED, claimed_by=None, lease_until=None, started_at=None, frames_done=0)
        .returning(jobs.c.id))
    return [row["id"] for row in queued], [row["id"] for row in failed]


async def get(database: databases.Database, job_id: str) -> Any | None:
    """The row of a video job, or None."""
    return await database.fetch_one(sa.select(jobs).where(jobs.c.id == job_id, jobs.c.job_type == JOB_TYPE))


class Throttle:
    """Lets a call through at most every ``interval_s`` (the first one always): progress is
    written about once a second, however often the pipeline reports it."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self.clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        return True
