"""Object storage: ``open_object_store(settings)`` picks the backend that settings name."""

from __future__ import annotations

from frontend.settings import Settings
from frontend.storage.base import ObjectNotFound, ObjectStore, ObjectStoreError, check_key
from frontend.storage.observed import ObservedObjectStore

__all__ = ["ObjectNotFound", "ObjectStore", "ObjectStoreError", "check_key", "open_object_store"]


def open_object_store(settings: Settings) -> ObjectStore:
    """The configured store, counted and timed, not yet started (call ``await store.start()``).

    RuntimeError in production when the local backend has no FACE_API_URL_SIGNING_KEY.
    """
    return ObservedObjectStore(_backend(settings))


def _backend(settings: Settings) -> ObjectStore:
    if settings.storage_backend == "s3":
        from frontend.storage.s3 import S3ObjectStore  # aiobotocore only when it is used

        return S3ObjectStore(settings)
    from frontend.storage.local import LocalObjectStore
    from frontend.storage.signing import UrlSigner, signing_key

    return LocalObjectStore(settings.storage_dir, UrlSigner(signing_key(settings), settings.url_ttl_s))
