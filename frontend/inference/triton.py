"""The frontend's only door to Triton: async gRPC calls to the detect, mask and
recognize pipelines, and the server's and models' metadata.

Errors come out as two exceptions the routers map onto HTTP: TritonUnavailable
(server down, overloaded or too slow: 503) and InferenceRejected (Triton
refused the inputs: 400). No call can hang: each carries a deadline.

One or several Triton servers (endpoints.py): each call goes to the next ready
one, and a call that finds its server unavailable is tried once more on another.

Photos travel through system shared memory when the one Triton server shares
this host (``shared_memory_prefix``; see shared_memory.py), inside the gRPC
message otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput, InferResult
from tritonclient.utils import InferenceServerException

from frontend.inference.endpoints import Endpoint, EndpointPool, EndpointUnavailable
from frontend.inference.shared_memory import SHM_DIR, Slot, SlotPool, orphaned_regions
from frontend.observability import metrics
from frontend.observability.context import current_request_id, note_faces, note_photo

log = logging.getLogger("face_api.triton")

UNAVAILABLE = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED",
               "StatusCode.RESOURCE_EXHAUSTED", "StatusCode.CANCELLED"}
DETECT_OUTPUTS = ("NUM_FACES", "SCORES", "BOXES", "LANDMARKS", "SCALE", "CANDIDATES",
                  "PREPROCESS_MS", "BLOB_MS", "DECODE_MS", "NMS_MS")
MASK_OUTPUTS = ("MASKED", "REGIONS", "MASK_MS")
RECOGNIZE_OUTPUTS = ("NUM_FACES", "SCORES", "BOXES", "LANDMARKS", "EMBEDDINGS")


class TritonUnavailable(EndpointUnavailable):
    """Triton cannot answer now (down, not ready, or past the deadline)."""


class InferenceRejected(Exception):
    """Triton answered, refusing the request's inputs."""


@dataclass(frozen=True)
class Faces:
    """What a detect pipeline found on one photo, best first, in photo pixels."""

    scores: np.ndarray  # (N,)
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2
    landmarks: np.ndarray  # (N, 5, 2) left eye, right eye, nose, left mouth, right mouth
    scale: tuple[float, float]  # detector pixels per photo pixel, x and y
    candidates_before_nms: int
    candidates_after_nms: int
    inference_ms: float  # the whole Triton call, as the frontend waited for it
    preprocess_ms: float
    blob_ms: float
    decode_ms: float
    nms_ms: float


@dataclass(frozen=True)
class Masked:
    """What a mask pipeline made of one photo: the faces it found and the photo with them masked."""

    faces: Faces  # as detect returns them
    image: np.ndarray  # H×W×3 uint8 RGB, the masked photo (same size as the input)
    regions: int  # face regions actually masked (empty padded regions are not counted)
    mask_ms: float  # time Triton spent masking


@dataclass(frozen=True)
class Recognized:
    """Faces on one photo (or given aligned crops), each with its embedding."""

    scores: np.ndarray  # (N,) best first (or the single largest face)
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2 in photo pixels
    landmarks: np.ndarray  # (N, 5, 2) as Faces.landmarks
    embeddings: np.ndarray  # (N, D) float32, unit length; row i belongs to face i
    inference_ms: float


def _input(name: str, array: np.ndarray, datatype: str) -> InferInput:
    tensor = InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def _translated(error: InferenceServerException) -> TritonUnavailable | InferenceRejected:
    """The server did not answer (another may), a model it lacks (another may have it), or a refusal."""
    message = error.message() or str(error)
    if str(error.status()) in UNAVAILABLE:
        return TritonUnavailable(message, server_down=True)
    if "not found" in message.lower() or "unavailable" in message.lower():
        return TritonUnavailable(message)
    return InferenceRejected(message)


