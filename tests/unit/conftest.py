"""Make the Triton Python models' pure-maths modules importable by their own names.

The models import them as top-level modules (``from letterbox import ...``),
because Triton puts each model version directory on sys.path; do the same.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_DIRS = (
    REPO_ROOT / "model_repository" / "face_letterbox" / "1",
    REPO_ROOT / "model_repository" / "scrfd_postprocess" / "1",
    REPO_ROOT / "model_repository" / "face_mask" / "1",
    REPO_ROOT / "model_repository" / "face_align" / "1",
    REPO_ROOT / "model_repository" / "yunet_postprocess" / "1",
)

for directory in (REPO_ROOT, *MODEL_DIRS):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
