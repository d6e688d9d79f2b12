"""Test videos made from the sample photos, with the true face boxes of every frame.

Each clip is a camera moving over a still photo: every frame is the photo seen through a
window (an affine crop) that pans, zooms or slides a face in and out of the picture. The
faces are found once, on the photo, by the independent reference detector; their box in a
frame is that box through the frame's own transform, so the truth does not depend on any
detector run on the frames. Frames listed in ``misses`` get every face blurred beyond
recognition or covered (``miss_style``), so that a detector alone finds nothing there and
only tracking can keep those faces masked.

The photos come with the model weights (``./face-api weights``).
"""

from __future__ import annotations

import fractions
import functools
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from frontend.video.io import VideoInfo, VideoWriter

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
DETECTOR = ROOT / "model_repository" / "scrfd_500m" / "1" / "model.onnx"
KINDS = ("pan", "zoom", "enter_leave", "still")
PHOTOS = {"pan": "players.jpg", "zoom": "players.jpg", "enter_leave": "yaoming.jpg", "still": "players.jpg"}
SUFFIXES = {".mp4": ("mp4", "h264"), ".mkv": ("mkv", "h264"), ".webm": ("webm", "vp9")}
BACKGROUND = (96, 104, 112)  # what the camera sees beside the photo
MISS_STYLES = ("blur", "occlude")
TILE = 320  # photo pixels per tile when looking for small faces
# Faces found on the photo down to this score are hidden on the miss frames (the known faces,
# which tests require masked, are only those at ``min_score`` or more).
HIDE_SCORE = 0.3


@dataclass(frozen=True)
class PhotoFaces:
    photo: np.ndarray  # RGB uint8
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2 on the photo
    scores: np.ndarray  # (N,)


@functools.lru_cache(maxsize=8)
def photo_faces(name: str) -> PhotoFaces:
    """A sample photo and the faces the reference detector finds on it (cached).

    The detector sees a photo shrunk to 640 pixels; a clip that zooms in shows faces too
    small for that. So it also runs on overlapping tiles of TILE pixels (each enlarged to
    640), and the results are merged: a face cut by a tile's inner edge is left to the tile
    that holds it whole.
    """
    from tests.reference.scrfd_reference import ReferenceSCRFD, decode_image, nms

    path = SAMPLES / name
    if not path.exists() or not DETECTOR.exists():
        raise FileNotFoundError(f"{path} or {DETECTOR} is missing: run ./face-api weights")
    photo = decode_image(path)
    detector = ReferenceSCRFD(DETECTOR, threads=1)
    found = detector.detect(photo, confidence=HIDE_SCORE)
    boxes, scores = [found.boxes], [found.scores]
    height, width = photo.shape[:2]
    small = max(height, width) <= 640  # already seen at full size or larger: no tiles
    for top in [] if small else _tile_starts(height):
        for left in _tile_starts(width):
            tile = photo[top:top + TILE, left:left + TILE]
            tiled = detector.detect(np.ascontiguousarray(tile), confidence=HIDE_SCORE)
            inner = np.ones(len(tiled.boxes), dtype=bool)
            edge = 2.0
            if left > 0:
                inner &= tiled.boxes[:, 0] > edge
            if top > 0:
                inner &= tiled.boxes[:, 1] > edge
            if left + TILE < width:
                inner &= tiled.boxes[:, 2] < tile.shape[1] - edge
            if top + TILE < height:
                inner &= tiled.boxes[:, 3] < tile.shape[0] - edge
            boxes.append(tiled.boxes[inner] + np.array([left, top, left, top], dtype=np.float32))
            scores.append(tiled.scores[inner])
    boxes_all, scores_all = np.concatenate(boxes), np.concatenate(scores)
    keep = nms(np.hstack([boxes_all, scores_all[:, None]]).astype(np.float32), 0.3)
    return PhotoFaces(photo, boxes_all[keep].astype(np.float64), scores_all[keep].astype(np.float64))


