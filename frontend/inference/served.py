"""Which pipelines Triton serves now, and which of them this service uses.

Each worker asks Triton at start-up, then every FACE_API_CATALOG_REFRESH_S seconds
and at once after a request found a model missing: the repository index (ready
models only), then each ready model's config parameters, which catalog.py reads
as pipeline declarations. So a pipeline loaded, replaced or unloaded through
Triton's repository API is followed without a restart, and no pipeline name is
ever made up from a convention.

While Triton cannot answer, the last answer stands: the calls themselves then
fail with 503, and the next answer replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from frontend.inference.catalog import (
    NOTHING,
    SERVED,
    UNSUPPORTED,
    CatalogError,
    Pipeline,
    Selection,
    Unsupported,
    describe,
    mask_state,
    pipeline_from_parameters,
    select,
)
from frontend.inference.triton import TritonClient, TritonUnavailable

log = logging.getLogger("face_api.catalog")

# Refreshes asked for by failing requests come no closer together than this.
MIN_GAP_S = 0.25


class ServedPipelines:
    """One worker's view of the served pipelines and the selection for its settings."""

    def __init__(self, triton: TritonClient, detector: str, recognizer: str, refresh_s: float = 2.0):
        self.triton = triton
        self.detector = detector
        self.recognizer = recognizer
        self.refresh_s = refresh_s
        self.pipelines: dict[str, Pipeline] = {}
        self.selection: Selection = NOTHING
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._reported: set[str] = set()  # declarations already logged as broken
        self._read_once = False

    # --- keeping up to date ---

    async def start(self) -> None:
        """Read what is served (when Triton answers now), then keep reading."""
        try:
            await self.refresh()
        except Exception as error:  # the loop tries again; requests say 503 meanwhile
            log.warning("could not read the served pipelines yet: %r", error)
        self._task = asyncio.create_task(self._keep_refreshing())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def refresh_soon(self) -> None:
        """Read again without waiting for the period (a request found a model missing)."""
        self._wake.set()

    async def _keep_refreshing(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.refresh_s)
            self._wake.clear()
            try:
                await self.refresh()
            except TritonUnavailable:
                pass  # Triton is away: the endpoint checks say so, the last answer stands
            except Exception as error:  # the loop must outlive any one failure
                log.warning("reading the served pipelines failed: %r", error)
            await asyncio.sleep(MIN_GAP_S)

    async def refresh(self) -> None:
        """Ask Triton which pipelines it serves, and choose among them."""
        if not any(endpoint.ready for endpoint in self.triton.endpoints.endpoints):
            return  # nobody to ask (the endpoint checks will notice the return)
        ready = list(await self.triton.ready_models())
        declared = await asyncio.gather(*(self.triton.model_parameters(name) for name in ready))
        pipelines = {}
        for name, parameters in zip(ready, declared):
            if parameters is None:
                continue  # unloaded since the index was read
            try:
                pipeline = pipeline_from_parameters(name, parameters)
            except CatalogError as error:
                if str(error) not in self._reported:
                    self._reported.add(str(error))
                    log.warning("ignoring a pipeline whose declaration is broken: %s", error)
                continue
            if pipeline is not None:
                pipelines[name] = pipeline
        self.apply(pipelines)

    def apply(self, pipelines: dict[str, Pipeline]) -> None:
        """Take ``pipelines`` as what is served now."""
        selection = select(pipelines.values(), self.detector, self.recognizer)
        if selection != self.selection or not self._read_once:
            log.info("pipelines in use: %s", describe(selection))
        self.pipelines, self.selection, self._read_once = pipelines, selection, True

    # --- what requests use ---

    def detect(self) -> Pipeline:
        """The detect pipeline of the configured detector; 503 while none is served."""
        pipeline = self.selection.detect
        if pipeline is None:
            raise TritonUnavailable(f"no detect pipeline of the detector {self.detector} is served")
        return pipeline

    def mask(self) -> Pipeline:
        """The mask pipeline of the configured detector: 501 when the detector has none,
        503 while it is not served."""
        state = mask_state(self.selection)
        if state == SERVED:
            return self.selection.mask
        if state == UNSUPPORTED:
            raise Unsupported(f"masking is not available: the detector {self.detector} has no mask "
                              "pipeline (FACE_API_DETECTOR can name one that has)")
        raise TritonUnavailable(f"no mask pipeline of the detector {self.detector} is served")

    def recognize(self) -> Pipeline:
        """The recognize pipeline of the configured recognizer; 503 while none is served."""
        pipeline = self.selection.recognize
        if pipeline is None:
            raise TritonUnavailable(f"no recognize pipeline of the recognizer {self.recognizer} is served")
        return pipeline

    def recognize_detect(self) -> Pipeline:
        """The detect pipeline the recognize pipeline pairs with (/v1/detect); 503 while not served."""
        recognize = self.recognize()
        pipeline = self.selection.recognize_detect
        if pipeline is None:
            raise TritonUnavailable(f"{recognize.name} pairs with {recognize.detect_pipeline}, "
                                    "which is not served")
        return pipeline
