"""Object storage, counted and timed (face_api_storage_*): wraps whichever backend is configured."""

from __future__ import annotations

import time

from frontend.observability import metrics
from frontend.storage.base import ObjectNotFound, ObjectStore


class ObservedObjectStore:
    """The ObjectStore interface over ``inner``, one metric sample per operation.
    Anything else (the local backend's ``signer``, say) is ``inner``'s own."""

    def __init__(self, inner: ObjectStore):
        self.inner = inner
        self.backend = inner.backend

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    async def _observed(self, operation: str, call, *args, **kwargs):
        outcome = "ok"
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        except ObjectNotFound:
            outcome = "not_found"
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            metrics.STORAGE_OPS.labels(operation, outcome).inc()
            metrics.STORAGE_LATENCY.labels(operation).observe(time.perf_counter() - started)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def is_ready(self) -> bool:
        return await self.inner.is_ready()

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._observed("put", self.inner.put, key, data, content_type)

    async def get(self, key: str) -> bytes:
        return await self._observed("get", self.inner.get, key)

    async def delete(self, key: str) -> None:
        await self._observed("delete", self.inner.delete, key)

    async def exists(self, key: str) -> bool:
        return await self._observed("exists", self.inner.exists, key)

    async def download_url(self, key: str, *, public: bool = False) -> str:
        return await self._observed("download_url", self.inner.download_url, key, public=public)
