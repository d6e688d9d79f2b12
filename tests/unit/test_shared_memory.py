"""The shared-memory slots of frontend/inference/shared_memory.py, on the real /dev/shm."""

from __future__ import annotations

import os

import numpy as np
import pytest

from frontend.inference.shared_memory import (
    GRANULE,
    KEEP_PAGES_BYTES,
    MAX_SLOT_BYTES,
    SHM_DIR,
    SlotPool,
    frontend_shm_prefix,
    orphaned_regions,
    remove_leftovers,
)


@pytest.fixture
def pool():
    pool = SlotPool(f"faceapi-test{os.getpid()}-", max_slots=2)
    yield pool
    pool.destroy()


def test_a_slot_is_a_dev_shm_file_of_whole_mebibytes(pool):
    slot = pool.acquire(3 * GRANULE + 1)
    assert slot.capacity == 4 * GRANULE
    assert (SHM_DIR / slot.name).stat().st_size == slot.capacity
    assert slot.key == "/" + slot.name and slot.name.startswith(pool.prefix)


def test_written_pixels_read_back_at_an_offset(pool):
    image = np.random.default_rng(0).integers(0, 256, (1, 37, 53, 3), dtype=np.uint8)
    slot = pool.acquire(2 * image.nbytes)
    assert slot.write(image) == image.nbytes
    # What another process (Triton) sees in the file, and a later read of a second copy.
    raw = (SHM_DIR / slot.name).read_bytes()
    assert raw[:image.nbytes] == image.tobytes()
    slot._map[image.nbytes:2 * image.nbytes] = image[..., ::-1].tobytes()
    np.testing.assert_array_equal(slot.read(image.shape, offset=image.nbytes), image[..., ::-1])


def test_slots_are_reused_smallest_fitting_first(pool):
    small, large = pool.acquire(GRANULE), pool.acquire(5 * GRANULE)
    pool.release(large)
    pool.release(small)
    assert pool.acquire(10) is small
    assert pool.acquire(2 * GRANULE) is large


def resident_bytes(slot) -> int:
    return (SHM_DIR / slot.name).stat().st_blocks * 512  # tmpfs pages that hold data


def test_a_large_slot_gives_its_pages_back_when_released_and_a_small_one_keeps_them(pool):
    large = pool.acquire(KEEP_PAGES_BYTES + GRANULE)
    small = pool.acquire(GRANULE)
    for slot in (large, small):
        slot.write(np.full(slot.capacity, 7, np.uint8))
        assert resident_bytes(slot) >= slot.capacity
    pool.release(large)
    pool.release(small)
    assert resident_bytes(large) == 0  # a burst of large photos leaves nothing resident
    assert (SHM_DIR / large.name).stat().st_size == large.capacity  # still the registered region
    assert resident_bytes(small) >= small.capacity
    again = pool.acquire(KEEP_PAGES_BYTES + GRANULE)
    assert again is large  # reused, so Triton's registration still holds
    image = np.arange(3 * 64 * 64, dtype=np.uint32).astype(np.uint8).reshape(1, 64, 64, 3)
    again.write(image)
    np.testing.assert_array_equal(again.read(image.shape, offset=0), image)


def test_every_slot_busy_or_too_large_means_no_slot(pool):
    assert pool.acquire(MAX_SLOT_BYTES + 1) is None
    first, second = pool.acquire(10), pool.acquire(10)
    assert first is not second
    assert pool.acquire(10) is None  # max_slots = 2, both in flight
    pool.release(first)
    assert pool.acquire(10) is first


def test_a_too_small_free_slot_is_retired_for_a_larger_one(pool):
    a, b = pool.acquire(GRANULE), pool.acquire(GRANULE)
    pool.release(a)
    bigger = pool.acquire(3 * GRANULE)
    assert bigger is not a and bigger.capacity == 3 * GRANULE
    assert pool.take_retired() == [a] and pool.take_retired() == []
    assert b in pool.all_slots() and (SHM_DIR / a.name).exists()  # still mapped until Triton lets go
    a.destroy()
    assert not (SHM_DIR / a.name).exists()


def test_forgetting_registrations_marks_every_slot(pool):
    a, b = pool.acquire(10), pool.acquire(10)
    a.registered = b.registered = True
    pool.release(a)
    pool.forget_registrations()
    assert not a.registered and not b.registered


def test_destroy_unlinks_every_region_and_leftovers_are_found_by_prefix(pool):
    names = [pool.acquire(10).name, pool.acquire(10).name]
    pool.destroy()
    assert not any((SHM_DIR / name).exists() for name in names)
    prefix = frontend_shm_prefix(999_999_999)
    (SHM_DIR / f"{prefix}1_1").write_bytes(b"x")
    (SHM_DIR / f"{prefix}2_1").write_bytes(b"x")
    assert remove_leftovers(prefix) == 2
    assert not list(SHM_DIR.glob(f"{prefix}*"))


def test_a_worker_holds_at_most_its_byte_bound():
    pool = SlotPool(f"faceapi-test{os.getpid()}-", max_slots=8, max_bytes=4 * GRANULE)
    try:
        first = pool.acquire(3 * GRANULE)
        assert pool.acquire(2 * GRANULE) is None  # 3 + 2 MiB > 4 MiB: the photo goes by gRPC
        second = pool.acquire(GRANULE)
        assert second is not None and pool.held_bytes() == 4 * GRANULE
        pool.release(first)
        assert pool.acquire(4 * GRANULE) is None  # replacing the 3 MiB slot would still exceed it
        assert pool.acquire(2 * GRANULE) is first
    finally:
        pool.destroy()


def test_regions_of_workers_that_died_are_found():
    prefix = frontend_shm_prefix(999_999_998)
    dead = 2**22 + 12345  # above pid_max's default: no such process
    mine, orphan = f"{prefix}{os.getpid()}_1", f"{prefix}{dead}_3"
    for name in (mine, orphan):
        (SHM_DIR / name).write_bytes(b"x")
    try:
        assert orphaned_regions(prefix) == [orphan]
    finally:
        remove_leftovers(prefix)


class _RegisteringServer:
    """Stands in for Triton's shared-memory registration: ``answer`` is what it says."""

    def __init__(self, answer: str | None):
        self.answer = answer

    async def register_system_shared_memory(self, name, key, size, client_timeout=None):
        from tritonclient.utils import InferenceServerException

        if self.answer:
            raise InferenceServerException(self.answer, status="StatusCode.INVALID_ARGUMENT")

    async def close(self):
        pass


@pytest.mark.parametrize(("answer", "usable"), [
    (None, True),
    ("shared memory region 'x' already in manager", True),  # still registered: use it
    ("Unable to open shared memory region", False),  # Triton cannot map it: gRPC from now on
])
async def test_a_registration_answer_decides_whether_photos_go_through_shared_memory(answer, usable):
    from frontend.inference.endpoints import EndpointPool
    from frontend.inference.triton import TritonClient

    pool = EndpointPool("127.0.0.1:1", client_factory=lambda address: _RegisteringServer(answer))
    client = TritonClient("127.0.0.1:1", 5, f"faceapi-test{os.getpid()}-", endpoints=pool)
    try:
        photo = np.zeros((1, 8, 8, 3), np.uint8)
        held = await client._slot_for(pool.endpoints[0], photo, 1)
        assert (held is not None) == usable
        if held is not None:
            assert held.registered
            client._slots.release(held)
        # A request that still holds a slot can always give it back.
        assert client._slots is not None
        assert (await client._slot_for(pool.endpoints[0], photo, 1) is not None) == usable
    finally:
        client._slots.destroy()
