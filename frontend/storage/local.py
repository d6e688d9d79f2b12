"""The local backend: objects are files under one folder (the embedded default).

Writes go to a temporary dot-file in the target folder and are renamed into
place, so a reader (another worker, the files route) never sees half an object;
they are private to the service's user (mode 0600: these are people's photos).
File I/O runs in a worker thread: the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from anyio import to_thread

from frontend.persistence.database import make_private_folder
from frontend.storage.base import ObjectNotFound, ObjectStoreError, check_key
from frontend.storage.signing import UrlSigner


class LocalObjectStore:
    backend = "local"

    def __init__(self, root: str | Path, signer: UrlSigner):
        self.root = Path(root)
        self.signer = signer

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def start(self) -> None:
        await to_thread.run_sync(make_private_folder, self.root)  # people's photos: 0700

    async def close(self) -> None:
        pass

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        # content_type is not kept: the files route derives it from the key's extension.
        path = self.path(key)
        try:
            await to_thread.run_sync(_write_atomically, path, data)
        except OSError as error:
            raise ObjectStoreError(f"cannot write {key}: {error}") from error

    async def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await to_thread.run_sync(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
            raise ObjectNotFound(key) from error
        except OSError as error:
            raise ObjectStoreError(f"cannot read {key}: {error}") from error

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        target = self.path(key)
        try:
            await to_thread.run_sync(_copy_atomically, Path(path), target)
        except OSError as error:
            raise ObjectStoreError(f"cannot write {key}: {error}") from error

    async def get_file(self, key: str, path: Path) -> None:
        source = self.path(key)
        try:
            await to_thread.run_sync(shutil.copyfile, source, path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
            if not source.is_file():
                raise ObjectNotFound(key) from error
            raise ObjectStoreError(f"cannot read {key}: {error}") from error
        except OSError as error:
            raise ObjectStoreError(f"cannot read {key}: {error}") from error

    async def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            await to_thread.run_sync(lambda: path.unlink(missing_ok=True))
        except (IsADirectoryError, NotADirectoryError):
            pass  # no object under that key
        except OSError as error:
            raise ObjectStoreError(f"cannot delete {key}: {error}") from error

    async def exists(self, key: str) -> bool:
        path = self.path(key)
        return await to_thread.run_sync(path.is_file)

    async def is_ready(self) -> bool:
        root = self.root
        return await to_thread.run_sync(lambda: root.is_dir() and os.access(root, os.W_OK | os.X_OK))

    async def download_url(self, key: str, *, public: bool = False) -> str:
        # Relative, so the same link works behind any proxy; `public` changes nothing here.
        return self.signer.url(key)


def _copy_atomically(source: Path, path: Path) -> None:
    """_write_atomically for a file, copied in chunks."""
    make_private_folder(path.parent)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(descriptor, "wb") as file, source.open("rb") as original:
            shutil.copyfileobj(original, file, 1024 * 1024)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_atomically(path: Path, data: bytes) -> None:
    make_private_folder(path.parent)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # the database will point at it: it must survive a crash
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
