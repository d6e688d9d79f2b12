"""The last hour of the frontend's own metrics, minute by minute, for the console.

/metrics holds running totals; a rate, a p95 or an error ratio "over the last
hour" needs where those totals stood earlier. Every worker wakes every few
seconds and, if nobody has yet done it this minute, takes a snapshot of the
totals summed over all workers (request count, 5xx count, the latency
histogram) into ``history.json`` beside the metrics files; a file lock makes
one worker do it per minute. ``summarise`` turns the snapshots and the totals
now into the figures of GET /api/v1/admin/metrics/recent. Without a metrics
folder (one process, tests) the snapshots live in memory.

Scrapes (route /metrics) are left out: they would be most of an idle service's traffic.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from anyio import to_thread
from prometheus_client import CollectorRegistry

from frontend.observability import metrics

log = logging.getLogger("face_api.metrics")

STEP_S = 60
WINDOW_S = 3600
IGNORED_ROUTES = {"/metrics"}
BOUNDS = (*metrics.LATENCY_BUCKETS, math.inf)


@dataclass(frozen=True)
class Snapshot:
    at: float  # epoch seconds
    requests: float
    errors: float  # 5xx answers
    buckets: tuple[float, ...]  # cumulative latency counts for each of BOUNDS


def take(registry: CollectorRegistry, at: float) -> Snapshot:
    """The totals now, over every route but IGNORED_ROUTES."""
    requests = errors = 0.0
    buckets = [0.0] * len(BOUNDS)
    for family in registry.collect():
        for sample in family.samples:
            if sample.labels.get("route") in IGNORED_ROUTES:
                continue
            if sample.name == "face_api_http_requests_total":
                requests += sample.value
                if sample.labels.get("status", "").startswith("5"):
                    errors += sample.value
            elif sample.name == "face_api_http_request_duration_seconds_bucket":
                buckets[BOUNDS.index(float(sample.labels["le"]))] += sample.value
    return Snapshot(at, requests, errors, tuple(buckets))


def quantile(q: float, buckets: tuple[float, ...]) -> float | None:
    """Like PromQL's histogram_quantile over cumulative ``buckets`` (of BOUNDS); None when empty."""
    total = buckets[-1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(BOUNDS, buckets):
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


def _delta(newer: Snapshot, older: Snapshot) -> Snapshot:
    """What happened between two snapshots; a total that fell (the service restarted and
    counts began again) counts from zero, as Prometheus treats a counter reset."""
    def minus(a: float, b: float) -> float:
        return a - b if a >= b else a
    if newer.requests < older.requests:  # one reset resets everything
        return Snapshot(newer.at - older.at, newer.requests, newer.errors, newer.buckets)
    return Snapshot(newer.at - older.at, minus(newer.requests, older.requests),
                    minus(newer.errors, older.errors),
                    tuple(minus(a, b) for a, b in zip(newer.buckets, older.buckets)))


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _figures(change: Snapshot) -> dict:
    p95 = quantile(0.95, change.buckets)
    return {"requests": int(round(change.requests)),
            "rate_per_s": round(change.requests / change.at, 4) if change.at > 0 else 0.0,
            "errors": int(round(change.errors)),
            "error_ratio": round(change.errors / change.requests, 4) if change.requests else 0.0,
            "p95_ms": round(p95 * 1000.0, 1) if p95 is not None else None}


def summarise(snapshots: list[Snapshot], now: Snapshot) -> dict:
    """The window's figures and one point per step between consecutive snapshots."""
    kept = [s for s in snapshots if now.at - s.at <= WINDOW_S and s.at < now.at]
    start = kept[0] if kept else Snapshot(now.at, 0.0, 0.0, (0.0,) * len(BOUNDS))
    points = [{"time": _iso(newer.at), **_figures(_delta(newer, older))}
              for older, newer in zip(kept, kept[1:])]
    return {"window_s": WINDOW_S, "step_s": STEP_S, "since": _iso(start.at),
            **_figures(_delta(now, start)), "points": points}


class History:
    """The snapshots of one frontend node (``folder``: its metrics folder, or None: in memory)."""

    def __init__(self, folder: str | None):
        self.file = Path(folder) / "history.json" if folder else None
        self._memory: list[Snapshot] = []

    def snapshots(self) -> list[Snapshot]:
        if self.file is None:
            return list(self._memory)
        try:
            raw = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return []
        return [Snapshot(s["at"], s["requests"], s["errors"], tuple(s["buckets"])) for s in raw]

    def record(self, now: float | None = None) -> bool:
        """Add a snapshot when the newest is a step old (or there is none); True if one was added.
        Another worker holding the lock means it is doing just that: nothing to do here."""
        now = time.time() if now is None else now
        if self.file is None:
            return self._append_to(self._memory, now)
        with open(self.file.with_suffix(".lock"), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            snapshots = self.snapshots()
            if not self._append_to(snapshots, now):
                return False
            partial = self.file.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps([asdict(s) for s in snapshots]))
            partial.replace(self.file)  # readers never see half a file
            return True

    @staticmethod
    def _append_to(snapshots: list[Snapshot], now: float) -> bool:
        if snapshots and now - snapshots[-1].at < STEP_S:
            return False
        snapshots.append(take(metrics.collect_registry(), now))
        del snapshots[:-(WINDOW_S // STEP_S + 2)]  # an hour of steps, and the one before it
        return True

    def recent(self, now: float | None = None) -> dict:
        """GET /api/v1/admin/metrics/recent's answer."""
        now = time.time() if now is None else now
        return summarise(self.snapshots(), take(metrics.collect_registry(), now))


async def keep_recording(history: History, every_s: float = 15.0) -> None:
    """Run for the worker's life: try to add a snapshot every few seconds (off the event loop)."""
    while True:
        try:
            await to_thread.run_sync(history.record)
        except Exception as error:  # a full disk must not end the loop
            log.warning("metrics history not recorded: %r", error)
        await asyncio.sleep(every_s)
