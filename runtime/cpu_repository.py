"""Derive the model repository that the embedded CPU Triton serves.

The committed repositories (model_repository/, ensembles/) are written for
NVIDIA's Triton container, where ONNX models run on the native ONNX Runtime
backend. The tritonserver shipped in nvidia-pytriton has no such backend, so
this module writes a derived copy under .run/ in which:

* every `backend: "onnxruntime"` model keeps its name, inputs, outputs and
  batching but runs through runtime/onnx_runner.py (a Python-backend model);
  a model whose config sets the parameter `cpu_mode_dynamic_batching` to
  "off" is served without its dynamic batcher (a batch can cost more per item
  than single items on a CPU);
* Python-backend models and ensembles are linked unchanged;
* a model whose weight file is absent or does not match its config is left
  out with a reason, and so is every ensemble that needs it, so one missing
  optional model (scrfd_10g, say) never stops the server from starting.

The committed configs stay the single source of truth: nothing is copied by hand.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from runtime import weights

ONNX_RUNNER = Path(__file__).resolve().parent / "onnx_runner.py"


@dataclass(frozen=True)
class OnnxTuning:
    """How ONNX models run in CPU mode: instances (processes) x onnxruntime threads each."""

    instances: int = 1
    threads: int = 0  # 0 = one per core
    spinning: bool = False  # spin-waiting threads: lower latency, but they steal CPU


@dataclass
class DerivedRepository:
    path: Path
    served: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # model name -> reason


def read_config(model_dir: Path) -> mc.ModelConfig:
    config = mc.ModelConfig()
    text_format.Parse((model_dir / "config.pbtxt").read_text(), config)
    if not config.name:
        config.name = model_dir.name
    return config


def is_onnx(config: mc.ModelConfig) -> bool:
    return config.backend == "onnxruntime" or config.platform == "onnxruntime_onnx"


def onnx_weight(model_dir: Path, config: mc.ModelConfig) -> tuple[str, Path] | None:
    """(version, weight path) of the newest version holding the ONNX file, if any."""
    filename = config.default_model_filename or "model.onnx"
    versions = sorted((d for d in model_dir.iterdir() if d.is_dir() and d.name.isdigit()),
                      key=lambda d: int(d.name), reverse=True)
    for version in versions:
        if (version / filename).is_file():
            return version.name, version / filename
    return None


_ONNX_TYPES = {
    "tensor(float)": mc.TYPE_FP32, "tensor(float16)": mc.TYPE_FP16, "tensor(double)": mc.TYPE_FP64,
    "tensor(uint8)": mc.TYPE_UINT8, "tensor(int8)": mc.TYPE_INT8, "tensor(int32)": mc.TYPE_INT32,
    "tensor(int64)": mc.TYPE_INT64, "tensor(bool)": mc.TYPE_BOOL,
}


def mismatches(config: mc.ModelConfig, weight: Path) -> list[str]:
    """How the config's inputs/outputs disagree with the ONNX graph (empty when they agree)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(weight), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        return [f"onnxruntime cannot load it ({str(error).splitlines()[0]})"]
    problems = []
    batch = [-1] if config.max_batch_size > 0 else []
    for kind, declared, actual in (("input", config.input, session.get_inputs()),
                                   ("output", config.output, session.get_outputs())):
        graph = {t.name: t for t in actual}
        for tensor in declared:
            found = graph.get(tensor.name)
            if found is None:
                problems.append(f"{kind} '{tensor.name}' is not in the graph "
                                f"(it has {', '.join(sorted(graph))})")
                continue
            if _ONNX_TYPES.get(found.type) != tensor.data_type:
                problems.append(f"{kind} '{tensor.name}' is {found.type} in the graph, "
                                f"{mc.DataType.Name(tensor.data_type)} in the config")
            dims = batch + list(tensor.dims)
            if len(dims) != len(found.shape) or any(
                isinstance(g, int) and d != -1 and g != d for d, g in zip(dims, found.shape)
            ):
                problems.append(f"{kind} '{tensor.name}' has shape {found.shape} in the graph, "
                                f"config says {dims}")
    return problems


