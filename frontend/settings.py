"""Every setting of the frontend, read from FACE_API_* environment variables."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Literal, NamedTuple

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from frontend.inference.endpoints import parse_targets

RATE_PATTERN = r"^\s*[1-9][0-9]*\s*/\s*(second|minute|hour|day)\s*$"


class ModelSet(NamedTuple):
    detector: str
    recognizer: str


# FACE_API_MODELS: the only place where the frontend names models (the defaults of its settings).
MODEL_SETS = {
    "insightface": ModelSet("scrfd_500m", "arcface_w600k_mbf"),
    "licence-clean": ModelSet("yunet_2023mar", "sface_2021dec"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACE_API_", extra="ignore")

    # --- HTTP server ---
    host: str = Field("127.0.0.1", description="address the frontend binds")
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(2, ge=1, le=64, description="gunicorn (uvicorn) worker processes")

    # --- observability ---
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="json: one JSON object per log line (request lines included); text: lines for "
                            "a person; auto: text when stdout is a terminal, json otherwise")
    metrics_enabled: bool = Field(True, description="serve Prometheus metrics at GET /metrics")
    metrics_token: str | None = Field(
        None, min_length=16, description="when set, /metrics answers only requests that send 'Authorization: "
                                         "Bearer <token>' (in Prometheus: authorization.credentials)")

    # --- inference plane ---
    triton_url: str = Field(
        "127.0.0.1:8001", description="Triton gRPC address host:port, or several separated by commas; "
                                      "dns:///name:port (or a plain name) stands for every address the name "
                                      "resolves to, e.g. a Kubernetes headless Service")
    triton_check_interval_s: float = Field(
        1.0, gt=0, le=60, description="how often each Triton server is asked whether it is ready")
    triton_dns_refresh_s: float = Field(
        30.0, gt=0, description="how often Triton names are resolved again (servers that come and go)")
    triton_timeout_s: float = Field(30.0, gt=0, description="deadline of one Triton call")
    triton_shared_memory_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="bound on the shared-memory regions of one worker; photos that "
                                             "do not fit travel inside the gRPC messages")
    shared_memory_reclaim_s: float = Field(
        30.0, gt=0, description="how often workers reclaim the shared-memory regions of killed workers")
    triton_shared_memory: bool = Field(
        False, description="send photos to Triton through system shared memory (/dev/shm) instead of "
                           "inside gRPC messages; only where Triton shares this host's /dev/shm "
                           "(./face-api serve turns it on; falls back to gRPC when Triton refuses)")
    models: Literal["insightface", "licence-clean"] = Field(
        "insightface", description="the model set: insightface (SCRFD + ArcFace; their weights are for "
                                   "non-commercial research only) or licence-clean (YuNet + SFace, MIT and "
                                   "Apache-2.0); FACE_API_DETECTOR / FACE_API_RECOGNIZER override its parts")
    detector: str = Field(
        MODEL_SETS["insightface"].detector, pattern=r"^[A-Za-z0-9_.\-]+$",
        description="detector of /api/v1/detect and /api/v1/mask, as its pipelines declare it (their "
                    "parameter detector); unset = the model set's",
    )
    recognizer: str = Field(
        MODEL_SETS["insightface"].recognizer, pattern=r"^[A-Za-z0-9_.\-]+$",
        description="recognition network of /v1, as its recognize pipeline declares it (parameter "
                    "recognizer; that pipeline names the detect pipeline it pairs with); "
                    "unset = the model set's",
    )
    catalog_refresh_s: float = Field(
        2.0, gt=0, le=3600, description="how often each worker asks Triton again which pipelines it serves "
                                        "(also at once when a request finds a model missing)")
    recognition_confidence: float = Field(
        0.5, ge=0.0, le=1.0, description="minimum face confidence on /v1 (the contract has no parameter)")
    recognition_nms_threshold: float = Field(
        0.4, ge=0.0, le=1.0, description="NMS IoU threshold on /v1 (the contract has no parameter)")

    # --- embedded Triton (./face-api serve) ---
    triton_http_port: int = Field(8000, ge=1, le=65535)
    triton_grpc_port: int = Field(8001, ge=1, le=65535)
    triton_metrics_port: int = Field(8002, ge=1, le=65535)
    onnx_instances: int = Field(2, ge=1, le=64, description="instances of each ONNX model in CPU mode")
    onnx_threads: int = Field(1, ge=0, description="onnxruntime threads per instance in CPU mode (0 = cores)")
    onnx_spinning: bool = Field(False, description="let onnxruntime threads spin-wait in CPU mode")
    onnx_idle_threads: int = Field(
        0, ge=0, le=256, description="CPU mode: onnxruntime threads of a one-item run while its model is "
                                     "quiet (no other instance running or just finished; 0 = one per "
                                     "core; at most onnx_threads turns it off)")
    cpu_fused_pipelines: bool = Field(
        True, description="CPU mode: run each detect/mask ensemble's steps in one Triton model, and "
                          "a recognize model's callees in its own process (one process per photo "
                          "instead of three or four; false serves the pipelines as committed)")

    # --- input limits ---
    max_upload_bytes: int = Field(20 * 1024 * 1024, gt=0, description="larger uploads get 413")
    max_image_pixels: int = Field(50_000_000, gt=0, description="larger images get 413")
    pixel_budget: int = Field(
        60_000_000, gt=0, description="decoded pixels in flight per worker (one maximum-size photo and "
                                      "ordinary ones beside it); requests beyond it wait, then get 503; "
                                      "a photo larger than it, 413")
    pixel_budget_wait_s: float = Field(
        10.0, ge=0, le=300, description="how long a request waits for room in the pixel budget before 503")

    # --- deployment ---
    environment: Literal["development", "production"] = Field(
        "development", description="production refuses to start without configured admin credentials "
                                   "and a URL-signing key (nothing generated, nothing printed)")

    # --- database (API keys, admin sessions; images and jobs in storage mode) ---
    database_enabled: bool = Field(
        True, description="keep API keys, admin sessions, images and jobs in a database")
    database_url: str = Field(
        "sqlite:///.run/face-api.sqlite3",
        description="sqlite:///path (embedded default) or postgresql://user:pass@host:port/db",
    )

    # --- API keys ---
    api_key_enabled: bool = Field(
        True, description="require X-API-Key on /api/v1/detect, /api/v1/mask and every POST /v1/*")
    api_key_usage_flush_s: float = Field(
        2.0, gt=0, le=300,
        description="each worker adds its request counts to the database this often (no write per request)",
    )

    # --- rate limits ("N/second|minute|hour|day", per API key or per client address) ---
    rate_limit_enabled: bool = Field(True)
    rate_limit_detect: str = Field("300/minute", pattern=RATE_PATTERN)
    rate_limit_mask: str = Field("150/minute", pattern=RATE_PATTERN)
    rate_limit_admin_login: str = Field(
        "10/minute", pattern=RATE_PATTERN, description="POST /api/v1/admin/auth/login, per client address")
    rate_limit_recognition: str = Field(
        "300/minute", pattern=RATE_PATTERN, description="one allowance shared by every POST /v1/* endpoint")
    redis_url: str | None = Field(
        None, description="redis://host:port/db: share rate limits across frontend nodes; "
                          "unset = one node, limits shared by its workers through a local file",
    )
    rate_limit_file: str = Field(".run/rate-limits.sqlite3",
                                 description="the single-node limiter's state (without redis_url)")

    # --- storage-backed mode: uploads and results kept in object storage + the database ---
    storage_enabled: bool = Field(
        True, description="store every detect/mask upload (deduplicated) and a job record; "
                           "needs database_enabled")
    storage_backend: Literal["local", "s3"] = Field("local", description="where objects live")
    storage_dir: str = Field(".run/objects", description="the local backend's folder")
    s3_bucket: str = Field("face-api", description="bucket of the s3 backend")
    s3_endpoint: str | None = Field(None, description="S3 endpoint URL; unset = AWS for s3_region")
    s3_public_endpoint: str | None = Field(
        None, description="endpoint that browsers reach; processed_url links are signed for this host")
    s3_region: str = Field("us-east-1")
    s3_access_key_id: str | None = Field(None, description="unset = the default AWS credential chain")
    s3_secret_access_key: str | None = Field(None)
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field("path")
    s3_create_bucket: bool = Field(True, description="create the bucket at start-up when it is missing")
    url_ttl_s: int = Field(900, ge=10, le=7 * 24 * 3600,
                           description="lifetime of the download URLs handed out (presigned or signed)")
    url_signing_key: str | None = Field(
        None, min_length=32, description="HMAC key of the local backend's download URLs; unset = a random "
                                         "key kept in <storage_dir>/.url-signing-key (development only)")

    # --- admin API ---
    admin_username: str = Field("admin", min_length=1, max_length=100)
    admin_password: str | None = Field(
        None, min_length=12, description="unset = admin API closed; ./face-api serve generates one in "
                                         ".run/ and prints it (development only)")
    admin_session_ttl_s: int = Field(43200, ge=60, le=30 * 24 * 3600, description="admin session lifetime")
    admin_cookie_secure: bool | None = Field(
        None, description="Secure flag of the session cookie; unset = when the request came over HTTPS")

    # --- edge protections: proxies, slow uploads ---
    trusted_proxies: str = Field(
        "", description="addresses or networks (CIDR) of the reverse proxies whose X-Forwarded-For and "
                        "X-Forwarded-Proto are believed, separated by commas, or * for any peer; "
                        "unset = none: the connecting address is the client")
    body_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="a request must have sent its whole body this many seconds after "
                                         "its headers, or it gets 408 and the connection is closed")
    max_uploads_in_progress: int = Field(
        64, ge=1, le=100_000, description="requests per worker still receiving their body; "
                                          "one more gets 503 with Retry-After")

    # --- video jobs (POST /api/v1/mask/video; needs storage_enabled) ---
    video_workers: int = Field(
        1, ge=0, le=64, description="video job worker processes that ./face-api serve starts beside the "
                                    "frontend; 0 turns video jobs off (POST /api/v1/mask/video answers 501)")
    video_max_bytes: int = Field(
        500 * 1024 * 1024, gt=0,
        description="larger video uploads get 413 (videos are not held to FACE_API_MAX_UPLOAD_BYTES)")
    video_max_duration_s: float = Field(600.0, gt=0, description="longer videos get 413")
    video_max_pixels: int = Field(
        3840 * 2160, gt=0, description="videos with more pixels per frame (width x height) get 413")
    video_max_jobs_per_key: int = Field(
        2, ge=1, le=10_000, description="queued + running video jobs per API key (per service without API "
                                        "keys); one more gets 429")
    video_body_timeout_s: float = Field(
        600.0, gt=0, le=24 * 3600, description="a video upload must have arrived this many seconds after its "
                                               "headers (FACE_API_BODY_TIMEOUT_S for everything else)")
    video_max_attempts: int = Field(
        3, ge=1, le=100, description="runs of a job that a stop or a crash may interrupt; the next "
                                     "interruption marks it failed")
    video_lease_s: float = Field(
        30.0, ge=2, le=3600, description="a running job's lease, renewed by its worker every third of it; "
                                         "a job whose lease ran out (its worker died) is queued again")
    video_poll_s: float = Field(1.0, gt=0, le=60,
                                description="how often an idle worker looks for a queued job")
    video_temp_dir: str | None = Field(
        None, description="folder for uploads and job files in progress; unset = the system's (TMPDIR)")
    video_heartbeat_file: str | None = Field(
        None, description="a file the video worker touches on every poll and lease renewal, for a liveness "
                          "probe that checks its age; unset = none")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        if entries == ["*"]:
            return "*"
        for entry in entries:
            try:
                ipaddress.ip_network(entry)  # strict, as gunicorn checks it: 10.0.0.1/8 is a mistake
            except ValueError:
                raise ValueError(f"{entry!r} is neither an IP address nor a network such as 10.0.0.0/8 "
                                 "(or * alone, for any peer)") from None
        return ",".join(entries)

    @field_validator("triton_url")
    @classmethod
    def _triton_addresses(cls, value: str) -> str:
        parse_targets(value)  # ValueError names the entry that is wrong
        return value

    @model_validator(mode="after")
    def _model_set(self) -> Settings:
        # An explicit FACE_API_DETECTOR / FACE_API_RECOGNIZER wins over the set's choice.
        chosen = MODEL_SETS[self.models]
        if "detector" not in self.model_fields_set:
            self.detector = chosen.detector
        if "recognizer" not in self.model_fields_set:
            self.recognizer = chosen.recognizer
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
