"""glibc malloc settings for the processes that move photo-sized tensors.

Every request allocates and frees buffers of megabytes in Triton, its Python
stubs and the frontend workers: the photo, the 4.9 MB detector blob, the
detector's outputs. By default glibc serves each of those with a fresh mmap
and gives it back on free, so every request page-faults (and zeroes) its
buffers anew, and with the dynamic threshold a process's heap is trimmed back
after each peak. Keeping blocks up to 32 MiB on the heap and trimming only
above 128 MiB free cut the letterbox stub's CPU per request from 8.1 to 2.4 ms
and raised /api/v1/detect throughput by ~20 % on the 2-core machine
(docs/performance.md). Trimming above 32 MiB free keeps that (an ordinary
photo's buffers stay below it) while each of the ~20 processes gives back what
a burst of large photos left on its heap, instead of keeping up to 128 MiB.

Values already in the environment win, so an operator can change or drop them.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Mapping

TUNABLES = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),  # blocks below this come from the heap
    "MALLOC_TRIM_THRESHOLD_": str(32 * 1024 * 1024),  # give memory back only above this much free
}


# The frontend workers decode and encode photos on a pool of threads, and glibc gives each
# thread an arena of its own that keeps its peak: after a burst of large photos each worker
# held ~100 MB more on six arenas. Two arenas are plenty for threads that allocate a few
# large buffers per request.
FRONTEND_TUNABLES = {"MALLOC_ARENA_MAX": "2"}


def tuned_environment(environment: Mapping[str, str], frontend: bool = False) -> dict[str, str]:
    """``environment`` plus the malloc tunables it does not set itself (``frontend``: the workers')."""
    return {**TUNABLES, **(FRONTEND_TUNABLES if frontend else {}), **environment}


def give_back_free_memory() -> None:
    """Return this process's free heap to the system (glibc's malloc_trim).

    For the supervisor once Triton and the frontend run: checking the ONNX files
    against their configs at start-up left tens of MB free on its heap, below the
    trim threshold, that it would otherwise keep for as long as it runs.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
