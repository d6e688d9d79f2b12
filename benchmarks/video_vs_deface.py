"""Video anonymisation against deface, on the same 1080p clips in the same run.

The clips are made from the sample photos (tests/support/videos.py: a pan over a group
photo, and a face that enters and leaves), each in a short and a long version, with every
face's box known on every frame. On two frames in every ten ("hard frames") the faces are
blurred so hard that a detector alone misses them: only tracking keeps a mask there.

* deface (PyPI ``deface``: CenterFace on onnxruntime, frame by frame, its default settings
  but for ``--mask``), installed into its own venv (benchmarks/mask_vs_deface.py), one
  process per clip; frames/s = (frames of the long clips − frames of the short ones) /
  (time for the long − time for the short), so its start-up is not held against it;
* the pipeline (frontend/video/pipeline.py) in this process against the stack's Triton:
  decode thread, small frames to Triton several at a time, tracking, masking at full size,
  encode thread; timed the same way;
  with its default options (tiles for small faces on every other frame) and, for
  comparison, with the whole frame alone (``tile_zoom`` 1: one request a frame);
* end to end through the API (``POST /api/v1/mask/video``, polling the job, downloading
  the result), when the service has that endpoint: upload to download, the clips one
  after another as one client would send them; timed the same way.

Every output is judged frame by frame against the known boxes with mask_vs_deface's
criterion (inside the central half of a face the output must differ clearly from the
input or have lost most of its fine detail): masked-face recall over all frames, on the
hard frames alone, and the frames where some known face is left unmasked (and of those,
the frames where that face is whole in the picture, not cut by the frame's edge). The default
masks are solid black on both sides: the hard frames' faces are already blurred in the
input, where a blur on top cannot be told from none; black can (``--mask blur`` compares
the blurs, and the hard frames then count as unmasked whatever either tool does).

    .venv/bin/python -m benchmarks.video_vs_deface                      # starts its own stack
    .venv/bin/python -m benchmarks.video_vs_deface --frames 30 120 --size 1920x1080 --mask blur
    .venv/bin/python -m benchmarks.video_vs_deface --detector yunet_2023mar --confidence 0.3
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import numpy as np

from benchmarks.harness import LIFTED_LIMITS
from benchmarks.mask_vs_deface import ensure_deface, masked_faces
from frontend.inference.served import ServedPipelines
from frontend.inference.triton import TritonClient
from frontend.settings import MODEL_SETS
from frontend.video import io
from frontend.video.pipeline import VideoOptions, anonymize
from tests.integration.stack import start_stack
from tests.support.videos import hard_frames, make_video

CLIPS = ("pan", "enter_leave")  # make_video's kinds: a group photo panned, a face entering and leaving
MIN_FACE_PX = 8  # faces whose visible central half is thinner than this are not judged


@dataclass
class Clip:
    path: Path
    boxes: list[np.ndarray]  # known face boxes per frame, stored pixels
    hard: tuple[int, ...]  # frames whose faces a detector alone misses


@dataclass
class Recall:
    faces: int = 0
    masked: int = 0
    hard_faces: int = 0  # of those, on the hard frames
    hard_masked: int = 0
    frames: int = 0
    leaking_frames: int = 0  # frames where some known face is left unmasked
    leaking_whole: int = 0  # ... some face whole in the picture (not cut by the frame's edge)

    def add(self, other: Recall) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @staticmethod
    def share(masked: int, faces: int) -> str:
        return f"{masked}/{faces} ({masked / faces:.1%})" if faces else "-"


def make_clips(folder: Path, size: tuple[int, int], lengths: list[int]) -> dict[int, list[Clip]]:
    clips: dict[int, list[Clip]] = {}
    for frames in lengths:
        clips[frames] = []
        for kind in CLIPS:
            hard = hard_frames(frames)
            path, boxes = make_video(folder / f"{kind}-{frames}.mp4", kind, size=size, frames=frames,
                                     fps=25, misses=hard)
            clips[frames].append(Clip(path, boxes, hard))
    return clips


def judge(clip: Clip, output: Path) -> Recall:
    """How many of the clip's known faces ``output`` masked, frame by frame."""
    recall = Recall()
    for index, (original, masked, boxes) in enumerate(
            zip(io.read_frames(clip.path), io.read_frames(output), clip.boxes)):
        recall.frames += 1
        height, width = original.shape[:2]
        judged = [box for box in np.asarray(boxes, np.float64).reshape(-1, 4) if _visible(box, width, height)]
        clipped = np.array([[max(0, x1), max(0, y1), min(width, x2), min(height, y2)]
                            for x1, y1, x2, y2 in judged]).reshape(-1, 4)
        left = [box for box in clipped if not masked_faces(original, masked, box[None])]
        count = len(clipped) - len(left)
        recall.faces += len(clipped)
        recall.masked += count
        if index in clip.hard:
            recall.hard_faces += len(clipped)
            recall.hard_masked += count
        recall.leaking_frames += bool(left)
        recall.leaking_whole += any(_whole(box, width, height) for box in left)
    if recall.frames != len(clip.boxes):
        raise RuntimeError(f"{output.name}: {recall.frames} frames judged of {len(clip.boxes)}")
    return recall


