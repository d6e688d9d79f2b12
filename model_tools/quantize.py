"""./face-api models quantize DETECTOR [--name NAME]: an INT8 copy of a SCRFD detector, made here from
its FP32 weights and checked against them on the sample photos.

The INT8 weights are never committed: this command makes them, the same bytes each time from the
same FP32 file with the same onnxruntime on the same kind of CPU. Its steps:

1. **prepare**: the graph goes to ONNX opset 13 (per-channel QuantizeLinear / DequantizeLinear need
   it) and through onnxruntime's ``quant_pre_process`` (ONNX shape inference and graph optimisation;
   the symbolic shape inference is skipped, it would need sympy and the shapes are all known);
2. **calibrate**: activation ranges (MinMax) from the sample photos letterboxed exactly as the
   family's letterbox model feeds the detector (face_letterbox: RGB 640×640, (x − 127.5) / 128),
   with variants that put faces at every stride (``calibration_images``): three photos alone leave
   a head without a single face of its scale, and the range of its output then cuts off every such
   face on other photos (docs/models.md, "A quantised detector");
3. **quantize**: ``onnxruntime.quantization.quantize_static``, QDQ format, 8-bit weights per
   output channel (INT8, or UINT8 on an x86 CPU without VNNI: ``signed_weights_are_exact``), UINT8
   activations, every node quantised (keeping the output heads in floating point costs a third of
   the gain and is not needed once the calibration has faces at every scale);
4. **check**: both networks on every sample photo, decoded by the pipelines' own code
   (model_tools/sample_check.py): each face either one finds must be found by the other within
   ``TOLERANCES``; outside them nothing is installed (``--ignore-tolerances`` installs it anyway);
5. **install**: ``model_repository/<name>/1/model.onnx``, its leaf config (the FP32 leaf's, renamed,
   with ``quantised_from``) and its pipelines (``detect_<name>``, ``mask_<name>``), rendered.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model_tools.cli import NAME, Failed, networks, parameters, say
from runtime.cpu_repository import mismatches, onnx_weight, read_config

QUANTISED_FROM = "quantised_from"  # the leaf parameter naming the FP32 detector a model is made from
SUFFIX = "_int8"
OPSET = 13  # per-channel (axis) QuantizeLinear / DequantizeLinear
FAMILIES = ("scrfd",)
MATCH_IOU = 0.5  # two detections are the same face (as docs/models.md compares detectors)


# --- how close the INT8 network must stay to the FP32 one ------------------------------------------

@dataclass(frozen=True)
class Tolerances:
    """What the INT8 detector may differ from its FP32 source by, face by face, on the sample photos.

    Every face either network finds at the confidence threshold must be found by the other (decoded
    down to ``threshold - score_change``) with boxes overlapping by ``min_iou``, each landmark within
    ``landmark_px`` photo pixels and the score within ``score_change``. A face scored within
    ``score_change`` of the threshold may therefore be reported by one network and not the other.
    """

    min_iou: float = 0.9
    landmark_px: float = 3.0
    score_change: float = 0.05


TOLERANCES = Tolerances()


Faces = tuple[np.ndarray, np.ndarray, np.ndarray]  # scores (N,), boxes (N, 4), landmarks (N, 5, 2)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), x1 y1 x2 y2: (N, M)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    width, height = np.moveaxis(np.clip(high - low, 0, None), -1, 0)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match(a: np.ndarray, b: np.ndarray, min_iou: float = MATCH_IOU) -> list[tuple[int, int]]:
    """One-to-one pairs (i, j) of boxes ``a[i]``, ``b[j]`` that are the same face: greedily, the
    most overlapping pair first, down to ``min_iou``."""
    iou = box_iou(a, b)
    pairs = []
    while iou.size and iou.max() >= min_iou:
        i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
        pairs.append((int(i), int(j)))
        iou[i, :], iou[:, j] = -1, -1
    return sorted(pairs)


@dataclass
class Agreement:
    """How one photo's INT8 faces compare with its FP32 faces."""

    photo: str
    reference: int  # faces the FP32 network finds at the threshold
    found: int  # faces the INT8 network finds at the threshold
    ious: list[float] = field(default_factory=list)  # per face either finds, 0 when the other has none
    landmark_px: list[float] = field(default_factory=list)  # largest landmark distance per paired face
    score_changes: list[float] = field(default_factory=list)  # INT8 - FP32, per paired face
    lost: list[str] = field(default_factory=list)  # FP32 faces the INT8 network does not report
    extra: list[str] = field(default_factory=list)  # INT8 faces the FP32 network does not report
    problems: list[str] = field(default_factory=list)  # outside the tolerances

    @property
    def min_iou(self) -> float:
        return min(self.ious, default=1.0)

    @property
    def max_landmark_px(self) -> float:
        return max(self.landmark_px, default=0.0)

    @property
    def max_score_change(self) -> float:
        return max((abs(c) for c in self.score_changes), default=0.0)

    def line(self) -> str:
        faces = "face" if self.reference == 1 else "faces"
        median = statistics.median(self.ious) if self.ious else 1.0
        text = (f"{self.photo}: FP32 {self.reference} {faces}, INT8 {self.found}; box IoU ≥ "
                f"{self.min_iou:.3f} (median {median:.3f}), landmarks within {self.max_landmark_px:.2f} px, "
                f"scores within {self.max_score_change:.3f}")
        for kind, described in (("only FP32", self.lost), ("only INT8", self.extra)):
            if described:
                text += f"; {kind}: {', '.join(described)}"
        return text


