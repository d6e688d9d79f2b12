"""Anonymise one video file: decode, detect on small frames, track, mask at full resolution, encode.

The stages run side by side, so a clip costs about its slowest stage, not their sum:

  decode thread   PyAV decodes (with FFmpeg's own threads); each frame is shrunk here
                  (INTER_AREA) to fit the detector's input and turned upright (the rotation
                  metadata), so only small frames travel to Triton (640×360 for 1080p), and
                  the detector sees faces the way a viewer does; on every ``tile_every``-th
                  frame it is also cut into tiles of the detector's input size at
                  ``tile_zoom`` × that resolution, for the faces too small for the whole view;
  event loop      the detect requests of up to ``in_flight`` frames at once (on a GPU
                  Triton's dynamic batcher makes batches of them; on the CPU they keep its
                  instances busy), answers taken in frame order, the views' faces merged
                  (NMS), mapped back onto the stored full-size frame and fed to the tracker,
                  which says when a frame's boxes are final;
  mask thread     those boxes masked on the full-size frame with the mask pipeline's own
                  maths (triton_python.masking), so a video frame is masked exactly as a
                  photo would be; full frames never travel to Triton;
  encode thread   VideoWriter (PyAV), keeping fps, resolution, rotation and, if asked, audio.

Memory stays bounded whatever the clip's length: a full-size frame takes a token from one
budget when it is decoded and gives it back once encoded, so at most
``frame_budget(options)`` = lookahead + 1 + in_flight + SLACK frames are alive at once
(20 at the defaults: ~125 MB at 1080p, ~500 MB at 4K), plus the views of the frames in
flight (~3 MB a frame with tiles).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from frontend.inference.catalog import Pipeline
from frontend.inference.triton import TritonClient
from frontend.video import io
from frontend.video.tracking import FaceTracker, iou_matrix
from triton_python import masking

# Frames beyond those the tracker and the detect requests hold: decoded ahead, being
# masked, waiting for and inside the encoder.
SLACK = 5
MAX_TILE_ZOOM = 8.0
TILE_OVERLAP = 1 / 8  # least overlap of neighbouring tiles, as a fraction of a tile's side
# A zoomed side at most this fraction longer than a tile is zoomed out to the tile instead:
# its second row (or column) of tiles would repeat the first but for a few pixels.
TILE_SNAP = 1 / 16
TILE_EDGE_PX = 2.0  # a face this close to a tile's inner edge is cut by it: left to another view
PROGRESS_EVERY_S = 0.5  # how often progress is reported (it may write to a database)
POLL_S = 0.1  # how often a waiting thread looks whether the job was abandoned

Progress = Callable[[int, int | None], Awaitable[None]]


@dataclass(frozen=True)
class VideoOptions:
    # Masking, as /api/v1/mask takes it (see triton_python/masking.py).
    method: str = "gaussian"
    strength: int = 199
    padding: float = 0.15
    # Detection, as /api/v1/mask takes it.
    confidence: float = 0.5
    nms_threshold: float = 0.4
    max_faces: int = 0  # 0: no limit
    # Tracking (frontend/video/tracking.py): how long a lost face stays masked, etc.
    max_missed: int = 15
    iou_match: float = 0.3
    smoothing: float = 0.6
    lookahead: int = 8
    # Output (frontend/video/io.py's VideoWriter).
    container: str = "mp4"
    codec: str = "h264"
    quality: int = 23  # CRF-like 0..51, lower is better
    audio: bool = False  # copy the input's audio track
    # Small faces. The detector always sees the whole frame fitted into its input (1080p at
    # 640×360, where faces under ~45 px tall go unseen). Above 1, it also sees the frame at
    # tile_zoom × that resolution, in overlapping tiles of its input size, one request each:
    # 1.8 makes a 16:9 frame 2 square tiles (1080×1080 each on 1080p: faces down to ~25 px),
    # 3 is 1080p's full resolution (8 tiles); 1 turns tiles off. Tiles go on every
    # tile_every-th frame only; the tracker carries their faces between.
    tile_zoom: float = 1.8
    tile_every: int = 2
    # Throughput: frames whose detect requests are in flight at once.
    in_flight: int = 6

    def problem(self) -> str | None:
        """What is wrong with these options, or None."""
        if self.in_flight < 1 or self.lookahead < 0 or self.max_missed < 0:
            return "in_flight must be at least 1, lookahead and max_missed at least 0"
        if self.tile_every < 1:
            return "tile_every must be at least 1"
        if not 1.0 <= self.tile_zoom <= MAX_TILE_ZOOM:
            return f"tile_zoom must be from 1 to {MAX_TILE_ZOOM:g}"
        return masking.validate(self.method, self.strength, self.padding)


@dataclass(frozen=True)
class VideoResult:
    frames: int  # frames written
    faces_masked: int  # masked regions summed over the frames
    tracks: int  # faces the tracker followed (tracks seen on two frames or more)
    # Busy milliseconds of each stage (they overlap, so they add up to more than total_ms):
    # decode_ms includes shrinking, detect_ms is the time some detect request was in flight.
    timings: dict[str, float] = field(default_factory=dict)


def frame_budget(options: VideoOptions) -> int:
    """How many full-size frames may be alive at once (see the module's docstring)."""
    return options.lookahead + 1 + options.in_flight + SLACK


def upright_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """The size a viewer sees of a width × height frame stored with ``rotation``."""
    return (height, width) if rotation % 180 else (width, height)


def detection_size(width: int, height: int, rotation: int, input_size: tuple[int, int]) -> tuple[int, int]:
    """The stored frame's size shrunk so that, turned upright, it fits the detector's input
    (never enlarged): 1920×1080 -> 640×360 for a 640×640 input."""
    upright_w, upright_h = upright_size(width, height, rotation)
    scale = min(input_size[0] / upright_w, input_size[1] / upright_h, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def zoomed_size(width: int, height: int, rotation: int, input_size: tuple[int, int],
                zoom: float) -> tuple[int, int]:
    """The stored frame's size for tiles at ``zoom`` × the whole view's resolution (never
    more than the frame's own). A side just longer than a tile is zoomed out to the tile
    (TILE_SNAP): 1080p at 1.8 is 1138×640, two tiles, rather than 1152×648, four."""
    small_w, _ = detection_size(width, height, rotation, input_size)
    scale = min(zoom * small_w / width, 1.0)
    upright_w, upright_h = upright_size(width, height, rotation)
    for side, tile in ((upright_w, input_size[0]), (upright_h, input_size[1])):
        if tile < side * scale <= tile * (1 + TILE_SNAP):
            scale = tile / side
    return max(1, round(width * scale)), max(1, round(height * scale))


def tile_origins(length: int, tile: int) -> list[int]:
    """Where tiles of ``tile`` pixels start along a side of ``length`` pixels: as few as
    cover it with neighbours overlapping by TILE_OVERLAP of a tile at least, evenly spread."""
    if length <= tile:
        return [0]
    overlap = tile * TILE_OVERLAP
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def merged(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
           limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The same face found in several views once: greedy NMS, best score first (at most
    ``limit`` faces when it is above 0)."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    keep: list[int] = []
    suppressed = np.zeros(len(boxes), dtype=bool)
    overlaps = iou_matrix(boxes, boxes)
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i] > iou_threshold
        if limit and len(keep) == limit:
            break
    return boxes[keep], scores[keep]


@dataclass(frozen=True)
class Views:
    """What the detector is shown of one frame, upright: the whole frame fitted into its
    input, and tiles of the frame at a higher resolution with their upright origins."""

    whole: np.ndarray
    tiles: list[tuple[np.ndarray, int, int]]


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as displayed: turned ``rotation`` degrees clockwise."""
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(frame, k=-turns)) if turns else frame


def stored_boxes(boxes: np.ndarray, rotation: int, small: tuple[int, int],
                 full: tuple[int, int]) -> np.ndarray:
    """(N, 4) boxes found on the upright small frame, on the stored full-size frame.

    ``small`` and ``full`` are the stored (width, height) of the small and the full frame.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    x1, y1, x2, y2 = boxes.T
    width, height = small
    turns = (rotation // 90) % 4
    # Undo the clockwise turn(s): each row is x1, y1, x2, y2 on the stored small frame.
    if turns == 1:
        boxes = np.stack([y1, height - x2, y2, height - x1], axis=1)
    elif turns == 2:
        boxes = np.stack([width - x2, height - y2, width - x1, height - y1], axis=1)
    elif turns == 3:
        boxes = np.stack([width - y2, x1, width - y1, x2], axis=1)
    fx, fy = full[0] / width, full[1] / height
    return boxes * np.array([fx, fy, fx, fy], dtype=np.float32)


class _Abandoned(Exception):
    """Another stage failed; this one stops quietly."""


class _Run:
    """One clip going through the stages; anonymize() drives it."""

    def __init__(self, src: Path, dst: Path, triton: TritonClient, pipeline: Pipeline,
                 options: VideoOptions, info: io.VideoInfo):
        self.src, self.dst, self.triton, self.pipeline = src, dst, triton, pipeline
        self.options, self.info = options, info
        self.loop = asyncio.get_running_loop()
        self.stop = threading.Event()
        self.tokens = threading.Semaphore(frame_budget(options))
        self.decoded: asyncio.Queue = asyncio.Queue()  # bounded by the tokens
        self.to_mask: queue.Queue = queue.Queue()
        self.to_encode: queue.Queue = queue.Queue()
        self.finished: asyncio.Future = self.loop.create_future()
        self.small_size = detection_size(info.width, info.height, info.rotation, pipeline.input_size)
        self.zoomed_size = zoomed_size(info.width, info.height, info.rotation, pipeline.input_size,
                                       options.tile_zoom)
        if self.zoomed_size[0] <= self.small_size[0]:
            self.zoomed_size = None  # no tiles: zoom 1, or the whole view is the full frame already
        self.tracker = FaceTracker(max_missed=options.max_missed, iou_match=options.iou_match,
                                   smoothing=options.smoothing, lookahead=options.lookahead,
                                   frame_size=(info.width, info.height))
        self.held: dict[int, np.ndarray] = {}  # full frames the tracker has not finalised yet
        self.next_out = 0
        self.decoded_count = 0
        self.encoded = 0
        self.faces_masked = 0
        self.busy = {"decode_ms": 0.0, "detect_ms": 0.0, "mask_ms": 0.0, "encode_ms": 0.0}
        self._in_flight = 0
        self._in_flight_since = 0.0

    # --- failure and completion, from any thread ---

    def fail(self, error: BaseException) -> None:
        self.stop.set()
        self.loop.call_soon_threadsafe(self._settle, error)

    def _settle(self, error: BaseException | None) -> None:
        if not self.finished.done():
            if error is None:
                self.finished.set_result(None)
            else:
                self.finished.set_exception(error)

    # --- decode thread ---

    def _take_token(self) -> None:
        while not self.tokens.acquire(timeout=POLL_S):
            if self.stop.is_set():
                raise _Abandoned

    def decode(self) -> None:
        try:
            with contextlib.closing(io.read_frames(self.src)) as frames:
                for index in itertools.count():
                    self._take_token()
                    started = time.perf_counter()
                    frame = next(frames, None)
                    if frame is None:
                        self.tokens.release()
                        break
                    views = self.views(index, frame)
                    self.busy["decode_ms"] += (time.perf_counter() - started) * 1000.0
                    self.loop.call_soon_threadsafe(self.decoded.put_nowait, (index, frame, views))
            self.loop.call_soon_threadsafe(self.decoded.put_nowait, None)
        except _Abandoned:
            pass
        except BaseException as error:  # noqa: BLE001 - handed to the event loop, which raises it
            self.fail(error)

    def views(self, index: int, frame: np.ndarray) -> Views:
        rotation = self.info.rotation
        small = upright(cv2.resize(frame, self.small_size, interpolation=cv2.INTER_AREA), rotation)
        if self.zoomed_size is None or index % self.options.tile_every:
            return Views(small, [])
        # Area averaging where it matters (aliasing), bilinear for a reduction under 2x,
        # where the two barely differ and area averaging at an odd ratio costs 6x as much.
        reduction = frame.shape[1] / self.zoomed_size[0]
        if reduction == 1:
            zoomed = upright(frame, rotation)
        else:
            method = cv2.INTER_AREA if reduction >= 2 else cv2.INTER_LINEAR
            zoomed = upright(cv2.resize(frame, self.zoomed_size, interpolation=method), rotation)
        tile_w, tile_h = self.pipeline.input_size
        height, width = zoomed.shape[:2]
        tiles = [(np.ascontiguousarray(zoomed[y:y + tile_h, x:x + tile_w]), x, y)
                 for y in tile_origins(height, tile_h) for x in tile_origins(width, tile_w)]
        return Views(small, tiles)

    # --- event loop: detect and track ---

    async def _detect(self, pixels: np.ndarray):
        options = self.options
        return await self.triton.detect(self.pipeline.name, pixels, options.confidence,
                                        options.nms_threshold, options.max_faces)

    async def detect(self, views: Views) -> tuple[np.ndarray, np.ndarray]:
        """The faces of one frame on the stored full-size frame: boxes (N, 4), scores (N,)."""
        if self._in_flight == 0:
            self._in_flight_since = time.perf_counter()
        self._in_flight += 1
        try:
            found = await asyncio.gather(self._detect(views.whole),
                                         *(self._detect(tile) for tile, _, _ in views.tiles))
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self.busy["detect_ms"] += (time.perf_counter() - self._in_flight_since) * 1000.0
        boxes = [np.asarray(found[0].boxes, np.float32).reshape(-1, 4)]
        scores = [np.asarray(found[0].scores, np.float32)]
        if views.tiles:
            boxes_t, scores_t = self._from_tiles(views, found[1:])
            boxes, scores = merged(np.concatenate(boxes + boxes_t), np.concatenate(scores + scores_t),
                                   self.options.nms_threshold, self.options.max_faces)
        else:
            boxes, scores = boxes[0], scores[0]
        boxes = stored_boxes(boxes, self.info.rotation, self.small_size, (self.info.width, self.info.height))
        return boxes, scores

    def _from_tiles(self, views: Views, found) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The tiles' faces on the whole view, but those cut by a tile's inner edge (another
        tile, or the whole view, holds them whole)."""
        whole_h, whole_w = views.whole.shape[:2]
        zoomed_w, zoomed_h = upright_size(*self.zoomed_size, self.info.rotation)
        to_whole = np.array([whole_w / zoomed_w, whole_h / zoomed_h] * 2, np.float32)
        boxes, scores = [], []
        for (tile, x, y), faces in zip(views.tiles, found):
            tile_boxes = np.asarray(faces.boxes, np.float32).reshape(-1, 4)
            height, width = tile.shape[:2]
            inner = np.ones(len(tile_boxes), dtype=bool)
            if x > 0:
                inner &= tile_boxes[:, 0] > TILE_EDGE_PX
            if y > 0:
                inner &= tile_boxes[:, 1] > TILE_EDGE_PX
            if x + width < zoomed_w:
                inner &= tile_boxes[:, 2] < width - TILE_EDGE_PX
            if y + height < zoomed_h:
                inner &= tile_boxes[:, 3] < height - TILE_EDGE_PX
            boxes.append((tile_boxes[inner] + np.array([x, y, x, y], np.float32)) * to_whole)
            scores.append(np.asarray(faces.scores, np.float32)[inner])
        return boxes, scores

    async def dispatch(self) -> None:
        pending: deque[tuple[int, asyncio.Task]] = deque()
        try:
            while True:
                item = await self.decoded.get()
                if item is None:
                    break
                index, frame, views = item
                self.held[index] = frame
                self.decoded_count += 1
                pending.append((index, asyncio.create_task(self.detect(views))))
                if len(pending) >= self.options.in_flight:
                    await self._track(*pending.popleft())
            while pending:
                await self._track(*pending.popleft())
            self._emit(self.tracker.flush())
            if self.held:
                raise RuntimeError(f"the tracker never finalised frames {sorted(self.held)[:5]}…")
            self.to_mask.put(None)
        finally:
            for _, task in pending:
                task.cancel()

    async def _track(self, index: int, task: asyncio.Task) -> None:
        boxes, scores = await task
        self._emit(self.tracker.push(index, boxes, scores))

    def _emit(self, final: list[tuple[int, np.ndarray]]) -> None:
        for index, boxes in final:
            if index != self.next_out:
                raise RuntimeError(f"the tracker finalised frame {index} where {self.next_out} was due")
            self.next_out += 1
            self.to_mask.put((index, self.held.pop(index), boxes))

    # --- mask and encode threads ---

    def _get(self, source: queue.Queue):
        while True:
            try:
                return source.get(timeout=POLL_S)
            except queue.Empty:
                if self.stop.is_set():
                    raise _Abandoned from None

    def mask(self) -> None:
        options = self.options
        try:
            while (item := self._get(self.to_mask)) is not None:
                index, frame, boxes = item
                if len(boxes):
                    started = time.perf_counter()
                    # In place (out=frame): the decoded frame is ours, and a copy of a
                    # full-size frame per frame is time the encoder could use.
                    _, count = masking.mask_faces(frame, boxes, options.method, options.strength,
                                                  options.padding, out=frame)
                    self.faces_masked += count
                    self.busy["mask_ms"] += (time.perf_counter() - started) * 1000.0
                self.to_encode.put(frame)
            self.to_encode.put(None)
        except _Abandoned:
            pass
        except BaseException as error:  # noqa: BLE001 - handed to the event loop, which raises it
            self.fail(error)

    def encode(self) -> None:
        options = self.options
        try:
            started = time.perf_counter()
            with io.VideoWriter(self.dst, self.info, container=options.container, codec=options.codec,
                                quality=options.quality,
                                audio_from=self.src if options.audio and self.info.has_audio else None,
                                ) as writer:
                self.busy["encode_ms"] += (time.perf_counter() - started) * 1000.0
                while (frame := self._get(self.to_encode)) is not None:
                    started = time.perf_counter()
                    writer.write(frame)
                    self.encoded += 1
                    self.busy["encode_ms"] += (time.perf_counter() - started) * 1000.0
                    self.tokens.release()
                started = time.perf_counter()
            self.busy["encode_ms"] += (time.perf_counter() - started) * 1000.0  # the flush
            self.loop.call_soon_threadsafe(self._settle, None)
        except _Abandoned:
            pass
        except BaseException as error:  # noqa: BLE001 - handed to the event loop, which raises it
            self.fail(error)

    # --- progress ---

    async def report(self, progress: Progress) -> None:
        reported = -1
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            if self.encoded != reported:
                reported = self.encoded
                await progress(reported, self.info.frames)


async def anonymize(src: Path, dst: Path, triton: TritonClient, pipeline: Pipeline,
                    options: VideoOptions, progress: Progress | None = None) -> VideoResult:
    """Write ``src`` to ``dst`` with every face masked in every frame.

    ``pipeline`` is the detect pipeline (its input_size says how small the frames sent to it
    are). ``progress(frames_done, frames_total)`` is awaited about every PROGRESS_EVERY_S
    and once at the end (frames_total: the container's count, None when it gives none; at
    the end, the frames actually written). Raises io.VideoError for an unusable input,
    ValueError for bad options, and what TritonClient raises; ``dst`` is removed then.
    """
    problem = options.problem()
    if problem:
        raise ValueError(problem)
    started = time.perf_counter()
    info = await asyncio.to_thread(io.probe, src)
    run = _Run(src, dst, triton, pipeline, options, info)
    threads = [threading.Thread(target=target, name=f"video-{target.__name__}", daemon=True)
               for target in (run.decode, run.mask, run.encode)]
    dispatcher = asyncio.create_task(run.dispatch())
    dispatcher.add_done_callback(
        lambda task: task.cancelled() or task.exception() is None or run.fail(task.exception()))
    reporter = asyncio.create_task(run.report(progress)) if progress is not None else None
    if reporter is not None:
        reporter.add_done_callback(
            lambda task: task.cancelled() or task.exception() is None or run.fail(task.exception()))
    for thread in threads:
        thread.start()
    complete = False
    try:
        await run.finished
        await dispatcher
        if run.encoded != run.decoded_count:
            raise RuntimeError(f"{run.decoded_count} frames decoded but {run.encoded} written")
        complete = True
    finally:
        run.stop.set()
        for task in (dispatcher, reporter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await asyncio.to_thread(lambda: [thread.join() for thread in threads])
        if not complete:  # (after the encoder let go of it)
            dst.unlink(missing_ok=True)
    if progress is not None:
        await progress(run.encoded, run.encoded)
    timings = {name: round(value, 1) for name, value in run.busy.items()}
    timings["total_ms"] = round((time.perf_counter() - started) * 1000.0, 1)
    return VideoResult(frames=run.encoded, faces_masked=run.faces_masked,
                       tracks=run.tracker.tracks_confirmed, timings=timings)
