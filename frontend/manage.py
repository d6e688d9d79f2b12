"""Management commands: API keys and schema migrations, against FACE_API_DATABASE_URL.

    python -m frontend.manage keys create --name NAME [--quiet]
    python -m frontend.manage keys list [--limit N] [--offset N]
    python -m frontend.manage keys revoke ID        (deactivate: requests with it get 403)
    python -m frontend.manage keys activate ID
    python -m frontend.manage keys delete ID
    python -m frontend.manage migrate upgrade [REV] | downgrade REV | current
    python -m frontend.manage cleanup     (delete the objects of deleted images still queued)

(``./face-api keys ...`` runs the keys commands, ``./face-api cleanup`` the cleanup.)
Every keys and cleanup command first brings the schema up to date. Exit status:
0 done, 1 failed (unknown id, database unreachable, database or storage disabled,
objects that stay queued), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime

from frontend.auth.api_keys import ApiKeyRecord, ApiKeyStore
from frontend.persistence import migrate
from frontend.persistence.database import create_database
from frontend.services.archive import clean_up
from frontend.settings import Settings

PAGE = 1000


class CommandError(Exception):
    """A failure to report in one line, exit status 1."""


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m frontend.manage",
                                   description="Manage the face API's API keys and database schema.")
    commands = main.add_subparsers(dest="command", required=True, metavar="{keys,migrate,cleanup}")

    keys = commands.add_parser("keys", help="create, list, revoke, activate and delete API keys")
    actions = keys.add_subparsers(dest="action", required=True,
                                  metavar="{create,list,revoke,activate,delete}")
    create = actions.add_parser("create", help="create a key and print it (shown only this once)")
    create.add_argument("--name", required=True, help="what the key is for (1-100 characters)")
    create.add_argument("--quiet", "-q", action="store_true", help="print only the key")
    listing = actions.add_parser("list", help="list keys, newest first")
    listing.add_argument("--limit", type=int, default=None, help="at most this many (default: all)")
    listing.add_argument("--offset", type=int, default=0)
    for action, text in [("revoke", "deactivate a key (requests with it are refused)"),
                         ("activate", "activate a revoked key again"),
                         ("delete", "delete a key for good")]:
        actions.add_parser(action, help=text).add_argument("id", help="the key's id (see 'keys list')")

    schema = commands.add_parser("migrate", help="migrate the database schema")
    steps = schema.add_subparsers(dest="step", required=True, metavar="{upgrade,downgrade,current}")
    steps.add_parser("upgrade", help="upgrade (default: to head)").add_argument(
        "revision", nargs="?", default="head")
    steps.add_parser("downgrade", help="downgrade ('base' drops every table)").add_argument("revision")
    steps.add_parser("current", help="print the schema's revision")

    commands.add_parser("cleanup", help="delete the objects of deleted images that are still queued "
                                        "(object storage was down when the image was deleted)")
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)  # exits 2 on usage errors
    try:
        settings = Settings()
    except ValueError as error:  # pydantic's ValidationError
        print(f"error: invalid FACE_API_* settings:\n{error}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        return migrate.run_cli(args.step, getattr(args, "revision", None), url=settings.database_url)
    if args.command == "cleanup":
        return _cleanup(settings)

    if args.action == "list" and ((args.limit is not None and args.limit < 0) or args.offset < 0):
        print("error: --limit and --offset must not be negative", file=sys.stderr)
        return 2
    try:
        if not settings.database_enabled:
            raise CommandError("the database is disabled (FACE_API_DATABASE_ENABLED=false): "
                               "API keys live in the database")
        try:
            migrate.upgrade(settings.database_url)
        except Exception as error:
            raise CommandError(f"cannot prepare the database: {error}") from error
        return asyncio.run(_keys(args, settings.database_url))
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # e.g. an invalid name
        print(f"error: {error}", file=sys.stderr)
        return 2


def _cleanup(settings: Settings) -> int:
    if not settings.storage_enabled or not settings.database_enabled:
        print("error: storage-backed mode is off (FACE_API_STORAGE_ENABLED=false): nothing to clean up",
              file=sys.stderr)
        return 1
    try:
        migrate.upgrade(settings.database_url)
        report, left = asyncio.run(clean_up(settings))
    except Exception as error:
        print(f"error: cannot run the cleanup: {error}", file=sys.stderr)
        return 1
    print(f"deleted {report.deleted} objects; {report.kept} were in use again and kept; {left} stay queued")
    if left:
        if report.last_error:
            print(f"last error: {report.last_error}", file=sys.stderr)
        return 1
    return 0


async def _keys(args: argparse.Namespace, url: str) -> int:
    database = create_database(url)
    try:
        await database.connect()
    except Exception as error:
        raise CommandError(f"cannot connect to the database: {error}") from error
    try:
        store = ApiKeyStore(database)
        if args.action == "create":
            record, key = await store.create(args.name)
            if args.quiet:
                print(key)
            else:
                print(f"Created API key {record.name!r}")
                print(f"  id:      {record.id}")
                print(f"  preview: {record.key_preview}")
                print(f"  key:     {key}")
                print("Store the key now: it is not shown again (only its hash is kept).")
            return 0
        if args.action == "list":
            records = await _all(store, args.limit, args.offset)
            print(format_table(records) if records else "no API keys")
            return 0
        if args.action == "delete":
            if not await store.delete(args.id):
                raise CommandError(f"no API key with id {args.id!r}")
            print(f"deleted API key {args.id}")
            return 0
        active = args.action == "activate"
        updated = await store.update(args.id, is_active=active)
        if updated is None:
            raise CommandError(f"no API key with id {args.id!r}")
        print(f"{'activated' if active else 'revoked'} API key {updated.id} "
              f"({updated.name}, {updated.key_preview})")
        return 0
    finally:
        await database.disconnect()


async def _all(store: ApiKeyStore, limit: int | None, offset: int) -> list[ApiKeyRecord]:
    records: list[ApiKeyRecord] = []
    while limit is None or len(records) < limit:
        want = PAGE if limit is None else min(PAGE, limit - len(records))
        page = await store.list(limit=want, offset=offset + len(records))
        records.extend(page)
        if len(page) < want:
            break
    return records


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "never"


def format_table(records: Sequence[ApiKeyRecord]) -> str:
    header = ("ID", "NAME", "PREVIEW", "ACTIVE", "REQUESTS", "LAST USED (UTC)", "CREATED (UTC)")
    rows = [(r.id, r.name, r.key_preview, "yes" if r.is_active else "no", str(r.request_count),
             _when(r.last_used_at), _when(r.created_at)) for r in records]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {4}  # numbers align right
    lines = ["  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                       for i, cell in enumerate(row)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
