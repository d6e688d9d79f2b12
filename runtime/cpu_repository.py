"""Derive the model repository that the embedded CPU Triton serves.

The committed repositories (model_repository/, ensembles/) are written for
NVIDIA's Triton container, where ONNX models run on the native ONNX Runtime
backend. The tritonserver shipped in nvidia-pytriton has no such backend, so
this module writes a derived copy under .run/ in which:

* every `backend: "onnxruntime"` model keeps its name, inputs, outputs and
  batching but runs through runtime/onnx_runner.py (a Python-backend model);
  a model whose config sets the parameter `cpu_mode_dynamic_batching` to
  "off" is served without its dynamic batcher (a batch can cost more per item
  than single items on a CPU), and one that keeps it never waits for a batch
  to fill (its queue delay becomes 0); one whose config sets `cpu_mode_idle_threads`
  to "on" runs a lone request on FACE_API_ONNX_IDLE_THREADS threads while the
  model is quiet (runtime/onnx_runner.py);
* an ensemble whose steps are all single models (every detect and mask pipeline)
  is served as one Python-backend model that runs those steps in one process
  (runtime/pipeline_runner.py), so a photo is not copied between three or four
  stub processes; likewise a BLS model (a recognize pipeline) loads the models it calls
  into its own process (callees.json, triton_python/in_process.py), except one that
  keeps a dynamic batcher; FACE_API_CPU_FUSED_PIPELINES=false serves the pipelines
  as they are (OnnxTuning.fuse_pipelines);
* other Python-backend models and ensembles are linked unchanged;
* a model whose weight file is absent or does not match its config is left
  out with a reason, and so is every ensemble that needs it, so one missing
  optional model (scrfd_10g, say) never stops the server from starting.

Every entry of the derived repository is a symbolic link (the wrapped ONNX
models are built beside it, one folder per content), so deriving again while
Triton runs swaps each entry in one rename: ``./face-api models reload`` then
asks Triton to load what changed.

The committed configs stay the single source of truth: nothing is copied by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from frontend.inference.catalog import FUSED_CONFIGS, FUSED_MODELS
from runtime import weights
from runtime.paths import ROOT

ONNX_RUNNER = Path(__file__).resolve().parent / "onnx_runner.py"
PIPELINE_RUNNER = Path(__file__).resolve().parent / "pipeline_runner.py"


@dataclass(frozen=True)
class OnnxTuning:
    """How ONNX models run in CPU mode: instances (processes) x onnxruntime threads each,
    and whether an ensemble of single models runs in one process."""

    instances: int = 1
    threads: int = 0  # 0 = one per core
    spinning: bool = False  # spin-waiting threads: lower latency, but they steal CPU
    idle_threads: int = 0  # threads of a run while the model is quiet (0 = as threads)
    fuse_pipelines: bool = False  # run a pipeline's models in its own process (in_process_models)


@dataclass
class DerivedRepository:
    path: Path
    served: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # model name -> reason
    entries: dict[str, Path] = field(default_factory=dict)  # model name -> the folder its entry links


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


def is_pipeline(config: mc.ModelConfig) -> bool:
    """An ensemble or a BLS model (one that names the models it calls in ``bls_models``)."""
    return config.platform == "ensemble" or "bls_models" in config.parameters


def fusable(config: mc.ModelConfig, configs: dict[str, tuple[Path, mc.ModelConfig]]) -> bool:
    """Whether CPU mode may run the ensemble ``config`` in one process: every step is a
    single model (not a pipeline itself) that the repositories have."""
    steps = pipeline_models(config) if config.platform == "ensemble" else []
    return bool(steps) and all(s in configs and not is_pipeline(configs[s][1]) for s in steps)


def pipeline_models(config: mc.ModelConfig) -> list[str]:
    """The models a pipeline calls: an ensemble's steps, or the models a Python (BLS)
    model names in its ``bls_models`` parameter (comma-separated)."""
    if config.platform == "ensemble":
        return [step.model_name for step in config.ensemble_scheduling.step]
    return [m.strip() for m in config.parameters["bls_models"].string_value.split(",") if m.strip()]


def in_process_models(config: mc.ModelConfig, configs: dict[str, tuple[Path, mc.ModelConfig]]) -> list[str]:
    """The models that CPU mode, with pipelines fused, runs inside the process of the pipeline
    ``config``: every step of a fusable ensemble; of the models a BLS model calls, each single
    model and each fusable ensemble, except where one keeps a dynamic batcher in CPU mode
    (batches across requests need one shared model: the INT8 detector's pipeline, say)."""
    if config.platform == "ensemble":
        return pipeline_models(config) if fusable(config, configs) else []
    if "bls_models" not in config.parameters:
        return []
    inside = []
    for name in pipeline_models(config):
        if name not in configs:
            continue
        callee = configs[name][1]
        if callee.platform == "ensemble":
            runs_here = fusable(callee, configs) and not any(
                _batches_in_cpu_mode(configs[step][1]) for step in pipeline_models(callee))
        else:
            runs_here = not is_pipeline(callee) and not _batches_in_cpu_mode(callee)
        if runs_here:
            inside.append(name)
    return inside


def _batches_in_cpu_mode(config: mc.ModelConfig) -> bool:
    """Whether the model has a dynamic batcher in CPU mode (a wrong switch value counts as yes:
    the model is then left out with that reason, see _onnx_file)."""
    try:
        return config.HasField("dynamic_batching") and keeps_dynamic_batching(config)
    except ValueError:
        return True


CPU_BATCHING = "cpu_mode_dynamic_batching"
IDLE_THREADS = "cpu_mode_idle_threads"


def _switch(config: mc.ModelConfig, key: str, default: str) -> bool:
    """A CPU-mode parameter that is "on" or "off" (``default`` when absent)."""
    value = config.parameters[key].string_value if key in config.parameters else default
    if value not in ("on", "off"):
        raise ValueError(f'parameter {key} is "{value}"; it must be "on" or "off"')
    return value == "on"


def keeps_dynamic_batching(config: mc.ModelConfig) -> bool:
    """Whether CPU mode keeps the model's dynamic batcher: yes unless its config says "off"."""
    return _switch(config, CPU_BATCHING, "on")


def uses_idle_threads(config: mc.ModelConfig) -> bool:
    """Whether a lone request may use more threads in CPU mode: only where the config says "on"
    (each instance then holds a second onnxruntime session: ~20–45 MB more for a detector)."""
    return _switch(config, IDLE_THREADS, "off")


def _cpu_config(config: mc.ModelConfig, weight_name: str, tuning: OnnxTuning,
                batching: bool) -> mc.ModelConfig:
    derived = mc.ModelConfig()
    derived.CopyFrom(config)
    if not batching:
        derived.ClearField("dynamic_batching")
    elif derived.HasField("dynamic_batching"):
        # On the CPU a batch costs about as much per item as single items do, so an idle
        # instance does not wait for one to fill (ArcFace's 2 ms made every lone face wait
        # 2.4 ms); batches still form from requests that queue while the instances are busy.
        derived.dynamic_batching.max_queue_delay_microseconds = 0
    derived.backend = "python"
    derived.platform = ""
    derived.default_model_filename = ""
    derived.parameters["onnx_file"].string_value = weight_name
    derived.parameters["intra_op_threads"].string_value = str(tuning.threads)
    derived.parameters["allow_spinning"].string_value = "1" if tuning.spinning else "0"
    idle_threads = tuning.idle_threads if uses_idle_threads(config) else 0
    derived.parameters["idle_threads"].string_value = str(idle_threads)
    del derived.instance_group[:]
    derived.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=tuning.instances)
    return derived