def _describe(scores: np.ndarray, boxes: np.ndarray, index: int, other: float | None) -> str:
    width = float(boxes[index, 2] - boxes[index, 0])
    elsewhere = "not found" if other is None else f"{other:.3f}"
    return f"a {width:.0f} px face scoring {scores[index]:.3f} ({elsewhere} in the other)"


def agreement(photo: str, fp32: Faces, int8: Faces, threshold: float,
              tolerances: Tolerances = TOLERANCES) -> Agreement:
    """Compare two detections of one photo, each decoded down to ``threshold - score_change`` (so a
    face one network scores just above the threshold is still seen in the other)."""
    (s0, b0, l0), (s1, b1, l1) = fp32, int8
    result = Agreement(photo, int((s0 >= threshold).sum()), int((s1 >= threshold).sum()))
    pairs = match(b0, b1)
    iou = box_iou(b0, b1)
    paired0, paired1 = {i for i, _ in pairs}, {j for _, j in pairs}
    for i, j in pairs:
        if max(s0[i], s1[j]) < threshold:
            continue  # neither reports it
        result.ious.append(float(iou[i, j]))
        result.landmark_px.append(float(np.linalg.norm(l0[i] - l1[j], axis=-1).max()))
        result.score_changes.append(float(s1[j] - s0[i]))
        if s0[i] >= threshold > s1[j]:
            result.lost.append(_describe(s0, b0, i, float(s1[j])))
        elif s1[j] >= threshold > s0[i]:
            result.extra.append(_describe(s1, b1, j, float(s0[i])))
        where = f"{photo}: the face at {np.round(b0[i]).astype(int).tolist()}"
        if iou[i, j] < tolerances.min_iou:
            result.problems.append(f"{where} moved (IoU {iou[i, j]:.3f} < {tolerances.min_iou})")
        if result.landmark_px[-1] > tolerances.landmark_px:
            result.problems.append(f"{where}: a landmark moved {result.landmark_px[-1]:.1f} px "
                                   f"(> {tolerances.landmark_px})")
        if abs(result.score_changes[-1]) > tolerances.score_change:
            result.problems.append(f"{where}: score {s0[i]:.3f} → {s1[j]:.3f} "
                                   f"(change > {tolerances.score_change})")
    for i in sorted(set(range(len(s0))) - paired0):
        if s0[i] >= threshold:
            result.ious.append(0.0)
            result.lost.append(_describe(s0, b0, i, None))
            result.problems.append(f"{photo}: INT8 misses {_describe(s0, b0, i, None)} "
                                   f"(best IoU {iou[i].max(initial=0):.2f})")
    for j in sorted(set(range(len(s1))) - paired1):
        if s1[j] >= threshold:
            result.ious.append(0.0)
            result.extra.append(_describe(s1, b1, j, None))
            result.problems.append(f"{photo}: INT8 invents {_describe(s1, b1, j, None)}")
    return result


