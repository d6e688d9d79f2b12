"""When an onnxruntime session's arena gives memory back (runtime/onnx_runner.py).

The arena keeps the largest working set a run ever needed: a recognizer that
once embedded 32 faces would hold ~300 MB for good, where one face needs
~70 MB. Giving it back after every large run costs the next large run its page
faults again (~10 % of a batch of 8–22 faces). So a run of more than
``shrink_above`` items leaves the arena grown, and it shrinks at the end of the
next small run, or, when no run comes, once the session has been quiet for
``quiet_s`` seconds (the runner then makes a one-item run for it). While large
runs keep coming the arena stays grown, and successive ones grow it somewhat
beyond what one needs (a recognizer instance's RSS: 213 MB after one 22-face
batch, 282 MB after two, where shrinking after each kept 180 MB); an idle
instance is back to its small size within ``quiet_s`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

SHRINK_ABOVE = 4  # items in one run
SHRINK_WHEN_IDLE_S = 3.0  # a grown arena shrinks after this long without a run


class ArenaPolicy:
    """``deferred=False`` (a model that cannot make a one-item run: a free dimension) shrinks
    at the end of every large run instead."""

    def __init__(self, shrink_above: int, quiet_s: float, deferred: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self.shrink_above = shrink_above
        self.quiet_s = quiet_s
        self.deferred = deferred
        self.clock = clock
        self.grown = False  # a large run happened since the arena last shrank
        self.running = 0
        self.last_end = clock()
        self.lock = threading.Lock()

    def start(self, items: int) -> bool:
        """A run of ``items`` begins: whether it should shrink the arena when it ends."""
        with self.lock:
            self.running += 1
            if items > self.shrink_above:
                self.grown = self.deferred
                return not self.deferred
            shrink, self.grown = self.grown, False
            return shrink

    def end(self) -> None:
        with self.lock:
            self.running -= 1
            self.last_end = self.clock()

    def quiet_shrink_due(self) -> bool:
        """Whether the arena is grown and the session has been idle for ``quiet_s``
        (then it counts as shrunk: the caller makes the shrinking run)."""
        with self.lock:
            if self.grown and not self.running and self.clock() - self.last_end >= self.quiet_s:
                self.grown = False
                return True
            return False
