"""./face-api models add | quantize | list | remove | reload: the networks of model_repository/ and their
pipelines.

add     recognise an ONNX file's family from its graph (model_tools/onnx_inspect.py), rewrite
        it into the graph the pipelines call, check it on the sample photos
        (model_tools/sample_check.py), then write model_repository/<name>/ (config.pbtxt
        and 1/model.onnx) and render its pipelines into ensembles/ (model_tools/render.py);
quantize an INT8 copy of a SCRFD detector made from its FP32 weights, checked against them on
        the sample photos, installed with its pipelines (model_tools/quantize.py);
list    every network: family, licence, weights, rendered pipelines, and what a running
        embedded Triton serves;
remove  a network and its pipelines;
reload  make a running embedded Triton serve what the repositories hold now
        (model_tools/reload.py).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import tempfile
import textwrap
import urllib.error
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from runtime.cpu_repository import is_onnx, onnx_weight, read_config
from runtime.paths import ENSEMBLES, MODEL_REPOSITORY, SAMPLES

NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")  # as FACE_API_DETECTOR / FACE_API_RECOGNIZER accept
DEFAULT_LICENCE = "unknown: check the model's source"
DETECTOR_FAMILIES = ("scrfd", "yunet")


def say(message: str) -> None:
    print(f"[models] {message}", flush=True)


class Failed(Exception):
    """What the command cannot do, and why (printed as the error)."""


# --- the repositories -------------------------------------------------------------------------

def parameters(config: mc.ModelConfig) -> dict[str, str]:
    return {key: value.string_value for key, value in config.parameters.items()}


def networks(repository: Path) -> dict[str, mc.ModelConfig]:
    """The ONNX networks of a model repository (not the Python helper models), by name."""
    found = {}
    for folder in sorted(repository.iterdir()):
        if (folder / "config.pbtxt").is_file():
            config = read_config(folder)
            if is_onnx(config):
                found[folder.name] = config
    return found


def pipelines(ensembles: Path) -> dict[str, dict[str, str]]:
    """Every pipeline that declares its kind, with its parameters, by name."""
    found = {}
    for folder in sorted(ensembles.iterdir()) if ensembles.is_dir() else []:
        if (folder / "config.pbtxt").is_file():
            params = parameters(read_config(folder))
            if params.get("kind"):
                found[folder.name] = params
    return found


def pipelines_of(network: str, declared: dict[str, dict[str, str]]) -> list[str]:
    """The pipelines built around a network: a detector's detect and mask pipelines, a recognizer's
    recognize pipeline."""
    return [name for name, params in declared.items()
            if (params["kind"] in ("detect", "mask") and params.get("detector") == network)
            or (params["kind"] == "recognize" and params.get("recognizer") == network)]


def render_for(network: str, repository: Path, ensembles: Path) -> list[str]:
    """Render the pipelines that run ``network`` (its own, and for a detector the recognize
    pipelines that pair with it); the names written."""
    from model_tools import render

    try:
        return render.write_pipelines(repository, ensembles, only={network})
    except render.RenderError as error:
        raise Failed(f"its pipelines cannot be rendered: {error}") from error


def remove_pipelines(network: str, ensembles: Path) -> list[str]:
    from model_tools import render

    return render.remove_pipelines_of(network, ensembles)


def configured() -> tuple[str, str]:
    """The detector and recognizer the settings select (FACE_API_MODELS, FACE_API_DETECTOR, …)."""
    from frontend.settings import Settings

    settings = Settings()
    return settings.detector, settings.recognizer


# --- add ------------------------------------------------------------------------------------------

def add(args: argparse.Namespace) -> int:
    from model_tools import leaf_config, onnx_inspect

    source: Path = args.file
    repository, ensembles = args.repository, args.ensembles
    if not source.is_file():
        raise Failed(f"{source}: no such file")
    name = args.name or re.sub(r"[^A-Za-z0-9_.\-]", "_", source.stem)
    if not NAME.match(name):
        raise Failed(f"'{name}' cannot name a model: use letters, digits, '_', '.' and '-'")
    target = repository / name
    if (ensembles / name).exists():
        raise Failed(f"{ensembles.name}/{name} is a pipeline: choose another --name")
    if target.exists() and not args.force:
        raise Failed(f"{repository.name}/{name} exists: choose another --name, or --force to replace it")
    if target.exists() and name not in networks(repository):
        raise Failed(f"{repository.name}/{name} is not an ONNX network (a helper model, say): "
                     "choose another --name")

    try:
        model = onnx_inspect.load(source)
        inspection = onnx_inspect.inspect(model)
    except onnx_inspect.Refused as error:
        raise Failed(f"{source.name} cannot be added: {error}") from None
    say(f"{source.name}: {inspection.describe()}")
    recognition = None
    if inspection.is_detector:
        if args.detector:
            raise Failed("--detector is for recognisers (it names the detector a recogniser pairs with)")
    else:
        detector = args.detector or configured()[0]
        _usable_detector(detector, repository)
        recognition = leaf_config.Recognition(detector, args.mean, args.std, args.channel_order.upper())

    normalised = onnx_inspect.normalise(model, inspection)
    check(model, normalised.model, inspection, recognition, args)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    config = leaf_config.render(name, inspection, normalised.dynamic_batch, source.name, digest,
                                args.licence, changes(inspection, normalised.dynamic_batch), recognition)
    written = install(name, normalised.model, config, repository, ensembles)
    say(f"wrote {repository.name}/{name}/config.pbtxt and {repository.name}/{name}/1/model.onnx")
    say(f"pipelines: {', '.join(written) or 'none'} (in {ensembles.name}/)")
    setting = "FACE_API_DETECTOR" if inspection.is_detector else "FACE_API_RECOGNIZER"
    say(f"to use it: {setting}={name} ./face-api serve; a running server loads it with "
        f"./face-api models reload {' '.join(written)}")
    return 0


def check(model, normalised, inspection, recognition, args: argparse.Namespace) -> None:
    """The sample photos through the rewrite (model_tools/sample_check.py); Failed when it does not
    answer what the file answers."""
    from model_tools import sample_check

    say("checking it on the sample photos …")
    if inspection.is_detector:
        report = sample_check.check_detector(model, normalised, inspection, args.repository, args.samples)
    else:
        feed = sample_check.Feed(float(recognition.mean), float(recognition.std), recognition.channel_order)
        report = sample_check.check_recogniser(model, normalised, inspection, feed, recognition.detector,
                                               args.repository, args.samples)
    for line in report.lines:
        say(f"  {line}")
    if report.problems:
        raise Failed("; ".join(report.problems) + ": nothing was added")


def install(name: str, model, config: str, repository: Path, ensembles: Path) -> list[str]:
    """Write the model folder and render its pipelines; the pipelines' names. A model replaced
    (--force) is put back, with its pipelines, when that fails."""
    import onnx

    target = repository / name
    with tempfile.TemporaryDirectory() as aside:
        replaced = None
        if target.exists():
            replaced = Path(shutil.move(str(target), aside))
            remove_pipelines(name, ensembles)
        (target / "1").mkdir(parents=True)
        try:
            onnx.save(model, str(target / "1" / "model.onnx"))
            (target / "config.pbtxt").write_text(config)
            return render_for(name, repository, ensembles)
        except Exception:
            shutil.rmtree(target, ignore_errors=True)
            remove_pipelines(name, ensembles)
            if replaced is not None:
                shutil.move(str(replaced), str(target))
                render_for(name, repository, ensembles)
            raise


def _usable_detector(detector: str, repository: Path) -> None:
    folder = repository / detector
    if not (folder / "config.pbtxt").is_file():
        raise Failed(f"the detector '{detector}' (--detector) is not in {repository.name}/")
    config = read_config(folder)
    family = parameters(config).get("family")
    if family not in DETECTOR_FAMILIES:
        raise Failed(f"'{detector}' (--detector) is not a face detector "
                     f"(its family is '{family or 'unset'}')")
    if not any(output.dims and output.dims[-1] == 10 for output in config.output):  # keypoint outputs
        raise Failed(f"'{detector}' (--detector) finds no landmarks, and faces are aligned on them")


def changes(inspection, dynamic_batch: bool) -> list[str]:
    """What the rewrite changed, for the config's header comment."""
    found = []
    renamed = [f"{original} → {served}" for served, original in inspection.outputs.items()
               if served != original]
    if inspection.served_input != inspection.input_name:
        renamed.insert(0, f"{inspection.input_name} → {inspection.served_input}")
    if renamed:
        found.append("Tensors renamed to the pipelines' names: " + ", ".join(renamed) + ".")
    if not all(inspection.batched_outputs.values()):
        found.append("Its outputs had no batch dimension: a Reshape adds one.")
    if dynamic_batch and inspection.fixed_batch:
        found.append("Its batch was fixed at 1; now dynamic (onnxruntime: a batch of two gives what two "
                     "single runs give).")
    found += [note[0].upper() + note[1:] + "." for note in inspection.notes]
    return [line for text in found for line in textwrap.wrap(text, 96)]


