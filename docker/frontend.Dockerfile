# The FastAPI frontend for the GPU deployment (compose.gpu.yml): gunicorn with
# uvicorn workers, talking to Triton over gRPC (FACE_API_TRITON_URL).
#
# Same base interpreter as ./face-api's venv (CPython 3.11 on Debian bookworm).
FROM python:3.11-slim-bookworm

# build-essential and the -dev headers compile pillow-simd from source (there is
# no wheel); libturbojpeg0 is the library pyturbojpeg loads at run time (1.x:
# Debian's libjpeg-turbo 2.1).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential libjpeg62-turbo-dev zlib1g-dev libpng-dev libwebp-dev libtiff-dev libturbojpeg0 \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Known trade-off: requirements.txt also lists the embedded CPU inference plane
# (nvidia-pytriton, onnxruntime, opencv-python-headless), which this image never
# uses (Triton runs in its own container); it costs a few hundred MB of image but
# keeps one pinned list of requirements for both deployments.
#
# pillow-simd builds from source (~1 min). Optional: build with
# `--build-arg CC="cc -mavx2"` for its AVX2 resampling paths, as ./face-api does
# (only on hosts whose CPUs have AVX2). Like ./face-api, fail the build if stock
# `pillow` got installed next to pillow-simd (both own PIL/).
ARG CC=cc
COPY requirements.txt .
RUN CC="$CC" pip install --no-cache-dir --no-binary pillow-simd -r requirements.txt \
 && if pip show -q pillow 2>/dev/null; then \
      echo "stock 'pillow' got installed next to pillow-simd" >&2; exit 1; \
    fi

# Only the frontend package: it needs neither runtime/ nor the models.
COPY frontend/ ./frontend/
# Every image format the docs list must work in this build (pillow-simd built with libtiff, WebP...).
RUN python -m frontend.imaging.codecs

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin faceapi
USER faceapi

EXPOSE 8080
# Extra gunicorn flags can be passed through GUNICORN_CMD_ARGS (e.g.
# "--timeout 60 --graceful-timeout 10"). frontend.gunicorn_conf sets the log format
# (FACE_API_LOG_FORMAT) and the folder that sums every worker's metrics.
CMD ["gunicorn", "frontend.app:create_app()", "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "4", "--bind", "0.0.0.0:8080", "--config", "python:frontend.gunicorn_conf"]
