"""Every setting of the frontend, read from FACE_API_* environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

RATE_PATTERN = r"^\s*[1-9][0-9]*\s*/\s*(second|minute|hour|day)\s*$"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACE_API_", extra="ignore")

    # --- HTTP server ---
    host: str = Field("127.0.0.1", description="address the frontend binds")
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(2, ge=1, le=64, description="gunicorn (uvicorn) worker processes")

    # --- inference plane ---
    triton_url: str = Field("127.0.0.1:8001", description="Triton gRPC address host:port")
    triton_timeout_s: float = Field(30.0, gt=0, description="deadline of one Triton call")
    detector: str = Field(
        "scrfd_500m", pattern=r"^[A-Za-z0-9_.\-]+$",
        description="detector model; the frontend calls the ensemble detect_<detector>",
    )

    # --- embedded Triton (./face-api serve) ---
    triton_http_port: int = Field(8000, ge=1, le=65535)
    triton_grpc_port: int = Field(8001, ge=1, le=65535)
    triton_metrics_port: int = Field(8002, ge=1, le=65535)
    onnx_instances: int = Field(2, ge=1, le=64, description="instances of each ONNX model in CPU mode")
    onnx_threads: int = Field(1, ge=0, description="onnxruntime threads per instance in CPU mode (0 = cores)")
    onnx_spinning: bool = Field(False, description="let onnxruntime threads spin-wait in CPU mode")

    # --- input limits ---
    max_upload_bytes: int = Field(20 * 1024 * 1024, gt=0, description="larger uploads get 413")
    max_image_pixels: int = Field(50_000_000, gt=0, description="larger images get 413")

    # --- database (API keys now; images, jobs and admin sessions later) ---
    database_enabled: bool = Field(True, description="keep API keys (and later images, jobs) in a database")
    database_url: str = Field(
        "sqlite:///.run/face-api.sqlite3",
        description="sqlite:///path (embedded default) or postgresql://user:pass@host:port/db",
    )

    # --- API keys ---
    api_key_enabled: bool = Field(True, description="require X-API-Key on /api/v1/detect and /mask")
    api_key_usage_flush_s: float = Field(
        2.0, gt=0, le=300,
        description="each worker adds its request counts to the database this often (no write per request)",
    )

    # --- rate limits ("N/second|minute|hour|day", per API key or per client address) ---
    rate_limit_enabled: bool = Field(True)
    rate_limit_detect: str = Field("300/minute", pattern=RATE_PATTERN)
    rate_limit_mask: str = Field("150/minute", pattern=RATE_PATTERN)
    redis_url: str | None = Field(
        None, description="redis://host:port/db: share rate limits across frontend nodes; "
                          "unset = one node, limits shared by its workers through a local file",
    )
    rate_limit_file: str = Field(".run/rate-limits.sqlite3",
                                 description="the single-node limiter's state (without redis_url)")

    @property
    def detect_pipeline(self) -> str:
        return f"detect_{self.detector}"

    @property
    def mask_pipeline(self) -> str:
        return f"mask_{self.detector}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
