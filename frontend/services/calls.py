"""A /api/v1/detect, /api/v1/mask or console preview call from start to finish.

Each function here is the whole of one endpoint below its router: start the clock,
take the pipeline from the catalog, read the upload, run detection.py or masking.py,
shape the answer and, in storage-backed mode, record the call (archive/recording.py).
The routers only declare their parameters and hand them over.

The order is part of the contract: the pipeline is checked (501/503) before the
upload is read (413), so a call that cannot be served reads nothing. That is why
the upload arrives as ``read``, a function that reads it within the size limit
(api/uploads.py), rather than as bytes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from fastapi import Response

from frontend.inference.catalog import Pipeline
from frontend.inference.served import ServedPipelines
from frontend.inference.triton import TritonClient
from frontend.schemas.face_api import DetectResponse, MaskResponse
from frontend.services import archive as archiving
from frontend.services import detection, masking
from frontend.services.detection import DetectParams
from frontend.services.masking import MaskedPhoto, MaskParams
from frontend.settings import Settings

ReadUpload = Callable[[], Awaitable[bytes]]
Body = TypeVar("Body", bound=DetectResponse)


@dataclass(frozen=True)
class Answer(Generic[Body]):
    """A JSON answer: the body, and the headers to send with it (the record's ids or its error)."""

    body: Body
    headers: dict[str, str] = field(default_factory=dict)


async def detect(read: ReadUpload, params: DetectParams, *, request_id: str, settings: Settings,
                 triton: TritonClient, catalog: ServedPipelines, archive: archiving.Archive | None,
                 api_key_id: str | None) -> Answer[DetectResponse]:
    """POST /api/v1/detect: the faces as a DetectResponse, recorded when the archive is on."""
    started = time.perf_counter()
    pipeline = catalog.detect()  # 503 while the detector's detect pipeline is not served
    data = await read()
    detected = await detection.detect(data, params, triton, pipeline, settings)
    body = detection.build_response(request_id, detected, params, pipeline, len(data), started)
    if archive is None:
        return Answer(body)
    recorded = await archive.try_record(archiving.upload_of(data, detected.image),
                                        archiving.detect_job(body, params, api_key_id))
    archiving.stamp(body, recorded, started)  # the ids, and a total that includes the recording
    return Answer(body, recorded.headers())


async def mask(read: ReadUpload, detect: DetectParams, params: MaskParams, *, request_id: str,
               settings: Settings, triton: TritonClient, catalog: ServedPipelines,
               archive: archiving.Archive | None, api_key_id: str | None) -> Response:
    """POST /api/v1/mask: the masked photo as image bytes, its figures in X-* headers."""
    started = time.perf_counter()
    data, photo, pipeline = await _masked(read, detect, params, settings, triton, catalog)
    recorded = archiving.Recorded()
    if archive is not None:
        # The caller gets no JSON, but the job record keeps the same description the preview sends.
        body = masking.build_response(request_id, photo, detect, params, pipeline, len(data), started,
                                      with_image=False)
        recorded = await archive.record_mask(data, photo, body, detect, params, api_key_id)
    # Built last, so that X-Total-Ms includes the recording.
    headers = masking.headers(photo, pipeline.detector, started, recorded.storage_ms) | recorded.headers()
    return Response(photo.content, media_type=photo.media_type, headers=headers)


async def preview(read: ReadUpload, detect: DetectParams, params: MaskParams, *, request_id: str,
                  settings: Settings, triton: TritonClient, catalog: ServedPipelines,
                  archive: archiving.Archive | None) -> Answer[MaskResponse]:
    """POST /api/v1/admin/test/mask: /mask's work as a MaskResponse (the photo in base64),
    recorded like /mask but without an API key (the console is not a key holder)."""
    started = time.perf_counter()
    data, photo, pipeline = await _masked(read, detect, params, settings, triton, catalog)
    body = masking.build_response(request_id, photo, detect, params, pipeline, len(data), started)
    if archive is None:
        return Answer(body)
    recorded = await archive.record_mask(data, photo, body, detect, params, api_key_id=None)
    archiving.stamp(body, recorded, started)
    return Answer(body, recorded.headers())


async def _masked(read: ReadUpload, detect: DetectParams, params: MaskParams, settings: Settings,
                  triton: TritonClient, catalog: ServedPipelines) -> tuple[bytes, MaskedPhoto, Pipeline]:
    """What /mask and the preview share: the upload, the masked photo and the pipeline that made it."""
    pipeline = catalog.mask()  # 501 when the detector has no mask pipeline, 503 while not served
    data = await read()
    photo = await masking.mask(data, detect, params, triton, pipeline, settings)
    return data, photo, pipeline
