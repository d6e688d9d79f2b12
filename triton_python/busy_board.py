"""Which instances of a model are running right now, shared between their processes.

Triton runs each instance of a Python-backend model in its own stub process. An instance
that finds all the others idle may use more threads than its share of the cores (a lone
request then runs on every core); one that finds another running keeps to its share, so
a loaded server is not oversubscribed. The board is one byte per instance in a small
file mapped by every instance of the model (in /dev/shm where there is one): no lock, a
byte write is atomic, and a stale read costs at most one run with the wrong thread count.
"""

from __future__ import annotations

import mmap
import os
import re
import tempfile
from pathlib import Path

SLOTS = 64  # instances of one model that the board tells apart


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
            if os.fstat(descriptor).st_size < SLOTS:
                os.ftruncate(descriptor, SLOTS)  # zeros: every instance idle
            self.map = mmap.mmap(descriptor, SLOTS)
        finally:
            os.close(descriptor)

    def claim(self) -> bool:
        """Mark this instance running; True when no other instance is. Marking first, then
        looking, means two instances starting together both see each other."""
        self.map[self.slot] = 1
        return self.map[:].count(1) == 1

    def release(self) -> None:
        self.map[self.slot] = 0

    def close(self, remove: bool = False) -> None:
        self.map.close()
        if remove:
            self.path.unlink(missing_ok=True)
