"""The GCRA arithmetic and the single-node SQLite store, shared by real processes."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from frontend.ratelimit.gcra import Rate, decide
from frontend.ratelimit.stores import SqliteStore


@pytest.mark.parametrize("text, count, period", [
    ("300/minute", 300, 60.0), ("150 / minute", 150, 60.0), ("1/second", 1, 1.0),
    ("10/hour", 10, 3600.0), (" 5/day ", 5, 86400.0),
])
def test_parse_rates(text, count, period):
    rate = Rate.parse(text)
    assert (rate.count, rate.period_s) == (count, period)
    assert Rate.parse(str(rate)) == rate


@pytest.mark.parametrize("text", ["", "0/minute", "-1/minute", "10/week", "10", "ten/minute", "10/min"])
def test_reject_bad_rates(text):
    with pytest.raises(ValueError, match="invalid rate"):
        Rate.parse(text)


def run(rate: Rate, times: list[float]) -> list[bool]:
    tat, allowed = None, []
    for now in times:
        decision, new_tat = decide(tat, now, rate)
        allowed.append(decision.allowed)
        tat = new_tat if new_tat is not None else tat
    return allowed


def test_a_fresh_caller_gets_the_whole_allowance_at_once_and_no_more():
    rate = Rate(5, 60.0)
    assert run(rate, [100.0] * 8) == [True] * 5 + [False] * 3


def test_allowance_refills_one_interval_at_a_time():
    rate = Rate(5, 60.0)  # one every 12 s
    times = [0.0] * 5 + [11.9, 12.0, 12.1, 24.0]
    assert run(rate, times) == [True] * 5 + [False, True, False, True]


def test_no_window_edge_lets_twice_the_limit_through():
    # A fixed window would allow 5 at 59.9 s and 5 more at 60.1 s.
    rate = Rate(5, 60.0)
    times = [59.9] * 5 + [60.1] * 5
    assert sum(run(rate, times)) == 5


def test_over_any_long_stretch_the_rate_holds():
    rate = Rate(10, 60.0)
    times = [i * 0.5 for i in range(1200)]  # 2 requests a second for 10 minutes
    # The burst, then one per 6-second interval elapsed: 10 + floor(599.5 / 6).
    assert sum(run(rate, times)) == 10 + 99


def test_decision_fields():
    rate = Rate(3, 60.0)
    first, tat = decide(None, 0.0, rate)
    assert (first.allowed, first.limit, first.remaining, first.retry_after_s) == (True, 3, 2, 0.0)
    assert first.reset_after_s == pytest.approx(20.0)
    second, tat = decide(tat, 0.0, rate)
    third, tat = decide(tat, 0.0, rate)
    assert (second.remaining, third.remaining) == (1, 0)
    refused, unchanged = decide(tat, 5.0, rate)
    assert not refused.allowed and unchanged is None
    assert refused.retry_after_s == pytest.approx(15.0)  # the next slot opens at 20 s
    assert refused.reset_after_s == pytest.approx(55.0)


@pytest.mark.parametrize("count, period", [(5, 60.0), (150, 60.0), (300, 60.0), (7, 1.0)])
def test_epoch_times_lose_no_request_to_round_off(count, period):
    """At real epoch times (~1.8e9 s) a double resolves only ~2e-7 s."""
    rate, tat, remaining = Rate(count, period), None, []
    now = 1_795_000_000.123
    for _ in range(count + 1):
        decision, new_tat = decide(tat, now, rate)
        remaining.append(decision.remaining if decision.allowed else None)
        tat = new_tat if new_tat is not None else tat
    assert remaining == [*range(count - 1, -1, -1), None]


def test_sqlite_store_counts_per_key(tmp_path):
    store = SqliteStore(tmp_path / "limits.sqlite3")
    rate = Rate(2, 60.0)
    assert [store.hit_sync("a", rate, now=1000.0).allowed for _ in range(3)] == [True, True, False]
    assert store.hit_sync("b", rate, now=1000.0).allowed  # another caller is not affected
    assert store.hit_sync("a", rate, now=1030.0).allowed  # one interval later


def _hammer(path: str, hits: int, queue) -> None:
    store = SqliteStore(path)
    rate = Rate(25, 3600.0)
    queue.put(sum(store.hit_sync("shared", rate).allowed for _ in range(hits)))


def test_sqlite_store_holds_the_limit_across_processes(tmp_path):
    """Four processes (as gunicorn workers are) share one allowance of 25."""
    path = str(tmp_path / "limits.sqlite3")
    SqliteStore(path)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_hammer, args=(path, 40, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    allowed = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert sum(allowed) == 25


def _open_at(path: str, start_at: float, queue) -> None:
    while time.time() < start_at:  # all processes open the new file at the same moment
        pass
    try:
        SqliteStore(path)
        queue.put("ok")
    except Exception as error:
        queue.put(repr(error))


def test_workers_starting_together_all_open_a_new_store(tmp_path):
    """gunicorn workers open the limiter file at once; none may fail ("database is locked")."""
    context = multiprocessing.get_context("fork")
    outcomes = []
    for attempt in range(10):
        path, queue = str(tmp_path / f"limits-{attempt}.sqlite3"), context.Queue()
        start_at = time.time() + 0.2
        racers = [context.Process(target=_open_at, args=(path, start_at, queue)) for _ in range(4)]
        for racer in racers:
            racer.start()
        outcomes += [queue.get(timeout=30) for _ in racers]
        for racer in racers:
            racer.join(timeout=10)
    assert outcomes == ["ok"] * 40
