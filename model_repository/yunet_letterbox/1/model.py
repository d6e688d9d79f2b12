"""Triton model yunet_letterbox: the shared letterbox code (triton_python/letterbox_model.py) with
this model's parameters (config.pbtxt: input size, mean, std, channel order)."""

from triton_python.letterbox_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