# --- list -------------------------------------------------------------------------------------------

def triton_port() -> int:
    value = os.environ.get("FACE_API_TRITON_HTTP_PORT", "").strip()
    if value.isdigit():
        return int(value)
    from frontend.settings import Settings

    return Settings().triton_http_port


def served_models(port: int) -> dict[str, str] | None:
    """Model name -> state on the embedded Triton's HTTP port; None when nothing answers there."""
    from runtime.repository_api import Refused, RepositoryApi

    try:
        return RepositoryApi(port, timeout_s=3).index()
    except (urllib.error.URLError, OSError, ValueError, Refused):
        return None


def list_models(args: argparse.Namespace) -> int:
    declared = pipelines(args.ensembles)
    port = triton_port()
    served = served_models(port)
    detector, recognizer = configured()
    rows = [("NAME", "FAMILY", "WEIGHTS", "SERVED", "PIPELINES (* served)", "LICENCE")]
    for name, config in networks(args.repository).items():
        params = parameters(config)
        own = pipelines_of(name, declared)
        marked = [p + ("*" if served and served.get(p) == "READY" else "") for p in own]
        state = "not running" if served is None else ("yes" if served.get(name) == "READY" else "no")
        weights = "yes" if onnx_weight(args.repository / name, config) else "missing"
        if weights == "missing" and params.get("quantised_from"):
            weights += f" (./face-api models quantize {params['quantised_from']})"
        default = " (default)" if name in (detector, recognizer) else ""
        rows.append((name + default, params.get("family", "?"), weights, state, ", ".join(marked) or "none",
                     params.get("licence", "?")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    where = f"Triton on HTTP port {port}: " + ("not running" if served is None else
                                                f"{sum(s == 'READY' for s in served.values())} models ready")
    print(f"\n{where}; settings select detector {detector}, recognizer {recognizer}")
    return 0


# --- remove -----------------------------------------------------------------------------------------

def remove(args: argparse.Namespace) -> int:
    name, repository, ensembles = args.name, args.repository, args.ensembles
    found = networks(repository) if repository.is_dir() else {}
    if name not in found:
        if (ensembles / name).exists():
            raise Failed(f"{name} is a pipeline: remove the network it is built around")
        offered = ", ".join(found) or "none"
        raise Failed(f"no network named '{name}' in {repository.name}/ (networks: {offered})")
    detector, recognizer = configured()
    if name in (detector, recognizer) and not args.force:
        role = "detector" if name == detector else "recognizer"
        raise Failed(f"{name} is the configured {role} (FACE_API_MODELS / FACE_API_{role.upper()}): "
                     "choose another first, or --force")
    paired = [n for n, config in found.items() if parameters(config).get("detector") == name]
    if paired:  # their pipelines could no longer be rendered
        raise Failed(f"the recognizers {', '.join(paired)} pair with {name}: remove them first, or add "
                     "them again with another --detector")
    removed = remove_pipelines(name, ensembles)
    shutil.rmtree(repository / name)
    say(f"removed {repository.name}/{name} and the pipelines {', '.join(removed) or '(none)'}")
    say(f"a running server drops them with ./face-api models reload {' '.join([name, *removed])}")
    return 0


# --- reload -----------------------------------------------------------------------------------------

def reload(args: argparse.Namespace) -> int:
    try:
        from model_tools.reload import reload_models
    except ImportError as error:
        raise Failed(f"reloading is not available here ({error})") from error
    return reload_models(args.names or None, log=say)


# --- the command line -------------------------------------------------------------------------------

def _number(text: str) -> str:
    """A number, kept as written (it goes into the config as a string)."""
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    return text


def parser() -> argparse.ArgumentParser:
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--repository", type=Path, default=MODEL_REPOSITORY,
                       help="the model repository (default: model_repository/)")
    where.add_argument("--ensembles", type=Path, default=ENSEMBLES,
                       help="where the pipelines are (default: ensembles/)")
    top = argparse.ArgumentParser(prog="./face-api models", description=__doc__.split("\n\n")[0],
                                  epilog="./face-api models render [--check] writes ensembles/ from the leaf "
                                         "configs again (model_tools/render.py)")
    commands = top.add_subparsers(dest="command", required=True)

    adding = commands.add_parser("add", parents=[where],
                                 help="add a face detector or recogniser from an ONNX file")
    adding.add_argument("file", type=Path, help="the .onnx file (SCRFD, YuNet, or a 112×112 ArcFace-style "
                                                "recogniser)")
    adding.add_argument("--name", help="the model's name (default: the file's name without .onnx)")
    adding.add_argument("--licence", default=DEFAULT_LICENCE, help="the weights' licence, as its pipelines "
                                                                   "report it")
    adding.add_argument("--detector", help="recognisers: the detector whose faces they embed "
                                           "(default: the configured detector)")
    adding.add_argument("--mean", default="127.5", type=_number,
                        help="recognisers: input = (pixel - mean) / std (127.5)")
    adding.add_argument("--std", default="127.5", type=_number, help="recognisers: see --mean (127.5)")
    adding.add_argument("--channel-order", default="RGB", choices=["RGB", "BGR", "rgb", "bgr"],
                        help="recognisers: the input's channel order (RGB)")
    adding.add_argument("--force", action="store_true", help="replace a model of the same name")
    adding.add_argument("--samples", type=Path, default=SAMPLES, help=argparse.SUPPRESS)
    adding.set_defaults(run=add)

    from model_tools import quantize  # (it imports this module)

    quantize.add_parser(commands, where, SAMPLES)

    listing = commands.add_parser("list", parents=[where],
                                  help="the networks, their pipelines, what is served")
    listing.set_defaults(run=list_models)

    removing = commands.add_parser("remove", parents=[where], help="remove a network and its pipelines")
    removing.add_argument("name")
    removing.add_argument("--force", action="store_true",
                          help="remove the configured detector or recognizer too")
    removing.set_defaults(run=remove)

    reloading = commands.add_parser("reload", help="make a running ./face-api serve load what the "
                                                   "repositories hold now")
    reloading.add_argument("names", nargs="*", help="models or pipelines (default: every model loaded now)")
    reloading.set_defaults(run=reload)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except Failed as error:
        say(f"error: {error}")
        return 1
