"""Photos to Triton through system shared memory instead of inside the gRPC message.

A photo is megabytes; inside a gRPC request it is serialised into protobuf by
the worker, framed, copied through the socket and parsed again by Triton. When
Triton runs on the same host (the embedded mode), the worker writes the pixels
into a /dev/shm region that Triton has registered and the request only names
it, and the mask pipeline writes its output photo back into the same region.

Each worker keeps a few regions ("slots"), one per request in flight, grown on
demand and reused; a slot's region is registered with Triton once. When Triton
forgets its registrations (it restarted) the client re-registers the slots; a
photo too large for a slot, or a request that finds every slot busy or the
worker's regions at their byte bound, simply travels inside the gRPC message.

A worker that is killed cannot remove its regions; the other workers find them
(the owner's pid is in the name) and reclaim them: unregistered from Triton,
unlinked from /dev/shm.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHM_DIR = Path("/dev/shm")
MAX_SLOT_BYTES = 64 * 1024 * 1024  # input and output of one 10-megapixel photo; larger ones use gRPC
GRANULE = 1024 * 1024  # regions grow in whole MiB so that similar photos share a size
# A slot above this size gives its pages back to the system when it is released: a burst of
# large photos would otherwise leave every worker holding (and Triton mapping) tens of MB of
# /dev/shm each. Ordinary photos (up to ~4 Mpx, in and out) keep their pages warm.
KEEP_PAGES_BYTES = 24 * 1024 * 1024


@dataclass(eq=False)
class Slot:
    """One region: /dev/shm/<name>, which Triton knows as <name> once registered."""

    name: str
    capacity: int
    _map: mmap.mmap = field(repr=False)
    registered: bool = False

    @classmethod
    def create(cls, name: str, capacity: int) -> Slot:
        fd = os.open(SHM_DIR / name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, capacity)
            region = mmap.mmap(fd, capacity)
        finally:
            os.close(fd)
        return cls(name, capacity, region)

    @property
    def key(self) -> str:
        return "/" + self.name  # shm_open's name, as Triton's registration expects it

    def write(self, array: np.ndarray) -> int:
        """Copy ``array`` to the start of the region; its size in bytes."""
        np.frombuffer(self._map, np.uint8, array.nbytes).reshape(array.shape)[...] = array
        return array.nbytes

    def read(self, shape: tuple[int, ...], offset: int) -> np.ndarray:
        """A copy of the uint8 array of ``shape`` that Triton wrote at ``offset``."""
        size = int(np.prod(shape))
        return np.frombuffer(self._map, np.uint8, size, offset).reshape(shape).copy()

    def give_back_pages(self) -> None:
        """Free the region's pages (tmpfs punches them out); it keeps its size, name and
        registration, and reads as zeros until written again."""
        self._map.madvise(mmap.MADV_REMOVE)

    def destroy(self) -> None:
        self._map.close()
        (SHM_DIR / self.name).unlink(missing_ok=True)


class SlotPool:
    """The regions of one worker process, named ``<prefix><pid>_<n>``, at most ``max_slots``
    of them and ``max_bytes`` in all."""

    def __init__(self, prefix: str, max_slots: int = 16, max_bytes: int = 256 * 1024 * 1024):
        self.shared_prefix = prefix
        self.prefix = f"{prefix}{os.getpid()}_"
        self.max_slots = max_slots
        self.max_bytes = max_bytes
        self._free: list[Slot] = []
        self._busy: set[Slot] = set()
        self._retired: list[Slot] = []  # replaced by a larger one: Triton must forget them first
        self._counter = 0

    @staticmethod
    def size_for(nbytes: int) -> int:
        return -(-nbytes // GRANULE) * GRANULE

    def acquire(self, nbytes: int) -> Slot | None:
        """A slot holding at least ``nbytes``, or None (too large, or every slot busy)."""
        needed = self.size_for(nbytes)
        if needed > MAX_SLOT_BYTES:
            return None
        fitting = [s for s in self._free if s.capacity >= needed]
        if fitting:
            slot = min(fitting, key=lambda s: s.capacity)
            self._free.remove(slot)
        elif (len(self._free) + len(self._busy) < self.max_slots
              and self.held_bytes() + needed <= self.max_bytes):
            slot = self._new(needed)
        elif self._free:  # too small, or no room for one more: replace the largest free one
            largest = max(self._free, key=lambda s: s.capacity)
            if self.held_bytes() - largest.capacity + needed > self.max_bytes:
                return None
            self._free.remove(largest)
            self._retired.append(largest)
            slot = self._new(needed)
        else:
            return None
        self._busy.add(slot)
        return slot

    def release(self, slot: Slot) -> None:
        """Back to the free slots; Triton is done with it (its output was copied out)."""
        self._busy.discard(slot)
        if slot.capacity > KEEP_PAGES_BYTES:
            slot.give_back_pages()
        self._free.append(slot)

    def forget_registrations(self) -> None:
        """Triton lost its registrations (it restarted): every slot registers again on next use."""
        for slot in (*self._free, *self._busy):
            slot.registered = False

    def take_retired(self) -> list[Slot]:
        retired, self._retired = self._retired, []
        return retired

    def held_bytes(self) -> int:
        """Bytes of the regions this worker holds (retired ones included until Triton forgets them)."""
        return sum(slot.capacity for slot in self.all_slots())

    def all_slots(self) -> list[Slot]:
        return [*self._free, *self._busy, *self._retired]

    def destroy(self) -> None:
        for slot in self.all_slots():
            slot.destroy()
        self._free, self._busy, self._retired = [], set(), []

    def _new(self, capacity: int) -> Slot:
        self._counter += 1
        return Slot.create(f"{self.prefix}{self._counter}", capacity)


def frontend_shm_prefix(master_pid: int) -> str:
    """The name prefix of every region of the workers of one gunicorn master."""
    return f"faceapi-fe{master_pid}-"


def orphaned_regions(prefix: str) -> list[str]:
    """Names of the /dev/shm regions ``<prefix><pid>_<n>`` whose worker ``pid`` no longer runs."""
    orphans = []
    for path in SHM_DIR.glob(f"{prefix}*_*"):
        pid = path.name[len(prefix):].split("_", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            orphans.append(path.name)
    return sorted(orphans)


def remove_leftovers(prefix: str) -> int:
    """Unlink the /dev/shm regions named ``<prefix>*`` (left by processes that were
    killed before they could); how many."""
    removed = 0
    for path in SHM_DIR.glob(f"{prefix}*"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
