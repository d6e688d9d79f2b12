"""Pure ASGI middleware (no per-request task overhead): request ids, early size checks, and
time limits on reading request bodies."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import NamedTuple

from frontend.errors import is_recognition

# Room for the multipart envelope (boundaries, part headers) around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
# The recognition contract (/v1/*) sends images as base64 inside JSON, 4/3 of their
# size, and /v1/score and /v1/file/score carry two images: 2 × 4/3 ≈ 2.7 uploads'
# worth of bytes. Its bodies may therefore reach 3 × FACE_API_MAX_UPLOAD_BYTES; each
# decoded image is still held to FACE_API_MAX_UPLOAD_BYTES on its own (413).
RECOGNITION_BODY_FACTOR = 3
# What a 503 for too many uploads in progress tells the client to wait.
UPLOADS_RETRY_AFTER_S = 2

log = logging.getLogger("face_api.request")


class BodyLimit(NamedTuple):
    """Limits of one path's request bodies that differ from the upload limits (video uploads)."""

    max_bytes: int
    timeout_s: float
    size_setting: str
    timeout_setting: str


def client_host(scope) -> str | None:
    """The client's address: the peer, or what a trusted proxy (FACE_API_TRUSTED_PROXIES) said
    in X-Forwarded-For, as uvicorn resolved it. Rate limits, the login limit, the admin
    lockout and the request log all take it from here, so they always agree."""
    client = scope.get("client")
    return client[0] if client else None


def has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length")
    return b"transfer-encoding" in headers or (length is not None and length.strip() not in (b"", b"0"))


async def send_detail(send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Answer with the contract's error body {"detail": ...}, straight from ASGI middleware."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class RequestContext:
    """Answers every request with its id (X-Request-Id: state.request_id, which
    frontend/observability/requests.py assigns, or a new one) and refuses, before
    reading them, bodies whose Content-Length already exceeds the upload limit
    (three times that limit on /v1/*, see RECOGNITION_BODY_FACTOR).

    Slow senders: a request must deliver its whole body within body_timeout_s of
    its arrival, or it gets 408 and its connection is closed (a client trickling
    a byte now and then would otherwise hold a connection, and its buffer, for
    ever); and while max_uploads_in_progress requests of this worker are still
    receiving their bodies, one more gets 503 with Retry-After. The deadline is
    checked around each ``receive`` of the application (asyncio.timeout: a timer,
    not a task).
    """

    def __init__(self, app, max_body_bytes: int, body_timeout_s: float = 60.0,
                 max_uploads_in_progress: int = 64,
                 large_bodies: dict[str, BodyLimit] | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes + MULTIPART_OVERHEAD
        self.max_recognition_bytes = RECOGNITION_BODY_FACTOR * max_body_bytes + MULTIPART_OVERHEAD
        self.body_timeout_s = body_timeout_s
        self.max_uploads = max_uploads_in_progress
        self.uploads = 0  # requests of this worker whose body is still coming in
        self.large_bodies = large_bodies or {}  # paths with limits of their own (videos)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        request_id = state.setdefault("request_id", str(uuid.uuid4()))
        id_header = (b"x-request-id", request_id.encode())

        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        recognition = is_recognition(scope.get("path", ""))
        limit = self.max_recognition_bytes if recognition else self.max_body_bytes
        setting = (f"{RECOGNITION_BODY_FACTOR} x FACE_API_MAX_UPLOAD_BYTES on /v1"
                   if recognition else "FACE_API_MAX_UPLOAD_BYTES")
        timeout = (self.body_timeout_s, "FACE_API_BODY_TIMEOUT_S")
        large = self.large_bodies.get(scope.get("path", ""))
        if large is not None:
            limit, setting = large.max_bytes + MULTIPART_OVERHEAD, large.size_setting
            timeout = (large.timeout_s, large.timeout_setting)
        refusal = None
        if length is not None and not length.isdigit():
            refusal = (400, "invalid Content-Length header")
        elif length is not None and int(length) > limit:
            refusal = (413, f"the request body is larger than {limit} bytes ({setting})")
        if refusal is not None:
            status, detail = refusal
            return await send_detail(send, status, detail, [(b"connection", b"close"), id_header])

        if not has_body(headers):
            async def send_with_id(message):
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), id_header]
                await send(message)

            return await self.app(scope, receive, send_with_id)
        if self.uploads >= self.max_uploads:
            detail = (f"too many uploads in progress ({self.max_uploads} per worker, "
                      "FACE_API_MAX_UPLOADS_IN_PROGRESS); try again shortly")
            return await send_detail(send, 503, detail, [
                (b"retry-after", str(UPLOADS_RETRY_AFTER_S).encode()), (b"connection", b"close"), id_header])
        return await self._upload(scope, receive, send, id_header, *timeout)

    async def _upload(self, scope, receive, send, id_header, timeout_s: float, timeout_setting: str) -> None:
        """Run a request with a body under the body deadline, counted while its body comes in."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        progress = {"receiving": True, "started": False, "timed_out": False}
        self.uploads += 1

        def body_done() -> None:
            if progress["receiving"]:
                progress["receiving"] = False
                self.uploads -= 1

        async def timed_receive():
            if progress["timed_out"]:
                return {"type": "http.disconnect"}  # the 408 went out: the client is gone for the app
            if not progress["receiving"]:
                return await receive()  # the body is in: waiting for a disconnect has no deadline
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                body_done()
                progress["timed_out"] = True
                if not progress["started"]:
                    detail = f"the request body did not arrive within {timeout_s:g} s ({timeout_setting})"
                    log.info("request body timed out after %s s", timeout_s)
                    await send_detail(send, 408, detail, [(b"connection", b"close"), id_header])
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done()
            return message

        async def send_with_id(message):
            if progress["timed_out"]:
                return  # the 408 was the answer; whatever the application says now goes nowhere
            if message["type"] == "http.response.start":
                progress["started"] = True
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            return await self.app(scope, timed_receive, send_with_id)
        except Exception:
            if not progress["timed_out"]:
                raise
            # The application failed over the body it never got; the client has its 408.
        finally:
            body_done()
