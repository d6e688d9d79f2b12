# Triton Inference Server for the GPU deployment (compose.gpu.yml).
#
# NVIDIA's image already has the native ONNX Runtime (CUDA/TensorRT execution
# providers), TensorRT and Python backends. The Python-backend models (letterbox,
# postprocess, masking, alignment, the recognize pipelines) need OpenCV and numpy,
# at the same versions as requirements.txt (numpy<2, as the CPU mode pins it), and
# the code they share: the triton_python package, copied in and put on PYTHONPATH.
# The models themselves are not copied in: compose.gpu.yml mounts
# model_repository/ and ensembles/ read-only, weights included.
FROM nvcr.io/nvidia/tritonserver:24.10-py3

# curl: the compose healthcheck asks Triton's HTTP endpoint whether the detect
# pipeline is ready (installed explicitly rather than relying on the base image).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/*

# The Python backend's stub runs the image's system python3, so install there.
RUN python3 -m pip install --no-cache-dir opencv-python-headless==4.11.0.86 numpy==1.26.4

# Every model.py imports its maths from triton_python (Triton puts only the model's
# own version directory on sys.path); the stubs inherit PYTHONPATH.
COPY triton_python /opt/face-api/triton_python
ENV PYTHONPATH=/opt/face-api

# 8000 HTTP (healthcheck only), 8001 gRPC (the frontend), 8002 Prometheus metrics.
EXPOSE 8000 8001 8002
