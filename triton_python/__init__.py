"""Python code shared by the Triton Python-backend models of model_repository/ and ensembles/.

Each model folder holds a small ``model.py`` (the Triton glue of its one job) that imports
from here, so no model reaches into another model's folder. Triton puts only a model's own
version directory on ``sys.path``; the repository root must be on ``PYTHONPATH`` for the
stubs (the embedded CPU server sets it, docker/triton.Dockerfile copies this package in
and sets it).

* ``letterbox``, ``detections``, ``scrfd_decode``, ``yunet_decode``, ``masking`` and
  ``alignment`` are pure NumPy / OpenCV maths, importable (and unit-tested) anywhere.
* Modules named ``*_model`` hold a ``TritonPythonModel`` used by several model folders
  (one code, per-model parameters); they import ``triton_python_backend_utils``, which
  exists only inside Triton's Python backend.
"""
