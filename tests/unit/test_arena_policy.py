"""When an ONNX model's arena gives memory back: after the next small run, or once quiet."""

from __future__ import annotations

from triton_python.arena_policy import ArenaPolicy


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(policy: ArenaPolicy, items: int) -> bool:
    shrink = policy.start(items)
    policy.end()
    return shrink


def test_small_runs_never_shrink():
    policy = ArenaPolicy(shrink_above=4, quiet_s=3, clock=Clock())
    assert [run(policy, n) for n in (1, 4, 2, 1)] == [False] * 4


def test_a_stream_of_large_runs_keeps_the_arena_and_the_next_small_run_shrinks_it():
    policy = ArenaPolicy(shrink_above=4, quiet_s=3, clock=Clock())
    assert [run(policy, n) for n in (22, 8, 32)] == [False, False, False]
    assert run(policy, 1) is True
    assert run(policy, 1) is False  # once


def test_a_quiet_grown_arena_shrinks_once():
    clock = Clock()
    policy = ArenaPolicy(shrink_above=4, quiet_s=3, clock=clock)
    assert not policy.quiet_shrink_due()  # nothing grew
    run(policy, 22)
    clock.now += 2.9
    assert not policy.quiet_shrink_due()
    clock.now += 0.2
    assert policy.quiet_shrink_due()
    assert not policy.quiet_shrink_due()
    assert run(policy, 1) is False  # already given back


def test_no_quiet_shrink_while_a_run_is_in_progress():
    clock = Clock()
    policy = ArenaPolicy(shrink_above=4, quiet_s=3, clock=clock)
    policy.start(22)
    clock.now += 60
    assert not policy.quiet_shrink_due()
    policy.end()
    assert not policy.quiet_shrink_due()  # quiet counts from the end of the run
    clock.now += 3
    assert policy.quiet_shrink_due()


def test_without_a_one_item_run_every_large_run_shrinks():
    clock = Clock()
    policy = ArenaPolicy(shrink_above=4, quiet_s=3, deferred=False, clock=clock)
    assert [run(policy, n) for n in (22, 8, 1, 4)] == [True, True, False, False]
    clock.now += 60
    assert not policy.quiet_shrink_due()
