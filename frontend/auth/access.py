"""Who may call the public endpoints, and how often: API keys, then rate limits.

It runs as ASGI middleware in front of the routers, so a request without a
valid key, or over its limit, is refused before its upload is read: refusing
must stay cheap, since that is what callers over their limit mostly get.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

from frontend.auth.api_keys import ApiKeyStore, UsageCounter
from frontend.middleware import client_host, send_detail
from frontend.observability import metrics
from frontend.ratelimit import Rate, RateLimitStore

log = logging.getLogger("face_api.access")

# The recognition contract's endpoints that need a key (its GETs, /v1/health and
# /v1/info/*, do not). They share one rate limit, "recognition".
RECOGNITION_PATHS = (
    "/v1/detect", "/v1/feature", "/v1/feature-only", "/v1/multi-feature", "/v1/embeddings",
    "/v1/embeddings-only", "/v1/multi-embeddings", "/v1/score", "/v1/feature-score",
    "/v1/file/detect", "/v1/file/feature", "/v1/file/feature-only", "/v1/file/embeddings",
    "/v1/file/embeddings-only", "/v1/file/score",
)
# Public endpoints guarded here (POST only) -> the name of their rate limit. A video job
# spends one call of /api/v1/mask's allowance (and FACE_API_VIDEO_MAX_JOBS_PER_KEY bounds
# how many of a key are queued or running at once).
PROTECTED = {"/api/v1/detect": "detect", "/api/v1/mask": "mask", "/api/v1/mask/video": "mask",
             **{path: "recognition" for path in RECOGNITION_PATHS}}
# What a 429 says the limit applies to.
LIMITED = {"detect": "/api/v1/detect", "mask": "/api/v1/mask", "recognition": "the /v1 endpoints"}
# The recognition contract spells it x-api-key: HTTP header names are case-insensitive.
API_KEY_HEADER = "X-API-Key"


@dataclass
class Admission:
    status: int = 200  # 200 = let through
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    key_id: str | None = None


class AccessControl:
    """The decision for one request; the middleware below only translates it to HTTP."""

    def __init__(self, rates: dict[str, Rate], keys: ApiKeyStore | None, usage: UsageCounter | None,
                 limits: RateLimitStore | None):
        self.rates = rates
        self.keys = keys  # None: API keys disabled, callers are told apart by address
        self.usage = usage
        self.limits = limits  # None: rate limits disabled
        self._store_failed_at = 0.0

    async def admit(self, route: str, api_key: str | None, client: str) -> Admission:
        admission = Admission()
        caller = f"ip:{client}"
        if self.keys is not None:
            refusal = await self._authenticate(api_key, admission)
            if refusal is not None:
                return refusal
            caller = f"key:{admission.key_id}"
        limited = await self.limit(route, caller)
        admission.headers.update(limited.headers)
        if limited.status != 200:
            return limited
        if admission.key_id is not None and self.usage is not None:
            self.usage.record(admission.key_id)
        return admission

    async def identify(self, api_key: str | None) -> Admission:
        """Only the API-key check, no rate limit (polling a video job's status): status 200 with
        the key's id, or the refusal. Lets everything through when API keys are disabled."""
        admission = Admission()
        if self.keys is not None:
            refusal = await self._authenticate(api_key, admission)
            if refusal is not None:
                return refusal
        return admission

    async def limit(self, route: str, caller: str) -> Admission:
        """Count one request of `caller` against the rate `route`: the X-RateLimit-* headers,
        or a 429 with Retry-After. Lets everything through when limits are disabled."""
        if self.limits is None:
            return Admission()
        rate = self.rates[route]
        decision = await self._hit(f"{route}:{caller}", rate)
        if decision is None:
            return Admission()
        headers = {"X-RateLimit-Limit": str(rate.count), "X-RateLimit-Remaining": str(decision.remaining),
                   "X-RateLimit-Reset": str(math.ceil(decision.reset_after_s))}
        if decision.allowed:
            return Admission(headers=headers)
        retry = str(max(1, math.ceil(decision.retry_after_s)))
        metrics.RATE_LIMITED.labels(route).inc()
        if route == "admin_login":
            detail = f"too many login attempts: {rate}; retry in {retry} s"
        else:
            detail = f"rate limit exceeded: {rate} for {LIMITED.get(route, route)}; retry in {retry} s"
        return Admission(429, detail, {**headers, "Retry-After": retry})

    async def _authenticate(self, api_key: str | None, admission: Admission) -> Admission | None:
        if not api_key:
            metrics.AUTH_FAILURES.labels("missing_key").inc()
            return Admission(401, f"missing API key: send it in the {API_KEY_HEADER} header")
        try:
            record = await self.keys.find(api_key)
        except Exception as error:  # the database is down: say so, don't pretend the key is bad
            log.warning("API-key lookup failed: %s", error)
            return Admission(503, "the API-key database is unavailable; try again shortly",
                             {"Retry-After": "5"})
        if record is None:
            metrics.AUTH_FAILURES.labels("unknown_key").inc()
            return Admission(401, "invalid API key")
        if not record.is_active:
            metrics.AUTH_FAILURES.labels("inactive_key").inc()
            return Admission(403, "this API key is disabled")
        admission.key_id = record.id
        return None

    async def _hit(self, key: str, rate: Rate):
        try:
            return await self.limits.hit(key, rate)
        except Exception as error:
            # Fail open: a broken limiter store must not take the API down with it.
            if time.monotonic() - self._store_failed_at > 60:
                log.warning("rate-limit store failed, letting requests through: %s", error)
                self._store_failed_at = time.monotonic()
            return None


class AccessMiddleware:
    """Pure ASGI: asks app.state.access about every POST to a protected path."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        route = PROTECTED.get(scope.get("path", "")) if scope["type"] == "http" else None
        access: AccessControl | None = getattr(scope["app"].state, "access", None) if route else None
        if access is None or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        api_key = headers.get(API_KEY_HEADER.lower().encode(), b"").decode("latin-1").strip() or None
        client = client_host(scope) or "unknown"
        admission = await access.admit(route, api_key, client)
        extra = [(k.lower().encode(), v.encode()) for k, v in admission.headers.items()]
        if admission.status != 200:
            return await send_detail(send, admission.status, admission.detail, extra)
        # Who asked, for the job records of storage-backed mode (request.state.api_key_id).
        scope.setdefault("state", {})["api_key_id"] = admission.key_id

        async def send_with_limits(message):
            if message["type"] == "http.response.start" and extra:
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        return await self.app(scope, receive, send_with_limits)