def read_configs(sources: list[Path]) -> dict[str, tuple[Path, mc.ModelConfig]]:
    """Every model in ``sources`` by name: (its folder, its config). Where two sources hold
    the same name, the first source wins."""
    found: dict[str, tuple[Path, mc.ModelConfig]] = {}
    for source in sources:
        for model_dir in sorted(d for d in source.iterdir() if (d / "config.pbtxt").is_file()):
            config = read_config(model_dir)
            found.setdefault(config.name, (model_dir, config))
    return found


def store_of(target: Path) -> Path:
    """Where the wrapped ONNX models of the repository ``target`` are built: beside it, so
    that Triton, which lists ``target``, never sees a half-written one."""
    return target.with_name(target.name + ".onnx")


def derive(sources: list[Path], target: Path, tuning: OnnxTuning = OnnxTuning(), log=print,
           checked: Collection[str] | None = None, apart: bool = False) -> DerivedRepository:
    """Bring the CPU-servable repository for ``sources`` in ``target`` up to date (see prepare)."""
    result = prepare(sources, target, tuning, checked, apart)
    for name, reason in sorted(result.skipped.items()):
        log(f"not serving {name}: {reason}")
    publish(result)
    return result


def prepare(sources: list[Path], target: Path, tuning: OnnxTuning = OnnxTuning(),
            checked: Collection[str] | None = None, apart: bool = False) -> DerivedRepository:
    """Work out the repository for ``sources`` without touching ``target`` yet.

    Only the ONNX models in ``checked`` (all when None) pay for the weight checksum and the
    onnxruntime comparison with their config: the others are listed as served and checked
    when they are loaded (``./face-api models reload`` prepares again with them checked).
    ``apart`` runs the comparison in a child process, so that a long-lived caller (serve's
    supervisor) never holds onnxruntime and the sessions' memory.
    """
    result = DerivedRepository(target)
    pipelines: dict[str, tuple[Path, mc.ModelConfig]] = {}
    onnx_models: dict[str, tuple[Path, mc.ModelConfig, str, Path, bool]] = {}
    configs = read_configs(sources)
    for name, (model_dir, config) in configs.items():
        if is_pipeline(config):
            pipelines[name] = (model_dir, config)
        elif is_onnx(config):
            found = _onnx_file(model_dir, config, checked is None or name in checked)
            if isinstance(found, str):
                result.skipped[name] = found
            else:
                onnx_models[name] = (model_dir, config, *found)
        else:
            result.entries[name] = model_dir.resolve()
            result.served.append(name)

    to_compare = {name: (config, weight) for name, (_, config, _, weight, _) in onnx_models.items()
                  if checked is None or name in checked}
    for name, problems in compare_with_graphs(to_compare, apart).items():
        if problems:
            weight = onnx_models[name][3]
            result.skipped[name] = f"{weight} does not match config.pbtxt: " + "; ".join(problems)
            del onnx_models[name]
    for name, (_, config, version, weight, batching) in onnx_models.items():
        result.entries[name] = _wrapped_onnx(config, version, weight, batching, store_of(target), tuning)
        result.served.append(name)

    # A pipeline (ensemble or BLS model) is served when every model it calls is; repeat for nested ones.
    offsets = _instance_offsets(configs, tuning) if tuning.fuse_pipelines else {}
    pending = dict(pipelines)
    while pending:
        progressed = False
        for name, (model_dir, config) in list(pending.items()):
            needed = pipeline_models(config)
            missing = [m for m in needed if m not in result.served]
            if not missing:
                result.entries[name] = model_dir.resolve()
                if name in offsets and config.platform == "ensemble":
                    result.entries[name] = _fused_pipeline(config, result.entries, store_of(target),
                                                           offsets[name])
                elif name in offsets:
                    inside = in_process_models(config, configs)
                    result.entries[name] = _with_callees(config, model_dir, inside, result.entries,
                                                         store_of(target), offsets[name])
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
    return result


