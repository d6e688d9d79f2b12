"""Detect faces on an uploaded photo and describe them as the face-api contract says."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
from anyio import to_thread

from frontend.imaging import budget
from frontend.imaging.decode import DecodedImage, decode_for_detection, detection_size, is_jpeg
from frontend.inference.catalog import Pipeline
from frontend.inference.triton import Faces, TritonClient
from frontend.schemas import face_api as schema
from frontend.settings import Settings

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


@dataclass(frozen=True)
class DetectParams:
    confidence: float
    nms_threshold: float
    max_faces: int


@dataclass(frozen=True)
class Detected:
    image: DecodedImage
    faces: Faces
    decode_ms: float


async def detect(data: bytes, params: DetectParams, triton: TritonClient, pipeline: Pipeline,
                 settings: Settings) -> Detected:
    """Decode (off the event loop: TurboJPEG and Pillow release the GIL) and detect with ``pipeline``.

    The detector sees the photo scaled into its input (the pipeline's input_size), so a large
    JPEG is decoded reduced in the DCT (a fraction of the time and memory) and the faces are
    mapped back onto the upload's pixels; only masking needs every pixel.
    """
    input_size = pipeline.input_size
    await budget.admit_upload(data, settings.max_image_pixels,
                              partial(detection_size, input_size=input_size) if is_jpeg(data) else None)
    started = time.perf_counter()
    image = await to_thread.run_sync(decode_for_detection, data, settings.max_image_pixels, input_size)
    decode_ms = (time.perf_counter() - started) * 1000.0
    faces = await triton.detect(pipeline.name, image.pixels, params.confidence,
                                params.nms_threshold, params.max_faces)
    return Detected(image, on_upload(faces, image), decode_ms)


def on_upload(faces: Faces, image: DecodedImage) -> Faces:
    """Faces found on reduced pixels, in the upload's pixels (unchanged when not reduced)."""
    height, width = image.pixels.shape[:2]
    if (width, height) == (image.width, image.height):
        return faces
    fx, fy = image.width / width, image.height / height
    return replace(faces, boxes=(faces.boxes * np.array([fx, fy, fx, fy], np.float32)),
                   landmarks=faces.landmarks * np.array([fx, fy], np.float32),
                   scale=(faces.scale[0] / fx, faces.scale[1] / fy))


def _r(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


def describe_faces(faces: Faces, width: int, height: int) -> list[schema.Detection]:
    detections = []
    for index, (score, box, points) in enumerate(zip(faces.scores, faces.boxes, faces.landmarks)):
        x1, y1, x2, y2 = (float(v) for v in box)
        w, h = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        detections.append(schema.Detection(
            index=index,
            bbox=schema.BoundingBox(x1=_r(x1), y1=_r(y1), x2=_r(x2), y2=_r(y2)),
            confidence=_r(score, 4),
            landmarks=schema.Landmarks(**{
                name: schema.Point(x=_r(px), y=_r(py)) for name, (px, py) in zip(LANDMARK_NAMES, points)
            }),
            size=schema.Size(width=_r(w), height=_r(h)),
            area=_r(w * h),
            center=schema.Point(x=_r(cx), y=_r(cy)),
            relative=schema.Relative(x_center=_r(cx / width, 4), y_center=_r(cy / height, 4),
                                     width=_r(w / width, 4), height=_r(h / height, 4)),
        ))
    return detections


def summarise(detections: list[schema.Detection], width: int, height: int) -> schema.Summary:
    scores = [d.confidence for d in detections]
    total_area = sum(d.area for d in detections)
    return schema.Summary(
        face_count=len(detections),
        avg_confidence=_r(sum(scores) / len(scores), 4) if scores else None,
        min_confidence=min(scores) if scores else None,
        max_confidence=max(scores) if scores else None,
        total_face_area=_r(total_area),
        face_area_ratio=_r(total_area / (width * height), 4),
    )


def build_response(request_id: str, detected: Detected, params: DetectParams, pipeline: Pipeline,
                   size_bytes: int, started: float) -> schema.DetectResponse:
    """The full DetectResponse; ``started`` is perf_counter() when the request arrived."""
    image, faces = detected.image, detected.faces
    input_size, model = pipeline.input_size, pipeline.detector
    detections = describe_faces(faces, image.width, image.height)
    total_ms = _r((time.perf_counter() - started) * 1000.0)
    inference_ms = _r(faces.inference_ms)
    det_resolution = f"{input_size[0]}x{input_size[1]}"
    return schema.DetectResponse(
        request_id=request_id,
        image=schema.ImageInfo(width=image.width, height=image.height, channels=image.channels,
                               size_bytes=size_bytes),
        detections=detections,
        summary=summarise(detections, image.width, image.height),
        processing=schema.Processing(
            model=model, input_size=list(input_size), confidence_threshold=params.confidence,
            nms_threshold=params.nms_threshold, inference_ms=inference_ms, total_ms=total_ms),
        profiling=schema.Profiling(
            decode_ms=_r(detected.decode_ms), preprocess_ms=_r(faces.preprocess_ms),
            blob_ms=_r(faces.blob_ms), inference_ms=inference_ms,
            postprocess_ms=_r(faces.decode_ms), nms_ms=_r(faces.nms_ms), total_ms=total_ms,
            candidates_before_nms=faces.candidates_before_nms,
            candidates_after_nms=faces.candidates_after_nms,
            det_scale=round(faces.scale[0] if image.width >= image.height else faces.scale[1], 6),
            input_resolution=f"{image.width}x{image.height}", det_resolution=det_resolution,
            input_bytes=size_bytes, input_pixels=image.width * image.height, model_name=model),
    )
