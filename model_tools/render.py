"""Render the pipelines in ensembles/ from the leaf model configs in model_repository/.

A leaf network declares what it is with string parameters in its config.pbtxt:

* detectors: ``family`` (``scrfd`` or ``yunet``) and ``licence``;
* recognizers: ``family`` ``arcface`` (any 112×112 ArcFace-style embedding network),
  ``licence``, ``detector`` (the detector leaf its recognize pipeline runs), and the
  face normalisation ``mean``, ``std``, ``channel_order``.

From those, every detector gets ``detect_<detector>`` and ``mask_<detector>`` and every
recognizer gets ``recognize_<recognizer>``, written from the templates in
model_tools/templates/ (``string.Template``; lines starting with ``##`` are notes that
are not rendered). Tensor names, shapes and batch sizes are read from the leaf configs,
so a detector whose outputs have other names, another order or a fixed batch of 1 needs
no hand edit. The committed ensembles/ is this module's output: ``python -m model_tools
render`` writes it, ``--check`` lists any drift.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Every rendered config carries this line; a pipeline folder without it is hand-written
# and left alone when rendered pipelines are pruned.
MARKER = "# Rendered by model_tools/render.py"
ALIGN_MODEL = "face_align"
MASK_MODEL = "face_mask"


class RenderError(ValueError):
    """A leaf config cannot be rendered into pipelines; the message says which and why."""


# --- reading the leaf configs -----------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    name: str
    config: mc.ModelConfig

    def param(self, key: str, default: str | None = None) -> str:
        if key in self.config.parameters and self.config.parameters[key].string_value.strip():
            return self.config.parameters[key].string_value.strip()
        if default is None:
            raise RenderError(f"{self.name}/config.pbtxt: the parameter '{key}' is missing")
        return default

    @property
    def family(self) -> str:
        return self.param("family", "")


def read_leaves(model_repository: Path) -> dict[str, Leaf]:
    leaves = {}
    for path in sorted(model_repository.glob("*/config.pbtxt")):
        config = mc.ModelConfig()
        try:
            text_format.Parse(path.read_text(), config)
        except text_format.ParseError as error:
            raise RenderError(f"{path.parent.name}/config.pbtxt: {error}") from None
        name = config.name or path.parent.name
        leaves[name] = Leaf(name, config)
    return leaves


def _need(leaves: dict[str, Leaf], name: str, wanted_by: str) -> Leaf:
    if name not in leaves:
        raise RenderError(f"{wanted_by} needs the model {name}, which model_repository/ does not have")
    return leaves[name]


# --- detector families: how a detector's outputs map onto its postprocess model's inputs --------


def _batchless(dims, batched: bool) -> list[int]:
    """A tensor's dims without the batch dimension a fixed-batch model spells out."""
    dims = list(dims)
    return dims if batched or not dims or dims[0] != 1 else dims[1:]


def _strides(postprocess: Leaf) -> list[int]:
    return [int(s) for s in postprocess.param("strides").split(",")]