def _onnx_file(model_dir: Path, config: mc.ModelConfig, check: bool) -> tuple[str, Path, bool] | str:
    """(version, weight file, keeps its dynamic batcher) of an ONNX model, or why it cannot be served."""
    found = onnx_weight(model_dir, config)
    if found is None:
        filename = config.default_model_filename or "model.onnx"
        quantised = config.parameters.get("quantised_from")
        how = f"; make it with ./face-api models quantize {quantised.string_value}" if quantised else ""
        return f"no weight file ({model_dir.name}/1/{filename} is absent{how})"
    version, weight = found
    try:
        batching = keeps_dynamic_batching(config)
        uses_idle_threads(config)  # a wrong value is a reason here, not an error when deriving
    except ValueError as error:
        return f"{model_dir.name}/config.pbtxt: {error}"
    pinned = weights.artifact_for(weight) if check else None
    try:
        if pinned:
            weights.check(pinned)
    except weights.WeightError as error:
        return str(error)
    return version, weight, batching


def compare_with_graphs(models: dict[str, tuple[mc.ModelConfig, Path]], apart: bool = False
                        ) -> dict[str, list[str]]:
    """mismatches() of each model, here or in one child process (``python -m runtime.cpu_repository``)."""
    if not apart or not models:
        return {name: mismatches(config, weight) for name, (config, weight) in models.items()}
    request = [[base64.b64encode(config.SerializeToString()).decode(), str(weight)]
               for config, weight in models.values()]
    done = subprocess.run([sys.executable, "-m", "runtime.cpu_repository"], input=json.dumps(request),
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"checking the ONNX files failed: {done.stderr.strip()[-2000:]}")
    return dict(zip(models, json.loads(done.stdout)))


