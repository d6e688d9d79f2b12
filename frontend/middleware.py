"""Pure ASGI middleware (no per-request task overhead): request ids and early size checks."""

from __future__ import annotations

import json
import uuid

from frontend.errors import is_recognition

# Room for the multipart envelope (boundaries, part headers) around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
# The recognition contract (/v1/*) sends images as base64 inside JSON, 4/3 of their
# size, and /v1/score and /v1/file/score carry two images: 2 × 4/3 ≈ 2.7 uploads'
# worth of bytes. Its bodies may therefore reach 3 × FACE_API_MAX_UPLOAD_BYTES; each
# decoded image is still held to FACE_API_MAX_UPLOAD_BYTES on its own (413).
RECOGNITION_BODY_FACTOR = 3


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
    (three times that limit on /v1/*, see RECOGNITION_BODY_FACTOR)."""

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes + MULTIPART_OVERHEAD
        self.max_recognition_bytes = RECOGNITION_BODY_FACTOR * max_body_bytes + MULTIPART_OVERHEAD

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        request_id = state.setdefault("request_id", str(uuid.uuid4()))
        id_header = (b"x-request-id", request_id.encode())

        length = dict(scope["headers"]).get(b"content-length")
        recognition = is_recognition(scope.get("path", ""))
        limit = self.max_recognition_bytes if recognition else self.max_body_bytes
        refusal = None
        if length is not None and not length.isdigit():
            refusal = (400, "invalid Content-Length header")
        elif length is not None and int(length) > limit:
            setting = (f"{RECOGNITION_BODY_FACTOR} x FACE_API_MAX_UPLOAD_BYTES on /v1"
                       if recognition else "FACE_API_MAX_UPLOAD_BYTES")
            refusal = (413, f"the request body is larger than {limit} bytes ({setting})")
        if refusal is not None:
            status, detail = refusal
            return await send_detail(send, status, detail, [(b"connection", b"close"), id_header])

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        return await self.app(scope, receive, send_with_id)
