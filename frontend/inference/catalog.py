"""What the served pipelines are, read from their own config parameters.

Every pipeline (in ensembles/) declares itself with string parameters in its
config.pbtxt, so nothing here derives a model name from a naming convention:

* ``kind``: ``detect``, ``mask`` or ``recognize``;
* ``detector``: the detector network it runs (a leaf model's name);
* ``input_size``: the detector's input, ``WIDTHxHEIGHT`` (e.g. ``640x640``);
* ``landmarks``: ``true`` when it returns 5 landmarks per face;
* ``licence``: the weights' licence, as a person should read it;
* detect pipelines: ``mask_pipeline``, the mask pipeline of the same detector, if any;
* mask pipelines: ``detect_pipeline``, the detect pipeline they pair with;
* recognize pipelines: ``recognizer`` (the embedding network), ``embedding_size``
  and ``detect_pipeline`` (the detect pipeline of the same detector).

In the embedded CPU mode a detect or mask pipeline runs its steps inside one Triton
model (runtime/pipeline_runner.py), and a recognize pipeline the models it calls
(triton_python/in_process.py); either adds ``fused_models``: the models it runs in its
own process, which Triton then does not load on their own, and ``fused_configs``: their
configs (JSON), from which /v1/info/model describes them.

This module holds the pure part (parsing, choosing, deciding what a missing
pipeline means); reading the parameters from Triton is served.py's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

KINDS = ("detect", "mask", "recognize")
# Written by runtime/cpu_repository.py on a pipeline that runs models in its own process:
FUSED_MODELS = "fused_models"  # their names, comma-separated
FUSED_CONFIGS = "fused_configs"  # JSON: name -> config, as Triton would report it


class CatalogError(ValueError):
    """A pipeline's parameters are missing or malformed."""


class Unsupported(Exception):
    """The configured models have no pipeline for what was asked (answered 501, not 503:
    waiting will not help, another model choice will)."""


@dataclass(frozen=True)
class Pipeline:
    name: str
    kind: str  # detect | mask | recognize
    detector: str
    input_size: tuple[int, int]  # width, height of the detector's input
    landmarks: bool
    licence: str = ""
    mask_pipeline: str | None = None  # detect pipelines
    detect_pipeline: str | None = None  # mask and recognize pipelines
    recognizer: str | None = None  # recognize pipelines
    embedding_size: int | None = None  # recognize pipelines
    fused_models: tuple[str, ...] = ()  # models it runs in its own process (CPU mode)


def pipeline_from_parameters(name: str, parameters: Mapping[str, str]) -> Pipeline | None:
    """The pipeline a model's string parameters declare; None for a model that declares no ``kind``
    (a leaf model or a helper step). Raises CatalogError when the declaration is incomplete."""
    kind = parameters.get("kind")
    if kind is None:
        return None
    if kind not in KINDS:
        raise CatalogError(f"{name}: parameter kind is '{kind}'; it must be one of {', '.join(KINDS)}")

    def required(key: str) -> str:
        value = parameters.get(key, "").strip()
        if not value:
            raise CatalogError(f"{name}: a {kind} pipeline must declare the parameter '{key}'")
        return value

    size = required("input_size")
    try:
        width, height = (int(part) for part in size.lower().split("x"))
        if width < 1 or height < 1:
            raise ValueError
    except ValueError:
        raise CatalogError(f"{name}: input_size is '{size}'; it must read WIDTHxHEIGHT") from None
    landmarks = required("landmarks").lower()
    if landmarks not in ("true", "false"):
        raise CatalogError(f"{name}: landmarks is '{landmarks}'; it must be true or false")
    embedding_size = None
    if kind == "recognize":
        raw = required("embedding_size")
        if not raw.isdigit() or int(raw) < 1:
            raise CatalogError(f"{name}: embedding_size is '{raw}'; it must be a positive integer")
        embedding_size = int(raw)
    return Pipeline(
        name=name, kind=kind, detector=required("detector"), input_size=(width, height),
        landmarks=landmarks == "true", licence=parameters.get("licence", ""),
        mask_pipeline=parameters.get("mask_pipeline") or None if kind == "detect" else None,
        detect_pipeline=required("detect_pipeline") if kind in ("mask", "recognize") else None,
        recognizer=required("recognizer") if kind == "recognize" else None,
        embedding_size=embedding_size,
        fused_models=tuple(m.strip() for m in parameters.get(FUSED_MODELS, "").split(",") if m.strip()),
    )


@dataclass(frozen=True)
class Selection:
    """The pipelines the service uses for its configured detector and recognizer (None: not served)."""

    detect: Pipeline | None
    mask: Pipeline | None
    recognize: Pipeline | None
    recognize_detect: Pipeline | None  # the detect pipeline /v1 uses: the recognizer's pair


def select(pipelines: Iterable[Pipeline], detector: str, recognizer: str) -> Selection:
    """Choose, among the served pipelines, those of `detector` and `recognizer`."""
    by_name = {p.name: p for p in pipelines}

    def one(kind: str, **match: str) -> Pipeline | None:
        found = sorted((p for p in by_name.values() if p.kind == kind
                        and all(getattr(p, key) == value for key, value in match.items())),
                       key=lambda p: p.name)
        return found[0] if found else None

    recognize = one("recognize", recognizer=recognizer)
    pair = by_name.get(recognize.detect_pipeline) if recognize and recognize.detect_pipeline else None
    return Selection(detect=one("detect", detector=detector), mask=one("mask", detector=detector),
                     recognize=recognize, recognize_detect=pair)


NOTHING = Selection(detect=None, mask=None, recognize=None, recognize_detect=None)

# What a request for masking finds (mask_state).
SERVED, UNSUPPORTED, UNAVAILABLE = "served", "unsupported", "unavailable"


def mask_state(selection: Selection) -> str:
    """SERVED: a mask pipeline of the detector is served. UNSUPPORTED: the detect pipeline is
    served and declares no mask pipeline, so none will come (501). UNAVAILABLE: not served
    now, e.g. still loading or Triton away (503)."""
    if selection.mask is not None:
        return SERVED
    if selection.detect is not None and selection.detect.mask_pipeline is None:
        return UNSUPPORTED
    return UNAVAILABLE


def describe(selection: Selection) -> str:
    """One line for the log: which pipeline serves what."""
    def name(pipeline: Pipeline | None) -> str:
        return pipeline.name if pipeline else "none"

    return (f"detect {name(selection.detect)}, mask {name(selection.mask)}, "
            f"recognize {name(selection.recognize)} (detect {name(selection.recognize_detect)})")
