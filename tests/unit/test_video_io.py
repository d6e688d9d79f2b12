"""Video in and out on PyAV: what probe reports and refuses, what the writer keeps.

Every clip here is encoded and decoded for real, tiny (64×48 to 160×90, a second or two).
"""

from __future__ import annotations

import fractions
import os
from pathlib import Path

import av
import numpy as np
import pytest

from frontend.video.io import VideoError, VideoInfo, VideoWriter, probe, read_frames
from frontend.video.tracking import iou_matrix

COMBINATIONS = [("mp4", "h264"), ("webm", "vp9"), ("mkv", "h264"), ("mkv", "vp9")]
ROOT = Path(__file__).resolve().parents[2]


def info_for(width=96, height=64, fps=fractions.Fraction(25), rotation=0) -> VideoInfo:
    return VideoInfo(width=width, height=height, fps=fractions.Fraction(fps), frames=None, duration_s=0.0,
                     rotation=rotation, has_audio=False, video_codec="", container="", size_bytes=0)


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """A frame that says its own index: a gradient and a white bar 3 pixels further right each frame."""
    x = np.linspace(0, 120, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 60, height, dtype=np.float32)[:, None, None]
    base = np.broadcast_to(x + y, (height, width, 3)).copy()
    left = (3 * index) % (width - 4)
    base[:, left:left + 4] = 255
    return base.astype(np.uint8)


def write_clip(path: Path, info: VideoInfo, frames: int, **kwargs) -> Path:
    with VideoWriter(path, info, **kwargs) as writer:
        for index in range(frames):
            writer.write(pattern(index, info.width, info.height))
    return path


def tone(path: Path, seconds: float, rate: int = 44100) -> Path:
    """An AAC tone with a video track, as a camera would record it."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "stereo"
        for index in range(round(seconds * 25)):
            frame = av.VideoFrame.from_ndarray(pattern(index, 64, 48), format="rgb24")
            container.mux(video.encode(frame))
        samples = round(seconds * rate)
        wave = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / rate)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = wave[start:start + 1024]
            frame = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, start
            container.mux(audio.encode(frame))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


def audio_of(path: Path) -> tuple[str, float, int] | None:
    """(codec, seconds, packets) of the first audio stream, from its packets."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        packets = [packet for packet in container.demux(stream) if packet.size]
        seconds = (packets[-1].pts + packets[-1].duration - packets[0].pts) * stream.time_base
        return stream.codec_context.name, float(seconds), len(packets)


@pytest.mark.parametrize("container,codec", COMBINATIONS)
def test_round_trip_keeps_frames_rate_size_and_pixels(tmp_path, container, codec):
    path = write_clip(tmp_path / f"clip.{container}", info_for(), 30, container=container, codec=codec,
                      quality=18)
    info = probe(path)
    assert (info.width, info.height, info.frames, info.fps) == (96, 64, 30, 25)
    assert info.video_codec == codec and info.container == container
    assert info.duration_s == pytest.approx(1.2, abs=0.05)
    assert info.rotation == 0 and not info.has_audio and info.size_bytes == path.stat().st_size
    frames = list(read_frames(path))
    assert len(frames) == 30
    for index, frame in enumerate(frames):
        assert frame.dtype == np.uint8 and frame.shape == (64, 96, 3)
        errors = {j: np.abs(frame.astype(int) - pattern(j, 96, 64)).mean()
                  for j in (index - 1, index, index + 1)}
        assert errors[index] < 4.0
        assert min(errors, key=errors.get) == index  # in order: nearest its own original


def test_ntsc_rate_and_time_base_are_kept(tmp_path):
    ntsc = fractions.Fraction(30000, 1001)
    source = probe(write_clip(tmp_path / "source.mp4", info_for(fps=ntsc), 20))
    assert source.fps == ntsc and source.frames == 20
    copy = tmp_path / "copy.mp4"
    with VideoWriter(copy, source) as writer:
        for frame in read_frames(tmp_path / "source.mp4"):
            writer.write(frame)
    out = probe(copy)
    assert (out.fps, out.frames, out.time_base) == (ntsc, 20, source.time_base)
    assert out.duration_s == pytest.approx(source.duration_s, abs=1e-3)