def _whole(box: np.ndarray, width: int, height: int) -> bool:
    x1, y1, x2, y2 = box
    return x1 > 1 and y1 > 1 and x2 < width - 1 and y2 < height - 1


def _visible(box: np.ndarray, width: int, height: int) -> bool:
    x1, y1, x2, y2 = box
    w, h = min(width, x2) - max(0, x1), min(height, y2) - max(0, y1)
    return w / 2 >= MIN_FACE_PX and h / 2 >= MIN_FACE_PX


MASKS = {  # --mask: deface's --replacewith and our method
    "solid": ("solid", "solid"),
    "blur": ("blur", "gaussian"),
}


@dataclass
class Row:
    label: str
    clips: dict[int, list[Clip]]
    seconds: dict[int, float]  # clip length -> seconds for all the clips of that length
    recall: Recall

    @property
    def frames_per_s(self) -> float:
        """From the difference between the long and the short clips: start-up left out."""
        short, long = min(self.clips), max(self.clips)
        frames = {n: sum(len(c.boxes) for c in self.clips[n]) for n in (short, long)}
        return (frames[long] - frames[short]) / (self.seconds[long] - self.seconds[short])

    @property
    def long_frames_per_s(self) -> float:
        """Frames of the long clips / their whole time, start-up included."""
        long = max(self.clips)
        return sum(len(c.boxes) for c in self.clips[long]) / self.seconds[long]


def judged_row(label: str, clips: dict[int, list[Clip]], seconds: dict[int, float],
               outputs: dict[int, list[Path]]) -> Row:
    recall = Recall()
    for length in clips:
        for clip, out in zip(clips[length], outputs[length]):
            recall.add(judge(clip, out))
    return Row(label, clips, seconds, recall)


