"""Triton model: a recognize pipeline (BLS). The code is triton_python/recognize_model.py;
what this pipeline calls and how it normalises faces are its config.pbtxt's parameters.
Rendered by model_tools/render.py (from model_tools/templates/recognize_model.py)."""

from triton_python.recognize_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