def test_variable_frame_rate_keeps_its_length(tmp_path):
    """A clip whose frames come 25, 33 or 50 ms apart, declaring a nominal 24 fps."""
    source = tmp_path / "recording.webm"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libvpx-vp9")
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        gaps = np.random.default_rng(0).choice([25, 33, 50], 60)
        for index, pts in enumerate(np.concatenate([[0], np.cumsum(gaps[:-1])])):
            frame = av.VideoFrame.from_ndarray(pattern(index, 64, 48), format="rgb24")
            frame.pts, frame.time_base = int(pts), fractions.Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    info = probe(source)
    assert info.frames == 60
    assert float(info.fps) == pytest.approx(59 / (gaps[:-1].sum() / 1000), rel=1e-3)
    out = write_clip(tmp_path / "out.mp4", info, 60)
    assert probe(out).duration_s == pytest.approx(info.duration_s, abs=0.04)


@pytest.mark.parametrize("container,codec", COMBINATIONS)
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_survives_probe_and_rewrite(tmp_path, container, codec, rotation):
    source = write_clip(tmp_path / f"in.{container}", info_for(rotation=rotation), 5, container=container,
                        codec=codec)
    info = probe(source)
    assert info.rotation == rotation
    assert (info.width, info.height) == (96, 64)  # stored size: rotation is not applied
    assert next(read_frames(source)).shape == (64, 96, 3)
    again = write_clip(tmp_path / f"out.{container}", info, 5, container=container, codec=codec)
    assert probe(again).rotation == rotation


@pytest.mark.parametrize("container,codec,expected", [("mp4", "h264", "aac"), ("mkv", "vp9", "aac"),
                                                      ("webm", "vp9", "opus")])
def test_audio_is_copied_or_reencoded_and_lasts_as_long(tmp_path, container, codec, expected):
    camera = tone(tmp_path / "camera.mp4", 2.0)
    source = probe(camera)
    assert source.has_audio and source.frames == 50
    out = tmp_path / f"out.{container}"
    with VideoWriter(out, source, container=container, codec=codec, audio_from=camera) as writer:
        for frame in read_frames(camera):
            writer.write(frame)
    info = probe(out)
    assert info.has_audio and info.frames == 50 and info.fps == 25
    name, seconds, packets = audio_of(out)
    original = audio_of(camera)
    assert name == expected
    assert seconds == pytest.approx(original[1], abs=0.06)
    if expected == "aac":  # copied packet for packet, not re-encoded
        assert packets == original[2]


def test_audio_mp4_players_cannot_read_is_reencoded(tmp_path):
    """PCM (as in MOV, AVI, MKV from some cameras) becomes AAC in MP4, with its length kept."""
    camera = tmp_path / "camera.mkv"
    with av.open(str(camera), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=48000)
        audio.layout = "mono"
        for index in range(25):
            container.mux(video.encode(av.VideoFrame.from_ndarray(pattern(index, 64, 48), format="rgb24")))
        for start in range(0, 48000, 1920):
            samples = (np.sin(np.arange(start, start + 1920) / 10) * 8000).astype(np.int16)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            container.mux(audio.encode(frame))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    out = tmp_path / "out.mp4"
    with VideoWriter(out, probe(camera), audio_from=camera) as writer:
        for frame in read_frames(camera):
            writer.write(frame)
    name, seconds, _ = audio_of(out)
    assert name == "aac" and seconds == pytest.approx(1.0, abs=0.05)
    assert probe(out).frames == 25


def test_no_audio_unless_the_source_has_some(tmp_path):
    silent = write_clip(tmp_path / "silent.mp4", info_for(), 5)
    out = write_clip(tmp_path / "out.mp4", info_for(), 5, audio_from=silent)
    assert not probe(out).has_audio


@pytest.mark.parametrize("container,codec,pix_fmt", [("mp4", "h264", "yuv444p"), ("webm", "vp9", "yuv420p")])
def test_odd_sizes_keep_their_resolution(tmp_path, container, codec, pix_fmt):
    path = write_clip(tmp_path / f"odd.{container}", info_for(width=65, height=47), 4, container=container,
                      codec=codec)
    info = probe(path)
    assert (info.width, info.height, info.frames) == (65, 47, 4)
    with av.open(str(path)) as opened:
        assert opened.streams.video[0].codec_context.pix_fmt == pix_fmt
    assert next(read_frames(path)).shape == (47, 65, 3)