def scrfd_tensors(detector: Leaf, postprocess: Leaf, size: tuple[int, int]) -> dict[str, str]:
    """Canonical tensor (score_8, bbox_16, kps_32, ...) -> the detector's output name.

    SCRFD exports name their outputs freely (InsightFace's packs number them) and order
    them freely, so each output is recognised by its shape: (anchors, 1) scores, (anchors,
    4) box distances, (anchors, 10) keypoints, the anchor count giving the stride."""
    width, height = size
    anchors = int(postprocess.param("num_anchors"))
    by_count = {(width // s) * (height // s) * anchors: s for s in _strides(postprocess)}
    kinds = {1: "score", 4: "bbox", 10: "kps"}
    found: dict[str, str] = {}
    for output in detector.config.output:
        dims = _batchless(output.dims, detector.config.max_batch_size > 0)
        if len(dims) != 2 or dims[1] not in kinds or dims[0] not in by_count:
            raise RenderError(
                f"{detector.name}: output '{output.name}' has dims {list(output.dims)}; a SCRFD output "
                f"must be [anchors, 1 | 4 | 10] with anchors one of {sorted(by_count)} (concrete numbers)")
        canonical = f"{kinds[dims[1]]}_{by_count[dims[0]]}"
        if canonical in found:
            raise RenderError(f"{detector.name}: outputs '{found[canonical]}' and '{output.name}' "
                              f"have the same shape")
        found[canonical] = output.name
    strides = _strides(postprocess)
    wanted = [f"{kind}_{s}" for kind in ("score", "bbox") for s in strides]
    keypoints = [f"kps_{s}" for s in strides]
    missing = [t for t in wanted if t not in found]
    if missing or 0 < sum(t in found for t in keypoints) < len(keypoints):
        raise RenderError(f"{detector.name}: SCRFD needs scores and boxes (and keypoints, if any) at "
                          f"strides {strides}; found {', '.join(sorted(found))}")
    order = wanted + [t for t in keypoints if t in found]
    return {t: found[t] for t in order}


def yunet_tensors(detector: Leaf, postprocess: Leaf, size: tuple[int, int]) -> dict[str, str]:
    """YuNet's outputs keep OpenCV's names (cls_8, obj_8, bbox_8, kps_8, ...): the class and
    objectness maps have the same shape, so only their names tell them apart."""
    names = {o.name for o in detector.config.output}
    order = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in _strides(postprocess)]
    missing = [t for t in order if t not in names]
    if missing:
        raise RenderError(f"{detector.name}: YuNet outputs must be named {', '.join(order)}; "
                          f"missing {', '.join(missing)}")
    return {t: t for t in order}


@dataclass(frozen=True)
class Family:
    letterbox: str  # the Python model that makes the detector's input blob
    postprocess: str  # the Python model that turns its raw outputs into faces
    tensors: Callable[[Leaf, Leaf, tuple[int, int]], dict[str, str]]


DETECTOR_FAMILIES = {
    "scrfd": Family("face_letterbox", "scrfd_postprocess", scrfd_tensors),
    "yunet": Family("yunet_letterbox", "yunet_postprocess", yunet_tensors),
}
RECOGNIZER_FAMILIES = ("arcface",)


@dataclass(frozen=True)
class Detector:
    leaf: Leaf
    family: Family
    size: tuple[int, int]  # width, height
    tensors: dict[str, str]  # canonical tensor -> detector output
    landmarks: bool
    max_batch_size: int  # of its pipelines: 0 when any step fixes the batch at 1
    fixed_batch: list[str]  # the steps that fix it

    @property
    def name(self) -> str:
        return self.leaf.name


def _input_size(leaf: Leaf) -> tuple[int, int]:
    if len(leaf.config.input) != 1:
        raise RenderError(f"{leaf.name}: a detector must have one input, it has {len(leaf.config.input)}")
    dims = _batchless(leaf.config.input[0].dims, leaf.config.max_batch_size > 0)
    if len(dims) != 3 or dims[0] != 3 or min(dims[1:]) < 1:
        raise RenderError(f"{leaf.name}: input '{leaf.config.input[0].name}' has dims "
                          f"{list(leaf.config.input[0].dims)}; a detector takes [3, height, width]")
    return dims[2], dims[1]


def detector(leaves: dict[str, Leaf], leaf: Leaf) -> Detector:
    family = DETECTOR_FAMILIES[leaf.family]
    letterbox = _need(leaves, family.letterbox, leaf.name)
    postprocess = _need(leaves, family.postprocess, leaf.name)
    size = _input_size(leaf)
    for helper in (letterbox, postprocess):
        if int(helper.param("input_size")) != size[0] or size[0] != size[1]:
            raise RenderError(f"{leaf.name}: its input is {size[0]}x{size[1]}, {helper.name} makes or "
                              f"reads {helper.param('input_size')}x{helper.param('input_size')}")
    tensors = family.tensors(leaf, postprocess, size)
    # The detect and mask pipelines share one batch size: face_mask counts for both.
    steps = [letterbox, leaf, postprocess, _need(leaves, MASK_MODEL, leaf.name)]
    fixed = [s.name for s in steps if s.config.max_batch_size == 0]
    batch = 0 if fixed else min(s.config.max_batch_size for s in steps)
    return Detector(leaf, family, size, tensors, any(t.startswith("kps_") for t in tensors), batch, fixed)


# --- rendering ----------------------------------------------------------------------------------


def _template(name: str) -> Template:
    lines = (TEMPLATES / name).read_text().splitlines(keepends=True)
    return Template("".join(line for line in lines if not line.startswith("##")))


def _fill(template: str, **values: str) -> str:
    return align_comments(_template(template).substitute(values))


def align_comments(text: str) -> str:
    """Line up the trailing comments inside each ``input [ ... ]`` and ``output [ ... ]`` block;
    a line holding only a comment continues the one above, at the same column."""
    out: list[str] = []
    block: list[str] | None = None
    for line in text.split("\n"):
        if block is not None and line.strip() == "]":
            out += _aligned(block)
            block = None
        if block is None:
            out.append(line)
            block = [] if line.strip() in ("input [", "output [") else None
        else:
            block.append(line)
    return "\n".join(out)


def _aligned(lines: list[str]) -> list[str]:
    split = [(code.rstrip(), comment.strip()) for code, _, comment in (line.partition("#") for line in lines)]
    column = max((len(code) for code, comment in split if code and comment), default=0) + 2
    return [f"{code.ljust(column) if code else ' ' * column}# {comment}" if comment else code
            for code, comment in split]


def _parameters(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f'parameters {{ key: "{key}", value: {{ string_value: "{value}" }} }}' if key else value
                     for key, value in pairs)


def _maps(kind: str, pairs: list[tuple[str, str]], indent: str = "      ") -> str:
    return "\n".join(f'{indent}{kind} {{ key: "{key}", value: "{value}" }}' for key, value in pairs)


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _batching_note(det: Detector) -> str:
    if det.max_batch_size:
        return ("# The frontend sends one photo per request (batch 1); Triton batches the\n"
                "# detector across concurrent requests.")
    verb = "fixes" if len(det.fixed_batch) == 1 else "fix"
    fixed = textwrap.fill(f"{_listing(det.fixed_batch)} {verb} the batch at 1.", width=84,
                          initial_indent="# ", subsequent_indent="# ")
    return (f"{fixed}\n"
            "# So this pipeline has max_batch_size 0 and spells the batch dimension out:\n"
            "# the shapes a client sends and reads ([1, H, W, 3], [1, 1], ...) equal a\n"
            "# batching pipeline's at batch 1. Concurrent requests run side by side on\n"
            "# the model instances.")


def _detect_values(det: Detector, kind: str, pair_key: str, pair: str) -> dict[str, str]:
    licence = det.leaf.param("licence")
    steps = _fill("detect_steps.pbtxt", letterbox=det.family.letterbox, detector=det.name,
                  postprocess=det.family.postprocess, detector_input=det.leaf.config.input[0].name,
                  detector_outputs=_maps("output_map", [(out, t) for t, out in det.tensors.items()]),
                  postprocess_inputs=_maps("input_map", [(t, t) for t in det.tensors]))
    return dict(
        name=f"{kind}_{det.name}", detector=det.name, licence=licence,
        faces="faces with 5 landmarks" if det.landmarks else "faces (no landmarks)",
        chain=f"{det.family.letterbox} -> {det.name} -> {det.family.postprocess}",
        batching=_batching_note(det), max_batch_size=str(det.max_batch_size),
        batch="" if det.max_batch_size else "1, ",
        parameters=_parameters([
            ("kind", kind), ("detector", det.name),
            ("input_size", f"{det.size[0]}x{det.size[1]}"), ("landmarks", str(det.landmarks).lower()),
            (pair_key, pair), ("licence", licence)]),
        steps=steps.rstrip("\n"),
    )


def render_detect(det: Detector) -> str:
    return _fill("detect.pbtxt", **_detect_values(det, "detect", "mask_pipeline", f"mask_{det.name}"))


def render_mask(det: Detector) -> str:
    return _fill("mask.pbtxt", **_detect_values(det, "mask", "detect_pipeline", f"detect_{det.name}"))


def _licence(det: Detector, recognizer: Leaf) -> str:
    first, second = det.leaf.param("licence"), recognizer.param("licence")
    return first if first == second else f"{first} ({det.name}), {second} ({recognizer.name})"


def render_recognize(det: Detector, recognizer: Leaf) -> str:
    config = recognizer.config
    if len(config.input) != 1 or len(config.output) != 1:
        raise RenderError(f"{recognizer.name}: a recognizer must have one input and one output")
    if not det.landmarks:
        raise RenderError(f"{recognizer.name}: its detector {det.name} gives no landmarks to align faces by")
    if _batchless(config.input[0].dims, config.max_batch_size > 0) != [3, 112, 112]:
        raise RenderError(f"{recognizer.name}: input '{config.input[0].name}' has dims "
                          f"{list(config.input[0].dims)}; faces are aligned to [3, 112, 112]")
    embedding = _batchless(config.output[0].dims, config.max_batch_size > 0)
    if len(embedding) != 1 or embedding[0] < 1:
        raise RenderError(f"{recognizer.name}: output '{config.output[0].name}' has dims "
                          f"{list(config.output[0].dims)}; an embedding is [size]")
    order = recognizer.param("channel_order").upper()
    if order not in ("RGB", "BGR"):
        raise RenderError(f"{recognizer.name}: channel_order is '{order}'; it must be RGB or BGR")
    mean, std = recognizer.param("mean"), recognizer.param("std")
    chunk = config.max_batch_size or 1
    batching = (f"# Faces per recognizer call: {recognizer.name}'s max_batch_size." if config.max_batch_size
                else f"# Faces per recognizer call: {recognizer.name} fixes its batch at 1 (no batching).")
    licence = _licence(det, recognizer)
    return _fill(
        "recognize.pbtxt", name=f"recognize_{recognizer.name}", detector=det.name,
        recognizer=recognizer.name, licence=licence, embedding_size=str(embedding[0]),
        parameters=_parameters([
            ("kind", "recognize"), ("detector", det.name), ("input_size", f"{det.size[0]}x{det.size[1]}"),
            ("landmarks", "true"), ("embedding_size", str(embedding[0])), ("licence", licence),
            ("detect_pipeline", f"detect_{det.name}"), ("align_model", ALIGN_MODEL),
            ("recognizer", recognizer.name), ("recognizer_input", config.input[0].name),
            ("recognizer_output", config.output[0].name),
            ("", batching), ("recognizer_max_batch_size", str(chunk)),
            ("", f"# {recognizer.name}'s input: {order}, (x - {mean}) / {std}."),
            ("mean", mean), ("std", std), ("channel_order", order),
            ("", "# The models this pipeline calls (the embedded server serves it only when all are "
                 "served)."),
            ("bls_models", f"detect_{det.name},{ALIGN_MODEL},{recognizer.name}"),
        ]),
    )


def render_pipelines(model_repository: Path) -> dict[str, dict[str, str]]:
    """Pipeline name -> {file path inside the pipeline folder: text}, for every detector and
    recognizer leaf in ``model_repository`` (whether or not its weights are in place)."""
    leaves = read_leaves(model_repository)
    pipelines: dict[str, dict[str, str]] = {}
    detectors: dict[str, Detector] = {}
    for leaf in leaves.values():
        if leaf.family in DETECTOR_FAMILIES:
            det = detectors[leaf.name] = detector(leaves, leaf)
            keep = {"1/.gitkeep": ""}
            pipelines[f"detect_{leaf.name}"] = {"config.pbtxt": render_detect(det), **keep}
            pipelines[f"mask_{leaf.name}"] = {"config.pbtxt": render_mask(det), **keep}
        elif leaf.family and leaf.family not in RECOGNIZER_FAMILIES:
            raise RenderError(f"{leaf.name}: family '{leaf.family}' is none of "
                              f"{', '.join([*DETECTOR_FAMILIES, *RECOGNIZER_FAMILIES])}")
    model_py = (TEMPLATES / "recognize_model.py").read_text()
    for leaf in leaves.values():
        if leaf.family in RECOGNIZER_FAMILIES:
            paired = leaf.param("detector")
            if paired not in detectors:
                raise RenderError(f"{leaf.name}: its detector '{paired}' is not a detector leaf in "
                                  f"model_repository/ (one with family {' or '.join(DETECTOR_FAMILIES)})")
            pipelines[f"recognize_{leaf.name}"] = {"config.pbtxt": render_recognize(detectors[paired], leaf),
                                                   "1/model.py": model_py}
    return dict(sorted(pipelines.items()))


# --- the pipelines on disk ---------------------------------------------------------------------


def _parameters_on_disk(folder: Path) -> dict[str, str]:
    config = mc.ModelConfig()
    try:
        text_format.Parse((folder / "config.pbtxt").read_text(), config)
    except (OSError, text_format.ParseError):
        return {}
    return {key: value.string_value for key, value in config.parameters.items()}


def rendered_on_disk(ensembles: Path) -> list[str]:
    """The pipeline folders in ``ensembles`` that this module wrote (their config has MARKER)."""
    return sorted(d.name for d in ensembles.iterdir()
                  if (d / "config.pbtxt").is_file() and MARKER in (d / "config.pbtxt").read_text())


def _leaves_of(files: dict[str, str]) -> set[str]:
    config = mc.ModelConfig()
    text_format.Parse(files["config.pbtxt"], config)
    return {config.parameters[key].string_value for key in ("detector", "recognizer")
            if key in config.parameters}


def write_pipelines(model_repository: Path, ensembles: Path, only: set[str] | None = None) -> list[str]:
    """Write the rendered pipelines into ``ensembles`` (each folder replaced whole) and return
    the names written. ``only``: pipeline or leaf names; a pipeline is written when its name or
    one of its leaves (detector, recognizer) is among them. Without ``only``, every pipeline is
    written and rendered pipelines whose leaf is gone are removed."""
    pipelines = render_pipelines(model_repository)
    if only is not None:
        pipelines = {name: files for name, files in pipelines.items()
                     if name in only or _leaves_of(files) & only}
    ensembles.mkdir(parents=True, exist_ok=True)
    for name, files in pipelines.items():
        folder = ensembles / name
        if folder.exists():
            shutil.rmtree(folder)
        for relative, text in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(text)
    if only is None:
        for stale in set(rendered_on_disk(ensembles)) - set(pipelines):
            shutil.rmtree(ensembles / stale)
    return sorted(pipelines)


def remove_pipelines_of(leaf: str, ensembles: Path) -> list[str]:
    """Remove every pipeline in ``ensembles`` that runs the leaf model ``leaf`` (as its detector,
    its recognizer or a model it calls); return their names."""
    removed = []
    for folder in sorted(d for d in ensembles.iterdir() if (d / "config.pbtxt").is_file()):
        params = _parameters_on_disk(folder)
        calls = {m.strip() for m in params.get("bls_models", "").split(",")}
        if leaf in (params.get("detector"), params.get("recognizer")) or leaf in calls:
            shutil.rmtree(folder)
            removed.append(folder.name)
    return removed


def drift(model_repository: Path, ensembles: Path) -> list[str]:
    """How ``ensembles`` differs from what the leaf configs render to (empty: no drift)."""
    pipelines = render_pipelines(model_repository)
    problems = []
    for name, files in pipelines.items():
        folder = ensembles / name
        if not folder.is_dir():
            problems.append(f"{name}: missing")
            continue
        for relative, text in files.items():
            path = folder / relative
            if not path.is_file():
                problems.append(f"{name}/{relative}: missing")
            elif path.read_text() != text:
                problems.append(f"{name}/{relative}: differs from its rendering")
        on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts}
        extra = sorted(on_disk - set(files))
        problems += [f"{name}/{relative}: not rendered (remove it)" for relative in extra]
    problems += [f"{name}: rendered once, its leaf is gone (remove it)"
                 for name in rendered_on_disk(ensembles) if name not in pipelines]
    return problems


def main(argv: list[str] | None = None) -> int:
    from runtime.paths import ENSEMBLES, MODEL_REPOSITORY

    parser = argparse.ArgumentParser(
        prog="python -m model_tools render",
        description="Render ensembles/ from the leaf configs in model_repository/.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; list the differences and exit 1 if there are any")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = drift(MODEL_REPOSITORY, ENSEMBLES)
            for problem in problems:
                print(problem)
            if problems:
                print("ensembles/ differs from its rendering: run python -m model_tools render",
                      file=sys.stderr)
            return 1 if problems else 0
        for name in write_pipelines(MODEL_REPOSITORY, ENSEMBLES):
            print(f"rendered ensembles/{name}")
    except RenderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
