"""Video files in and out, on PyAV (FFmpeg's own demuxers, decoders, encoders and muxers).

``probe`` says whether an upload is a video we can work on and what it is; ``read_frames``
decodes it to RGB arrays; ``VideoWriter`` encodes arrays back, keeping what the viewer sees
of the original: frame rate and time base, resolution, rotation and, when asked, the audio.

Rotation. A phone stores a portrait clip as landscape pixels plus a display matrix in the
container; ``VideoInfo.rotation`` is that turn in degrees clockwise (what the old ``rotate``
tag said). Frames are read and written as stored, never turned: the masks are drawn on the
stored pixels and the output carries the same instruction to the player. PyAV 16 cannot set a
stream's display matrix (later PyAV releases add ``VideoStream.set_display_rotation``), so the
writer carries the rotation where PyAV 16 can put it: for H.264 in the codec's own display
orientation message (inserted by FFmpeg's ``h264_metadata`` bitstream filter; FFmpeg's
decoder reports it, so ``probe`` reads it back), and in Matroska/WebM also as a ``rotate``
tag. docs/video.md says more, with the codec settings and why.

Odd sizes. 4:2:0 chroma halves both axes, and x264 refuses an odd width or height in it. The
resolution must not change, so an odd-sized clip is written in H.264 as 4:4:4 (the High 4:4:4
profile: FFmpeg-based players play it, some browsers do not) and in VP9 as 4:2:0, which VP9
allows at any size.
"""

from __future__ import annotations

import fractions
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.bitstream import BitStreamFilterContext

# FFmpeg demuxers that read single pictures: an upload they open is a photo, not a video.
IMAGE_DEMUXERS = ("image2", "image2pipe", "_pipe")
# container → (FFmpeg muxer, codecs it may carry)
CONTAINERS = {"mp4": ("mp4", ("h264",)), "webm": ("webm", ("vp9",)), "mkv": ("matroska", ("h264", "vp9"))}
ENCODERS = {"h264": "libx264", "vp9": "libvpx-vp9"}
# x264's "veryfast": about 1.4x the speed of its default ("medium") at similar size;
# "ultrafast" (no CABAC, little motion search) is another 1.5x but writes over 4x the bytes
# (docs/video.md has the figures). Anonymisation is throughput-bound; a caller that must go
# faster still passes preset="superfast" or "ultrafast".
DEFAULT_H264_PRESET = "veryfast"
# Audio copied as it is: what players expect in each container (FFmpeg would also put PCM
# in MP4, which few players read). Anything else is re-encoded to the fallback.
AUDIO_COPY = {"mp4": {"aac", "mp3", "ac3", "eac3", "alac"}, "webm": {"opus", "vorbis"}, "mkv": None}
AUDIO_FALLBACK = {"mp4": "aac", "webm": "libopus", "mkv": "aac"}
# How far (seconds) audio packets may run ahead of the video written so far: keeps the two
# interleaved in the file without holding the whole soundtrack in memory.
AUDIO_LEAD_S = 0.5
MAX_FPS = 240  # above this a declared rate is a time base misread as a rate


class VideoError(ValueError):
    """The upload is not a usable video: not a video, truncated, no video stream, zero frames."""


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as stored (before rotation)
    height: int
    fps: fractions.Fraction
    frames: int | None
    duration_s: float
    rotation: int  # degrees clockwise the player turns the stored frames: 0, 90, 180, 270
    has_audio: bool
    video_codec: str
    container: str
    size_bytes: int
    time_base: fractions.Fraction | None = None  # the video stream's, kept on output


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), "r")
    except FileNotFoundError:
        raise
    except av.error.EOFError as exc:
        raise VideoError("the video has no frames: the file ends before its first frame") from exc
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(_unreadable(path, exc)) from exc


