"""The s3 backend: any S3-compatible server (AWS, SeaweedFS, MinIO, ...) through aiobotocore.

Short timeouts and one retry, so that an outage fails a request in seconds
instead of hanging it. S3 being down at start-up does not stop the worker: it
logs a warning, /health reports storage not ready, and each use tries again.
A bucket that is missing (and may not be created) or refused is a
configuration error and stops the start.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from frontend.settings import Settings
from frontend.storage.base import ObjectNotFound, ObjectStoreError, check_key

log = logging.getLogger("face_api.storage")

CONNECT_TIMEOUT_S = 2
READ_TIMEOUT_S = 10
MISSING = {"NoSuchKey", "404", "NotFound"}
REFUSED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


class Misconfigured(ObjectStoreError):
    """The server answers but refuses us, or the bucket is missing and may not be created."""


class S3ObjectStore:
    backend = "s3"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.bucket = settings.s3_bucket
        self._exit = AsyncExitStack()
        self._client: Any = None
        self._signer: Any = None  # the client that signs links for the public endpoint
        self._bucket_ready = False

    async def start(self) -> None:
        settings = self.settings
        session = get_session()
        options = dict(
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,  # None: the default credential chain
            aws_secret_access_key=settings.s3_secret_access_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": settings.s3_addressing_style},
                          connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                          retries={"mode": "standard", "total_max_attempts": 2}),
        )
        try:
            self._client = await self._exit.enter_async_context(
                session.create_client("s3", endpoint_url=settings.s3_endpoint, **options))
            self._signer = self._client
            if settings.s3_public_endpoint:
                # Signing is local: this client never sends a request.
                self._signer = await self._exit.enter_async_context(
                    session.create_client("s3", endpoint_url=settings.s3_public_endpoint, **options))
            await self._ensure_bucket()
        except Misconfigured as error:
            await self._exit.aclose()
            raise RuntimeError(f"object storage: {error}") from error
        except ObjectStoreError as error:
            log.warning("object storage not ready at start-up (will retry on use): %s", error)
        except BaseException:
            await self._exit.aclose()
            raise

    async def close(self) -> None:
        await self._exit.aclose()
        self._client = self._signer = None

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        check_key(key)
        await self._ensure_bucket()
        extra = {"ContentType": content_type} if content_type else {}  # else S3's default
        async with self._errors("put", key):
            await self._client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)

    async def get(self, key: str) -> bytes:
        check_key(key)
        await self._ensure_bucket()
        async with self._errors("get", key):
            response = await self._client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                return await body.read()

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        check_key(key)
        await self._ensure_bucket()
        extra = {"ContentType": content_type} if content_type else {}
        async with self._errors("put", key):
            with Path(path).open("rb") as body:  # read in chunks while it is sent
                await self._client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                              ContentLength=Path(path).stat().st_size, **extra)

    async def get_file(self, key: str, path: Path) -> None:
        check_key(key)
        await self._ensure_bucket()
        async with self._errors("get", key):
            response = await self._client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                with Path(path).open("wb") as file:
                    async for chunk in body.iter_chunks(1024 * 1024):
                        file.write(chunk)

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._ensure_bucket()
        async with self._errors("delete", key):
            await self._client.delete_object(Bucket=self.bucket, Key=key)  # no error when missing

    async def exists(self, key: str) -> bool:
        check_key(key)
        await self._ensure_bucket()
        try:
            async with self._errors("head", key):
                await self._client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return False
        return True

    async def is_ready(self) -> bool:
        try:
            await self._ensure_bucket(check=True)
        except Exception:
            return False
        return True

    async def download_url(self, key: str, *, public: bool = False) -> str:
        check_key(key)
        signer = self._signer if public else self._client
        if signer is None:
            raise ObjectStoreError("object storage is not started")
        async with self._errors("sign", key):
            return await signer.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.settings.url_ttl_s)

    async def _ensure_bucket(self, check: bool = False) -> None:
        """Make sure the bucket exists (once, or every time with ``check``)."""
        if self._client is None:
            raise ObjectStoreError("object storage is not started")
        if self._bucket_ready and not check:
            return
        try:
            async with self._errors("head bucket"):
                await self._client.head_bucket(Bucket=self.bucket)
        except ObjectNotFound:
            if not self.settings.s3_create_bucket:
                raise Misconfigured(f"bucket {self.bucket!r} does not exist and FACE_API_S3_CREATE_BUCKET "
                                    "is false") from None
            await self._create_bucket()
        self._bucket_ready = True

    async def _create_bucket(self) -> None:
        extra = {}
        if self.settings.s3_region != "us-east-1":  # AWS wants the region spelt out elsewhere
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.s3_region}
        async with self._errors("create bucket"):
            try:
                await self._client.create_bucket(Bucket=self.bucket, **extra)
                log.info("created bucket %s", self.bucket)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                    raise
                # another worker made it first

    @asynccontextmanager
    async def _errors(self, action: str, key: str | None = None) -> AsyncIterator[None]:
        """botocore's and aiohttp's exceptions as ObjectStoreError (ObjectNotFound for a 404)."""
        where = f"{action} {key}" if key else action
        try:
            yield
        except ClientError as error:
            details = error.response.get("Error", {})
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(details.get("Code") or status)
            if code in MISSING:
                raise ObjectNotFound(key or self.bucket) from error
            message = f"S3 {where} in bucket {self.bucket!r}: {code} {details.get('Message', '')}".strip()
            if code in REFUSED:
                raise Misconfigured(f"{message} (check the S3 credentials and their permissions)") from error
            raise ObjectStoreError(message) from error
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise Misconfigured(f"S3 {where}: {error}") from error
        except (BotoCoreError, aiohttp.ClientError, TimeoutError, OSError) as error:
            raise ObjectStoreError(f"S3 {where} at {self.settings.s3_endpoint or 'AWS'}: {error}") from error
