"""Photos to Triton through system shared memory instead of inside the gRPC message.

A photo is megabytes; inside a gRPC request it is serialised into protobuf by
the worker, framed, copied through the socket and parsed again by Triton. When
Triton runs on the same host (the embedded mode), the worker writes the pixels
into a /dev/shm region that Triton has registered and the request only names
it, and the mask pipeline writes its output photo back into the same region.

Each worker keeps a few regions ("slots"), one per request in flight, grown on
demand and reused; a slot's region is registered with Triton once. When Triton
forgets its registrations (it restarted) the client re-registers the slots; a
photo too large for a slot, or a request that finds every slot busy, simply
travels inside the gRPC message as before.
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

    def destroy(self) -> None:
        self._map.close()
        (SHM_DIR / self.name).unlink(missing_ok=True)


class SlotPool:
    """The regions of one worker process, named ``<prefix><pid>_<n>``."""

    def __init__(self, prefix: str, max_slots: int = 16):
        self.prefix = f"{prefix}{os.getpid()}_"
        self.max_slots = max_slots
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
        elif len(self._free) + len(self._busy) < self.max_slots:
            slot = self._new(needed)
        elif self._free:  # all slots exist but are too small: replace the largest free one
            largest = max(self._free, key=lambda s: s.capacity)
            self._free.remove(largest)
            self._retired.append(largest)
            slot = self._new(needed)
        else:
            return None
        self._busy.add(slot)
        return slot

    def release(self, slot: Slot) -> None:
        self._busy.discard(slot)
        self._free.append(slot)

    def forget_registrations(self) -> None:
        """Triton lost its registrations (it restarted): every slot registers again on next use."""
        for slot in (*self._free, *self._busy):
            slot.registered = False

    def take_retired(self) -> list[Slot]:
        retired, self._retired = self._retired, []
        return retired

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


def remove_leftovers(prefix: str) -> int:
    """Unlink the /dev/shm regions named ``<prefix>*`` (left by processes that were
    killed before they could); how many."""
    removed = 0
    for path in SHM_DIR.glob(f"{prefix}*"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
