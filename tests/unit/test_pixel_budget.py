"""The per-worker budget of decoded pixels (frontend/imaging/budget.py), and the reduced decode
that keeps a detect request's share of it small."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from frontend.errors import ApiError
from frontend.imaging.budget import PixelBudget
from frontend.imaging.decode import DecodedImage, dct_reduction, decode_for_detection, decode_image
from frontend.inference.triton import Faces
from frontend.services.detection import on_upload


async def test_requests_within_the_budget_run_at_once():
    budget = PixelBudget(100, wait_s=1)
    async with budget.hold(60):
        async with budget.hold(40):
            assert budget.in_use == 100
    assert budget.in_use == 0


async def test_a_photo_larger_than_the_whole_budget_is_refused_at_once():
    with pytest.raises(ApiError) as refused:
        await PixelBudget(100, wait_s=5).acquire(101)
    assert refused.value.status_code == 413 and "FACE_API_PIXEL_BUDGET" in refused.value.detail


async def test_a_request_that_does_not_fit_waits_then_gets_in():
    budget = PixelBudget(100, wait_s=5)
    await budget.acquire(80)
    waiting = asyncio.create_task(budget.acquire(50))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    budget.release(80)
    await asyncio.wait_for(waiting, 1)
    assert budget.in_use == 50


async def test_waiting_too_long_is_a_503_with_retry_after_and_leaves_nothing_held():
    budget = PixelBudget(100, wait_s=0.05)
    await budget.acquire(80)
    with pytest.raises(ApiError) as refused:
        await budget.acquire(50)
    assert refused.value.status_code == 503 and refused.value.headers["Retry-After"] == "1"
    budget.release(80)
    assert budget.in_use == 0 and not budget._queue


async def test_first_come_first_served_so_a_large_photo_is_not_starved():
    budget = PixelBudget(100, wait_s=5)
    await budget.acquire(60)
    large = asyncio.create_task(budget.acquire(70))
    await asyncio.sleep(0.01)
    medium = asyncio.create_task(budget.acquire(30))  # would fit now, but the large one came first
    await asyncio.sleep(0.01)
    assert not medium.done()
    budget.release(60)
    await asyncio.wait_for(large, 1)
    await asyncio.wait_for(medium, 1)
    assert budget.in_use == 100


async def test_small_photos_go_ahead_of_a_waiting_large_one_when_they_fit():
    budget = PixelBudget(100, wait_s=5)
    await budget.acquire(60)
    large = asyncio.create_task(budget.acquire(70))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(budget.acquire(10), 1)  # ordinary traffic is not held up
    assert not large.done() and budget.in_use == 70
    budget.release(10)
    budget.release(60)
    await asyncio.wait_for(large, 1)


async def test_a_cancelled_waiter_gives_its_place_up():
    budget = PixelBudget(100, wait_s=5)
    await budget.acquire(60)
    large = asyncio.create_task(budget.acquire(90))
    await asyncio.sleep(0.01)
    medium = asyncio.create_task(budget.acquire(30))
    await asyncio.sleep(0.01)
    assert not medium.done()
    large.cancel()  # the client went away
    await asyncio.wait_for(medium, 1)
    assert budget.in_use == 90 and not budget._queue


# --- what a detect request decodes (frontend/imaging/decode.py) ---

def jpeg(width: int, height: int, orientation: int = 1) -> bytes:
    image = Image.new("RGB", (width, height), (120, 80, 40))
    image.paste((250, 250, 250), (0, 0, width // 4, height // 4))  # a bright top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize(("size", "reduction"), [
    ((640, 480), 1), ((1279, 900), 1), ((1280, 720), 2), ((4000, 3000), 4), ((6000, 4000), 8),
    ((20000, 300), 8), ((300, 20000), 8), ((2000, 1900), 2),
])
def test_the_reduction_keeps_the_photo_at_least_as_large_as_the_detector_input(size, reduction):
    assert dct_reduction(*size, (640, 640)) == reduction
    scale = min(640 / size[0], 640 / size[1])
    assert 1 / reduction >= scale


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_large_jpeg_is_decoded_reduced_and_keeps_the_uploads_size(orientation):
    data = jpeg(2600, 1400, orientation)
    image = decode_for_detection(data, 50_000_000, (640, 640))
    expected = (2600, 1400) if orientation == 1 else (1400, 2600)
    assert (image.width, image.height) == expected
    assert image.pixels.shape[:2] == (expected[1] // 4, expected[0] // 4)
    # The same upright picture as the full decode, a quarter the size.
    whole = decode_image(data, 50_000_000).pixels[::4, ::4].astype(np.int16)
    assert np.abs(whole - image.pixels).mean() < 8


def test_small_jpegs_and_other_formats_are_decoded_whole():
    image = decode_for_detection(jpeg(800, 600), 50_000_000, (640, 640))
    assert image.size is None and image.pixels.shape[:2] == (600, 800)


def test_faces_found_on_reduced_pixels_are_mapped_back_onto_the_upload():
    faces = Faces(scores=np.array([0.9], np.float32), boxes=np.array([[10, 20, 30, 40]], np.float32),
                  landmarks=np.full((1, 5, 2), 15, np.float32), scale=(0.5, 0.5), candidates_before_nms=1,
                  candidates_after_nms=1, inference_ms=1, preprocess_ms=0, blob_ms=0, decode_ms=0, nms_ms=0)
    reduced = DecodedImage(np.zeros((100, 200, 3), np.uint8), 3, "JPEG", size=(800, 400))
    mapped = on_upload(faces, reduced)
    assert mapped.boxes.tolist() == [[40, 80, 120, 160]]
    assert mapped.landmarks[0, 0].tolist() == [60, 60] and mapped.scale == (0.125, 0.125)
    whole = DecodedImage(np.zeros((400, 800, 3), np.uint8), 3, "JPEG")
    assert on_upload(faces, whole) is faces
