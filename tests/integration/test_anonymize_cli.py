"""./face-api anonymize on a folder of photos and a video, against a running stack: outputs,
summary, exit status, progress output, and later runs that skip what is done."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import PHOTO_FACES, detect, sample
from tests.integration.stack import ROOT

NOT_A_PHOTO = b"these bytes are text, whatever the file's extension says\n" * 20


def anonymize(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime", "anonymize", *map(str, args)], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120)


def photo_pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def video_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24").astype(np.int16) for frame in container.decode(video=0)]


def make_video(path: Path, photo: str = "gdp.jpg", frames: int = 12) -> np.ndarray:
    """A short H.264 clip of a still sample photo (even-sized for yuv420p); the frame it shows."""
    image = np.asarray(Image.open(sample(photo)).convert("RGB"))
    image = np.ascontiguousarray(image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2])
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
        for _ in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return image


def assert_masked(client, photo: str, before: np.ndarray, after: np.ndarray, noise: float = 4) -> None:
    """Inside every face box of ``photo`` the output differs clearly from the input; away from
    faces only by re-encoding noise."""
    assert before.shape == after.shape
    faces = detect(client, sample(photo).read_bytes(), photo).json()["detections"]
    assert faces
    outside = np.ones(before.shape[:2], bool)
    for face in faces:
        box = face["bbox"]
        x1, y1, x2, y2 = (max(int(box[k]), 0) for k in ("x1", "y1", "x2", "y2"))
        w, h = x2 - x1, y2 - y1
        assert np.abs(before[y1:y2, x1:x2] - after[y1:y2, x1:x2]).mean() > 4, f"face {box} looks unmasked"
        outside[max(y1 - h, 0):y2 + h, max(x1 - w, 0):x2 + w] = False
    if outside.any():  # (a crowd leaves nothing outside)
        assert np.abs(before[outside] - after[outside]).mean() < noise


@pytest.fixture
def media_folder(tmp_path) -> Path:
    """inputs/ with two photos, nested/ with a third and a BMP, clips/ with a MOV video, a text
    file that claims to be a JPEG, and a note that is not a photo at all."""
    folder = tmp_path / "inputs"
    (folder / "nested").mkdir(parents=True)
    (folder / "clips").mkdir()
    shutil.copy(sample("yaoming.jpg"), folder / "yaoming.jpg")
    shutil.copy(sample("gdp.jpg"), folder / "gdp.jpg")
    shutil.copy(sample("players.jpg"), folder / "nested" / "players.jpg")
    Image.open(sample("yaoming.jpg")).save(folder / "nested" / "portrait.bmp")
    make_video(folder / "clips" / "walk.mov")
    (folder / "broken.jpg").write_bytes(NOT_A_PHOTO)
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_a_folder_of_photos_and_a_video_then_a_run_that_skips_it(stack, api_key, client, media_folder,
                                                                  tmp_path):
    out = tmp_path / "out"
    first = anonymize(media_folder, "--out", out, "--url", stack.url, "--api-key", api_key, "--jobs", "3")
    report = first.stdout + first.stderr
    assert first.returncode == 1, report  # the broken file

    # The tree is mirrored under out/inputs/; a BMP comes back as PNG (the API writes no BMP),
    # a MOV as MP4.
    masked = out / "inputs"
    photos = {"yaoming.jpg": ("yaoming.jpg", "yaoming.jpg"), "gdp.jpg": ("gdp.jpg", "gdp.jpg"),
              "nested/players.jpg": ("nested/players.jpg", "players.jpg"),
              "nested/portrait.bmp": ("nested/portrait.png", "yaoming.jpg")}
    for source, (output, photo) in photos.items():
        assert (masked / output).is_file(), report
        assert_masked(client, photo, photo_pixels(media_folder / source), photo_pixels(masked / output))
    assert Image.open(masked / "nested" / "portrait.png").format == "PNG"
    before = video_frames(media_folder / "clips" / "walk.mov")
    after = video_frames(masked / "clips" / "walk.mp4")
    assert len(after) == len(before) == 12
    for frame in (0, 6, 11):
        assert_masked(client, "gdp.jpg", before[frame], after[frame], noise=6)
    assert not (masked / "broken.jpg").exists() and not (masked / "notes.txt").exists()
    assert not [p for p in out.rglob("*") if ".part-" in p.name]

    # A line per file (stdout is no terminal here), then the summary with the failure's reason.
    lines = first.stdout.splitlines()
    assert [line for line in lines if line.startswith("[")] and "[6/6]" in first.stdout
    video_line = next(line for line in lines if "walk.mov -> " in line)
    video_faces = int(video_line.split("(")[1].split(" face")[0])
    assert video_faces >= PHOTO_FACES["gdp.jpg"] and "masked regions in 12 frames" in video_line
    faces = PHOTO_FACES["yaoming.jpg"] * 2 + PHOTO_FACES["gdp.jpg"] + PHOTO_FACES["players.jpg"] + video_faces
    assert f"6 files: 5 done, 0 skipped, 1 failed; {faces} faces masked" in first.stdout, report
    assert "1 other file in the folders" in first.stdout
    failures = first.stdout.split("failures:\n")[1].splitlines()
    failure = next(line for line in failures if "broken.jpg" in line)
    assert "HTTP 4" in failure and len(failure.split(": HTTP 4")[1]) > 10, failure  # the API's detail

    # Again without the broken file, in a terminal (rich's bars): everything is skipped.
    (media_folder / "broken.jpg").unlink()
    again = anonymize(media_folder, "--out", out, "--url", stack.url, "--api-key", api_key,
                      env={"TTY_COMPATIBLE": "1", "COLUMNS": "120"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "5 files: 0 done, 5 skipped, 0 failed; 0 faces masked" in again.stdout
    assert "all files" in again.stdout and "5/5" in again.stdout  # the overall bar

    # An output older than its input is done again; the others are still skipped.
    os.utime(masked / "gdp.jpg", (1, 1))
    third = anonymize(media_folder, "--out", out, "--url", stack.url, "--api-key", api_key)
    assert "5 files: 1 done, 4 skipped, 0 failed" in third.stdout, third.stdout + third.stderr

    # A file argument lands in out/ itself; --overwrite and the masking options reach the API.
    single = anonymize(media_folder / "yaoming.jpg", "--out", out, "--url", stack.url, "--api-key", api_key,
                       "--overwrite", "--format", "webp", "--method", "pixelate", "--strength", "8")
    assert single.returncode == 0 and "1 file: 1 done" in single.stdout, single.stdout + single.stderr
    assert Image.open(out / "yaoming.webp").format == "WEBP"
    assert_masked(client, "yaoming.jpg", photo_pixels(media_folder / "yaoming.jpg"),
                  photo_pixels(out / "yaoming.webp"))


def test_usage_errors_exit_2(tmp_path):
    missing = anonymize(tmp_path / "missing", "--out", tmp_path / "out", "--url", "http://127.0.0.1:9")
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    (tmp_path / "notes.txt").write_text("x")
    wrong = anonymize(tmp_path / "notes.txt", "--out", tmp_path / "out", "--url", "http://127.0.0.1:9")
    assert wrong.returncode == 2 and "neither a photo nor a video" in wrong.stderr
    assert anonymize(tmp_path).returncode == 2  # no --out


def test_unreachable_service_fails_each_file_with_the_reason(tmp_path):
    shutil.copy(sample("yaoming.jpg"), tmp_path / "a.jpg")
    result = anonymize(tmp_path / "a.jpg", "--out", tmp_path / "out", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "1 failed" in result.stdout and "cannot reach the service" in result.stdout
