"""glibc malloc settings for the processes that move photo-sized tensors.

Every request allocates and frees buffers of megabytes in Triton, its Python
stubs and the frontend workers: the photo, the 4.9 MB detector blob, the
detector's outputs. By default glibc serves each of those with a fresh mmap
and gives it back on free, so every request page-faults (and zeroes) its
buffers anew, and with the dynamic threshold a process's heap is trimmed back
after each peak. Keeping blocks up to 32 MiB on the heap and trimming only
above 128 MiB free cut the letterbox stub's CPU per request from 8.1 to 2.4 ms
and raised /api/v1/detect throughput by ~20 % on the 2-core machine
(docs/performance.md). The cost is that each process keeps its peak working set.

Values already in the environment win, so an operator can change or drop them.
"""

from __future__ import annotations

from collections.abc import Mapping

TUNABLES = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),  # blocks below this come from the heap
    "MALLOC_TRIM_THRESHOLD_": str(128 * 1024 * 1024),  # give memory back only above this much free
}


def tuned_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """``environment`` plus the malloc tunables it does not set itself."""
    return {**TUNABLES, **environment}