def pipeline_models(config: mc.ModelConfig) -> list[str]:
    """The models a pipeline calls: an ensemble's steps, or the models a Python (BLS)
    model names in its ``bls_models`` parameter (comma-separated)."""
    if config.platform == "ensemble":
        return [step.model_name for step in config.ensemble_scheduling.step]
    return [m.strip() for m in config.parameters["bls_models"].string_value.split(",") if m.strip()]


CPU_BATCHING = "cpu_mode_dynamic_batching"


def keeps_dynamic_batching(config: mc.ModelConfig) -> bool:
    """Whether CPU mode keeps the model's dynamic batcher: yes unless its config says "off"."""
    value = config.parameters[CPU_BATCHING].string_value if CPU_BATCHING in config.parameters else "on"
    if value not in ("on", "off"):
        raise ValueError(f'parameter {CPU_BATCHING} is "{value}"; it must be "on" or "off"')
    return value == "on"


def _cpu_config(config: mc.ModelConfig, weight_name: str, tuning: OnnxTuning,
                batching: bool) -> mc.ModelConfig:
    derived = mc.ModelConfig()
    derived.CopyFrom(config)
    if not batching:
        derived.ClearField("dynamic_batching")
    derived.backend = "python"
    derived.platform = ""
    derived.default_model_filename = ""
    derived.parameters["onnx_file"].string_value = weight_name
    derived.parameters["intra_op_threads"].string_value = str(tuning.threads)
    derived.parameters["allow_spinning"].string_value = "1" if tuning.spinning else "0"
    del derived.instance_group[:]
    derived.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=tuning.instances)
    return derived


def derive(sources: list[Path], target: Path, tuning: OnnxTuning = OnnxTuning(),
           log=print) -> DerivedRepository:
    """Write the CPU-servable repository for ``sources`` into ``target`` (replaced)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    result = DerivedRepository(target)
    ensembles: dict[str, tuple[Path, mc.ModelConfig]] = {}

    for model_dir in sorted(d for source in sources for d in source.iterdir()
                            if (d / "config.pbtxt").is_file()):
        config = read_config(model_dir)
        if config.platform == "ensemble" or "bls_models" in config.parameters:
            ensembles[config.name] = (model_dir, config)
        elif is_onnx(config):
            found = onnx_weight(model_dir, config)
            if found is None:
                result.skipped[config.name] = (
                    f"no weight file ({model_dir.name}/1/"
                    f"{config.default_model_filename or 'model.onnx'} is absent)")
                continue
            version, weight = found
            pinned = weights.artifact_for(weight)
            try:
                if pinned:
                    weights.check(pinned)
            except weights.WeightError as error:
                result.skipped[config.name] = str(error)
                continue
            try:
                batching = keeps_dynamic_batching(config)
            except ValueError as error:
                result.skipped[config.name] = f"{model_dir.name}/config.pbtxt: {error}"
                continue
            problems = mismatches(config, weight)
            if problems:
                result.skipped[config.name] = f"{weight} does not match config.pbtxt: " + "; ".join(problems)
                continue
            out = target / config.name
            (out / version).mkdir(parents=True)
            (out / "config.pbtxt").write_text(
                text_format.MessageToString(_cpu_config(config, weight.name, tuning, batching)))
            (out / version / "model.py").symlink_to(ONNX_RUNNER)
            (out / version / weight.name).symlink_to(weight.resolve())
            result.served.append(config.name)
        else:
            (target / config.name).symlink_to(model_dir.resolve(), target_is_directory=True)
            result.served.append(config.name)

    # A pipeline (ensemble or BLS model) is served when every model it calls is; repeat for nested ones.
    pending = dict(ensembles)
    while pending:
        progressed = False
        for name, (model_dir, config) in list(pending.items()):
            needed = pipeline_models(config)
            missing = [m for m in needed if m not in result.served]
            if not missing:
                (target / name).symlink_to(model_dir.resolve(), target_is_directory=True)
                result.served.append(name)
            elif all(m in result.skipped or m not in pending for m in missing):
                result.skipped[name] = f"needs {', '.join(missing)}, which is not served"
            else:
                continue
            del pending[name]
            progressed = True
        if not progressed:
            for name in pending:
                result.skipped[name] = "its steps form a cycle or name unknown models"
            break
    for name, reason in sorted(result.skipped.items()):
        log(f"not serving {name}: {reason}")
    return result
