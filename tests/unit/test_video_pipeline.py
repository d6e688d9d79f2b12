"""frontend/video/pipeline.py without Triton: the geometry of small upright frames, and whole
clips through the stages against a stand-in detector (order, masking, progress, failures)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from fractions import Fraction

import cv2
import numpy as np
import pytest

from frontend.inference.catalog import Pipeline
from frontend.video import io, pipeline
from frontend.video.pipeline import (
    VideoOptions,
    anonymize,
    detection_size,
    merged,
    stored_boxes,
    tile_origins,
    upright,
    zoomed_size,
)

DETECT = Pipeline(name="stand-in", kind="detect", detector="stand-in", input_size=(640, 640), landmarks=False)


@pytest.mark.parametrize(("size", "rotation", "expected"), [
    ((1920, 1080), 0, (640, 360)), ((1920, 1080), 90, (640, 360)), ((1080, 1920), 0, (360, 640)),
    ((3840, 2160), 270, (640, 360)), ((320, 240), 0, (320, 240)),  # never enlarged
])
def test_detection_size_fits_the_upright_frame_into_the_input(size, rotation, expected):
    assert detection_size(*size, rotation, (640, 640)) == expected


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_boxes_found_upright_land_on_the_stored_face(rotation):
    stored = np.zeros((90, 160, 3), np.uint8)  # the small stored frame (x 0..160, y 0..90)
    stored[20:50, 100:130] = 255  # a "face": x 100..130, y 20..50
    shown = upright(stored, rotation)
    rows, cols = np.nonzero(shown[..., 0])
    found = np.array([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]], np.float32)
    on_full = stored_boxes(found, rotation, small=(160, 90), full=(1920, 1080))
    np.testing.assert_allclose(on_full, [[100 * 12, 20 * 12, 130 * 12, 50 * 12]])


class StandIn:
    """Finds the white shapes on a frame (the clips below draw them) at least ``min_px``
    across, as a detector has a smallest face it sees; can be told to fail."""

    def __init__(self, fail_at: int | None = None, min_px: int = 1):
        self.calls = 0
        self.fail_at = fail_at
        self.min_px = min_px
        self.concurrent = self.most_concurrent = 0

    async def detect(self, name, pixels, confidence, nms_threshold, max_faces):
        self.calls += 1
        if self.fail_at is not None and self.calls > self.fail_at:
            raise RuntimeError("the detector broke")
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        await asyncio.sleep(0.002)
        self.concurrent -= 1
        bright = (pixels.min(axis=2) > 240).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(bright)
        boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:count]
                 if w >= self.min_px and h >= self.min_px]
        return _Faces(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32))


class _Faces:
    def __init__(self, boxes, scores):
        self.boxes, self.scores = boxes, scores


def _info(size, frames=None):
    return io.VideoInfo(width=size[0], height=size[1], fps=Fraction(25), frames=frames, duration_s=0.0,
                        rotation=0, has_audio=False, video_codec="h264", container="mp4", size_bytes=0)


def write_clip(path, frames=30, size=(320, 180)):
    """A grey clip with a white square moving right, textured so a blur shows."""
    info = _info(size)
    rng = np.random.default_rng(1)
    with io.VideoWriter(path, info, quality=10) as writer:
        for index in range(frames):
            frame = np.full((size[1], size[0], 3), 90, np.uint8)
            x = 40 + 4 * index
            frame[60:120, x:x + 60] = 255
            frame[70:110, x + 10:x + 50] = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
            frame[60:62, x:x + 60] = 255  # keep the square's outline white for the stand-in
            writer.write(frame)
    return path


async def test_a_clip_goes_through_in_order_with_every_frame_masked(tmp_path):
    src = write_clip(tmp_path / "in.mp4")
    dst = tmp_path / "out.mp4"
    reported = []

    async def progress(done, total):
        reported.append((done, total))

    triton = StandIn()
    options = VideoOptions(method="solid", in_flight=4, lookahead=3)
    result = await anonymize(src, dst, triton, DETECT, options, progress)
    assert result.frames == 30 and triton.calls == 30
    assert 1 < triton.most_concurrent <= 4
    assert result.faces_masked >= 30
    assert reported[-1] == (30, 30)
    assert set(result.timings) == {"decode_ms", "detect_ms", "mask_ms", "encode_ms", "total_ms"}
    out = list(io.read_frames(dst))
    assert len(out) == 30
    for index, frame in enumerate(out):
        x = 40 + 4 * index
        assert frame[75:105, x + 15:x + 45].mean() < 30, f"frame {index} not masked"


async def test_a_failing_detector_fails_the_clip_and_leaves_no_output(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "POLL_S", 0.01)
    src = write_clip(tmp_path / "in.mp4")
    dst = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="the detector broke"):
        await anonymize(src, dst, StandIn(fail_at=10), DETECT, VideoOptions())
    assert not dst.exists()


async def test_bad_options_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="METHOD"):
        await anonymize(tmp_path / "none.mp4", tmp_path / "out.mp4", StandIn(), DETECT,
                        VideoOptions(method="smudge"))


@pytest.mark.parametrize(("length", "tile", "expected"), [
    (320, 640, [0]), (640, 640, [0]), (1138, 640, [0, 498]), (1920, 640, [0, 427, 853, 1280]),
    (960, 320, [0, 213, 427, 640]),
])
def test_tiles_cover_the_side_overlapping(length, tile, expected):
    origins = tile_origins(length, tile)
    assert origins == expected
    assert origins[-1] + tile >= length
    assert all(b - a <= tile * 7 / 8 for a, b in zip(origins, origins[1:]))


@pytest.mark.parametrize(("size", "rotation", "zoomed", "tiles"), [
    ((1920, 1080), 0, (1138, 640), 2),    # 1152×648 at 1.8 would take a second row: 4 tiles
    ((1080, 1920), 90, (640, 1138), 2),   # stored sideways, upright 1080×1920: the same view
    ((1440, 1080), 0, (1152, 864), 4),    # 4:3: rows well apart, nothing to snap
    ((3840, 2160), 0, (1138, 640), 2),
])
def test_a_side_just_over_a_tile_is_zoomed_out_to_it(size, rotation, zoomed, tiles):
    stored = zoomed_size(*size, rotation, (640, 640), 1.8)
    assert stored == zoomed
    upright_w, upright_h = (stored[1], stored[0]) if rotation % 180 else stored
    assert len(tile_origins(upright_w, 640)) * len(tile_origins(upright_h, 640)) == tiles


def test_a_face_found_in_several_views_is_kept_once():
    boxes = np.array([[10, 10, 50, 50], [12, 11, 51, 52], [200, 200, 220, 220], [11, 9, 49, 50]], np.float32)
    scores = np.array([0.6, 0.9, 0.8, 0.7], np.float32)
    kept, kept_scores = merged(boxes, scores, 0.4)
    np.testing.assert_array_equal(kept, boxes[[1, 2]])
    np.testing.assert_allclose(kept_scores, [0.9, 0.8])
    assert len(merged(boxes, scores, 0.4, limit=1)[0]) == 1


async def test_tiles_find_faces_too_small_for_the_whole_view(tmp_path):
    """A 24 px face is 8 px in the whole view (960×540 into a 320 input): under the
    stand-in's 12 px it is missed there, found in the full-resolution tiles; a 300 px face,
    cut by the tiles' edges, comes from the whole view alone, and once."""
    size = (960, 540)
    src = tmp_path / "in.mp4"
    with io.VideoWriter(src, _info(size), quality=10) as writer:
        for index in range(12):
            frame = np.full((size[1], size[0], 3), 90, np.uint8)
            frame[100:124, 100 + 3 * index:124 + 3 * index] = 255
            frame[120:420, 330:630] = 255
            frame[140:400, 350:610] = 30  # a ring, so the interior shows whether it was masked
            writer.write(frame)
    small_input = replace(DETECT, input_size=(320, 320))
    counts = {}
    for zoom in (1.0, 3.0):
        dst = tmp_path / f"out-{zoom}.mp4"
        result = await anonymize(src, dst, StandIn(min_px=12), small_input,
                                 VideoOptions(method="solid", tile_zoom=zoom, lookahead=2))
        counts[zoom] = result.faces_masked
        out = list(io.read_frames(dst))
        assert all(frame[120:420, 330:630].mean() < 10 for frame in out)
        small_masked = [frame[104:120, 104 + 3 * i:120 + 3 * i].mean() < 10 for i, frame in enumerate(out)]
        assert all(small_masked) if zoom > 1 else not any(small_masked)
    assert counts == {1.0: 12, 3.0: 24}
