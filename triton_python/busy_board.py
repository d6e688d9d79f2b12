"""Whether a model is quiet, shared between the processes of its instances.

Triton runs each instance of a Python-backend model in its own stub process. An instance
that finds the model quiet (no other instance running, and no run of any instance ended
in the last QUIET_S) may use more threads than its share of the cores: a lone request then
runs on every core. Under load some instance has always just finished (Triton hands the
next queued photo over at once), so the instances keep to their share and the cores are
not oversubscribed; a lone client's photos arrive well apart (HTTP, decoding, letterbox
and post-processing lie between two detector runs). The board is a small file mapped by
every instance of the model (in /dev/shm where there is one): per instance a busy byte
and the monotonic time its last run ended. No lock: a stale read costs at most one run
with the wrong thread count.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import tempfile
import time
from pathlib import Path

SLOTS = 64  # instances of one model that the board tells apart
SIZE = SLOTS + 8 * SLOTS  # busy bytes, then each instance's last end (float64, monotonic s)
QUIET_S = 0.005  # a lone client leaves ~15 ms or more between two runs; a queue, well under 1


PREFIX = "face-api-busy-"


def board_folder() -> Path:
    return Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())


def board_path(model: str, server_pid: int, folder: Path | None = None) -> Path:
    """The board of ``model`` in the server ``server_pid`` (every instance's parent)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model)
    return (folder or board_folder()) / f"{PREFIX}{safe}-{server_pid}"


def remove_stale(folder: Path | None = None) -> int:
    """Unlink the boards of servers that are gone (killed before their stubs could); how many."""
    removed = 0
    if not Path("/proc/self").exists():  # no way to tell a live server from a gone one
        return removed
    for path in (folder or board_folder()).glob(f"{PREFIX}*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def instance_slot(instance_name: str) -> int:
    """The instance's own byte: its index, the number Triton ends its name with
    ("scrfd_500m_0_1" -> 1)."""
    found = re.search(r"(\d+)$", instance_name)
    return int(found.group(1)) % SLOTS if found else 0


class BusyBoard:
    def __init__(self, path: Path, slot: int):
        self.path, self.slot = path, slot
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(descriptor).st_size < SIZE:
                os.ftruncate(descriptor, SIZE)  # zeros: every instance idle, long ago
            self.map = mmap.mmap(descriptor, SIZE)
        finally:
            os.close(descriptor)

    def claim(self, quiet_s: float = QUIET_S) -> bool:
        """Mark this instance running; True when the model is quiet: no other instance
        running and no run ended in the last ``quiet_s``. Marking first, then looking, means
        two instances starting together both see each other."""
        self.map[self.slot] = 1
        if self.map[:SLOTS].count(1) != 1:
            return False
        last_end = max(struct.unpack_from(f"{SLOTS}d", self.map, SLOTS))
        return time.monotonic() - last_end >= quiet_s

    def release(self) -> None:
        struct.pack_into("d", self.map, SLOTS + 8 * self.slot, time.monotonic())
        self.map[self.slot] = 0

    def close(self, remove: bool = False) -> None:
        self.map.close()
        if remove:
            self.path.unlink(missing_ok=True)
