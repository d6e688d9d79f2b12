"""Request and response bodies of the admin session and API-key endpoints."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from frontend.auth.api_keys import NAME_MAX_CHARS, ApiKeyRecord

# Far above any real password; only stops megabytes from being hashed.
CREDENTIAL_MAX_CHARS = 1024


class LoginRequest(BaseModel):
    username: StrictStr = Field(max_length=CREDENTIAL_MAX_CHARS, examples=["admin"])
    password: StrictStr = Field(max_length=CREDENTIAL_MAX_CHARS, examples=["secret"])


class AdminSessionResponse(BaseModel):
    authenticated: bool = Field(True, description="always true: without a session or Basic credentials "
                                                  "the endpoint answers 401")
    username: str


class RecentFigures(BaseModel):
    requests: int = Field(description="requests answered (every route but /metrics)")
    rate_per_s: float = Field(description="requests per second")
    errors: int = Field(description="answers with a 5xx status")
    error_ratio: float = Field(description="errors / requests; 0 without requests")
    p95_ms: float | None = Field(description="95th percentile of the time to answer, estimated from the "
                                             "latency histogram like PromQL's histogram_quantile; "
                                             "null without requests")


class RecentPoint(RecentFigures):
    time: datetime = Field(description="end of this step")


class RecentMetricsResponse(RecentFigures):
    """This frontend node's own metrics over the last hour (the console's live health)."""

    window_s: int = Field(description="the window: one hour")
    step_s: int = Field(description="the spacing of points: one minute")
    since: datetime = Field(description="start of the window actually covered (the node may be younger)")
    points: list[RecentPoint] = Field(description="one per step, oldest first; fills in as minutes pass")


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(description=f"what the key is for: 1 to {NAME_MAX_CHARS} characters, "
                                        "no control characters (surrounding spaces are removed)",
                            examples=["Production App"])


class ApiKeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr | None = Field(None, description="new name (rules as on create)",
                                   examples=["Renamed App"])
    is_active: StrictBool | None = Field(
        None, description="false: requests with the key get 403 at once; true: accepted again")


class ApiKeyResponse(BaseModel):
    """A key's metadata; the key itself is shown only by the create call."""

    id: str
    name: str
    key_prefix: str = Field(description="its first 8 characters, e.g. xyl_AbCd")
    key_suffix: str = Field(description="its last 4 characters")
    key_preview: str = Field(description="prefix...suffix, to recognise a key in a list")
    is_active: bool
    request_count: int = Field(description="authenticated requests (added every few seconds)")
    last_used_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, record: ApiKeyRecord) -> ApiKeyResponse:
        return cls(**asdict(record))


class ApiKeyCreatedResponse(ApiKeyResponse):
    key: str = Field(description="the full key: shown only in this response, keep it")

    @classmethod
    def created(cls, record: ApiKeyRecord, key: str) -> ApiKeyCreatedResponse:
        return cls(**asdict(record), key=key)