# --- the calibration set ------------------------------------------------------------------------

ZOOMS = (2.0, 4.0)  # square crops this many times a face's size: it then fills 1/2 and 1/4 of the input
FACES_ZOOMED = 3  # per photo, the most confident ones


def calibration_images(rgb: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    """Variants of one photo (H×W×3) that together put faces at every scale the detector's strides
    cover, given the boxes of its faces (best first): the photo, its mirror image, nine half-size
    crops (faces twice as large), the photo padded to twice its size (faces half as large), and
    square crops of ``ZOOMS`` times each of its ``FACES_ZOOMED`` best faces."""
    height, width = rgb.shape[:2]
    found = [rgb, np.ascontiguousarray(rgb[:, ::-1])]
    for top in (0, height // 4, height // 2):
        for left in (0, width // 4, width // 2):
            found.append(np.ascontiguousarray(rgb[top:top + height // 2, left:left + width // 2]))
    found.append(np.pad(rgb, ((0, height), (0, width), (0, 0))))
    for box in np.asarray(boxes, np.float64).reshape(-1, 4)[:FACES_ZOOMED]:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        size = max(box[2] - box[0], box[3] - box[1], 1.0)
        for zoom in ZOOMS:
            half = size * zoom / 2
            x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
            x1, y1 = int(min(width, np.ceil(cx + half))), int(min(height, np.ceil(cy + half)))
            found.append(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    return found


class _Calibration:
    """onnxruntime's CalibrationDataReader over a list of blobs, in strides (``set_range``): the
    ranges are merged stride by stride, so memory holds one photo's activations at a time."""

    def __init__(self, input_name: str, blobs: list[np.ndarray]):
        self.items = [{input_name: blob[None]} for blob in blobs]
        self.set_range(0, len(self.items))

    def __len__(self) -> int:
        return len(self.items)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.pending = iter(self.items[start_index:end_index])

    def get_next(self) -> dict | None:
        return next(self.pending, None)


# --- the networks -------------------------------------------------------------------------------

def session(path: Path, threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def prepare(source: Path, folder: Path) -> Path:
    """The FP32 graph at opset ``OPSET`` through quant_pre_process, written in ``folder``."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(source))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < OPSET:
        model = version_converter.convert_version(model, OPSET)
    converted, prepared = folder / "opset.onnx", folder / "prepared.onnx"
    onnx.save(model, str(converted))
    quant_pre_process(str(converted), str(prepared), skip_symbolic_shape=True)
    return prepared


def float_nodes(model) -> list[str]:
    """The nodes left in floating point: the Sigmoids that make the score outputs. Quantised, a score
    could only take 256 values (steps of 0.0035), and a face scoring 0.502 would come out 0.4999."""
    outputs = {output.name for output in model.graph.output}
    return [node.name for node in model.graph.node if node.op_type == "Sigmoid" and node.output[0] in outputs]


def signed_weights_are_exact(cpuinfo: str | None = None, machine: str | None = None) -> bool:
    """Whether onnxruntime multiplies UINT8 activations by INT8 weights without saturating here.

    On x86 without VNNI its kernels add pairs of u8 × s8 products in 16 bits (AVX2's
    vpmaddubsw), which saturate: on such a CPU signed weights moved four of players.jpg's faces
    (IoU 0.84–0.88) and invented two. VNNI adds them in 32 bits; ARM's dot products are exact.
    """
    machine = machine or platform.machine()
    if machine.lower() not in ("x86_64", "amd64", "i686", "i386"):
        return True
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                  if line.startswith("flags")), [])
    return "avx512_vnni" in flags or "avx_vnni" in flags


def quantize_graph(prepared: Path, target: Path, input_name: str, blobs: list[np.ndarray],
                   signed_weights: bool) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(str(prepared), str(target), _Calibration(input_name, blobs),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8 if signed_weights else QuantType.QUInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=float_nodes(onnx.load(str(prepared))),
                    extra_options={"CalibStridedMinMax": 1})


def largest_difference(a, b, input_name: str, blob: np.ndarray) -> float:
    """The largest difference between two sessions' outputs (by name) on one input."""
    names = [o.name for o in a.get_outputs()]
    first = a.run(names, {input_name: blob[None]})
    second = b.run(names, {input_name: blob[None]})
    return max(float(np.abs(x - y).max()) for x, y in zip(first, second))


def median_ms(sessions: list, input_name: str, blob: np.ndarray, runs: int = 10) -> list[float]:
    """Median milliseconds of one run of each session, interleaved (one onnxruntime thread each)."""
    times: list[list[float]] = [[] for _ in sessions]
    for run in range(runs + 2):
        for index, model in enumerate(sessions):
            started = time.perf_counter()
            model.run(None, {input_name: blob[None]})
            if run >= 2:  # the first two are warm-up
                times[index].append((time.perf_counter() - started) * 1000)
    return [statistics.median(t) for t in times]


# --- the leaf config ------------------------------------------------------------------------------

def leaf_config(source_text: str, source: str, name: str) -> str:
    """The INT8 leaf's config.pbtxt: the FP32 leaf's (from its ``name:`` line on; the header comment
    is the FP32 file's and is replaced), renamed, with the parameter saying what it is made from."""
    lines = source_text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("name:")), None)
    if start is None or lines[start] != f'name: "{source}"':
        raise Failed(f"{source}/config.pbtxt has no line 'name: \"{source}\"' to rename")
    header = [
        f"# {source} quantised to INT8: the same network and tensors, its weights and activations held as",
        "# 8-bit integers (onnxruntime static quantisation: QDQ, weights per output channel, calibrated",
        "# on the sample photos). The weights are made, never committed:",
        f"#   ./face-api models quantize {source}" + ("" if name == source + SUFFIX else f" --name {name}"),
        "# (model_tools/quantize.py); until then its pipelines are not served. Accuracy against",
        f"# {source}, speed, and when not to use it: docs/models.md, \"A quantised detector\".",
    ]
    body = _batching_on([f'name: "{name}"', *lines[start + 1:]])
    while body and not body[-1].strip():
        body.pop()
    footer = ["", f"# The FP32 detector this one is made from (./face-api models quantize {source}).",
              f'parameters {{ key: "{QUANTISED_FROM}", value: {{ string_value: "{source}" }} }}']
    return "\n".join(header + body + footer) + "\n"


BATCHING_KEY = 'parameters { key: "cpu_mode_dynamic_batching"'
BATCHING_ON = [
    "# The embedded CPU mode keeps the dynamic batcher for this model, unlike for its FP32 source: its",
    "# INT8 convolutions cost less per photo in a batch (python -m benchmarks.onnx_batching: a mix of",
    "# batches of 1–4 at 0.74–0.89 of a single photo's cost for scrfd_500m_int8; docs/performance.md).",
    'parameters { key: "cpu_mode_dynamic_batching", value: { string_value: "on" } }',
]


def _batching_on(lines: list[str]) -> list[str]:
    """The source's cpu_mode_dynamic_batching key, and the comment just above it, replaced by
    ``BATCHING_ON``; unchanged when the source has no such key (the batcher is then on anyway)."""
    at = next((i for i, line in enumerate(lines) if line.startswith(BATCHING_KEY)), None)
    if at is None:
        return lines
    start = at
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    return lines[:start] + BATCHING_ON + lines[at + 1:]


# --- the command ----------------------------------------------------------------------------------

@dataclass
class Made:
    """What ``make`` produced: the INT8 file (in a temporary folder), its config, and the report."""

    weights: Path
    config: str
    agreements: list[Agreement]
    lines: list[str]

    @property
    def problems(self) -> list[str]:
        return [problem for found in self.agreements for problem in found.problems]


def make(source: str, name: str, repository: Path, samples: Path, folder: Path,
         tolerances: Tolerances = TOLERANCES) -> Made:
    """Quantise the detector ``source`` of ``repository`` into ``folder``/model.onnx and compare it
    with its source on the photos in ``samples``."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from model_tools import sample_check
    from model_tools.onnx_inspect import DETECTOR_SIZE
    from triton_python.letterbox import letterbox

    source_dir = repository / source
    config = read_config(source_dir)
    family = parameters(config).get("family")
    if family not in FAMILIES:
        raise Failed(f"{source} is not a SCRFD detector (family '{family or 'unset'}'): only SCRFD "
                     "detectors are quantised")
    if QUANTISED_FROM in config.parameters:
        raise Failed(f"{source} is itself quantised (from {config.parameters[QUANTISED_FROM].string_value})")
    weight = onnx_weight(source_dir, config)
    if weight is None:
        raise Failed(f"{repository.name}/{source} has no weights "
                     "(./face-api weights fetches the shipped ones)")
    text = leaf_config((source_dir / "config.pbtxt").read_text(), source, name)
    pictures = sample_check.photos(samples)
    if not pictures:
        raise Failed(f"no sample photos in {samples} to calibrate on: ./face-api weights fetches them")

    lines = []
    feed = sample_check.detector_feed(repository, family)
    fp32 = session(weight[1])
    input_name = fp32.get_inputs()[0].name
    reference = sample_check.Detector(fp32, family, feed)
    detected = {photo: reference.faces(rgb) for photo, rgb in pictures.items()}

    started = time.perf_counter()
    blobs = [feed.blob(letterbox(image, DETECTOR_SIZE)[0]) for photo, rgb in pictures.items()
             for image in calibration_images(rgb, detected[photo][1])]
    prepared = prepare(weight[1], folder)
    check_blob = blobs[0]
    difference = largest_difference(fp32, session(prepared), input_name, check_blob)
    if difference > sample_check.MAX_DIFFERENCE:
        raise Failed(f"the prepared FP32 graph differs from {source}'s by {difference:.3g}")
    target = folder / "model.onnx"
    signed = signed_weights_are_exact()
    quantize_graph(prepared, target, input_name, blobs, signed)
    lines.append(f"quantised in {time.perf_counter() - started:.1f} s, calibrated on {len(blobs)} images "
                 f"made from the {len(pictures)} photos in {samples.name}/")
    lines.append("weights: INT8 (this CPU adds UINT8 × INT8 products exactly)" if signed else
                 "weights: UINT8 (this CPU has no VNNI: onnxruntime's INT8-weight kernels would saturate)")

    served = mc.ModelConfig()
    text_format.Parse(text, served)
    wrong = mismatches(served, target)
    if wrong:
        raise Failed(f"the INT8 graph does not match its config: {'; '.join(wrong)}")

    int8 = session(target)
    candidate = sample_check.Detector(int8, family, feed)
    threshold = sample_check.CONFIDENCE
    below = threshold - tolerances.score_change
    agreements = []
    for photo, rgb in pictures.items():
        agreements.append(agreement(photo, _faces(reference, rgb, below), _faces(candidate, rgb, below),
                                    threshold, tolerances))
        lines.append(agreements[-1].line())
    fp32_ms, int8_ms = median_ms([fp32, int8], input_name, blobs[-1])
    lines.append(f"the network alone, one onnxruntime thread: FP32 {fp32_ms:.1f} ms, INT8 {int8_ms:.1f} ms "
                 f"per photo (×{fp32_ms / int8_ms:.2f})")
    return Made(target, text, agreements, lines)


def _faces(detector, rgb: np.ndarray, confidence: float) -> Faces:
    """A sample_check.Detector's faces at ``confidence`` (it decodes at the API's default)."""
    from model_tools import sample_check

    default = sample_check.CONFIDENCE
    sample_check.CONFIDENCE = confidence
    try:
        return detector.faces(rgb)
    finally:
        sample_check.CONFIDENCE = default


def quantize(args: argparse.Namespace) -> int:
    import onnx

    from model_tools.cli import install

    source, repository, ensembles = args.detector, args.repository, args.ensembles
    found = networks(repository) if repository.is_dir() else {}
    if source not in found:
        offered = ", ".join(found) or "none"
        raise Failed(f"no network named '{source}' in {repository.name}/ (networks: {offered})")
    name = args.name or source + SUFFIX
    if not NAME.match(name):
        raise Failed(f"'{name}' cannot name a model: use letters, digits, '_', '.' and '-'")
    if name == source:
        raise Failed("--name must differ from the detector quantised")
    if (ensembles / name).exists():
        raise Failed(f"{ensembles.name}/{name} is a pipeline: choose another --name")
    target = repository / name
    if target.exists():
        existing = found.get(name)
        ours = existing is not None and parameters(existing).get(QUANTISED_FROM) == source
        if existing is None:
            raise Failed(f"{repository.name}/{name} is not an ONNX network (a helper model, say): "
                         "choose another --name")
        if not ours and not args.force:
            raise Failed(f"{repository.name}/{name} exists and is not made from {source}: choose another "
                         "--name, or --force to replace it")

    say(f"quantising {source} to INT8 as {name} …")
    with tempfile.TemporaryDirectory(prefix="quantize-") as folder:
        made = make(source, name, repository, args.samples, Path(folder))
        for line in made.lines:
            say(f"  {line}")
        if made.problems:
            say("outside the tolerances (model_tools/quantize.py, TOLERANCES):")
            for problem in made.problems:
                say(f"  {problem}")
            if not args.ignore_tolerances:
                raise Failed("nothing was installed (--ignore-tolerances installs it all the same)")
        written = install(name, onnx.load(str(made.weights)), made.config, repository, ensembles)
    say(f"wrote {repository.name}/{name}/config.pbtxt and {repository.name}/{name}/1/model.onnx")
    say(f"pipelines: {', '.join(written) or 'none'} (in {ensembles.name}/)")
    say(f"to use it: FACE_API_DETECTOR={name} ./face-api serve; a running server loads it with "
        f"./face-api models reload {' '.join(written)}")
    return 0


def add_parser(commands, where: argparse.ArgumentParser, samples: Path) -> None:
    quantizing = commands.add_parser(
        "quantize", parents=[where], help="an INT8 copy of a SCRFD detector, made from its FP32 weights",
        description="Quantise a SCRFD detector to INT8 (onnxruntime static quantisation, calibrated on the "
                    "sample photos), check it against the FP32 network, and install it with its pipelines.")
    quantizing.add_argument("detector", help="the FP32 detector in the repository (e.g. scrfd_500m)")
    quantizing.add_argument("--name", help=f"the INT8 model's name (default: the detector's + '{SUFFIX}')")
    quantizing.add_argument("--force", action="store_true",
                            help="replace a model of that name that is not made from this detector")
    quantizing.add_argument("--ignore-tolerances", action="store_true",
                            help="install it even when it differs from the FP32 network by more than the "
                                 "documented tolerances")
    quantizing.add_argument("--samples", type=Path, default=samples, help=argparse.SUPPRESS)
    quantizing.set_defaults(run=quantize)