def run_deface(clips: dict[int, list[Clip]], folder: Path, replace_with: str) -> Row:
    deface = ensure_deface()
    seconds, outputs = {}, {}
    for length, group in clips.items():
        outputs[length] = [folder / f"deface-{c.path.stem}.mp4" for c in group]
        started = time.perf_counter()
        for clip, out in zip(group, outputs[length]):
            # One process per clip (-o names one output); its start-up cancels out in the
            # difference between the two lengths.
            extra = [] if replace_with == "blur" else ["--replacewith", replace_with]
            subprocess.run([str(deface), str(clip.path), "-o", str(out), "--backend", "onnxrt", *extra],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds[length] = time.perf_counter() - started
        print(f"  deface, {len(group)} clips of {length} frames: {seconds[length]:.1f} s", flush=True)
    return judged_row("deface 1.5 (CLI)", clips, seconds, outputs)


async def run_pipeline(clips: dict[int, list[Clip]], folder: Path, triton_url: str, options: VideoOptions,
                       detector: str, label: str = "pipeline, in-process -> Triton") -> tuple[Row, dict]:
    triton = TritonClient(triton_url, timeout_s=60)
    await triton.start()
    served = ServedPipelines(triton, detector, MODEL_SETS["insightface"].recognizer)
    seconds, outputs, results = {}, {}, {}
    try:
        await served.refresh()
        detect = served.selection.detect
        if detect is None:
            raise RuntimeError(f"the stack serves no detect pipeline for the detector {detector}")
        # Warm-up: the first requests of a fresh Triton are slower.
        await anonymize(clips[min(clips)][0].path, folder / "warm-up.mp4", triton, detect, options)
        for length, group in clips.items():
            outputs[length] = [folder / f"ours-{c.path.stem}-{options.tile_zoom:g}.mp4" for c in group]
            started = time.perf_counter()
            for clip, out in zip(group, outputs[length]):
                results[clip.path.name] = await anonymize(clip.path, out, triton, detect, options)
            seconds[length] = time.perf_counter() - started
            print(f"  pipeline, {len(group)} clips of {length} frames: {seconds[length]:.1f} s", flush=True)
    finally:
        await triton.close()
    return judged_row(label, clips, seconds, outputs), results


async def run_api(clips: dict[int, list[Clip]], folder: Path, url: str, api_key: str | None,
                  options: VideoOptions) -> Row | None:
    headers = {"X-API-Key": api_key} if api_key else {}
    seconds, outputs = {}, {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as http:
        if (await http.post("/api/v1/mask/video")).status_code in (404, 405):
            print("  the service has no POST /api/v1/mask/video: end to end skipped", flush=True)
            return None

        async def one(clip: Clip, out: Path) -> None:
            with clip.path.open("rb") as handle:
                response = await http.post("/api/v1/mask/video", params={"method": options.method,
                                                                           "confidence": options.confidence},
                                           files={"video": (clip.path.name, handle, "video/mp4")})
            response.raise_for_status()
            status_url = response.json()["status_url"]
            while True:
                status = (await http.get(status_url)).raise_for_status().json()
                if status["state"] == "failed":
                    raise RuntimeError(f"{clip.path.name}: {status.get('error')}")
                if status["state"] == "done":
                    break
                await asyncio.sleep(0.1)
            download = await http.get(_download_url(status), follow_redirects=True)
            out.write_bytes(download.raise_for_status().content)

        await one(clips[min(clips)][0], folder / "api-warm-up.mp4")
        for length, group in clips.items():
            outputs[length] = [folder / f"api-{c.path.stem}.mp4" for c in group]
            started = time.perf_counter()
            for clip, out in zip(group, outputs[length]):
                await one(clip, out)
            seconds[length] = time.perf_counter() - started
            print(f"  API, {len(group)} clips of {length} frames: {seconds[length]:.1f} s", flush=True)
    return judged_row("end to end: HTTP job API", clips, seconds, outputs)


def _download_url(status: dict) -> str:
    output = status.get("output") or {}
    if not output.get("url"):
        raise RuntimeError(f"the finished job gives no download link: {status}")
    return output["url"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs=2, default=[30, 120], metavar=("SHORT", "LONG"),
                        help="frames of the short and the long clips")
    parser.add_argument("--size", default="1920x1080", help="clip size WIDTHxHEIGHT")
    parser.add_argument("--mask", choices=sorted(MASKS), default="solid",
                        help="solid (default): black on both sides, so that a mask shows on the hard "
                             "frames too, whose faces are already blurred in the input; blur: both "
                             "tools' blur (deface's default)")
    parser.add_argument("--in-flight", type=int, default=VideoOptions.in_flight,
                        help="detect requests in flight at once")
    parser.add_argument("--detector", default=MODEL_SETS["insightface"].detector,
                        help="the detector whose pipelines mask (default: the default model set's); the "
                             "stack started here serves it, a --url service must be set to it "
                             "(FACE_API_DETECTOR)")
    parser.add_argument("--confidence", type=float, default=VideoOptions.confidence,
                        help="least face score to mask, in-process and on the API's jobs (deface's own "
                             "default is 0.2)")
    parser.add_argument("--url", help="a running service (default: start one)")
    parser.add_argument("--api-key", help="X-API-Key for --url")
    parser.add_argument("--triton", help="gRPC address of --url's Triton (host:port), for the in-process run")
    args = parser.parse_args()
    size = tuple(int(part) for part in args.size.lower().split("x"))
    replace_with, method = MASKS[args.mask]
    folder = Path(tempfile.mkdtemp(prefix="video-bench-"))
    print(f"making clips ({args.size}, {args.frames[0]} and {args.frames[1]} frames) in {folder} …",
          flush=True)
    clips = make_clips(folder, size, sorted(args.frames))
    faces = sum(len(b) for group in clips.values() for clip in group for b in clip.boxes)
    print(f"clips: {', '.join(c.path.name for group in clips.values() for c in group)}; "
          f"{faces} known faces over their frames", flush=True)
    options = VideoOptions(method=method, in_flight=args.in_flight, confidence=args.confidence)

    print("measuring deface …", flush=True)
    rows = [run_deface(clips, folder, replace_with)]
    stack = None
    url, api_key, triton_url = args.url, args.api_key, args.triton
    if url is None:
        print("starting the stack …", flush=True)
        stack = start_stack(Path(tempfile.mkdtemp(prefix="bench-")),
                            env={**LIFTED_LIMITS, "FACE_API_DETECTOR": args.detector})
        url, api_key, triton_url = stack.url, stack.first_key, f"127.0.0.1:{stack.triton_grpc}"
    results = {}
    try:
        if triton_url:
            print("measuring the pipeline in-process …", flush=True)
            row, results = asyncio.run(run_pipeline(clips, folder, triton_url, options, args.detector))
            rows.append(row)
            if options.tile_zoom > 1:
                print("measuring the pipeline in-process, whole frame only (tile_zoom 1) …", flush=True)
                whole_only = replace(options, tile_zoom=1.0)
                whole, _ = asyncio.run(run_pipeline(clips, folder, triton_url, whole_only, args.detector,
                                                    label="pipeline, whole frame only"))
                rows.append(whole)
        print("measuring end to end through the API …", flush=True)
        api_row = asyncio.run(run_api(clips, folder, url, api_key, options))
        if api_row is not None:
            rows.append(api_row)
    finally:
        if stack is not None:
            stack.stop()

    deface = rows[0]
    print(f"\ndetector: {args.detector}, confidence {args.confidence:g}; masks: {args.mask}; "
          f"faces masked per frame over all clips; hard frames: those whose faces a "
          f"detector alone misses")
    print(f"{'pipeline':<32} {'frames/s':>8} {'x deface':>8} {'long clips':>10} {'faces masked':>20} "
          f"{'on hard frames':>18} {'frames leaking':>14} {'(whole faces)':>13}")
    for row in rows:
        r = row.recall
        print(f"{row.label:<32} {row.frames_per_s:>8.2f} {row.frames_per_s / deface.frames_per_s:>8.1f} "
              f"{row.long_frames_per_s:>10.2f} {Recall.share(r.masked, r.faces):>20} "
              f"{Recall.share(r.hard_masked, r.hard_faces):>18} {r.leaking_frames:>7} of {r.frames} "
              f"{r.leaking_whole:>13}")
    if results:
        print("\nthe pipeline's stage timings on the long clips (busy ms; the stages overlap):")
        for name, result in results.items():
            if name.endswith(f"-{max(clips)}.mp4"):
                print(f"  {name}: {result.frames} frames, {result.faces_masked} regions masked, "
                      f"{result.tracks} tracks, {result.timings}")


if __name__ == "__main__":
    main()
