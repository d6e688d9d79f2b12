"""Every setting of the frontend, read from FACE_API_* environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    @property
    def detect_pipeline(self) -> str:
        return f"detect_{self.detector}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
