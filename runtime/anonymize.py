"""./face-api anonymize PATH… --out DIR: mask the faces of many photos and videos through the API.

Photos go to POST /api/v1/mask; videos to the video job API (POST /api/v1/mask/video, then its
status URL until the job is done, then its download link). Folders are walked recursively and
mirrored under --out (``footage/`` → ``DIR/footage/…``; a file argument → ``DIR/<its name>``).
Several files are in flight at once (--jobs). An output that exists and is newer than its input
is skipped unless --overwrite: a run that was interrupted picks up where it stopped (outputs are
written under a temporary name and renamed, so a half-written file never looks done).

Without --url (or FACE_API_URL) the embedded service is started for the run, on free ports, with
state of its own (database, objects, an API key) that is deleted at the end.

Exit status: 0 every file done or skipped, 1 some file failed (the summary says why), 2 usage
error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from runtime.paths import ROOT, RUN
from runtime.ports import free_port

# Input extension -> the output format it keeps (formats the API cannot write become PNG: lossless).
PHOTO_SUFFIXES = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp",
                  ".bmp": None, ".tif": None, ".tiff": None}
FORMAT_SUFFIXES = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
# Input extension -> the output container it keeps (others are re-muxed as MP4).
VIDEO_SUFFIXES = {".mp4": "mp4", ".mkv": "mkv", ".webm": "webm", ".mov": None, ".avi": None, ".m4v": None}
CONTAINER_SUFFIXES = {"mp4": ".mp4", "mkv": ".mkv", "webm": ".webm"}
CONTAINER_CODECS = {"mp4": "h264", "mkv": "h264", "webm": "vp9"}  # WebM cannot hold H.264

MAX_RETRIES = 8  # 429/503 answers waited out per request, before the file counts as failed
MAX_RETRY_WAIT_S = 60.0  # a longer Retry-After is cut to this (and tried again)
DEFAULT_RETRY_WAIT_S = 5.0  # a 429 without Retry-After (e.g. too many video jobs at once)
POLL_S = 1.0  # video job status
PLAIN_VIDEO_EVERY_S = 10.0  # without a terminal: a progress line per running video this often
STARTUP_TIMEOUT_S = 300.0
API_KEY_HEADER = "X-API-Key"


class UsageError(Exception):
    """A mistake in the command line: exit status 2."""


class FileFailed(Exception):
    """This file could not be anonymised; the message is the reason the summary shows."""


@dataclass(frozen=True)
class Item:
    source: Path
    shown: str  # the input as the user named it (the argument, then the path inside a folder)
    output: Path
    kind: str  # "photo" | "video"
    format: str  # jpeg/png/webp for photos, mp4/mkv/webm for videos
    conflict: str | None = None  # another input already writes this output


@dataclass
class Outcome:
    item: Item
    state: str  # "done" | "skipped" | "failed"
    faces: int | None = None  # a video's: the faces followed over it (tracks)
    reason: str | None = None
    seconds: float = 0.0
    note: str = ""  # more about a finished file (a video's masked regions and frames)


# --- what to do ------------------------------------------------------------------------------------

def output_name(relative: Path, photo_format: str | None, container: str | None) -> tuple[Path, str, str]:
    """(output path relative to --out, kind, format) of one input file."""
    suffix = relative.suffix.lower()
    if suffix in PHOTO_SUFFIXES:
        kept = PHOTO_SUFFIXES[suffix]
        chosen = photo_format or kept or "png"
        name = relative if chosen == kept else relative.with_suffix(FORMAT_SUFFIXES[chosen])
        return name, "photo", chosen
    kept = VIDEO_SUFFIXES[suffix]
    chosen = container or kept or "mp4"
    name = relative if chosen == kept else relative.with_suffix(CONTAINER_SUFFIXES[chosen])
    return name, "video", chosen


def is_media(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES or path.suffix.lower() in VIDEO_SUFFIXES


def walk(folder: Path, skip: Path) -> list[Path]:
    """Every file under ``folder``, in a stable order, leaving out ``skip`` (the output folder,
    when it lies inside an input folder: earlier outputs are not inputs)."""
    found = []
    for parent, folders, files in os.walk(folder):
        folders[:] = sorted(f for f in folders if Path(parent, f).resolve() != skip)
        found.extend(Path(parent, f) for f in sorted(files))
    return found


def plan(paths: list[Path], out: Path, photo_format: str | None = None,
         container: str | None = None) -> tuple[list[Item], int]:
    """The files to anonymise, each with its output, and how many other files the folders held."""
    items: dict[tuple[Path, Path], Item] = {}
    writers: dict[Path, str] = {}
    ignored = 0
    skip = out.resolve()
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if path.is_dir():
            base = Path(path.resolve().name)  # `.` and `..` get the folder's real name
            candidates = [(file, base / file.relative_to(path)) for file in walk(path, skip)]
        elif is_media(path):
            candidates = [(path, Path(path.name))]
        else:
            raise UsageError(f"{path}: neither a photo nor a video by its extension "
                             f"({', '.join(sorted({*PHOTO_SUFFIXES, *VIDEO_SUFFIXES}))})")
        for source, relative in candidates:
            if not is_media(source):
                ignored += 1
                continue
            name, kind, fmt = output_name(relative, photo_format, container)
            output = out / name
            key = (source.resolve(), output)
            if key in items:  # named twice (a folder and a file inside it)
                continue
            shown = str(source)
            conflict = (f"its output {output} is also the output of {writers[output]}"
                        if output in writers else None)
            writers.setdefault(output, shown)
            items[key] = Item(source, shown, output, kind, fmt, conflict)
    return list(items.values()), ignored


def is_done(item: Item) -> bool:
    """The output exists and is newer than the input (a changed input is done again)."""
    try:
        return item.output.stat().st_mtime >= item.source.stat().st_mtime
    except FileNotFoundError:
        return False


# --- progress and summary ---------------------------------------------------------------------------

def outcome_line(outcome: Outcome) -> str:
    item = outcome.item
    if outcome.state == "done":
        faces = "" if outcome.faces is None else f"{outcome.faces} face{'s' * (outcome.faces != 1)}, "
        note = f"{outcome.note}, " if outcome.note else ""
        return f"done     {item.shown} -> {item.output} ({faces}{note}{outcome.seconds:.1f} s)"
    if outcome.state == "skipped":
        return f"skipped  {item.shown} ({item.output} is newer; --overwrite redoes it)"
    return f"failed   {item.shown}: {outcome.reason}"


class FileProgress:
    """One file's progress: what it is doing, and how far (bytes or frames) when that is known."""

    def update(self, status: str, completed: float | None = None, total: float | None = None) -> None:
        pass