def _tile_starts(length: int) -> list[int]:
    """Tile origins along one side: TILE-long tiles overlapping by half, covering it all."""
    if length <= TILE:
        return [0]
    starts = list(range(0, length - TILE, TILE // 2))
    return starts + [length - TILE]


def _windows(kind: str, frames: int, size: tuple[int, int], photo_size: tuple[int, int],
             faces: np.ndarray) -> list[tuple[float, float, float]]:
    """Per frame, the window on the photo: (x0, y0, width); its height keeps the output aspect."""
    width, height = size
    aspect = width / height
    photo_w, photo_h = photo_size
    steps = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    if kind == "still":
        window_w = min(photo_w, photo_h * aspect)
        x0, y0 = (photo_w - window_w) / 2, (photo_h - window_w / aspect) / 2
        return [(x0, y0, window_w)] * frames
    if kind == "pan":  # left to right and a little down, at 0.56 of the photo's height
        window_h = 0.56 * photo_h
        window_w = window_h * aspect
        return [(s * (photo_w - window_w), 0.2 * photo_h + s * 0.2 * photo_h, window_w) for s in steps]
    if kind == "zoom":  # in, from the whole photo to a third of its height around the faces
        # Both ends lie inside the photo and the window moves between them in a straight
        # line at constant speed, so no frame jerks (a window pushed back by the photo's
        # edge would turn suddenly).
        start_w = min(photo_w, photo_h * aspect)
        start = np.array([(photo_w - start_w) / 2, (photo_h - start_w / aspect) / 2, start_w])
        centre = np.array([(faces[:, 0] + faces[:, 2]).mean() / 2, (faces[:, 1] + faces[:, 3]).mean() / 2])
        end_h = photo_h * 0.35
        end_w = end_h * aspect
        end = np.array([np.clip(centre[0] - end_w / 2, 0.0, photo_w - end_w),
                        np.clip(centre[1] - end_h / 2, 0.0, photo_h - end_h), end_w])
        return [tuple(float(v) for v in start + s * (end - start)) for s in steps]
    if kind == "enter_leave":  # the photo slides in from the right and out on the left
        window_w = photo_h * aspect
        return [(-window_w + s * (photo_w + window_w), 0.0, window_w) for s in steps]
    raise ValueError(f"kind must be one of {KINDS}")


def _affine(window: tuple[float, float, float], size: tuple[int, int]) -> np.ndarray:
    x0, y0, window_w = window
    scale = size[0] / window_w
    return np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale], [0.0, 0.0, 1.0]])


def _map_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    scale, dx, dy = matrix[0, 0], matrix[0, 2], matrix[1, 2]
    return boxes * scale + np.array([dx, dy, dx, dy])


def _visible(boxes: np.ndarray, size: tuple[int, int], min_visible: float, min_size: float) -> np.ndarray:
    """The parts of ``boxes`` inside the frame, for faces mostly in it and large enough."""
    width, height = size
    clipped = np.clip(boxes, 0, [width, height, width, height])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (inside >= min_visible * area) & (boxes[:, 3] - boxes[:, 1] >= min_size)
    return clipped[keep]


