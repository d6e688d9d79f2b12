"""The request being served, as seen from anywhere below the HTTP layer.

``frontend/observability/requests.py`` opens a ``Tally`` for each request; code
deeper down adds what only it knows (upload bytes, photo pixels, faces) through
``note_*``, and log records take the request id from here. Outside a request
these do nothing. (No prometheus_client import here: the gunicorn master loads
the log format before it may import that library; see gunicorn_conf.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field


@dataclass
class Tally:
    """What one request did, filled in while it runs."""

    request_id: str
    upload_bytes: int = 0
    photo_pixels: list[int] = field(default_factory=list)
    faces: int | None = None  # None: no inference ran
    at_end: list[Callable[[], None]] = field(default_factory=list)  # once the answer is sent


_current: ContextVar[Tally | None] = ContextVar("face_api_request", default=None)


def current_request_id() -> str | None:
    tally = _current.get()
    return tally.request_id if tally is not None else None


def note_upload(size: int) -> None:
    tally = _current.get()
    if tally is not None:
        tally.upload_bytes += size


def note_photo(pixels: int) -> None:
    tally = _current.get()
    if tally is not None:
        tally.photo_pixels.append(pixels)


def note_faces(count: int) -> None:
    tally = _current.get()
    if tally is not None:
        tally.faces = (tally.faces or 0) + count


def when_answered(callback: Callable[[], None]) -> bool:
    """Run ``callback`` once the request being served has been answered (or has failed);
    False, and nothing registered, outside a request."""
    tally = _current.get()
    if tally is None:
        return False
    tally.at_end.append(callback)
    return True


def open_tally(request_id: str) -> tuple[Tally, Token]:
    tally = Tally(request_id)
    return tally, _current.set(tally)


def close_tally(token: Token) -> None:
    _current.reset(token)