class PlainReport:
    """A line per file (and now and then a line per running video): for logs, not terminals."""

    def __init__(self, total: int, console: Console):
        self.total, self.finished, self.console = total, 0, console

    def start(self, item: Item) -> FileProgress:
        return _PlainFile(self, item) if item.kind == "video" else FileProgress()

    def finish(self, outcome: Outcome, handle: FileProgress | None) -> None:
        self.finished += 1
        self.print(f"[{self.finished}/{self.total}] {outcome_line(outcome)}")

    def print(self, line: str) -> None:
        print(line, flush=True)

    def __enter__(self) -> PlainReport:
        return self

    def __exit__(self, *exc) -> None:
        pass


class _PlainFile(FileProgress):
    def __init__(self, report: PlainReport, item: Item):
        self.report, self.item, self.last = report, item, time.monotonic()

    def update(self, status: str, completed: float | None = None, total: float | None = None) -> None:
        if time.monotonic() - self.last >= PLAIN_VIDEO_EVERY_S:
            self.last = time.monotonic()
            self.report.print(f"         {self.item.shown}: {status}")


class RichReport:
    """Bars in a terminal: one for every file in flight, one for the whole run; finished files
    scroll above them as lines."""

    def __init__(self, total: int, console: Console):
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console)
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.total = total
        self.overall = self.progress.add_task("all files", total=total, status=f"0/{total}")

    def start(self, item: Item) -> FileProgress:
        name = item.shown if len(item.shown) <= 40 else "…" + item.shown[-39:]
        return _RichFile(self.progress, self.progress.add_task(name, total=None, status="starting"))

    def finish(self, outcome: Outcome, handle: FileProgress | None) -> None:
        if isinstance(handle, _RichFile):
            self.progress.remove_task(handle.task)
        self.counts[outcome.state] += 1
        counts = ", ".join(f"{n} {state}" for state, n in self.counts.items() if n)
        finished = sum(self.counts.values())
        self.progress.update(self.overall, advance=1, status=f"{finished}/{self.total}: {counts}")
        self.print(outcome_line(outcome))

    def print(self, line: str) -> None:
        self.progress.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def __enter__(self) -> RichReport:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()


