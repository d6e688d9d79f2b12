"""Recognise what a dropped-in ONNX file is, and rewrite it into the graph our pipelines call.

Three families are recognised from the graph itself, never from names (exports number
their outputs and order them freely):

* SCRFD (InsightFace) detectors: per stride 8, 16 and 32, scores (A×1), box distances
  (A×4) and, when it has keypoints, landmark offsets (A×10); two anchors per cell;
* YuNet (OpenCV Zoo) detectors: per stride cls (A×1), obj (A×1), bbox (A×4), kps (A×10);
  one anchor per cell;
* ArcFace-style recognisers: one N×3×112×112 face in, one N×D embedding out.

Outputs are grouped by running the graph once at the served input size: the anchor
count A tells the stride, the last dimension the kind. The rewrite gives them the names
the pipelines use (score_8 … kps_32; cls_8 … kps_32), a batch dimension when the file's
outputs lack one, and a dynamic batch when the file fixes it at 1 and onnxruntime shows
that a batch of two gives what two single runs give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

STRIDES = (8, 16, 32)
DETECTOR_SIZE = 640  # the letterbox step of the detect pipelines
RECOGNISER_SIZE = 112  # the aligned crop of face_align
KIND_BY_DEPTH = {1: "score", 4: "bbox", 10: "kps"}
ANCHORS = {"scrfd": 2, "yunet": 1}  # anchors per cell, as the postprocess models decode them
TITLE = {"scrfd": "SCRFD", "yunet": "YuNet"}
SERVED_INPUT = {"scrfd": "input.1", "yunet": "input"}  # the input names the pipelines feed
BATCH = "batch"  # the name of a dynamic batch dimension

# Per-item tolerance when a batch of two is compared with two single runs (float noise only).
ATOL, RTOL = 1e-4, 1e-3


class Refused(ValueError):
    """The file is not a model the pipelines can serve; the message says why."""


@dataclass(frozen=True)
class Inspection:
    family: str  # scrfd | yunet | arcface
    input_name: str  # the file's image input
    height: int
    width: int
    fixed_batch: bool  # the file fixes its batch at 1
    outputs: dict[str, str]  # served output name -> the file's output name, in served order
    shapes: dict[str, tuple[int, ...]]  # served output name -> shape of one item: (A, k) or (D,)
    batched_outputs: dict[str, bool]  # served output name -> the file's output has a batch dimension
    landmarks: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def served_input(self) -> str:
        return SERVED_INPUT.get(self.family, self.input_name)

    @property
    def is_detector(self) -> bool:
        return self.family in ANCHORS

    @property
    def embedding_size(self) -> int | None:
        return None if self.is_detector else next(iter(self.shapes.values()))[0]

    def describe(self) -> str:
        if self.family == "arcface":
            return f"ArcFace-style recogniser: {self.height}×{self.width} face in, {self.embedding_size}-d " \
                   f"embedding out"
        what = TITLE[self.family]
        keypoints = "with 5 keypoints" if self.landmarks else "without keypoints"
        size = f"{self.width}×{self.height}" if self.height else "any size (served at 640×640)"
        return f"{what} face detector {keypoints}; input {size}"


@dataclass(frozen=True)
class Normalised:
    model: onnx.ModelProto
    dynamic_batch: bool  # False: the graph takes exactly one item per call


# --- reading the file ---------------------------------------------------------------------------

def load(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as error:  # onnx raises protobuf's DecodeError, OSError, …
        raise Refused(f"{path} is not a readable ONNX file ({str(error).splitlines()[0]})") from error


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    """A tensor's declared dimensions; None for a symbolic or unknown one."""
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in value.type.tensor_type.shape.dim]


def image_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The graph's one real input (old exports also list their weights as inputs)."""
    weights = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    described = ", ".join(f"{i.name} {_dims(i)}" for i in inputs) or "none"
    if len(inputs) != 1:
        raise Refused(f"the graph has {len(inputs)} inputs ({described}); a face detector or recogniser "
                      "takes one image N×3×H×W")
    found = inputs[0]
    dims = _dims(found)
    if found.type.tensor_type.elem_type != TensorProto.FLOAT or len(dims) != 4 or dims[1] not in (None, 3):
        kind = TensorProto.DataType.Name(found.type.tensor_type.elem_type)
        raise Refused(f"its input {found.name} is {kind} {dims}; a face detector or recogniser takes "
                      "one float image N×3×H×W")
    return found


