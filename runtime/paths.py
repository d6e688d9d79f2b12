"""Where things live in a checkout."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_REPOSITORY = ROOT / "model_repository"
ENSEMBLES = ROOT / "ensembles"
SAMPLES = ROOT / "samples"  # photos shipped in the weight packages (git-ignored)
CACHE = ROOT / ".cache"  # downloaded wheels (git-ignored)
RUN = ROOT / ".run"  # derived Triton repository, backend links, logs (git-ignored)
