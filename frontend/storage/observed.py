"""Object storage, counted and timed (face_api_storage_*): wraps whichever backend is configured."""

from __future__ import annotations

from pathlib import Path

from frontend.observability import metrics
from frontend.storage.base import ObjectNotFound, ObjectStore


def _outcome(error: BaseException) -> str:
    return "not_found" if isinstance(error, ObjectNotFound) else "error"


class ObservedObjectStore:
    """The ObjectStore interface over ``inner``, one metric sample per operation.
    Anything else (the local backend's ``signer``, say) is ``inner``'s own."""

    def __init__(self, inner: ObjectStore):
        self.inner = inner
        self.backend = inner.backend

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    async def _observed(self, operation: str, call, *args, **kwargs):
        return await metrics.observed(metrics.STORAGE_OPS, metrics.STORAGE_LATENCY, operation, call, *args,
                                      outcome_of=_outcome, **kwargs)

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

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        await self._observed("put", self.inner.put_file, key, path, content_type)

    async def get_file(self, key: str, path: Path) -> None:
        await self._observed("get", self.inner.get_file, key, path)

    async def delete(self, key: str) -> None:
        await self._observed("delete", self.inner.delete, key)

    async def exists(self, key: str) -> bool:
        return await self._observed("exists", self.inner.exists, key)

    async def download_url(self, key: str, *, public: bool = False) -> str:
        return await self._observed("download_url", self.inner.download_url, key, public=public)