def _compare_requested() -> None:
    """The child's side of compare_with_graphs: [[config, weight], ...] on stdin, problems on stdout."""
    answers = []
    for serialized, weight in json.load(sys.stdin):
        config = mc.ModelConfig()
        config.ParseFromString(base64.b64decode(serialized))
        answers.append(mismatches(config, Path(weight)))
    json.dump(answers, sys.stdout)


def _wrapped_onnx(config: mc.ModelConfig, version: str, weight: Path, batching: bool, store: Path,
                  tuning: OnnxTuning) -> Path:
    """The folder serving an ONNX model through onnx_runner.py, built once per content."""
    text = text_format.MessageToString(_cpu_config(config, weight.name, tuning, batching))
    resolved = weight.resolve()
    stat = resolved.stat()
    return _built_once(store, config.name, [text, version, str(resolved), str(stat.st_size),
                                            str(stat.st_mtime_ns)],
                       {"config.pbtxt": text, f"{version}/model.py": ONNX_RUNNER,
                        f"{version}/{weight.name}": resolved})


def _built_once(store: Path, name: str, identity: list[str], files: dict[str, str | Path]) -> Path:
    """The folder ``name@<digest of identity>`` in ``store``, holding ``files`` (relative path ->
    text to write, or a Path to link to). Named by what it holds: an unchanged model keeps its
    folder (and Triton sees nothing to reload); a new config or new weights make a new one. It is
    built under another name and renamed into place, so Triton never sees it half-written."""
    digest = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:16]
    out = store / f"{name}@{digest}"
    if not out.is_dir():
        partial = store / f".{out.name}.{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        for relative, content in files.items():
            path = partial / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                path.symlink_to(content)
            else:
                path.write_text(content)
        os.replace(partial, out)
    return out


def _instance_offsets(configs: dict[str, tuple[Path, mc.ModelConfig]], tuning: OnnxTuning) -> dict[str, int]:
    """Per pipeline that runs models in its process, where the busy-board slots of those models
    start: after those of the models' own instances, apart from every other such pipeline's
    (busy_board.SLOTS)."""
    fused = sorted(n for n, (_, c) in configs.items() if in_process_models(c, configs))
    width = max(tuning.instances, max((g.count for _, c in configs.values() for g in c.instance_group),
                                      default=1))
    return {name: (i + 1) * width for i, name in enumerate(fused)}


def _fused_pipeline(config: mc.ModelConfig, entries: dict[str, Path], store: Path,
                    instance_offset: int) -> Path:
    """The folder serving the ensemble ``config`` through pipeline_runner.py: a Python model
    with the ensemble's inputs, outputs and parameters (plus ``fused_models`` and
    ``fused_configs``), and its steps in steps.json."""
    steps, counts, batching = [], [1], False
    for step in config.ensemble_scheduling.step:
        folder = entries[step.model_name]
        step_config = read_config(folder)
        steps.append({**_spec(step.model_name, folder, step_config),
                      "input_map": dict(step.input_map), "output_map": dict(step.output_map)})
        counts += [g.count for g in step_config.instance_group]
        batching = batching or step_config.HasField("dynamic_batching")
    derived = mc.ModelConfig()
    derived.CopyFrom(config)
    derived.platform = ""
    derived.backend = "python"
    derived.ClearField("ensemble_scheduling")
    if batching:  # a step gains from batches (an INT8 detector, say): let requests merge
        derived.dynamic_batching.max_queue_delay_microseconds = 0
    del derived.instance_group[:]
    derived.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=max(counts))
    _name_what_runs_inside(derived, steps, instance_offset)
    text = text_format.MessageToString(derived)
    steps_text = json.dumps(steps, indent=1, sort_keys=True)
    return _built_once(store, config.name, [text, steps_text],
                       {"config.pbtxt": text, "steps.json": steps_text, "1/model.py": PIPELINE_RUNNER})