class TritonClient:
    def __init__(self, url: str, timeout_s: float, shared_memory_prefix: str | None = None,
                 check_s: float = 1.0, endpoints: EndpointPool | None = None,
                 shared_memory_bytes: int = 256 * 1024 * 1024, reclaim_s: float = 30.0):
        self.url = url
        self.timeout_s = timeout_s
        self.endpoints = endpoints or EndpointPool(url, check_s)
        # Shared memory only towards a single Triton on this host: a region is registered
        # with one server, and a remote one cannot map it.
        only = self.endpoints.endpoints[0] if len(self.endpoints.endpoints) == 1 else None
        local = only is not None and only.local and len(self.endpoints.targets) == 1
        self._slots = (SlotPool(shared_memory_prefix, max_bytes=shared_memory_bytes)
                       if shared_memory_prefix and local else None)
        self._slots_refused = False  # Triton cannot map our regions: photos go by gRPC
        self._reclaim_s = reclaim_s
        self._reclaimer: asyncio.Task | None = None

    async def start(self) -> None:
        """Check every server once (so the first request goes to a ready one), then keep checking;
        with shared memory, reclaim the regions of killed workers now and then."""
        await self.endpoints.start()
        if self._slots is not None:
            self._reclaimer = asyncio.create_task(self._keep_reclaiming())

    async def reclaim_orphans(self) -> list[str]:
        """Unregister from Triton and unlink the regions of this master's workers that died."""
        orphans = orphaned_regions(self._slots.shared_prefix) if self._slots is not None else []
        triton = self.endpoints.endpoints[0].client  # shared memory means one local server
        for name in orphans:
            try:
                await triton.unregister_system_shared_memory(name, client_timeout=2.0)
            except InferenceServerException as error:
                if str(error.status()) in UNAVAILABLE:
                    continue  # Triton is away: try again next time
                # (Triton does not know it: it restarted since; the file alone remains)
            (SHM_DIR / name).unlink(missing_ok=True)
            log.warning("reclaimed shared memory %s of a worker that died", name)
        return orphans

    async def _keep_reclaiming(self) -> None:
        while True:
            await asyncio.sleep(self._reclaim_s)
            try:
                await self.reclaim_orphans()
            except Exception as error:  # must outlive any one failure
                log.warning("shared-memory reclaim failed: %r", error)

    async def close(self) -> None:
        if self._reclaimer is not None:
            self._reclaimer.cancel()
        if self._slots is not None:
            for slot in self._slots.all_slots():
                if slot.registered:
                    await self._unregister(slot)
            self._slots.destroy()
        await self.endpoints.close()

    async def _call(self, method: str, *args, **kwargs):
        """``client.<method>(*args, **kwargs)`` on a ready server, retried once on another."""
        async def attempt(endpoint: Endpoint):
            return await self._on(endpoint, method, *args, **kwargs)

        return await self.endpoints.run(attempt)

    async def _on(self, endpoint: Endpoint, method: str, *args, **kwargs):
        """``client.<method>`` on that server, its errors as TritonUnavailable or InferenceRejected."""
        try:
            return await getattr(endpoint.client, method)(*args, client_timeout=self.timeout_s, **kwargs)
        except InferenceServerException as error:
            raise _translated(error) from None

    async def detect(self, pipeline: str, rgb: np.ndarray, confidence: float,
                     nms_threshold: float, max_faces: int) -> Faces:
        """Run ``pipeline`` (a detect pipeline of the catalog) on one H×W×3 RGB photo."""
        inputs = _detect_inputs(confidence, nms_threshold, max_faces)
        result, inference_ms, _ = await self._infer(pipeline, inputs, DETECT_OUTPUTS, rgb[None])
        return _faces(result, inference_ms)

    async def mask(self, pipeline: str, rgb: np.ndarray, confidence: float, nms_threshold: float,
                   max_faces: int, method: str, strength: int, padding: float) -> Masked:
        """Run ``pipeline`` (a mask pipeline of the catalog) on one H×W×3 RGB photo.

        method, strength and padding mean what the masking model says (docs/api.md);
        Triton refuses values outside its ranges (InferenceRejected).
        """
        inputs = _detect_inputs(confidence, nms_threshold, max_faces) + [
            _input("METHOD", np.array([[method.encode()]], dtype=np.object_), "BYTES"),
            _input("STRENGTH", np.array([[strength]], np.int32), "INT32"),
            _input("PADDING", np.array([[padding]], np.float32), "FP32"),
        ]
        result, inference_ms, masked = await self._infer(pipeline, inputs, DETECT_OUTPUTS + MASK_OUTPUTS,
                                                         rgb[None], image_output="MASKED")
        return Masked(
            faces=_faces(result, inference_ms),
            image=masked[0],
            regions=int(result.as_numpy("REGIONS")[0, 0]),
            mask_ms=float(result.as_numpy("MASK_MS")[0, 0]),
        )

    async def recognize(self, pipeline: str, rgb: np.ndarray, confidence: float, nms_threshold: float,
                        max_faces: int, largest_only: bool) -> Recognized:
        """Run ``pipeline`` (a recognize pipeline) on one H×W×3 RGB photo: every face
        (up to ``max_faces``, 0 = all) or only the largest, each with its embedding."""
        inputs = [
            _input("CONFIDENCE", np.array([confidence], np.float32), "FP32"),
            _input("NMS_THRESHOLD", np.array([nms_threshold], np.float32), "FP32"),
            _input("MAX_FACES", np.array([max_faces], np.int32), "INT32"),
            _input("LARGEST_ONLY", np.array([largest_only], np.bool_), "BOOL"),
        ]
        return await self._recognized(pipeline, inputs, image=rgb)

    async def embed_aligned(self, pipeline: str, faces: np.ndarray) -> np.ndarray:
        """(N, D) unit-length embeddings of (N, 112, 112, 3) uint8 RGB crops already aligned
        onto the alignment template (detection and alignment are skipped)."""
        recognized = await self._recognized(pipeline, [_input("ALIGNED", faces, "UINT8")])
        return recognized.embeddings

    async def _recognized(self, pipeline: str, inputs: list[InferInput],
                          image: np.ndarray | None = None) -> Recognized:
        result, inference_ms, _ = await self._infer(pipeline, inputs, RECOGNIZE_OUTPUTS, image)
        count = int(result.as_numpy("NUM_FACES")[0])
        note_faces(count)
        return Recognized(
            scores=result.as_numpy("SCORES")[:count],
            boxes=result.as_numpy("BOXES")[:count],
            landmarks=result.as_numpy("LANDMARKS")[:count],
            embeddings=result.as_numpy("EMBEDDINGS")[:count],
            inference_ms=inference_ms,
        )

    async def _infer(self, pipeline: str, inputs: list[InferInput], outputs: tuple[str, ...],
                     image: np.ndarray | None = None, image_output: str | None = None,
                     ) -> tuple[InferResult, float, np.ndarray | None]:
        """The pipeline's result, the milliseconds the frontend waited for it, and the
        ``image_output`` photo (same shape as ``image``) when one is asked for.

        ``image`` (uint8) is sent as the IMAGE input, through a shared-memory slot
        when one is free and big enough, inside the gRPC message otherwise.
        """
        if image is not None:  # H×W×3, or 1×H×W×3 for the batched pipelines
            note_photo(image.shape[-3] * image.shape[-2])

        async def attempt(endpoint: Endpoint):
            slot = await self._slot_for(endpoint, image, 2 if image_output else 1)
            try:
                return await self._infer_once(endpoint, pipeline, inputs, outputs, image, image_output, slot)
            except (InferenceRejected, TritonUnavailable) as error:
                if slot is None or "shared memory" not in str(error).lower():
                    raise
                # Triton no longer knows the region (it restarted): register again next
                # time, and send this photo the plain way.
                self._slots.forget_registrations()
                return await self._infer_once(endpoint, pipeline, inputs, outputs, image, image_output, None)
            finally:
                if slot is not None:
                    self._slots.release(slot)

        return await self.endpoints.run(attempt)

    async def _infer_once(self, endpoint: Endpoint, pipeline, inputs, outputs, image, image_output,
                          slot: Slot | None):
        inputs = list(inputs)
        requested = [InferRequestedOutput(name) for name in outputs if name != image_output]
        if image is not None and slot is not None:
            tensor = InferInput("IMAGE", list(image.shape), "UINT8")
            tensor.set_shared_memory(slot.name, slot.write(image))
            inputs.insert(0, tensor)
        elif image is not None:
            inputs.insert(0, _input("IMAGE", image, "UINT8"))
        if image_output is not None:
            output = InferRequestedOutput(image_output)
            if slot is not None:
                output.set_shared_memory(slot.name, image.nbytes, offset=image.nbytes)
            requested.append(output)
        started = time.perf_counter()
        outcome = "ok"
        try:
            # Triton logs and traces this call under the HTTP request's own id.
            result = await self._on(endpoint, "infer", pipeline, inputs, outputs=requested,
                                    request_id=current_request_id() or "")
        except TritonUnavailable:
            outcome = "unavailable"
            raise
        except InferenceRejected:
            outcome = "rejected"
            raise
        finally:
            elapsed_s = time.perf_counter() - started
            metrics.TRITON_CALLS.labels(pipeline, outcome).inc()
            metrics.TRITON_LATENCY.labels(pipeline).observe(elapsed_s)
        elapsed_ms = elapsed_s * 1000.0
        if image_output is None:
            return result, elapsed_ms, None
        if slot is not None:
            return result, elapsed_ms, slot.read(image.shape, offset=image.nbytes)
        return result, elapsed_ms, result.as_numpy(image_output)

    async def _slot_for(self, endpoint: Endpoint, image: np.ndarray | None, copies: int) -> Slot | None:
        """A registered slot for ``copies`` × the image, or None (no pool, too large, all busy)."""
        if self._slots is None or self._slots_refused or image is None:
            return None
        for retired in self._slots.take_retired():
            await self._unregister(retired)
            retired.destroy()
        slot = self._slots.acquire(copies * image.nbytes)
        if slot is None or slot.registered:
            return slot
        try:
            await self._on(endpoint, "register_system_shared_memory", slot.name, slot.key, slot.capacity)
        except TritonUnavailable:
            self._slots.release(slot)  # down for now: the request will say so
            return None
        except InferenceRejected as error:
            if "already in manager" in str(error):
                # Triton still has it (our flag was reset after another request's failure): use it.
                slot.registered = True
                return slot
            # Triton cannot map our regions (it runs on another host or in a container
            # with its own /dev/shm): photos go inside the gRPC messages from now on. The pool
            # stays until close: requests in flight still hold and release its slots.
            log.warning("Triton refused a shared-memory region (%s); sending photos over gRPC", error)
            self._slots.release(slot)
            self._slots_refused = True
            return None
        slot.registered = True
        return slot

    async def _unregister(self, slot: Slot) -> None:
        try:
            only = self.endpoints.endpoints[0]
            await only.client.unregister_system_shared_memory(slot.name, client_timeout=2.0)
        except InferenceServerException:
            pass  # Triton is gone or never knew it: nothing to forget
        slot.registered = False

    async def readiness(self, models: list[str]) -> dict[str, bool]:
        """For each server (by address): whether it answers and has every one of ``models`` ready."""
        async def serves_all(endpoint: Endpoint) -> bool:
            timeout = min(self.timeout_s, 2.0)
            try:
                for model in models:
                    if not await endpoint.client.is_model_ready(model, client_timeout=timeout):
                        return False
                return True
            except InferenceServerException:
                return False

        endpoints = list(self.endpoints.endpoints)
        answers = await asyncio.gather(*(serves_all(endpoint) for endpoint in endpoints))
        return {endpoint.address: answer for endpoint, answer in zip(endpoints, answers)}

    async def model_config(self, model: str) -> dict | None:
        """Triton's configuration of ``model`` as JSON, or None when Triton has no such model."""
        try:
            response = await self._call("get_model_config", model, as_json=True)
        except InferenceRejected:
            return None
        except TritonUnavailable as error:
            if error.server_down:
                raise
            return None  # no server has it
        return response.get("config", response)

    async def model_parameters(self, model: str) -> dict[str, str] | None:
        """The string parameters of ``model``'s config (a pipeline's declaration: catalog.py);
        None when Triton has no such model."""
        config = await self.model_config(model)
        if config is None:
            return None
        return {key: str(value.get("string_value", value.get("stringValue", "")))
                for key, value in (config.get("parameters") or {}).items()}

    async def ready_models(self) -> dict[str, str]:
        """The models Triton has loaded and ready: name -> version, sorted by name."""
        index = await self._call("get_model_repository_index", as_json=True)
        ready = {m["name"]: str(m.get("version", "")) for m in index.get("models", [])
                 if m.get("state") == "READY"}
        return dict(sorted(ready.items()))

    async def server_metadata(self) -> dict:
        """Triton's name, version and extensions."""
        return await self._call("get_server_metadata", as_json=True)

    async def model_statistics(self, model: str) -> dict:
        """Triton's inference statistics of ``model`` (counts, batch_stats, times)."""
        return await self._call("get_inference_statistics", model, as_json=True)