class _RichFile(FileProgress):
    def __init__(self, progress: Progress, task: TaskID):
        self.progress, self.task = progress, task

    def update(self, status: str, completed: float | None = None, total: float | None = None) -> None:
        self.progress.update(self.task, status=status, completed=completed or 0, total=total)


def summary(outcomes: list[Outcome], ignored: int, seconds: float) -> str:
    count = {state: sum(o.state == state for o in outcomes) for state in ("done", "skipped", "failed")}
    faces = sum(o.faces or 0 for o in outcomes if o.state == "done")
    lines = [f"{len(outcomes)} file{'s' * (len(outcomes) != 1)}: {count['done']} done, "
             f"{count['skipped']} skipped, {count['failed']} failed; {faces} faces masked; {seconds:.1f} s"]
    if ignored:
        lines.append(f"({ignored} other file{'s' * (ignored != 1)} in the folders: "
                     "neither photos nor videos)")
    failed = [o for o in outcomes if o.state == "failed"]
    if failed:
        lines.append("failures:")
        lines.extend(f"  {o.item.shown}: {o.reason}" for o in failed)
    return "\n".join(lines)


# --- talking to the API ---------------------------------------------------------------------------

def retry_wait(response: httpx.Response) -> float | None:
    """Seconds to wait before sending again, or None when the answer is final: a 429 is waited out
    (its Retry-After, else a default), a 503 only when it says when to come back."""
    if response.status_code not in (429, 503):
        return None
    header = response.headers.get("Retry-After")
    if header is None:
        return DEFAULT_RETRY_WAIT_S if response.status_code == 429 else None
    try:
        wait = float(header)
    except ValueError:
        try:  # the HTTP-date form
            wait = email.utils.parsedate_to_datetime(header).timestamp() - time.time()
        except (TypeError, ValueError):
            wait = DEFAULT_RETRY_WAIT_S
    return min(max(wait, 0.5), MAX_RETRY_WAIT_S)


