"""Which models an embedded Triton loads: the pipelines the settings select, and what they call.

Triton runs with explicit model control, so a model is loaded only when asked for.
The pipelines come from their own declarations (the ``kind``, ``detector`` and
``recognizer`` parameters that frontend/inference/catalog.py reads): the detect
pipeline of FACE_API_DETECTOR, its mask pipeline when it has one, the recognize
pipeline of FACE_API_RECOGNIZER and the detect pipeline that one pairs with. Every
model a pipeline calls (an ensemble's steps, a BLS model's ``bls_models``) is loaded
before it. FACE_API_TRITON_LOAD adds pipelines or models by name (tests that call
a pipeline directly), or says ``all``: every servable model, as before explicit
control (what the memory benchmark compares against).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from frontend.inference.catalog import CatalogError, Pipeline, pipeline_from_parameters, select
from runtime.cpu_repository import in_process_models, is_pipeline, pipeline_models

LOAD_VARIABLE = "FACE_API_TRITON_LOAD"
EVERYTHING = "all"

Configs = Mapping[str, tuple[Path, mc.ModelConfig]]  # cpu_repository.read_configs


class SelectionError(RuntimeError):
    """The settings name a model the repositories do not have."""


def string_parameters(config: mc.ModelConfig) -> dict[str, str]:
    return {key: value.string_value for key, value in config.parameters.items()}


def declared_pipelines(configs: Configs, log=print) -> list[Pipeline]:
    """Every pipeline that declares itself; an incomplete declaration is reported and skipped."""
    found = []
    for name, (_, config) in sorted(configs.items()):
        try:
            pipeline = pipeline_from_parameters(name, string_parameters(config))
        except CatalogError as error:
            log(f"ignoring {name}: {error}")
            continue
        if pipeline is not None:
            found.append(pipeline)
    return found


def selected_pipelines(configs: Configs, detector: str, recognizer: str, log=print) -> list[str]:
    """The pipelines the service uses with this detector and recognizer (detect, mask if the
    detector has one, recognize, and the detect pipeline recognize pairs with)."""
    pipelines = declared_pipelines(configs, log)
    chosen = select(pipelines, detector, recognizer)
    if chosen.detect is None:
        offered = sorted({p.detector for p in pipelines if p.kind == "detect"})
        raise SelectionError(f"no detect pipeline declares the detector '{detector}' "
                             f"(detectors with one: {', '.join(offered) or 'none'})")
    if chosen.recognize is None:
        offered = sorted({p.recognizer for p in pipelines if p.kind == "recognize"})
        raise SelectionError(f"no recognize pipeline declares the recognizer '{recognizer}' "
                             f"(recognizers with one: {', '.join(offered) or 'none'})")
    if chosen.recognize_detect is None:
        raise SelectionError(f"{chosen.recognize.name} pairs with the detect pipeline "
                             f"'{chosen.recognize.detect_pipeline}', which the repositories do not have")
    names = [p.name for p in (chosen.detect, chosen.mask, chosen.recognize, chosen.recognize_detect) if p]
    return list(dict.fromkeys(names))


def closure(configs: Configs, roots: Iterable[str], fused: bool = False) -> list[str]:
    """``roots`` and every model they call, recursively; each model after the models it calls.
    ``fused``: the models that CPU mode runs inside a pipeline's process
    (cpu_repository.in_process_models) are not loaded on their own for it."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return  # done, or a cycle (cpu_repository refuses those with a reason)
        visiting.add(name)
        if name in configs:
            _, config = configs[name]
            if is_pipeline(config):
                inside = in_process_models(config, configs) if fused else []
                for called in pipeline_models(config):
                    if called not in inside:
                        visit(called)
        visiting.discard(name)
        order.append(name)

    for root in roots:
        if root not in configs:
            raise SelectionError(f"there is no model named '{root}' in the repositories")
        visit(root)
    return order


@dataclass(frozen=True)
class LoadPlan:
    """What a server loads: the selected pipelines, extra ones by name, or everything."""

    detector: str | None = None
    recognizer: str | None = None
    extra: tuple[str, ...] = ()
    everything: bool = False

    @classmethod
    def from_environment(cls, detector: str | None, recognizer: str | None,
                         environ: Mapping[str, str] = os.environ) -> LoadPlan:
        """The plan for these settings plus FACE_API_TRITON_LOAD (names separated by commas, or all)."""
        words = [w.strip() for w in environ.get(LOAD_VARIABLE, "").split(",") if w.strip()]
        everything = EVERYTHING in words
        return cls(detector, recognizer, tuple(w for w in words if w != EVERYTHING), everything)

    def roots(self, configs: Configs, log=print) -> list[str]:
        """The pipelines (and models) asked for by name, to wait for at start."""
        selected = []
        if self.detector and self.recognizer:
            selected = selected_pipelines(configs, self.detector, self.recognizer, log)
        return list(dict.fromkeys([*selected, *self.extra]))