def _hide(frame: np.ndarray, boxes: np.ndarray, style: str) -> None:
    """Blur every face in ``boxes`` beyond recognition, or cover it, in place."""
    height, width = frame.shape[:2]
    for x1, y1, x2, y2 in boxes:
        grow_x, grow_y = 0.3 * (x2 - x1), 0.3 * (y2 - y1)
        left, top = int(max(0, x1 - grow_x)), int(max(0, y1 - grow_y))
        right, bottom = int(min(width, x2 + grow_x + 1)), int(min(height, y2 + grow_y + 1))
        if right <= left or bottom <= top:
            continue
        region = frame[top:bottom, left:right]
        if style == "occlude":
            region[:] = (40, 40, 40)
        else:  # a blur as wide as a third of the face, computed on a copy shrunk 8 times
            small = cv2.resize(region, (max(1, region.shape[1] // 8), max(1, region.shape[0] // 8)),
                               interpolation=cv2.INTER_AREA)
            sigma = max(small.shape[:2]) / 3
            small = cv2.GaussianBlur(small, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
            region[:] = cv2.resize(small, (region.shape[1], region.shape[0]), interpolation=cv2.INTER_LINEAR)


def _soundtrack(path: Path, seconds: float) -> Path:
    """A stereo AAC tone of ``seconds`` in an .m4a next to ``path`` (the clip's audio source)."""
    audio_path = path.with_name(path.stem + ".audio.m4a")
    rate = 44100
    samples = int(round(seconds * rate))
    t = np.arange(samples) / rate
    tone = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    with av.open(str(audio_path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "stereo"
        for start in range(0, samples, 1024):
            chunk = tone[start:start + 1024]
            frame = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return audio_path


def hard_frames(frames: int) -> tuple[int, ...]:
    """The frames the benchmark clips make hard for a detector (``misses``): two in a row
    every 10 frames."""
    return tuple(i for i in range(frames) if i % 10 in (5, 6))


def make_video(path: Path, kind: str, *, size: tuple[int, int] = (640, 360), frames: int = 48,
               fps: int | fractions.Fraction = 25, audio: bool = False, rotation: int = 0,
               misses=(), miss_style: str = "blur", photo: str | None = None,
               min_score: float = 0.7, min_size: float = 24.0, min_visible: float = 0.5,
               quality: int = 18) -> tuple[Path, list[np.ndarray]]:
    """Write a clip of ``kind`` to ``path`` (.mp4 / .mkv: H.264, .webm: VP9).

    Returns the path and, per frame, the known faces as (K, 4) float32 boxes in the stored
    frame's pixels: faces the reference detector finds on the photo with ``min_score`` or
    more, at least ``min_size`` pixels tall in the frame and ``min_visible`` inside it
    (clipped to the frame). ``rotation`` is written as display rotation (clockwise degrees)
    and does not change the stored pixels or the boxes.
    """
    path = Path(path)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if miss_style not in MISS_STYLES:
        raise ValueError(f"miss_style must be one of {MISS_STYLES}")
    if path.suffix not in SUFFIXES:
        raise ValueError(f"path must end in one of {sorted(SUFFIXES)}")
    container, codec = SUFFIXES[path.suffix]
    faces = photo_faces(photo or PHOTOS[kind])
    known_faces = faces.boxes[faces.scores >= min_score]
    photo_h, photo_w = faces.photo.shape[:2]
    windows = _windows(kind, frames, size, (photo_w, photo_h), known_faces)

    # Sample from a copy of the photo already near the output scale: a plain affine warp
    # that shrinks by more than about 2 aliases.
    largest = max(size[0] / window[2] for window in windows)
    prescale = min(1.0, 2.0 * largest)
    source = faces.photo
    if prescale < 1.0:
        source = cv2.resize(source, (round(photo_w * prescale), round(photo_h * prescale)),
                            interpolation=cv2.INTER_AREA)
    to_source = np.diag([prescale, prescale, 1.0])

    fps = fractions.Fraction(fps)
    info = VideoInfo(width=size[0], height=size[1], fps=fps, frames=frames, duration_s=float(frames / fps),
                     rotation=rotation % 360, has_audio=audio, video_codec=codec, container=container,
                     size_bytes=0)
    audio_from = _soundtrack(path, float(frames / fps)) if audio else None
    misses = set(misses)
    known: list[np.ndarray] = []
    try:
        with VideoWriter(path, info, container=container, codec=codec, quality=quality,
                         audio_from=audio_from, preset="ultrafast") as writer:
            for index, window in enumerate(windows):
                matrix = _affine(window, size)  # photo → frame
                from_source = matrix @ np.linalg.inv(to_source)
                frame = cv2.warpAffine(source, from_source[:2], size, flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND)
                if index in misses:  # hide every face the photo has, known or not
                    _hide(frame, _map_boxes(faces.boxes, matrix), miss_style)
                writer.write(frame)
                known.append(_visible(_map_boxes(known_faces, matrix), size, min_visible, min_size)
                             .astype(np.float32))
    finally:
        if audio_from is not None:
            audio_from.unlink(missing_ok=True)
    return path, known
