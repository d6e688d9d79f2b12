"""``python -m frontend.video.worker``: one video job worker process.

./face-api serve starts FACE_API_VIDEO_WORKERS of them beside the frontend (and restarts
one that dies); each runs one job at a time:

    claim (jobs.py) → the original from object storage into a temporary folder →
    pipeline.anonymize (Triton's detect pipeline, as the frontend's catalog selects it)
    → the masked video into object storage → done (or failed, with a reason)

While a job runs, its lease is renewed every third of FACE_API_VIDEO_LEASE_S and its
progress written about once a second. A lease that cannot be renewed because the job is
no longer this worker's (an admin deleted it, or it was given to another worker after
this one stalled) stops the work at once.

Stopping (SIGTERM or SIGINT): no new claim; the running job is cancelled and put back in
the queue with its run not counted, so a restart of the service never loses a job nor
spends one of its attempts. A worker killed outright leaves a lease that runs out; any
worker then queues the job again (at its start and every lease period), and fails it
with a reason after FACE_API_VIDEO_MAX_ATTEMPTS interrupted runs.

Liveness: with FACE_API_VIDEO_HEARTBEAT_FILE set, the worker touches that file on every turn
of its loop (at least every FACE_API_VIDEO_POLL_S, or 5 s after a failed run) and, while a
job runs, at every lease renewal; a probe that finds it stale finds a worker stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.config
import os
import signal
import socket
import sqlite3
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import databases
import sqlalchemy as sa

from frontend.inference.catalog import Unsupported
from frontend.inference.endpoints import EndpointPool
from frontend.inference.served import ServedPipelines
from frontend.inference.shared_memory import frontend_shm_prefix
from frontend.inference.triton import InferenceRejected, TritonClient, TritonUnavailable
from frontend.observability.logs import logging_config
from frontend.persistence.database import create_database
from frontend.persistence.tables import images
from frontend.settings import Settings
from frontend.storage import ObjectNotFound, ObjectStore, ObjectStoreError, open_object_store
from frontend.video import jobs as queue
from frontend.video.jobs import output_key

if TYPE_CHECKING:
    from frontend.video.pipeline import VideoOptions

# The video pipeline (PyAV, OpenCV, the tracker: ~40 MB) and the archive's services (FastAPI)
# are imported when a job needs them, not at start: an idle worker, the usual case, stays small.

log = logging.getLogger("face_api.video")

PROGRESS_INTERVAL_S = 1.0
# After a run failed for a passing reason (Triton or storage away), wait before the next claim.
BACKOFF_S = 5.0
# What a database that is down raises, on either backend.
DATABASE_ERRORS = (OSError, TimeoutError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


class _Lost(Exception):
    """The job is no longer this worker's: stop without writing anything more."""


def options_from(parameters: dict[str, Any]) -> VideoOptions:
    """The pipeline's VideoOptions from a job's stored parameters (unknown names ignored, so a
    job queued by another version of the service still runs)."""
    from frontend.video.pipeline import VideoOptions

    known = {field.name for field in fields(VideoOptions)}
    return VideoOptions(**{name: value for name, value in parameters.items() if name in known})


def failure_of(error: BaseException) -> tuple[bool, str]:
    """(retry: a passing cause, the reason the caller reads) for an error that ended a run."""
    from frontend.video.io import VideoError

    if isinstance(error, VideoError):
        return False, f"not a usable video: {error}"
    if isinstance(error, ObjectNotFound):
        return False, "the uploaded video is no longer in object storage"
    if isinstance(error, TritonUnavailable):
        return True, "the inference server was unavailable"
    if isinstance(error, ObjectStoreError):
        return True, "object storage was unavailable"
    if isinstance(error, InferenceRejected):
        return False, "the inference server could not process this video with these parameters"
    if isinstance(error, Unsupported):
        return False, str(error)
    if isinstance(error, ValueError):
        return False, f"the job's parameters are not usable: {error}"
    return False, "the video could not be processed (an internal error; the worker's log has the details)"


