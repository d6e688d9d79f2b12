"""The config.pbtxt of a model added by ./face-api models add, from what onnx_inspect found.

Written in the shape of the shipped leaf configs (model_repository/scrfd_500m,
yunet_2023mar, arcface_w600k_mbf): the served names and shapes without the batch
dimension when the model batches, the `family` and `licence` parameters the
pipeline renderer reads, and for recognisers the detector they pair with and how
their input is normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_tools.onnx_inspect import DETECTOR_SIZE, Inspection

MAX_BATCH = {"scrfd": 8, "arcface": 32}  # as the shipped SCRFD and ArcFace configs
QUEUE_DELAY_US = {"scrfd": 0, "arcface": 2000}


@dataclass(frozen=True)
class Recognition:
    """How a recogniser is fed: its detector and the normalisation (x - mean) / std."""

    detector: str
    mean: str = "127.5"
    std: str = "127.5"
    channel_order: str = "RGB"


def max_batch_size(inspection: Inspection, dynamic_batch: bool) -> int:
    """YuNet's pipelines spell its fixed batch out (0); others batch, or take one item per call (1)."""
    if inspection.family == "yunet":
        return 0
    return MAX_BATCH[inspection.family] if dynamic_batch else 1


def render(name: str, inspection: Inspection, dynamic_batch: bool, source: str, sha256: str,
           licence: str, changes: list[str], recognition: Recognition | None = None) -> str:
    batch = max_batch_size(inspection, dynamic_batch)
    lead = [] if batch else [1]  # without batching, Triton's dims include the batch of 1
    size = inspection.height or DETECTOR_SIZE
    lines = [f"# {inspection.describe()}.",
             f"# Added by ./face-api models add from {source},",
             f"# sha256 {sha256}.",
             *(f"# {change}" for change in changes),
             f'name: "{name}"', 'backend: "onnxruntime"',
             f"max_batch_size: {batch}" + ("  # one item per call (see above)" if batch == 1 else ""),
             'default_model_filename: "model.onnx"', "",
             "input [",
             f'  {{ name: "{inspection.served_input}", data_type: TYPE_FP32, '
             f"dims: {_dims([*lead, 3, size, size])} }}",
             "]", "output ["]
    outputs = [f'  {{ name: "{output}", data_type: TYPE_FP32, dims: {_dims([*lead, *shape])} }}'
               for output, shape in inspection.shapes.items()]
    lines += [",\n".join(outputs), "]", ""]
    if batch > 1:
        lines += ["dynamic_batching {",
                  f"  max_queue_delay_microseconds: {QUEUE_DELAY_US[inspection.family]}", "}"]
    lines += [_parameter("family", inspection.family), _parameter("licence", licence)]
    if recognition is not None:
        lines += [_parameter("detector", recognition.detector),
                  "# Input normalisation: (x - mean) / std, channels in this order.",
                  _parameter("mean", recognition.mean), _parameter("std", recognition.std),
                  _parameter("channel_order", recognition.channel_order)]
    if batch > 1:
        lines += ["# As for the shipped models: the embedded CPU mode runs it without a batcher (a batch",
                  "# costs as much per item there, docs/performance.md); Triton's own ONNX Runtime",
                  "# backend ignores this key.",
                  _parameter("cpu_mode_dynamic_batching", "off")]
    if recognition is None:
        lines += ["# As for the shipped detectors: in the embedded CPU mode a lone request may use every",
                  "# core (docs/performance.md); Triton's own ONNX Runtime backend ignores this key.",
                  _parameter("cpu_mode_idle_threads", "on")]
    return "\n".join(lines) + "\n"


def _dims(dims: list[int]) -> str:
    return "[ " + ", ".join(str(d) for d in dims) + " ]"


def _parameter(key: str, value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'parameters {{ key: "{key}", value: {{ string_value: "{escaped}" }} }}'