def session(model: onnx.ModelProto):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(model_or_session, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of one onnxruntime run, by name."""
    runner = session(model_or_session) if isinstance(model_or_session, onnx.ModelProto) else model_or_session
    names = [o.name for o in runner.get_outputs()]
    return dict(zip(names, runner.run(names, feeds)))


# --- recognising the family ---------------------------------------------------------------------

def inspect(model: onnx.ModelProto) -> Inspection:
    """What the graph is, or Refused with the reason."""
    found = image_input(model)
    batch, _, height, width = _dims(found)
    if batch not in (None, 1):
        raise Refused(f"its input {found.name} fixes the batch at {batch}; only 1 or a dynamic batch "
                      "can be served")
    fixed_batch = batch == 1
    if (height, width) == (RECOGNISER_SIZE, RECOGNISER_SIZE):
        return _recogniser(model, found.name, fixed_batch)
    if (height, width) != (DETECTOR_SIZE, DETECTOR_SIZE) and (height is not None or width is not None):
        raise Refused(f"its input is fixed at {width}×{height} pixels; detectors are fed 640×640 "
                      "letterboxed photos (so only a 640×640 or size-free input fits) and recognisers "
                      "112×112 aligned faces")
    return _detector(model, found.name, fixed_batch, (height, width) == (DETECTOR_SIZE, DETECTOR_SIZE))


def _probe(model: onnx.ModelProto, input_name: str, size: int) -> dict[str, np.ndarray]:
    """One run on noise, for the outputs' shapes."""
    noise = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    try:
        return run(model, {input_name: noise})
    except Exception as error:  # onnxruntime raises its own exception types
        raise Refused(f"onnxruntime cannot run it on a 1×3×{size}×{size} input "
                      f"({str(error).splitlines()[0]})") from error


def _float_outputs(model: onnx.ModelProto) -> None:
    for output in model.graph.output:
        kind = output.type.tensor_type.elem_type
        if kind != TensorProto.FLOAT:
            raise Refused(f"its output {output.name} is {TensorProto.DataType.Name(kind)}; "
                          "the pipelines read float outputs")


def _recogniser(model: onnx.ModelProto, input_name: str, fixed_batch: bool) -> Inspection:
    _float_outputs(model)
    outputs = _probe(model, input_name, RECOGNISER_SIZE)
    shapes = {name: value.shape for name, value in outputs.items()}
    if len(outputs) != 1:
        raise Refused(f"it takes a 112×112 face but has {len(outputs)} outputs ({_shapes(shapes)}); "
                      "a recogniser has one embedding output N×D")
    (name, shape), = shapes.items()
    if len(shape) != 2 or shape[0] != 1 or shape[1] < 2:
        raise Refused(f"it takes a 112×112 face but its output {name} has shape {list(shape)} for one face; "
                      "a recogniser's output is N×D (one embedding per face)")
    return Inspection("arcface", input_name, RECOGNISER_SIZE, RECOGNISER_SIZE, fixed_batch,
                      outputs={name: name}, shapes={name: (shape[1],)}, batched_outputs={name: True})


def _shapes(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())


def _detector(model: onnx.ModelProto, input_name: str, fixed_batch: bool, fixed_size: bool) -> Inspection:
    _float_outputs(model)
    outputs = _probe(model, input_name, DETECTOR_SIZE)
    shapes = {name: value.shape for name, value in outputs.items()}
    order = [o.name for o in model.graph.output]
    # anchor count -> last dimension -> the file's output names, in graph order
    groups: dict[int, dict[int, list[str]]] = {}
    batched: dict[str, bool] = {}
    for name in order:
        shape = shapes[name]
        if len(shape) == 3 and shape[0] == 1:
            per_item, batched[name] = shape[1:], True
        elif len(shape) == 2:
            per_item, batched[name] = shape, False
        else:
            raise Refused(f"its output {name} has shape {list(shape)} for one 640×640 photo; detector "
                          "outputs are A×k per stride, with or without a leading batch dimension "
                          f"({_shapes(shapes)})")
        anchors, depth = per_item
        if depth not in KIND_BY_DEPTH:
            raise Refused(f"its output {name} has {depth} values per anchor; SCRFD and YuNet outputs have 1 "
                          f"(score), 4 (box) or 10 (keypoints) ({_shapes(shapes)})")
        groups.setdefault(anchors, {}).setdefault(depth, []).append(name)

    if len(groups) != len(STRIDES):
        raise Refused(f"its outputs come in {len(groups)} sizes ({_shapes(shapes)}); SCRFD and YuNet have "
                      "one group of outputs per stride 8, 16 and 32")
    by_stride = dict(zip(STRIDES, sorted(groups, reverse=True)))
    per_cell = {stride: count / (DETECTOR_SIZE // stride) ** 2 for stride, count in by_stride.items()}
    layouts = {tuple(sorted((depth, len(names)) for depth, names in groups[count].items()))
               for count in by_stride.values()}
    if len(set(per_cell.values())) != 1 or len(layouts) != 1:
        raise Refused(f"its outputs do not form three strides (8, 16, 32) of one layout ({_shapes(shapes)})")
    layout, anchors = layouts.pop(), next(iter(per_cell.values()))
    family, landmarks = {((1, 1), (4, 1), (10, 1)): ("scrfd", True), ((1, 1), (4, 1)): ("scrfd", False),
                         ((1, 2), (4, 1), (10, 1)): ("yunet", True)}.get(layout, (None, False))
    if family is None:
        kinds = ", ".join(f"{n}× {KIND_BY_DEPTH[d]}" for d, n in layout)
        raise Refused(f"each stride has {kinds}; SCRFD has score, bbox (and kps), YuNet cls, obj, bbox, kps")
    if anchors != ANCHORS[family]:
        raise Refused(f"it looks like {TITLE[family]} but has {anchors:g} anchors per cell "
                      f"(the {family} postprocessing decodes {ANCHORS[family]})")

    notes: list[str] = []
    served: dict[str, str] = {}
    kinds = ("score", "bbox", "kps") if family == "scrfd" else ("cls", "obj", "bbox", "kps")
    for kind in kinds:
        for stride, count in by_stride.items():
            group = groups[count]
            if kind in ("cls", "obj"):
                first, second = _cls_obj(group[1], notes)
                served[f"{kind}_{stride}"] = first if kind == "cls" else second
            elif kind == "kps" and not landmarks:
                continue
            else:
                served[f"{kind}_{stride}"] = group[{"score": 1, "bbox": 4, "kps": 10}[kind]][0]
    item_shapes = {c: tuple(shapes[o][-2:]) for c, o in served.items()}
    if not landmarks:
        notes.append("it has no keypoints: its faces come without landmarks, so no recogniser can "
                     "pair with it")
    size = DETECTOR_SIZE if fixed_size else 0
    return Inspection(family, input_name, size, size, fixed_batch, outputs=served, shapes=item_shapes,
                      batched_outputs={c: batched[o] for c, o in served.items()}, landmarks=landmarks,
                      notes=notes)


def _cls_obj(names: list[str], notes: list[str]) -> tuple[str, str]:
    """YuNet's two A×1 outputs of a stride: cls then obj, by name when the names say so."""
    first, second = names
    if "obj" in first.lower() and "cls" in second.lower():
        return second, first
    if not ("cls" in first.lower() and "obj" in second.lower()):
        note = "its two score outputs per stride are not named cls/obj: taken as cls then obj (graph order)"
        if note not in notes:
            notes.append(note)
    return first, second


# --- rewriting the graph ------------------------------------------------------------------------

def normalise(model: onnx.ModelProto, inspection: Inspection, sample: np.ndarray | None = None) -> Normalised:
    """The graph with the served names and shapes; a dynamic batch when it verifiably works.

    ``sample``: one input item (3×H×W) to verify batching with; noise when absent.
    YuNet keeps a batch of 1, as its pipelines expect.
    """
    if inspection.family != "yunet":
        candidate = _rewrite(model, inspection, dynamic=True)
        if batches_agree(model, candidate, inspection, sample):
            return Normalised(candidate, dynamic_batch=True)
        inspection.notes.append("a batch of two does not give what two single runs give: it is served one "
                                "item per call")
    return Normalised(_rewrite(model, inspection, dynamic=False), dynamic_batch=False)


def _rewrite(model: onnx.ModelProto, inspection: Inspection, dynamic: bool) -> onnx.ModelProto:
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    graph = rewritten.graph
    served_input = inspection.served_input
    if served_input != inspection.input_name:
        _free(graph, served_input)
        _rename(graph, inspection.input_name, served_input)
    batch_dims = [o for o in (graph.input[i] for i in range(len(graph.input))) if o.name == served_input]
    first = batch_dims[0].type.tensor_type.shape.dim[0]
    if dynamic:
        first.Clear()
        first.dim_param = BATCH
    else:
        first.Clear()
        first.dim_value = 1
    if inspection.fixed_batch == dynamic:
        del graph.value_info[:]  # shapes recorded for the old batch would contradict the new one

    # The file's outputs under temporary names first, so that a file whose names are ours in
    # another order (bbox_8 holding scores, say) is renamed without collisions.
    staged = {}
    for served, original in inspection.outputs.items():
        staged[served] = f"{original}/as_{served}"
        _rename(graph, original, staged[served])
    for served in inspection.outputs:
        _free(graph, served)
    batch = -1 if dynamic else 1
    for served, tensor in staged.items():
        if inspection.batched_outputs[served]:
            _rename(graph, tensor, served)
        else:  # an output without a batch dimension: items are stacked along its first axis
            shape = helper.make_tensor(f"{served}/shape", TensorProto.INT64, [3],
                                       [batch, *inspection.shapes[served]])
            graph.node.append(helper.make_node("Constant", [], [f"{served}/shape"], value=shape))
            graph.node.append(helper.make_node("Reshape", [tensor, f"{served}/shape"], [served]))
    del graph.output[:]
    first_dim = BATCH if dynamic else 1
    graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, [first_dim, *shape])
                        for name, shape in inspection.shapes.items())
    onnx.checker.check_model(rewritten)
    return rewritten


def _names(graph: onnx.GraphProto) -> set[str]:
    used = {i.name for i in graph.initializer}
    used.update(v.name for v in [*graph.input, *graph.output])
    for node in graph.node:
        used.update(node.input)
        used.update(node.output)
    return used


def _free(graph: onnx.GraphProto, name: str) -> None:
    """Rename whatever tensor already has ``name``, so that the name can be given to another."""
    if name in _names(graph):
        _rename(graph, name, f"{name}/file")


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a tensor everywhere it appears, subgraphs (If/Loop bodies) included."""
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                _rename(sub, old, new)
    for values in (graph.input, graph.output, graph.value_info, graph.initializer):
        for value in values:
            if value.name == old:
                value.name = new


# --- checking ----------------------------------------------------------------------------------

def served_outputs(original, inspection: Inspection, item: np.ndarray) -> dict[str, np.ndarray]:
    """What the original file gives for one input item, as the served outputs of one item."""
    found = run(original, {inspection.input_name: item[None]})
    return {served: found[inspection.outputs[served]].reshape(shape)
            for served, shape in inspection.shapes.items()}


def differences(original, normalised, inspection: Inspection, items: np.ndarray) -> dict[str, float]:
    """Largest absolute difference per served output between the file and its rewrite, over ``items``
    (a stack of input items, run one at a time through the file and as one batch through the rewrite
    when its batch is dynamic)."""
    rewritten = session(normalised) if isinstance(normalised, onnx.ModelProto) else normalised
    original = session(original) if isinstance(original, onnx.ModelProto) else original
    batched = rewritten.get_inputs()[0].shape[0] != 1
    if batched:
        outputs = [run(rewritten, {inspection.served_input: items})]
    else:
        outputs = [run(rewritten, {inspection.served_input: item[None]}) for item in items]
    worst = dict.fromkeys(inspection.shapes, 0.0)
    for index, item in enumerate(items):
        expected = served_outputs(original, inspection, item)
        got = outputs[0] if batched else outputs[index]
        row = index if batched else 0
        for name, value in expected.items():
            worst[name] = max(worst[name], float(np.max(np.abs(got[name][row] - value), initial=0.0)))
    return worst


def batches_agree(original: onnx.ModelProto, candidate: onnx.ModelProto, inspection: Inspection,
                  sample: np.ndarray | None = None) -> bool:
    """Whether the candidate, given two items as one batch, answers what the file answers for each."""
    size = inspection.height or DETECTOR_SIZE
    noise = np.random.default_rng(1).standard_normal((3, size, size)).astype(np.float32)
    first = sample if sample is not None else noise[::-1].copy()
    items = np.stack([first, noise])
    try:
        reference = session(original)
        rewritten = session(candidate)
        found = run(rewritten, {inspection.served_input: items})
    except Exception:  # onnxruntime refuses a batch the graph hard-codes: not batchable
        return False
    for index, item in enumerate(items):
        for name, value in served_outputs(reference, inspection, item).items():
            got = found[name]
            if got.shape[0] != len(items) or not np.allclose(got[index], value, atol=ATOL, rtol=RTOL):
                return False
    return True
