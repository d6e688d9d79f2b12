"""``Recognition``: one worker's /v1 calls to Triton, through the pipelines the catalog selected.

The recognize pipeline finds faces and embeds them in one call (and embeds aligned
crops for the *-only endpoints); /v1/detect calls the detect pipeline the recognize
pipeline declares as its pair, so its faces are the ones the features come from.
"""

from __future__ import annotations

import asyncio

import numpy as np
from anyio import to_thread
from fastapi.exceptions import RequestValidationError

from frontend.imaging import budget
from frontend.inference.served import ServedPipelines
from frontend.inference.triton import Faces, TritonClient
from frontend.schemas import recognition as schema
from frontend.services.recognition.codec import decode_feature, version
from frontend.services.recognition.faces import Face, aligned_face, face_detect, no_face, sort_order
from frontend.services.recognition.images import check_aligned, decode_upload_base64, load_image, merge
from frontend.services.recognition.scoring import check_features, check_same_length, cosine, unit
from frontend.settings import Settings

# base64 strings longer than this are decoded off the event loop.
INLINE_BASE64 = 64 * 1024


class Recognition:
    """One worker's recognition service."""

    def __init__(self, triton: TritonClient, catalog: ServedPipelines, settings: Settings):
        self.triton = triton
        self.catalog = catalog
        self.settings = settings

    @property
    def version(self) -> str:
        return version(self.settings.recognizer)

    # --- inputs ---

    async def load(self, source: str | bytes, field: str) -> np.ndarray:
        """Decode base64 (if it is), take the photo's pixels from the worker's budget, and decode
        the image, both off the event loop."""
        if isinstance(source, str):
            source = await to_thread.run_sync(decode_upload_base64, source, field)
        await budget.admit_upload(source, self.settings.max_image_pixels)
        return await to_thread.run_sync(load_image, source, field, self.settings.max_upload_bytes,
                                        self.settings.max_image_pixels)

    async def load_both(self, first: str | bytes, second: str | bytes,
                        fields: tuple[str, str] = ("image1", "image2")) -> tuple[np.ndarray, np.ndarray]:
        results = await asyncio.gather(self.load(first, fields[0]), self.load(second, fields[1]),
                                       return_exceptions=True)
        error = merge([r for r in results if isinstance(r, BaseException)])
        if error is not None:
            raise error
        return results[0], results[1]

    # --- inference ---

    async def detect(self, source: str | bytes, seq: int, max_results: int,
                     sort_type: int) -> schema.DetectResponse:
        rgb = await self.load(source, "image")
        pipeline = self.catalog.recognize_detect()
        faces: Faces = await self.triton.detect(
            pipeline.name, rgb, self.settings.recognition_confidence,
            self.settings.recognition_nms_threshold, 0)
        order = sort_order(faces.scores, faces.boxes, sort_type)[:max_results]
        return schema.DetectResponse(seq=seq, faces=[
            face_detect(faces.scores[i], faces.boxes[i], faces.landmarks[i]) for i in order])

    async def _faces(self, rgb: np.ndarray, max_faces: int, largest_only: bool) -> list[Face]:
        """The faces the pipeline chose (it keeps the largest, or caps at ``max_faces``)."""
        found = await self.triton.recognize(
            self.catalog.recognize().name, rgb, self.settings.recognition_confidence,
            self.settings.recognition_nms_threshold, max_faces, largest_only)
        return [Face(unit(vector), face_detect(score, box, points))
                for score, box, points, vector in zip(found.scores, found.boxes, found.landmarks,
                                                      found.embeddings)]

    async def _largest(self, rgb: np.ndarray) -> Face:
        faces = await self._faces(rgb, 0, largest_only=True)
        return faces[0] if faces else Face(None, no_face())

    async def single(self, source: str | bytes) -> Face:
        """The largest face of the image (or no face)."""
        return await self._largest(await self.load(source, "image"))

    async def multi(self, source: str | bytes, max_results: int) -> list[Face]:
        """Up to ``max_results`` faces, the most confident first."""
        return await self._faces(await self.load(source, "image"), max_results, largest_only=False)

    async def aligned(self, source: str | bytes) -> Face:
        """An aligned 112×112 crop, embedded as it is."""
        rgb = await self.load(source, "image")
        check_aligned(rgb, "image")
        embeddings = await self.triton.embed_aligned(self.catalog.recognize().name,
                                                     np.ascontiguousarray(rgb)[None])
        return Face(unit(embeddings[0]), aligned_face())

    async def score(self, first: str | bytes, second: str | bytes) -> schema.ScoreResponse:
        rgb1, rgb2 = await self.load_both(first, second)
        face1, face2 = await asyncio.gather(self._largest(rgb1), self._largest(rgb2))
        score = 0.0
        if face1.vector is not None and face2.vector is not None:
            score = cosine(face1.vector, face2.vector)
        return schema.ScoreResponse(score=score, face_detects=[face1.detect, face2.detect])

    async def feature_score(self, feature1: str, feature2: str) -> schema.FeatureScoreResponse:
        vectors, errors = {}, []
        for field, text in (("feature1", feature1), ("feature2", feature2)):
            try:
                if len(text) > INLINE_BASE64:
                    vectors[field] = await to_thread.run_sync(decode_feature, text, field)
                else:
                    vectors[field] = decode_feature(text, field)
            except RequestValidationError as error:
                errors.append(error)
        if errors:
            raise merge(errors)
        check_same_length(vectors)
        pipeline = self.catalog.recognize()  # (its embedding size: 503 while it is not served)
        check_features(vectors, pipeline.embedding_size, pipeline.recognizer)
        return schema.FeatureScoreResponse(score=cosine(vectors["feature1"], vectors["feature2"]))
