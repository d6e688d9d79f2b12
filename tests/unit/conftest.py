"""Shared by the unit tests: where the repository is.

The Triton models' maths live in the importable package triton_python/ (the
repository root is on sys.path when pytest runs from it, as for the stubs).
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
