"""The frontend names no model: it learns the pipelines from their own declarations
(frontend/inference/served.py), and the only model names it holds are the defaults of
its settings (frontend/settings.py).

Checked in every file under frontend/ but settings.py, code, strings and comments alike:
* the name of any model in model_repository/ or ensembles/ (a leaf network, a helper
  step, a pipeline);
* a model family (the families the leaf configs declare, and the ones shipped today);
* a pipeline name put together from a convention: ``detect_`` / ``mask_`` / ``recognize_``
  followed by a placeholder, a quote or an f-string field.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from frontend.settings import MODEL_SETS

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
ALLOWED = {FRONTEND / "settings.py"}
TEXT_SUFFIXES = {".py", ".js", ".mjs", ".html", ".css", ".json", ".txt", ".md"}
FAMILIES = {"scrfd", "yunet", "arcface", "sface", "w600k"}  # plus what the leaf configs declare
CONVENTION = re.compile(r"\b(?:detect|mask|recognize)_(?=[{<\"'])")


def model_names() -> set[str]:
    return {config.parent.name for folder in ("model_repository", "ensembles")
            for config in (ROOT / folder).glob("*/config.pbtxt")}


def declared_families() -> set[str]:
    found = set()
    for path in (ROOT / "model_repository").glob("*/config.pbtxt"):
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        if "family" in config.parameters and config.parameters["family"].string_value:
            found.add(config.parameters["family"].string_value.lower())
    return found


def offences(text: str, names: set[str], families: set[str]) -> list[str]:
    """Each model name, family or name-building pattern in ``text``, as 'line N: what'."""
    found = []
    name_pattern = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
                              + r")(?!\w)")
    family_pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(families))) + ")", re.IGNORECASE)
    for number, line in enumerate(text.split("\n"), 1):
        for pattern, what in ((name_pattern, "model name"), (family_pattern, "model family"),
                              (CONVENTION, "pipeline name built by convention")):
            for match in pattern.finditer(line):
                found.append(f"line {number}: {what} {match.group(0)!r}")
    return found


def frontend_files() -> list[Path]:
    return sorted(path for path in FRONTEND.rglob("*")
                  if path.is_file() and path.suffix in TEXT_SUFFIXES and path not in ALLOWED
                  and "__pycache__" not in path.parts)


def test_the_names_come_from_the_repositories():
    names = model_names()
    # The settings' defaults are among them: the collection finds real model names.
    assert {name for models in MODEL_SETS.values() for name in models} <= names
    assert len(names) >= 10


@pytest.mark.parametrize(("text", "expected"), [
    ('pipeline = f"detect_{settings.detector}"', "pipeline name built by convention 'detect_'"),
    ("return name.removeprefix('mask_')", "pipeline name built by convention 'mask_'"),
    ("# calls recognize_<recognizer>", "pipeline name built by convention 'recognize_'"),
    ('DEFAULT = "scrfd_500m"', "model name 'scrfd_500m'"),
    ("(an ensemble detect_yunet_2023mar)", "model name 'detect_yunet_2023mar'"),
    ("see face_align/1/model.py", "model name 'face_align'"),
    ("# every SCRFD predicts 5 points", "model family 'SCRFD'"),
    ("TEMPLATE = 'ArcFace'", "model family 'ArcFace'"),
])
def test_the_check_finds_model_names(text, expected):
    names = {"scrfd_500m", "detect_yunet_2023mar", "face_align"}
    assert expected in [found.split(": ", 1)[1] for found in offences(text, names, FAMILIES)]


@pytest.mark.parametrize("text", [
    'parameters.get("detect_pipeline")', "mask_state(selection)", "recognize_detect = None",
    "user interfaces", "face_align_x = 1", "detector: str", "masked.detect_ms",
])
def test_the_check_leaves_ordinary_words_alone(text):
    assert offences(text, {"scrfd_500m", "face_align", "face_mask"}, FAMILIES) == []


def test_the_frontend_names_no_model():
    names, families = model_names(), FAMILIES | declared_families()
    found = {str(path.relative_to(ROOT)): offences(path.read_text(errors="replace"), names, families)
             for path in frontend_files()}
    found = {path: lines for path, lines in found.items() if lines}
    assert not found, ("model names belong in frontend/settings.py (its defaults) and in the pipelines' "
                       f"declarations, nowhere else in the frontend: {found}")