def failure(response: httpx.Response) -> FileFailed:
    """The API's reason (its {"detail"}) for a refusal, with the status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}"
                           for d in detail if isinstance(d, dict))
    if not isinstance(detail, str) or not detail:
        detail = response.text.strip()[:200] or response.reason_phrase
    return FileFailed(f"HTTP {response.status_code}: {detail}")


class CountingFile:
    """A file for an upload that reports how many bytes have been read (httpx streams it)."""

    def __init__(self, path: Path, report: Callable[[int], None]):
        self.file, self.read_so_far, self.report = path.open("rb"), 0, report

    def read(self, size: int = -1) -> bytes:
        chunk = self.file.read(size)
        self.read_so_far += len(chunk)
        self.report(self.read_so_far)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        self.read_so_far = 0 if offset == 0 and whence == 0 else self.read_so_far
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def fileno(self) -> int:  # lets httpx read the length from fstat (a Content-Length, no chunking)
        return self.file.fileno()

    def close(self) -> None:
        self.file.close()


def part_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.part-{os.getpid()}")


@dataclass
class Run:
    client: httpx.AsyncClient
    bare: httpx.AsyncClient  # for download links elsewhere (S3): the API key stays with the service
    photo_params: dict[str, str]
    video_params: dict[str, str]
    overwrite: bool
    slots: asyncio.Semaphore
    report: PlainReport | RichReport
    outcomes: list[Outcome] = field(default_factory=list)
    video_turn: asyncio.Condition = field(default_factory=asyncio.Condition)
    videos: int = 0  # video jobs of this run being uploaded, queued or running
    video_limit: int | None = None  # how many the service takes at once, once it said so (a 429)

    async def send(self, request: Callable[[], Awaitable[httpx.Response]],
                   progress: FileProgress) -> httpx.Response:
        """``request`` until its answer is not a 429/503 to wait out (at most MAX_RETRIES times)."""
        for attempt in range(MAX_RETRIES + 1):
            response = await request()
            wait = retry_wait(response)
            if wait is None or attempt == MAX_RETRIES:
                return response
            progress.update(f"HTTP {response.status_code}: again in {wait:.0f} s")
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def one(self, item: Item) -> None:
        if item.conflict:
            self.finish(Outcome(item, "failed", reason=item.conflict), None)
            return
        if not self.overwrite and is_done(item):
            self.finish(Outcome(item, "skipped"), None)
            return
        async with self.slots:
            handle = self.report.start(item)
            started = time.monotonic()
            try:
                faces, note = await (self.photo(item, handle) if item.kind == "photo"
                                     else self.video(item, handle))
                outcome = Outcome(item, "done", faces=faces, note=note)
            except FileFailed as error:
                outcome = Outcome(item, "failed", reason=str(error))
            except httpx.TimeoutException as error:
                outcome = Outcome(item, "failed", reason=f"the service did not answer in time ({error!r})")
            except httpx.HTTPError as error:
                outcome = Outcome(item, "failed", reason=f"cannot reach the service: {error}")
            except OSError as error:  # reading the input or writing the output
                outcome = Outcome(item, "failed", reason=str(error))
            except (ValueError, KeyError, TypeError) as error:  # an answer not shaped as documented
                outcome = Outcome(item, "failed", reason=f"unexpected answer from the service: {error!r}")
            outcome.seconds = time.monotonic() - started
            self.finish(outcome, handle)

    def finish(self, outcome: Outcome, handle: FileProgress | None) -> None:
        self.outcomes.append(outcome)
        self.report.finish(outcome, handle)

    async def photo(self, item: Item, progress: FileProgress) -> tuple[int | None, str]:
        data = item.source.read_bytes()  # photos are small: the API caps uploads anyway
        progress.update("masking")
        response = await self.send(lambda: self.client.post(
            "/api/v1/mask", params={**self.photo_params, "format": item.format},
            files={"image": (item.source.name, data)}), progress)
        if response.status_code != 200:
            raise failure(response)
        write_atomically(item.output, response.content)
        faces = response.headers.get("X-Face-Count")
        return (int(faces) if faces is not None and faces.isdigit() else None), ""

    async def video(self, item: Item, progress: FileProgress) -> tuple[int | None, str]:
        status = await self.submit_video(item, progress)
        status_url = status["status_url"]
        try:
            while status["state"] != "done":
                if status["state"] == "failed":
                    raise FileFailed(f"the job failed: {status.get('error') or 'no reason given'}")
                done, total = frames(status)
                progress.update(f"{status['state']}: {done}/{total or '?'} frames", done, total)
                await asyncio.sleep(POLL_S)
                response = await self.send(lambda: self.client.get(status_url), progress)
                if response.status_code != 200:
                    raise failure(response)
                status = response.json()
        finally:
            await self.video_finished()
        await self.download(status["output"]["url"], item.output, progress)
        done, _ = frames(status)
        return status.get("faces"), f"{status.get('faces_masked')} masked regions in {done} frames"

    async def submit_video(self, item: Item, progress: FileProgress) -> dict:
        """Upload the video as a job; its first status (with status_url), the job counted as ours."""
        size = item.source.stat().st_size
        params = {**self.video_params, "container": item.format,
                  "codec": self.video_params.get("codec", CONTAINER_CODECS[item.format])}
        retries = 0
        while True:
            async with self.video_turn:  # no more jobs at once than the service has taken
                await self.video_turn.wait_for(lambda: self.videos < (self.video_limit or sys.maxsize))
                self.videos += 1
            file = CountingFile(item.source, lambda n: progress.update(
                f"uploading {megabytes(n)} of {megabytes(size)}", n, size))
            try:
                response = await self.client.post("/api/v1/mask/video", params=params,
                                                   files={"video": (item.source.name, file)})
            except BaseException:
                await self.video_finished()
                raise
            finally:
                file.close()
            if response.status_code == 202:
                job = response.json()
                return {**job, "status_url": job.get("status_url") or f"/api/v1/mask/video/{job['job_id']}"}
            await self.video_finished()
            if response.status_code == 429 and self.videos > 0:
                # The service's jobs-per-key limit, reached by this run's own jobs: submit again
                # when one of them is done (however long that takes), not on a timer.
                self.video_limit = self.videos
                progress.update(f"waiting: the service takes {self.videos} video jobs at once")
                continue
            wait = retry_wait(response)
            if wait is None or retries == MAX_RETRIES:
                raise failure(response)
            retries += 1
            progress.update(f"HTTP {response.status_code}: again in {wait:.0f} s")
            await asyncio.sleep(wait)

    async def video_finished(self) -> None:
        async with self.video_turn:
            self.videos -= 1
            self.video_turn.notify_all()

    async def download(self, link: str, output: Path, progress: FileProgress) -> None:
        own = (not link.startswith(("http://", "https://"))
               or httpx.URL(link).netloc == self.client.base_url.netloc)
        client = self.client if own else self.bare
        part = part_path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        try:
            async with client.stream("GET", link) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise failure(response)
                total = int(response.headers.get("Content-Length", 0)) or None
                with part.open("wb") as file:
                    async for chunk in response.aiter_bytes(1 << 20):
                        file.write(chunk)
                        progress.update(f"downloading {megabytes(file.tell())}", file.tell(), total)
            os.replace(part, output)
        finally:
            part.unlink(missing_ok=True)


def frames(status: dict) -> tuple[int, int | None]:
    progress = status.get("progress") or {}
    return int(progress.get("frames_done") or 0), progress.get("frames_total")


def megabytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def write_atomically(output: Path, data: bytes) -> None:
    """The whole file appears under its name, or nothing does (a later run must not skip a torn file)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(output)
    try:
        part.write_bytes(data)
        os.replace(part, output)
    finally:
        part.unlink(missing_ok=True)