def test_the_writer_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(ValueError, match="webm carries vp9"):
        VideoWriter(tmp_path / "x.webm", info_for(), container="webm", codec="h264")
    with pytest.raises(ValueError, match="container"):
        VideoWriter(tmp_path / "x.avi", info_for(), container="avi")
    with pytest.raises(ValueError, match="quality"):
        VideoWriter(tmp_path / "x.mp4", info_for(), quality=60)
    with VideoWriter(tmp_path / "x.mp4", info_for()) as writer:
        with pytest.raises(ValueError, match="uint8 64x96x3"):
            writer.write(np.zeros((64, 95, 3), np.uint8))
        writer.write(pattern(0, 96, 64))
    assert probe(tmp_path / "x.mp4").frames == 1


# -- what probe refuses --------------------------------------------------------------------


def refused(path: Path) -> str:
    with pytest.raises(VideoError) as caught:
        probe(path)
    assert isinstance(caught.value, ValueError)  # the API maps ValueError subclasses to 4xx
    return str(caught.value)


def test_not_a_video(tmp_path):
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(os.urandom(4096))
    assert "not a video" in refused(noise)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert "empty" in refused(empty)
    photo = tmp_path / "photo.jpg"
    av_photo = pattern(0, 64, 48)
    from PIL import Image
    Image.fromarray(av_photo).save(photo)
    assert "still image" in refused(photo)


def test_truncated_files(tmp_path):
    # MP4 with its index first (as written here): the frames it promises are missing
    whole = write_clip(tmp_path / "whole.mp4", info_for(), 40).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    assert "truncated" in refused(cut)
    # MP4 with its index last (as cameras write it): the index itself is gone
    camera = tone(tmp_path / "camera.mp4", 1.0).read_bytes()
    cut.write_bytes(camera[: len(camera) * 3 // 4])
    assert "truncated" in refused(cut)
    # Matroska: shorter than its header says
    whole = write_clip(tmp_path / "whole.mkv", info_for(), 40, container="mkv").read_bytes()
    cut_mkv = tmp_path / "cut.mkv"
    cut_mkv.write_bytes(whole[: len(whole) * 2 // 3])
    assert "truncated" in refused(cut_mkv)


def test_zero_frames_and_no_video_stream(tmp_path):
    for suffix, muxer in ((".mp4", "mp4"), (".mkv", "matroska")):
        path = tmp_path / f"zero{suffix}"
        with av.open(str(path), "w", format=muxer) as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            container.start_encoding()
        assert "no frames" in refused(path)
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert "no video stream" in refused(sound)


# -- the test clips ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector():
    from tests.reference.scrfd_reference import ReferenceSCRFD
    from tests.support.videos import DETECTOR, SAMPLES

    if not DETECTOR.exists() or not (SAMPLES / "players.jpg").exists():
        pytest.skip("the weights and sample photos are not fetched (./face-api weights)")
    return ReferenceSCRFD(DETECTOR, threads=1)


@pytest.mark.parametrize("kind", ["pan", "zoom", "enter_leave", "still"])
def test_clips_know_their_faces_and_hide_them_on_miss_frames(tmp_path, detector, kind):
    from tests.support.videos import make_video

    misses = {5, 6, 20}
    path, known = make_video(tmp_path / f"{kind}.mp4", kind, size=(320, 180), frames=24, misses=misses,
                             min_size=12)
    info = probe(path)
    assert (info.width, info.height, info.frames) == (320, 180, 24) == (320, 180, len(known))
    assert sum(len(boxes) for boxes in known) > 0
    found = 0
    for index, frame in enumerate(read_frames(path)):
        boxes = detector.detect(frame).boxes.astype(float)
        if index in misses:
            assert len(boxes) == 0, (index, boxes)  # only tracking can mask these frames
        elif len(known[index]):
            best = iou_matrix(known[index].astype(float), boxes).max(axis=1) if len(boxes) else [0.0]
            found += int(np.sum(np.asarray(best) >= 0.4))
    detectable = sum(len(known[index]) for index in range(24) if index not in misses)
    assert found >= 0.8 * detectable  # the truth is where the faces are


def test_clip_options(tmp_path):
    from tests.support.videos import SAMPLES, make_video

    if not (SAMPLES / "yaoming.jpg").exists():
        pytest.skip("the sample photos are not fetched (./face-api weights)")
    path, known = make_video(tmp_path / "clip.webm", "enter_leave", size=(160, 90), frames=12, fps=30,
                             audio=True, rotation=90)
    info = probe(path)
    assert (info.rotation, info.fps, info.frames, info.has_audio) == (90, 30, 12, True)
    assert audio_of(path)[1] == pytest.approx(12 / 30, abs=0.05)
    assert len(known) == 12 and not len(known[0])  # the face has not entered yet
