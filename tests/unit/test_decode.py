"""Image decoding: pure logic on real sample photos, no server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from frontend.errors import ApiError
from frontend.imaging.decode import decode_image

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
LIMIT = 50_000_000


def test_truncated_jpeg_is_a_client_error():
    data = (SAMPLES / "gdp.jpg").read_bytes()
    with pytest.raises(ApiError) as error:
        decode_image(data[:2000], LIMIT)
    assert error.value.status_code == 400 and "truncated" in error.value.detail


def test_concurrent_decodes_do_not_see_each_others_truncation():
    # Regression: a truncated upload decoding in one thread once made a sound
    # upload decoding at the same moment in another thread fail as "truncated".
    sound = (SAMPLES / "yaoming.jpg").read_bytes()
    truncated = (SAMPLES / "gdp.jpg").read_bytes()[:2000]
    wrong: list[str] = []
    start = threading.Barrier(4)

    def decode_many(data: bytes, should_fail: bool) -> None:
        start.wait()
        for _ in range(60):
            try:
                decode_image(data, LIMIT)
                failed = False
            except ApiError:
                failed = True
            if failed != should_fail:
                wrong.append("sound photo rejected" if failed else "truncated photo accepted")

    threads = [threading.Thread(target=decode_many, args=(data, fail))
               for data, fail in ((sound, False), (truncated, True)) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