async def anonymize(items: list[Item], url: str, api_key: str | None, jobs: int, overwrite: bool,
                    photo_params: dict[str, str], video_params: dict[str, str],
                    report: PlainReport | RichReport,
                    transport: httpx.AsyncBaseTransport | None = None) -> list[Outcome]:
    """Every item through the API at ``url``, ``jobs`` at a time (``transport``: a test's fake API)."""
    headers = {API_KEY_HEADER: api_key} if api_key else {}
    # Reads wait for the service's whole answer (a busy CPU service queues requests): generous.
    timeout = httpx.Timeout(30.0, read=600.0, write=600.0, pool=None)
    limits = httpx.Limits(max_connections=jobs + 2)
    async with (httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, limits=limits,
                                  transport=transport) as client,
                httpx.AsyncClient(timeout=timeout, transport=transport) as bare):
        run = Run(client, bare, photo_params, video_params, overwrite, asyncio.Semaphore(jobs), report)
        await asyncio.gather(*(run.one(item) for item in items))
        return run.outcomes


# --- the embedded service -------------------------------------------------------------------------

class ServiceError(RuntimeError):
    """The embedded service could not be started."""


class EmbeddedService:
    """``python -m runtime serve`` for one run: free ports, its own database, objects and API key
    in a folder of .run/ that goes away with it. Bound to 127.0.0.1, no rate limits (it serves
    this run alone); the other FACE_API_* settings (models, workers, limits) are the caller's."""

    def __init__(self) -> None:
        self.folder = RUN / f"anonymize-{os.getpid()}"
        self.process: subprocess.Popen | None = None
        self.port = free_port()
        state = {
            "FACE_API_HOST": "127.0.0.1", "FACE_API_PORT": str(self.port),
            "FACE_API_TRITON_HTTP_PORT": str(free_port()), "FACE_API_TRITON_GRPC_PORT": str(free_port()),
            "FACE_API_TRITON_METRICS_PORT": str(free_port()),
            "FACE_API_DATABASE_ENABLED": "true",
            "FACE_API_DATABASE_URL": f"sqlite:///{self.folder}/face-api.sqlite3",
            "FACE_API_API_KEY_ENABLED": "true", "FACE_API_RATE_LIMIT_ENABLED": "false",
            "FACE_API_RATE_LIMIT_FILE": str(self.folder / "rate-limits.sqlite3"),
            "FACE_API_STORAGE_ENABLED": "true", "FACE_API_STORAGE_BACKEND": "local",
            "FACE_API_STORAGE_DIR": str(self.folder / "objects"),
            "FACE_API_URL_SIGNING_KEY": secrets.token_hex(32),
            "FACE_API_ADMIN_PASSWORD": secrets.token_urlsafe(18),
            "PYTHONUNBUFFERED": "1",
        }
        # Not the caller's shared rate limits, Triton servers, or service to talk to.
        dropped = ("FACE_API_REDIS_URL", "FACE_API_TRITON_URL", "FACE_API_URL", "FACE_API_KEY")
        inherited = {k: v for k, v in os.environ.items() if k not in dropped}
        self.environment = {**inherited, **state}
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.folder / "serve.log"

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> str:
        """Start it and wait until it answers; its API key."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The key is made before the start, so serve finds the database in use and prints none.
        made = subprocess.run([sys.executable, "-m", "frontend.manage", "keys", "create",
                               "--name", "anonymize (embedded service)", "--quiet"],
                              cwd=ROOT, env=self.environment, capture_output=True, text=True)
        if made.returncode != 0:
            raise ServiceError(f"cannot create its API key: {(made.stderr or made.stdout).strip()}")
        key = made.stdout.strip().splitlines()[-1]
        with self.log_path.open("wb") as log:
            # Its own session: a Ctrl-C here reaches this process, which stops the service in order.
            self.process = subprocess.Popen([sys.executable, "-m", "runtime", "serve"], cwd=ROOT,
                                            env=self.environment, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ServiceError(f"it exited with code {self.process.returncode}; its log ends:\n"
                                   f"{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return key
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServiceError(f"not healthy within {timeout:.0f} s; its log ends:\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self, keep_log: bool = False) -> Path | None:
        """Stop it (as Ctrl-C would: frontend, then Triton) and delete its state; with ``keep_log``
        (a file failed: the service's side of the story) its log is kept, and where is returned."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        kept = None
        if keep_log and self.log_path.exists():
            kept = self.folder.with_suffix(".log")
            os.replace(self.log_path, kept)
        shutil.rmtree(self.folder, ignore_errors=True)
        return kept


# --- the command ----------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="./face-api anonymize",
        description="Mask every face in photos and videos (files or folders, recursively), several at a "
                    "time, through a running face API or an embedded one started for the run.",
        epilog="Exit status: 0 all done or skipped, 1 a file failed, 2 usage error.")
    main.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                      help="photos (.jpg .jpeg .png .webp .bmp .tif .tiff), videos (.mp4 .mov .mkv .webm "
                           ".avi .m4v) and folders; other files in folders are left alone")
    main.add_argument("--out", "-o", type=Path, required=True, metavar="DIR",
                      help="where the outputs go: a folder's tree is mirrored under DIR/<folder name>/")
    service = main.add_argument_group("service")
    service.add_argument("--url", default=os.environ.get("FACE_API_URL"),
                         help="the face API, e.g. http://127.0.0.1:8080 (default: FACE_API_URL; "
                              "unset = start the embedded service for this run)")
    service.add_argument("--api-key", default=os.environ.get("FACE_API_KEY"),
                         help="its API key (default: FACE_API_KEY)")
    service.add_argument("--jobs", "-j", type=positive, default=4, help="files in flight at once (4)")
    service.add_argument("--overwrite", action="store_true",
                         help="redo files whose output exists and is newer than the input")
    masking = main.add_argument_group("masking (as /api/v1/mask; unset = the service's defaults)")
    masking.add_argument("--method", choices=["gaussian", "pixelate", "solid", "elliptical"])
    masking.add_argument("--strength", type=int, help="blur kernel / pixel block size")
    masking.add_argument("--padding", type=float, help="grow each face box by this fraction")
    masking.add_argument("--confidence", type=float, help="minimum detection confidence")
    photos = main.add_argument_group("photos")
    photos.add_argument("--format", choices=sorted(FORMAT_SUFFIXES),
                        help="output format (default: the input's; BMP and TIFF become PNG)")
    photos.add_argument("--quality", type=int, help="JPEG/WebP quality 1-100")
    videos = main.add_argument_group("videos")
    videos.add_argument("--container", choices=sorted(CONTAINER_SUFFIXES),
                        help="output container (default: the input's; MOV, AVI and M4V become MP4)")
    videos.add_argument("--codec", choices=["h264", "vp9"], help="(default: h264, vp9 for WebM)")
    videos.add_argument("--video-quality", type=int, help="CRF-like 0-51, lower is better")
    videos.add_argument("--audio", action=argparse.BooleanOptionalAction, default=None,
                        help="keep the audio track (default: the service's: no)")
    videos.add_argument("--max-missed", type=int,
                        help="frames a face the detector lost stays masked where it was heading")
    videos.add_argument("--lookahead", type=int,
                        help="frames a face is also masked before it was first found")
    return main


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def request_params(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    """The query parameters of photos and videos: only what the command line sets."""
    def given(**values) -> dict[str, str]:
        return {name: str(value).lower() if isinstance(value, bool) else str(value)
                for name, value in values.items() if value is not None}

    shared = given(method=args.method, strength=args.strength, padding=args.padding,
                   confidence=args.confidence)
    return ({**shared, **given(quality=args.quality)},
            {**shared, **given(codec=args.codec, quality=args.video_quality, audio=args.audio,
                               max_missed=args.max_missed, lookahead=args.lookahead)})


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # exits 2 on usage errors
    console = Console()
    try:
        if args.out.exists() and not args.out.is_dir():
            raise UsageError(f"--out {args.out} is not a folder")
        items, ignored = plan(args.paths, args.out, args.format, args.container)
    except UsageError as error:
        print(f"anonymize: {error}", file=sys.stderr)
        return 2
    if not items:
        print("nothing to anonymise: no photos or videos in " + " ".join(map(str, args.paths)))
        return 0
    photo_params, video_params = request_params(args)
    # SIGTERM ends the run like Ctrl-C: the embedded service is stopped, half-written files removed.
    signal.signal(signal.SIGTERM, _interrupt)
    service, failed = None, False
    try:
        url, key = args.url, args.api_key
        if not url:
            service = EmbeddedService()
            started = time.monotonic()
            starting = "starting the embedded service (Triton + frontend) …"
            if console.is_terminal:
                with console.status(starting):
                    key = service.start()
            else:
                print(starting, file=sys.stderr, flush=True)
                key = service.start()
            print(f"embedded service ready at {service.url} in {time.monotonic() - started:.0f} s",
                  file=sys.stderr, flush=True)
            url = service.url
        started = time.monotonic()
        report = (RichReport if console.is_terminal else PlainReport)(len(items), console)
        with report:
            outcomes = asyncio.run(anonymize(items, url, key, args.jobs, args.overwrite,
                                             photo_params, video_params, report))
        print(summary(outcomes, ignored, time.monotonic() - started), flush=True)
        failed = any(o.state == "failed" for o in outcomes)
        return 1 if failed else 0
    except ServiceError as error:
        print(f"anonymize: the embedded service did not start: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("anonymize: interrupted (finished outputs are kept; run again to go on)", file=sys.stderr)
        return 130
    finally:
        if service is not None:
            print("stopping the embedded service …", file=sys.stderr, flush=True)
            log = service.stop(keep_log=failed)
            if log is not None:
                print(f"the embedded service's log (why files failed, from its side): {log}",
                      file=sys.stderr, flush=True)


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