def _with_callees(config: mc.ModelConfig, model_dir: Path, inside: list[str], entries: dict[str, Path],
                  store: Path, instance_offset: int) -> Path:
    """The folder serving the BLS model ``config`` with the models in ``inside`` loaded into its
    own process (triton_python/in_process.py reads them from callees.json): its own model.py,
    config and parameters, plus ``fused_models`` and ``fused_configs``."""
    callees, counts = [], [1]
    for name in inside:
        folder = entries[name]
        callee_config = read_config(folder)
        if "step_instance_offset" in callee_config.parameters:
            # A fused pipeline loaded here: its steps take this model's instance numbers as they are.
            callee_config.parameters["step_instance_offset"].string_value = "0"
        callees.append(_spec(name, folder, callee_config))
        counts += [g.count for g in callee_config.instance_group]
    derived = mc.ModelConfig()
    derived.CopyFrom(config)
    if len(inside) == len(pipeline_models(config)):
        # It waits on no other model now, so it needs no more instances than its models had.
        del derived.instance_group[:]
        derived.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=max(counts))
    _name_what_runs_inside(derived, callees, instance_offset)
    text = text_format.MessageToString(derived)
    callees_text = json.dumps(callees, indent=1, sort_keys=True)
    version = _python_version(model_dir)
    code = (model_dir / version / "model.py").resolve()
    return _built_once(store, config.name, [text, callees_text, str(code)],
                       {"config.pbtxt": text, "callees.json": callees_text, f"{version}/model.py": code})


def _spec(name: str, folder: Path, config: mc.ModelConfig) -> dict:
    """How a pipeline loads the model of ``folder`` into its own process (triton_python/in_process.py):
    its name, folder, served version and config as Triton passes it."""
    return {"model": name, "folder": str(folder), "version": _python_version(folder),
            "config": json_format.MessageToDict(config, preserving_proto_field_name=True)}


def _name_what_runs_inside(derived: mc.ModelConfig, specs: list[dict], instance_offset: int) -> None:
    """The parameters of a pipeline that runs the models of ``specs`` in its process: which they
    are (``fused_models``, for the frontend's catalog), their configs as Triton would report them
    (``fused_configs``, to describe a model Triton has no config of its own for; each without
    its own ``fused_configs``) and where their busy-board slots start."""
    configs = {}
    for spec in specs:
        config = dict(spec["config"])
        config["parameters"] = {k: v for k, v in config.get("parameters", {}).items() if k != FUSED_CONFIGS}
        configs[spec["model"]] = config
    derived.parameters[FUSED_MODELS].string_value = ",".join(spec["model"] for spec in specs)
    derived.parameters[FUSED_CONFIGS].string_value = json.dumps(configs, sort_keys=True,
                                                                separators=(",", ":"))
    derived.parameters["step_instance_offset"].string_value = str(instance_offset)


def _python_version(folder: Path) -> str:
    """The newest version of a Python-backend model's folder (the one Triton serves)."""
    return max((d.name for d in folder.iterdir() if d.is_dir() and d.name.isdigit()
                and (d / "model.py").exists()), key=int)


def publish(result: DerivedRepository) -> None:
    """Point every entry of the repository at its folder, each link swapped in one rename.

    A model left out now (its new weights do not match, say) keeps the entry it had, so the
    model Triton serves stays consistent with its folder; names gone from the sources go.
    """
    target, store = result.path, store_of(result.path)
    target.mkdir(parents=True, exist_ok=True)
    store.mkdir(parents=True, exist_ok=True)
    for name, destination in result.entries.items():
        link = target / name
        if link.is_symlink() and Path(os.readlink(link)) == destination:
            continue
        if link.exists() and not link.is_symlink():
            shutil.rmtree(link)
        partial = store / f".{name}.{os.getpid()}.link"
        partial.unlink(missing_ok=True)
        partial.symlink_to(destination, target_is_directory=True)
        os.replace(partial, link)
    for entry in target.iterdir():
        if entry.name not in result.entries and entry.name not in result.skipped:
            if entry.is_symlink() or entry.is_file():
                entry.unlink()
            else:
                shutil.rmtree(entry)
    used = {Path(os.readlink(link)) for link in target.iterdir() if link.is_symlink()}
    for folder in store.iterdir():
        if folder not in used and not folder.name.startswith("."):
            shutil.rmtree(folder, ignore_errors=True)


def remove(target: Path) -> None:
    """The repository and its wrapped ONNX models."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(store_of(target), ignore_errors=True)


if __name__ == "__main__":
    _compare_requested()