def _unreadable(path: Path, exc: Exception) -> str:
    """Why FFmpeg could not open the file, in the user's words rather than its own."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        head = b""
    if head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3":
        # An MP4 / Matroska signature whose index cannot be read: cut short or damaged.
        return "the video is truncated or damaged: its index cannot be read"
    if not head:
        return "the file is empty"
    return "not a video file (no video format recognised)"


def _rotation_clockwise(stream, first_frame) -> int:
    """The display rotation, clockwise, from the frame's display matrix or the ``rotate`` tag.

    FFmpeg attaches the container's display matrix (and an H.264 orientation message) to
    every decoded frame as side data, which ``VideoFrame.rotation`` reads (anticlockwise).
    """
    if first_frame is not None and first_frame.rotation:
        return int(round(-first_frame.rotation)) % 360
    for key, value in stream.metadata.items():
        if key.lower() == "rotate":
            try:
                return int(round(float(value))) % 360
            except ValueError:
                return 0
    return 0


def _frame_rate(stream, intervals: int, span_s: float) -> fractions.Fraction:
    """The average frame rate: ``intervals`` frame intervals in ``span_s`` seconds, or the
    rate FFmpeg reports when it agrees (within 1 %; it is exact, 30000/1001 and not 29.97).

    A variable-rate clip (a phone's, a browser's WebM recording) may declare a nominal
    rate, or a 1 ms time base that FFmpeg's fallbacks read as 1000 fps; written at that
    rate it would come out longer or shorter than its soundtrack. Counted, it keeps its
    length.
    """
    rate = stream.average_rate
    if intervals > 0 and span_s > 0:
        measured = intervals / span_s
        if rate and abs(float(rate) - measured) <= 0.01 * measured:
            return fractions.Fraction(rate)
        return fractions.Fraction(measured).limit_denominator(1001)
    if rate and 0 < rate <= MAX_FPS:
        return fractions.Fraction(rate)
    for rate in (stream.guessed_rate, stream.base_rate):
        if rate and 0 < rate <= MAX_FPS:
            return fractions.Fraction(rate)
    raise VideoError("the video declares no frame rate")


def _container_name(container, path: Path) -> str:
    names = container.format.name.split(",")
    suffix = path.suffix.lower().lstrip(".")
    if suffix in names:
        return suffix
    return {"mov": "mp4", "matroska": "mkv"}.get(names[0], names[0])


def _declared_duration(stream, container, fps: fractions.Fraction) -> tuple[float | None, float]:
    """The video's length as its header states it, and how far short of it a whole file may end.

    Matroska states no frame count; FFmpeg writes each track's ``DURATION`` tag, and every
    muxer the segment's duration, which also spans the audio (so more slack there).
    """
    frame_s = float(1 / fps)
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base), 2 * frame_s
    for key, value in stream.metadata.items():
        if key.lower() == "duration":
            try:
                hours, minutes, seconds = value.split(":")
                return int(hours) * 3600 + int(minutes) * 60 + float(seconds), 2 * frame_s
            except ValueError:
                break
    if container.duration:
        return container.duration / av.time_base, max(0.5, 2 * frame_s)
    return None, 0.0


def probe(path: Path) -> VideoInfo:
    """What the video is, or a ``VideoError`` saying why it cannot be used.

    Reads every packet (without decoding) so that the frame count is exact and a file cut
    short is noticed now rather than halfway through a job, and decodes the first frame.
    """
    path = Path(path)
    size = path.stat().st_size
    with _open(path) as container:
        if any(container.format.name.endswith(name) for name in IMAGE_DEMUXERS):
            raise VideoError("this is a still image, not a video")
        if not container.streams.video:
            if container.streams.audio:
                raise VideoError("the file has no video stream (it holds only audio)")
            # MP4 drops a track without samples: an encoder stopped before its first frame
            raise VideoError("the video has no frames (the file holds no stream)")
        stream = container.streams.video[0]
        has_audio = bool(container.streams.audio)
        time_base = fractions.Fraction(stream.time_base) if stream.time_base else None

        packets, first_pts, last_pts, last_end = 0, None, None, None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                packets += 1
                if packet.pts is not None:
                    first_pts = packet.pts if first_pts is None else min(first_pts, packet.pts)
                    last_pts = packet.pts if last_pts is None else max(last_pts, packet.pts)
                    end = packet.pts + (packet.duration or 0)
                    last_end = end if last_end is None else max(last_end, end)
        except av.error.FFmpegError as exc:
            raise VideoError(f"the video is truncated or damaged after {packets} frames") from exc
        if packets == 0:
            raise VideoError("the video has no frames")
        declared = stream.frames or None
        if declared and packets < declared:
            raise VideoError(f"the video is truncated: {packets} of its {declared} frames are present")
        if first_pts is not None and time_base and last_pts > first_pts:
            # frames over the span of their start times: needs no packet durations
            fps = _frame_rate(stream, packets - 1, float((last_pts - first_pts) * time_base))
            duration_s = max(float((last_end - first_pts) * time_base), float(packets / fps))
        else:
            fps = _frame_rate(stream, 0, 0.0)
            duration_s = float(packets / fps)
        time_base = time_base or 1 / fps
        declared_s, slack_s = _declared_duration(stream, container, fps)
        if declared_s and duration_s < declared_s - slack_s:
            raise VideoError(f"the video is truncated: {duration_s:.2f} s of its "
                             f"{declared_s:.2f} s are present")
        width, height = stream.codec_context.width, stream.codec_context.height
        # the codec's own name ("av1"), not the decoder's ("libdav1d")
        video_codec = stream.codec_context.codec.canonical_name
        container_name = _container_name(container, path)

    with _open(path) as container:  # again from the start: the demuxing above read to the end
        stream = container.streams.video[0]
        try:
            first = next(iter(container.decode(stream)), None)
        except av.error.FFmpegError as exc:
            raise VideoError("the video's first frame cannot be decoded") from exc
        if first is None:
            raise VideoError("the video has no decodable frames")
        rotation = _rotation_clockwise(stream, first)
    return VideoInfo(
        width=width or first.width,
        height=height or first.height,
        fps=fps,
        frames=packets,
        duration_s=duration_s,
        rotation=rotation,
        has_audio=has_audio,
        video_codec=video_codec,
        container=container_name,
        size_bytes=size,
        time_base=time_base,
    )


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """Decode every frame to RGB uint8 H×W×3, as stored (rotation not applied), in order."""
    with _open(Path(path)) as container:
        if not container.streams.video:
            raise VideoError("the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads: decoding 1080p is otherwise one core
        index = 0
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
                index += 1
        except av.error.FFmpegError as exc:
            raise VideoError(f"the video is damaged at frame {index}") from exc


class VideoWriter:
    """Encode RGB frames into a new video with the input's timing, size and rotation.

    ``quality`` is CRF-like on x264's 0..51 scale (lower is better, 23 is x264's default);
    VP9's 0..63 scale gets the same fraction of its range. ``audio_from`` names a file whose
    first audio stream is copied packet for packet when the container holds its codec well
    (``AUDIO_COPY``), else re-encoded (AAC for MP4/MKV, Opus for WebM); a file without audio
    adds none. ``preset`` overrides x264's (``DEFAULT_H264_PRESET``). Frames are written at
    a constant rate: frame ``i`` is shown at ``i / fps``. MP4s are finished with their index
    first (``+faststart``: they play while downloading), which rewrites the file once on close.
    """

    def __init__(self, path: Path, info: VideoInfo, *, container: str = "mp4", codec: str = "h264",
                 quality: int = 23, audio_from: Path | None = None, preset: str | None = None):
        if container not in CONTAINERS:
            raise ValueError(f"container must be one of {sorted(CONTAINERS)}")
        muxer, codecs = CONTAINERS[container]
        if codec not in codecs:
            raise ValueError(f"{container} carries {' or '.join(codecs)}, not {codec}")
        if not 0 <= quality <= 51:
            raise ValueError("quality must be between 0 and 51")
        self.info = info
        self.frames_written = 0
        self._closed = False
        self._audio_in = None
        options = {"movflags": "+faststart"} if muxer == "mp4" else {}
        self._out = av.open(str(path), "w", format=muxer, options=options)
        try:
            self._video = self._add_video(container, codec, quality, preset)
            if audio_from is not None:
                self._add_audio(Path(audio_from), container)
            self._out.start_encoding()
            # The orientation message goes into the encoded stream, so the filter sees the
            # encoder's final parameters (known once encoding has started).
            self._bsf = None
            if info.rotation % 360 and codec == "h264":
                anticlockwise = (-info.rotation) % 360
                self._bsf = BitStreamFilterContext(
                    f"h264_metadata=display_orientation=insert:rotate={anticlockwise}",
                    self._video, self._video)
        except BaseException:
            self._abort()
            raise

    def _add_video(self, container: str, codec: str, quality: int, preset: str | None):
        info = self.info
        odd = info.width % 2 or info.height % 2
        if codec == "h264":
            options = {"crf": str(quality), "preset": preset or DEFAULT_H264_PRESET}
            pix_fmt = "yuv444p" if odd else "yuv420p"
        else:
            options = {
                "crf": str(round(quality * 63 / 51)), "b": "0",  # b=0: constant quality, no bitrate cap
                "row-mt": "1", "tile-columns": "2",  # rows and tiles in parallel threads
                # realtime + cpu-used 8: libvpx's fastest settings, about 10x "good" speed
                "deadline": "realtime", "cpu-used": "8",
            }
            pix_fmt = "yuv420p"
        stream = self._out.add_stream(ENCODERS[codec], rate=info.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, pix_fmt
        self._time_base = info.time_base or 1 / info.fps
        if (1 / info.fps / self._time_base).denominator != 1:
            # Frame times would be rounded (and the rate read back inexact): use a time base
            # that counts whole frames, e.g. 1/30000 with 1001 ticks a frame for 29.97 fps.
            self._time_base = fractions.Fraction(1, info.fps.numerator)
        stream.codec_context.time_base = self._time_base
        stream.time_base = self._time_base
        stream.codec_context.framerate = info.fps
        stream.codec_context.thread_count = 0  # one per core
        if info.rotation % 360 and container in ("mkv", "webm"):
            stream.metadata["rotate"] = str(info.rotation % 360)
        return stream

    def _add_audio(self, source: Path, container: str) -> None:
        try:
            self._audio_in = av.open(str(source), "r")
        except av.error.FFmpegError:
            return
        if not self._audio_in.streams.audio:
            self._audio_in.close()
            self._audio_in = None
            return
        in_stream = self._audio_in.streams.audio[0]
        self._audio_src = in_stream
        # Align the soundtrack with the video as the source aligned them: both shift by the
        # video's start time, since the output's video starts at 0.
        video = self._audio_in.streams.video[0] if self._audio_in.streams.video else None
        start = video.start_time * video.time_base if video is not None and video.start_time else 0
        self._audio_shift = round(start / in_stream.time_base) if in_stream.time_base else 0
        copyable = AUDIO_COPY[container]
        try:
            if copyable is not None and in_stream.codec_context.name not in copyable:
                raise ValueError(in_stream.codec_context.name)
            self._audio = self._out.add_stream_from_template(in_stream)
            self._resampler = None
        except ValueError:  # the container cannot (or should not) hold this codec: re-encode
            encoder = AUDIO_FALLBACK[container]
            rate = 48000 if encoder == "libopus" else (in_stream.rate or 48000)
            self._audio = self._out.add_stream(encoder, rate=rate)
            layout = in_stream.layout.name if in_stream.layout else "stereo"
            if layout.endswith("channels"):  # an unnamed layout ("1 channels"): name it, or downmix
                layout = "mono" if in_stream.layout.nb_channels == 1 else "stereo"
            self._audio.layout = layout
            self._audio.codec_context.time_base = fractions.Fraction(1, rate)
            self._resampler = av.AudioResampler(
                format=self._audio.format.name if self._audio.format else "fltp",
                layout=self._audio.layout, rate=rate)
        self._audio_packets = self._audio_in.demux(in_stream)

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 H×W×3 frame (the stored size, as read)."""
        if frame.shape != (self.info.height, self.info.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 {self.info.height}x{self.info.width}x3, "
                             f"got {frame.dtype} {frame.shape}")
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        picture.pts = self._pts(self.frames_written)
        picture.time_base = self._time_base
        self._mux_video(self._video.encode(picture))
        self.frames_written += 1
        if self._audio_in is not None:
            self._mux_audio(until_s=self.frames_written / self.info.fps + AUDIO_LEAD_S)

    def _pts(self, index: int) -> int:
        return round(index / self.info.fps / self._time_base)

    def _mux_video(self, packets) -> None:
        for packet in packets:
            for out in self._bsf.filter(packet) if self._bsf is not None else (packet,):
                out.stream = self._video
                self._out.mux(out)

    def _mux_audio(self, until_s: float | None) -> None:
        """Copy (or re-encode) source audio up to ``until_s`` seconds; all of it when None."""
        for packet in self._audio_packets:
            if packet.size == 0:
                continue
            if packet.pts is not None:
                packet.pts -= self._audio_shift
            if packet.dts is not None:
                packet.dts -= self._audio_shift
            if self._resampler is None:
                packet.stream = self._audio
                self._out.mux(packet)
            else:
                for decoded in packet.decode():
                    decoded.pts = None  # the encoder numbers the resampled samples itself
                    for resampled in self._resampler.resample(decoded):
                        self._out.mux(self._audio.encode(resampled))
            if until_s is not None and packet.pts is not None and \
                    float(packet.pts * packet.time_base) >= until_s:
                return
        self._audio_packets = iter(())

    def close(self) -> None:
        """Flush the encoders and finish the file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._mux_video(self._video.encode(None))
            if self._bsf is not None:
                for out in self._bsf.filter(None):
                    out.stream = self._video
                    self._out.mux(out)
            if self._audio_in is not None:
                self._mux_audio(until_s=None)
                if self._resampler is not None:
                    for resampled in self._resampler.resample(None):
                        self._out.mux(self._audio.encode(resampled))
                    self._out.mux(self._audio.encode(None))
        finally:
            self._abort()

    def _abort(self) -> None:
        self._closed = True
        if self._audio_in is not None:
            self._audio_in.close()
            self._audio_in = None
        self._out.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

