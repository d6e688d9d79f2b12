"""Pure ASGI middleware (no per-request task overhead): request ids and early size checks."""

from __future__ import annotations

import json
import uuid

# Room for the multipart envelope (boundaries, part headers) around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


async def send_detail(send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Answer with the contract's error body {"detail": ...}, straight from ASGI middleware."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class RequestContext:
    """Gives every request an id (state.request_id, X-Request-Id header) and refuses,
    before reading them, bodies whose Content-Length already exceeds the upload limit."""

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes + MULTIPART_OVERHEAD

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode())

        length = dict(scope["headers"]).get(b"content-length")
        refusal = None
        if length is not None and not length.isdigit():
            refusal = (400, "invalid Content-Length header")
        elif length is not None and int(length) > self.max_body_bytes:
            refusal = (413, f"the request body is larger than {self.max_body_bytes} bytes "
                            "(FACE_API_MAX_UPLOAD_BYTES)")
        if refusal is not None:
            status, detail = refusal
            return await send_detail(send, status, detail, [(b"connection", b"close"), id_header])

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        return await self.app(scope, receive, send_with_id)