class Worker:
    def __init__(self, settings: Settings, database: databases.Database, objects: ObjectStore,
                 triton: TritonClient, catalog: ServedPipelines, name: str | None = None):
        self.settings = settings
        self.database = database
        self.objects = objects
        self.triton = triton
        self.catalog = catalog
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.lease_s = settings.video_lease_s
        self.heartbeat = Path(settings.video_heartbeat_file) if settings.video_heartbeat_file else None
        self._heartbeat_failed = False

    # --- the loop ---

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until ``stop`` is set."""
        next_requeue = 0.0
        log.info("video worker %s waiting for jobs", self.name)
        while not stop.is_set():
            self.beat()
            if time.monotonic() >= next_requeue:
                await self.requeue_expired()
                next_requeue = time.monotonic() + self.lease_s
            try:
                held = await queue.claim(self.database, self.name, self.lease_s)
            except DATABASE_ERRORS as error:
                log.warning("cannot claim video jobs, the database failed: %r", error)
                held = None
            if held is None:
                await _wait(stop, self.settings.video_poll_s)
                continue
            if await self.run_job(held, stop) == queue.QUEUED:
                await _wait(stop, BACKOFF_S)

    def beat(self) -> None:
        """Touch the heartbeat file (FACE_API_VIDEO_HEARTBEAT_FILE), whose age a liveness probe reads."""
        if self.heartbeat is None:
            return
        try:
            self.heartbeat.touch()
        except OSError as error:
            if not self._heartbeat_failed:  # once: the probe restarts the worker anyway
                log.warning("cannot touch the heartbeat file %s: %r", self.heartbeat, error)
            self._heartbeat_failed = True
        else:
            self._heartbeat_failed = False

    async def requeue_expired(self) -> None:
        try:
            queued, failed = await queue.requeue_expired(self.database, self.settings.video_max_attempts)
        except DATABASE_ERRORS as error:
            log.warning("cannot look for abandoned video jobs, the database failed: %r", error)
            return
        for job_id in queued:
            log.warning("video job %s was abandoned by its worker (lease ran out): queued again", job_id)
        for job_id in failed:
            log.warning("video job %s was interrupted %d times: failed", job_id,
                        self.settings.video_max_attempts)

    async def run_job(self, held: queue.Claim, stop: asyncio.Event) -> str | None:
        """Run one claimed job to its end, or put it back when ``stop`` comes first; the state it
        was left in (None: it was no longer ours)."""
        log.info("video job %s: run %d started", held.id, held.attempt)
        lost = asyncio.Event()
        work = asyncio.create_task(self.process(held))
        keeper = asyncio.create_task(self._keep_lease(held, work, lost))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if lost.is_set() or work.cancelled():
                return None  # the keeper found the job gone and cancelled the work
            if not work.done():
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work
                if lost.is_set():
                    return None  # lost meanwhile: not ours to put back
                try:
                    released = await queue.release(self.database, held)
                except DATABASE_ERRORS as error:  # its lease runs out and it is queued again then
                    log.warning("video job %s could not be put back (%r); its lease will expire", held.id,
                                error)
                    return None
                log.info("video job %s put back in the queue: this worker is stopping", held.id)
                return queue.QUEUED if released else None
            return work.result()
        finally:
            for task in (keeper, stopping):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _keep_lease(self, held: queue.Claim, work: asyncio.Task, lost: asyncio.Event) -> None:
        """Renew the lease until the work ends; once the job is no longer ours, set ``lost`` and
        cancel the work."""
        while not work.done():
            self.beat()
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await queue.renew(self.database, held, self.lease_s):
                    log.warning("video job %s is no longer this worker's (deleted, or given to another "
                                "worker): stopping it", held.id)
                    lost.set()
                    work.cancel()
                    return
            except DATABASE_ERRORS as error:
                log.warning("video job %s: lease not renewed, the database failed: %r", held.id, error)

    # --- one job ---

    async def process(self, held: queue.Claim) -> str | None:
        """Run the job and record how it ended; the state it ended in (None: no longer ours)."""
        try:
            return await self._process(held)
        except asyncio.CancelledError:
            raise
        except _Lost:
            log.warning("video job %s is no longer this worker's: its result is dropped", held.id)
            return None
        except Exception as error:
            retry, reason = failure_of(error)
            if retry:
                log.warning("video job %s, run %d: %s (%r)", held.id, held.attempt, reason, error)
            elif reason.startswith("the video could not be processed"):
                log.exception("video job %s failed", held.id)
            else:
                log.info("video job %s failed: %s", held.id, reason)
            try:
                if retry:
                    return await queue.retry_or_fail(self.database, held, reason,
                                                     self.settings.video_max_attempts)
                return queue.FAILED if await queue.fail(self.database, held, reason) else None
            except DATABASE_ERRORS as db_error:  # the lease runs out; the job is queued again then
                log.warning("video job %s: its end could not be recorded: %r", held.id, db_error)
                return None

    async def _process(self, held: queue.Claim) -> str | None:
        started = time.perf_counter()
        options = options_from(held.parameters)
        source_key = await self.database.fetch_val(
            sa.select(images.c.object_key).where(images.c.id == held.image_id))
        if source_key is None:
            raise _Lost  # the image was deleted, and the job with it
        temporary = tempfile.TemporaryDirectory(prefix="face-api-video-", dir=self.settings.video_temp_dir)
        with temporary as folder:
            source = Path(folder) / "input"
            clock = time.perf_counter()
            await self.objects.get_file(source_key, source)
            download_ms = _ms(clock)
            key, content_type = output_key(held.id, options.container)
            target = Path(folder) / f"output.{key.rsplit('.', 1)[-1]}"
            from frontend.video import pipeline as video_pipeline

            result = await video_pipeline.anonymize(source, target, self.triton, self.catalog.detect(),
                                                    options, self._progress(held))
            clock = time.perf_counter()
            await self.objects.put_file(key, target, content_type)
            upload_ms = _ms(clock)
            size = target.stat().st_size
        pipeline_timings = dict(result.timings)
        pipeline_ms = pipeline_timings.pop("total_ms", None)
        waited_s = (held.started_at - held.created_at).total_seconds()
        timings = {"queued_ms": round(max(0.0, waited_s * 1000), 1),
                   "download_ms": download_ms, **pipeline_timings, "pipeline_ms": pipeline_ms,
                   "upload_ms": upload_ms, "total_ms": _ms(started)}
        summary = {"input": held.info, "frames": result.frames, "faces_masked": result.faces_masked,
                   "tracks": result.tracks, "timings": timings,
                   "output": {"container": options.container, "codec": options.codec, "size_bytes": size,
                              "content_type": content_type}}
        if not await queue.finish(self.database, held, output_key=key, content_type=content_type,
                                  size_bytes=size, frames=result.frames, faces=result.tracks, result=summary,
                                  total_ms=timings["total_ms"]):
            from frontend.services.archive.cleanup import queue_for_deletion  # rare: not at start

            await queue_for_deletion(self.database, [key], f"video job {held.id} gone before it was done")
            raise _Lost
        log.info("video job %s done: %d frames, %d faces, %.1f s", held.id, result.frames, result.tracks,
                 timings["total_ms"] / 1000)
        return queue.DONE

    def _progress(self, held: queue.Claim):
        throttle = queue.Throttle(PROGRESS_INTERVAL_S)

        async def report(done: int, total: int | None) -> None:
            if not throttle.ready() and not (total is not None and done >= total):
                return
            try:
                still_ours = await queue.progress(self.database, held, done, total, self.lease_s)
            except DATABASE_ERRORS as error:  # progress is a courtesy: the work goes on
                log.warning("video job %s: progress not recorded: %r", held.id, error)
                return
            if not still_ours:
                raise _Lost

        return report


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 1)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Open the database, object storage and Triton as a frontend worker does, then run jobs."""
    async with contextlib.AsyncExitStack() as stack:
        database = create_database(settings.database_url)
        await database.connect()
        stack.push_async_callback(database.disconnect)
        objects = open_object_store(settings)
        await objects.start()
        stack.push_async_callback(objects.close)
        # Regions named after the supervisor (this process's parent), as gunicorn's workers do,
        # so ./face-api serve removes what a killed worker left.
        shm_prefix = frontend_shm_prefix(os.getppid()) if settings.triton_shared_memory else None
        triton = TritonClient(settings.triton_url, settings.triton_timeout_s, shm_prefix,
                              endpoints=EndpointPool(settings.triton_url, settings.triton_check_interval_s,
                                                     settings.triton_dns_refresh_s),
                              shared_memory_bytes=settings.triton_shared_memory_bytes,
                              reclaim_s=settings.shared_memory_reclaim_s)
        await triton.start()
        stack.push_async_callback(triton.close)
        catalog = ServedPipelines(triton, settings.detector, settings.recognizer, settings.catalog_refresh_s)
        await catalog.start()
        stack.push_async_callback(catalog.close)
        await Worker(settings, database, objects, triton, catalog).run(stop)


def main() -> int:
    settings = Settings()
    logging.config.dictConfig(logging_config(settings.log_format))
    if not (settings.database_enabled and settings.storage_enabled):
        log.error("video jobs need the database and object storage (FACE_API_DATABASE_ENABLED and "
                  "FACE_API_STORAGE_ENABLED): nothing to do")
        return 2

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(run())
    log.info("video worker %s:%d stopped", socket.gethostname(), os.getpid())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
