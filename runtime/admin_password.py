"""The admin password of a development start, when none is configured.

``./face-api serve`` in development without FACE_API_ADMIN_PASSWORD makes one up
once, keeps it in ``.run/admin-password`` (mode 0600) so that restarts keep it,
hands it to the workers' environment, and prints it when it is new. Production
never gets a made-up password: it refuses to start instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from frontend.settings import Settings
from runtime.paths import RUN

ADMIN_PASSWORD_FILE = RUN / "admin-password"
PASSWORD_BYTES = 18  # 24 URL-safe characters, 144 random bits
MIN_CHARS = 12  # Settings.admin_password's minimum


def kept_secret(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The secret in `path`; made with `make` and written first when the file does not exist.

    Returns (secret, created). The file appears complete or not at all (written
    under a temporary name, then hard-linked into place), so two starts at once
    agree on one secret.
    """
    try:
        return path.read_text().strip(), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # .run/: private state
    secret = make()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secret + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:  # another start won the race: use its secret
            return path.read_text().strip(), False
        return secret, True
    finally:
        temporary.unlink(missing_ok=True)


def admin_environment(settings: Settings, say: Callable[[str], None],
                      path: Path = ADMIN_PASSWORD_FILE) -> dict[str, str]:
    """The variables the workers need for the admin API: {} when a password is configured."""
    if settings.admin_password:
        return {}
    if settings.environment == "production":
        raise RuntimeError("FACE_API_ENVIRONMENT=production needs admin credentials: set "
                           "FACE_API_ADMIN_PASSWORD (at least 12 characters); production never generates one")
    password, created = kept_secret(path, lambda: secrets.token_urlsafe(PASSWORD_BYTES))
    if len(password) < MIN_CHARS:
        raise RuntimeError(f"{path} holds no usable admin password (under {MIN_CHARS} characters): "
                           "delete it to generate a new one, or set FACE_API_ADMIN_PASSWORD")
    if created:
        say(f"admin login: {settings.admin_username} / {password}")
        say(f"    (generated once and kept in {path}; set FACE_API_ADMIN_PASSWORD to choose your own)")
    else:
        say(f"admin login: {settings.admin_username} / the password kept in {path}")
    return {"FACE_API_ADMIN_PASSWORD": password}