def _detect_inputs(confidence: float, nms_threshold: float, max_faces: int) -> list[InferInput]:
    """The detection parameters every detect and mask pipeline takes (batch 1; IMAGE is added by _infer)."""
    return [
        _input("CONFIDENCE", np.array([[confidence]], np.float32), "FP32"),
        _input("NMS_THRESHOLD", np.array([[nms_threshold]], np.float32), "FP32"),
        _input("MAX_FACES", np.array([[max_faces]], np.int32), "INT32"),
    ]


def _faces(result: InferResult, inference_ms: float) -> Faces:
    """The detection outputs (DETECT_OUTPUTS) of a pipeline's result, real rows only."""
    count = int(result.as_numpy("NUM_FACES")[0, 0])
    note_faces(count)
    candidates = result.as_numpy("CANDIDATES")[0]
    return Faces(
        scores=result.as_numpy("SCORES")[0, :count],
        boxes=result.as_numpy("BOXES")[0, :count],
        landmarks=result.as_numpy("LANDMARKS")[0, :count],
        scale=tuple(float(v) for v in result.as_numpy("SCALE")[0]),
        candidates_before_nms=int(candidates[0]),
        candidates_after_nms=int(candidates[1]),
        inference_ms=inference_ms,
        preprocess_ms=float(result.as_numpy("PREPROCESS_MS")[0, 0]),
        blob_ms=float(result.as_numpy("BLOB_MS")[0, 0]),
        decode_ms=float(result.as_numpy("DECODE_MS")[0, 0]),
        nms_ms=float(result.as_numpy("NMS_MS")[0, 0]),
    )
