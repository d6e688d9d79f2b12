"""frontend/video/pipeline.py against the stack's Triton, on test videos with known faces.

Every known face must be masked on every frame, also on the frames where the detector
alone misses it (tracking fills them), and the output must keep the frame count, frame
rate, resolution, rotation and audio of the input. On the 1080p pan, whose one spectator
at the frame's edge the default detector never finds, YuNet at confidence 0.3 (the
setting docs/video.md gives for video where no frame may leak) must mask every frame.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from frontend.inference.served import ServedPipelines
from frontend.inference.triton import TritonClient
from frontend.settings import MODEL_SETS
from frontend.video import io
from frontend.video.pipeline import VideoOptions, anonymize, detection_size
from tests.integration.stack import start_stack
from tests.support.videos import hard_frames, make_video

CHANGED = 8.0  # as benchmarks/mask_vs_deface.py judges: mean change in grey levels ...
DETAIL_LEFT = 0.25  # ... or the fraction of fine detail (Laplacian variance) left
MISSES = (10, 11, 12, 30)


YUNET = "yunet_2023mar"


async def detect_pipeline(stack, detector: str = MODEL_SETS["insightface"].detector):
    triton = TritonClient(f"127.0.0.1:{stack.triton_grpc}", timeout_s=60)
    await triton.start()
    served = ServedPipelines(triton, detector, MODEL_SETS["insightface"].recognizer)
    await served.refresh()
    assert served.selection.detect is not None
    return triton, served.selection.detect


def _detail(pixels: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var())


def unmasked(original: np.ndarray, output: np.ndarray, boxes: np.ndarray) -> list[int]:
    """The known faces (indices into ``boxes``) whose central half neither clearly changed
    nor lost most of its fine detail; faces less than 8 px across inside the frame are not judged."""
    height, width = original.shape[:2]
    left = []
    for index, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(width, x2), min(height, y2)
        w, h = x2 - x1, y2 - y1
        if w < 16 or h < 16:
            continue
        cx1, cy1, cx2, cy2 = int(x1 + w / 4), int(y1 + h / 4), int(x2 - w / 4), int(y2 - h / 4)
        before, after = original[cy1:cy2, cx1:cx2], output[cy1:cy2, cx1:cx2]
        changed = np.abs(after.astype(int) - before).mean() > CHANGED
        blurred = _detail(after) < DETAIL_LEFT * _detail(before)
        if not (changed or blurred):
            left.append(index)
    return left


def leaks(src, dst, known: list[np.ndarray]) -> dict[int, list[int]]:
    """Frame -> the known faces left unmasked on it; every frame of both clips compared."""
    found, frames = {}, 0
    for index, (original, output) in enumerate(zip(io.read_frames(src), io.read_frames(dst), strict=True)):
        frames += 1
        if left := unmasked(original, output, known[index]):
            found[index] = left
    assert frames == len(known)
    return found


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@pytest.mark.parametrize("kind", ["pan", "enter_leave"])
async def test_every_known_face_is_masked_on_every_frame(stack, tmp_path, kind):
    src, known = make_video(tmp_path / f"{kind}.mp4", kind, size=(960, 540), frames=40, misses=MISSES)
    dst = tmp_path / "masked.mp4"
    reported = []

    async def progress(done, total):
        reported.append((done, total))

    triton, pipeline = await detect_pipeline(stack)
    try:
        # Solid masks: the hard frames' faces are already blurred in the input, where a blur
        # on top could not be told from none; black can.
        result = await anonymize(src, dst, triton, pipeline, VideoOptions(method="solid"), progress)
        # The detector alone, on the frames made hard for it, misses some known face.
        info = io.probe(src)
        size = detection_size(info.width, info.height, info.rotation, pipeline.input_size)
        alone_missed = 0
        for index, frame in enumerate(io.read_frames(src)):
            if index not in MISSES or not len(known[index]):
                continue
            small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            faces = await triton.detect(pipeline.name, small, 0.5, 0.4, 0)
            found = faces.boxes * np.float32(info.width / size[0])
            alone_missed += sum(all(iou(box, other) < 0.3 for other in found) for box in known[index])
    finally:
        await triton.close()
    assert alone_missed > 0, "the test video's hard frames did not defeat the detector"

    assert result.frames == len(known)
    assert reported and reported[-1] == (len(known), len(known))
    assert result.faces_masked >= sum(len(boxes) for boxes in known) - alone_missed
    assert result.tracks >= 1
    assert set(result.timings) == {"decode_ms", "detect_ms", "mask_ms", "encode_ms", "total_ms"}
    assert not (left := leaks(src, dst, known)), f"known faces left unmasked (frame: faces): {left}"


@pytest.mark.parametrize(("container", "codec", "rotation"), [("mp4", "h264", 90), ("webm", "vp9", 0)])
async def test_the_output_keeps_frames_rate_size_rotation_and_audio(stack, tmp_path, container, codec,
                                                                    rotation):
    src, known = make_video(tmp_path / "in.mp4", "pan", size=(480, 270), frames=30, fps=30, audio=True,
                            rotation=rotation)
    dst = tmp_path / f"out.{container}"
    triton, pipeline = await detect_pipeline(stack)
    try:
        options = VideoOptions(container=container, codec=codec, audio=True)
        result = await anonymize(src, dst, triton, pipeline, options)
    finally:
        await triton.close()
    before, after = io.probe(src), io.probe(dst)
    assert result.frames == before.frames == after.frames == len(known)
    assert after.fps == before.fps
    assert (after.width, after.height) == (before.width, before.height)
    assert after.rotation == before.rotation == rotation
    assert after.has_audio and before.has_audio
    assert abs(after.duration_s - before.duration_s) < 0.1


async def test_a_phone_clip_stored_sideways_is_searched_upright(stack, tmp_path):
    """A phone stores a portrait clip as sideways pixels plus a rotation for the player:
    the detector must see the faces the way the viewer does, and the masks land on the
    stored pixels."""
    upright_clip, upright_known = make_video(tmp_path / "upright.mp4", "pan", size=(640, 360), frames=24)
    width = 640
    src = tmp_path / "sideways.mp4"
    info = io.probe(upright_clip)
    stored = replace(info, width=info.height, height=info.width, rotation=90)
    with io.VideoWriter(src, stored, quality=18) as writer:
        for frame in io.read_frames(upright_clip):
            writer.write(np.ascontiguousarray(np.rot90(frame)))  # the player turns it back clockwise
    known = [np.stack([b[:, 1], width - b[:, 2], b[:, 3], width - b[:, 0]], axis=1) for b in upright_known]
    dst = tmp_path / "masked.mp4"
    triton, pipeline = await detect_pipeline(stack)
    try:
        result = await anonymize(src, dst, triton, pipeline, VideoOptions())
    finally:
        await triton.close()
    assert io.probe(dst).rotation == 90
    assert result.frames == 24
    assert not (left := leaks(src, dst, known)), f"known faces left unmasked (frame: faces): {left}"


async def test_an_unreadable_input_is_a_video_error(stack, tmp_path):
    src = tmp_path / "not-a-video.mp4"
    src.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    triton, pipeline = await detect_pipeline(stack)
    try:
        with pytest.raises(io.VideoError):
            await anonymize(src, tmp_path / "out.mp4", triton, pipeline, VideoOptions())
    finally:
        await triton.close()
    assert not (tmp_path / "out.mp4").exists()


@pytest.fixture(scope="module")
def yunet_stack(tmp_path_factory):
    # Only Triton is called: the default pipelines plus YuNet's detect pipeline, by name.
    env = {"FACE_API_API_KEY_ENABLED": "false", "FACE_API_TRITON_LOAD": f"detect_{YUNET}"}
    running = start_stack(tmp_path_factory.mktemp("video-yunet"), env=env)
    yield running
    running.stop()


async def test_yunet_at_0_3_masks_the_edge_face_the_default_detector_never_sees(yunet_stack, tmp_path):
    src, known = make_video(tmp_path / "pan.mp4", "pan", size=(1920, 1080), frames=30,
                            misses=hard_frames(30))  # the benchmark's 30-frame pan
    left = {}
    for detector, confidence in ((MODEL_SETS["insightface"].detector, 0.5), (YUNET, 0.3)):
        triton, pipeline = await detect_pipeline(yunet_stack, detector)
        dst = tmp_path / f"{detector}.mp4"
        try:
            await anonymize(src, dst, triton, pipeline, VideoOptions(method="solid", confidence=confidence))
        finally:
            await triton.close()
        left[detector] = leaks(src, dst, known)
    # The clip holds the case: a known face, cut by the frame's edge, that the default
    # detector leaves unmasked on some frame (frame 22 when this was written).
    assert left[MODEL_SETS["insightface"].detector], "the default detector no longer misses the edge face"
    assert not left[YUNET], f"YuNet at 0.3 left known faces unmasked (frame: faces): {left[YUNET]}"
