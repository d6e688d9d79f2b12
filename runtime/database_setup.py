"""What ./face-api serve does to the database before the workers start.

Migrate the schema (once, before the workers fork), make a first API key on an
empty database, and delete the objects whose deletion is still queued. serve
runs this module as a process of its own (``python -m runtime.database_setup
PORT``), so its imports never weigh on the long-lived supervisor; they are made
inside the functions for the same reason.
"""

from __future__ import annotations

import asyncio
import sys

from frontend.settings import Settings


def say(message: str) -> None:
    print(f"[serve] {message}", flush=True)


async def _first_key(url: str) -> str | None:
    from frontend.auth.api_keys import ApiKeyStore
    from frontend.persistence.database import create_database

    async with create_database(url) as database:
        return await ApiKeyStore(database).ensure_first_key()


def prepare_database(settings: Settings, port: int) -> None:
    """Migrate the schema (once, before the workers fork) and make a first API key on an empty database."""
    if not settings.database_enabled:
        return
    from sqlalchemy.engine import make_url

    from frontend.persistence import migrate

    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    say(f"database: {shown} (migrating to the newest schema)")
    try:
        migrate.upgrade(settings.database_url)
        key = asyncio.run(_first_key(settings.database_url)) if settings.api_key_enabled else None
    except Exception as error:
        raise RuntimeError(f"the database {shown} cannot be used: {error}") from error
    if key:
        say("created the first API key; it is shown only this once, so keep it:")
        say(f"    {key}")
        say("    curl -H 'X-API-Key: <key>' -F image=@samples/gdp.jpg "
            f"http://{settings.host}:{port}/api/v1/detect")
        say("manage keys with ./face-api keys create|list|revoke|activate|delete")
    if settings.storage_enabled:
        clean_up_objects(settings)


def clean_up_objects(settings: Settings) -> None:
    """Delete the objects that deleted images left queued (object storage was down then).

    Once, before the workers fork; it never stops the start: what fails stays queued.
    """
    from frontend.services.archive import clean_up

    try:
        report, left = asyncio.run(clean_up(settings))
    except Exception as error:
        say(f"object cleanup skipped (the queue is kept for the next start): {error}")
        return
    if report.deleted:
        say(f"object cleanup: deleted {report.deleted} queued objects")
    if left:
        last = f"; last error: {report.last_error}" if report.last_error else ""
        say(f"object cleanup: {left} objects stay queued (retried at the next start and by "
            f"./face-api cleanup){last}")


def main(argv: list[str]) -> int:
    try:
        prepare_database(Settings(), int(argv[0]))
    except RuntimeError as error:
        say(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
