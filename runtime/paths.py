"""Where things live in a checkout."""

import os
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_REPOSITORY = ROOT / "model_repository"
ENSEMBLES = ROOT / "ensembles"
SAMPLES = ROOT / "samples"  # photos shipped in the weight packages (git-ignored)
CACHE = ROOT / ".cache"  # downloaded wheels (git-ignored)
RUN = ROOT / ".run"  # derived Triton repository, backend links, logs (git-ignored)

SOURCES_VARIABLE = "FACE_API_TRITON_REPOSITORIES"


def model_sources(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """The repositories the embedded Triton serves: FACE_API_TRITON_REPOSITORIES (folders separated
    by commas, the first one's model winning a name both hold), or model_repository/ and ensembles/."""
    listed = [Path(p.strip()).resolve() for p in environ.get(SOURCES_VARIABLE, "").split(",") if p.strip()]
    return listed or [MODEL_REPOSITORY, ENSEMBLES]
