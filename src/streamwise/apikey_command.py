"""`streamwise apikey create NAME | list | delete ID_OR_NAME`: manage API keys from the shell.

They work on the server's database directly (the same settings), so they also work when every route
is closed: on a server that needs keys and has none yet, `create` is how the first one is made. A
running server sees a new or deleted key within about a second.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from streamwise.security.keys import KeyRing
from streamwise.settings import Settings
from streamwise.store import Database
from streamwise.store.apikeys import ApiKeyRepository
from streamwise.store.dates import to_js_iso


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    apikey = commands.add_parser("apikey", help="create, list or delete API keys")
    actions = apikey.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key and print it (shown this once)")
    create.add_argument("name", help="what the key is for, e.g. 'website widget'")
    actions.add_parser("list", help="list keys (names, ids, bound chatflows; never the keys)")
    delete = actions.add_parser("delete", help="delete a key: whoever holds it is shut out")
    delete.add_argument("key", help="the key's id or name")


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    return asyncio.run(_run(args, settings or Settings()))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with Database.from_url(settings.resolved_database_url) as database:
        await database.migrate()
        repository = ApiKeyRepository(database)
        if args.action == "create":
            return await _create(KeyRing(repository), args.name)
        if args.action == "list":
            return await _list(repository)
        return await _delete(KeyRing(repository), repository, args.key)


async def _create(ring: KeyRing, name: str) -> int:
    if not name.strip():
        print("streamwise apikey create: give the key a name", file=sys.stderr)
        return 2
    print("Creating the key (its hash takes a moment)...", file=sys.stderr, flush=True)
    created = await ring.create(name.strip())
    print(f"Created API key {created.record.keyName!r} (id {created.record.id}). The key, shown this once:")
    print(created.key)
    print(
        "Send it as `Authorization: Bearer <key>`; bind a chatflow to it with "
        f'PUT /api/v1/chatflows/<id> {{"apikeyid": "{created.record.id}"}}',
        file=sys.stderr,
    )
    return 0


async def _list(repository: ApiKeyRepository) -> int:
    keys = await repository.list()
    if not keys:
        print("No API keys. Create one with: streamwise apikey create NAME")
        return 0
    bound = await repository.bound_chatflows()
    rows: list[tuple[Any, ...]] = [("ID", "NAME", "KEY", "CREATED", "CHATFLOWS")]
    for record in keys:
        flows = ", ".join(name for name, _, _ in bound.get(record.id, [])) or "-"
        rows.append(
            (record.id, record.keyName, f"sw_{record.lookup}_…", to_js_iso(record.createdDate), flows)
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


async def _delete(ring: KeyRing, repository: ApiKeyRepository, key: str) -> int:
    found = await repository.find(key)
    if not found:
        print(f"streamwise apikey delete: no key with id or name {key!r}", file=sys.stderr)
        return 1
    if len(found) > 1:
        ids = ", ".join(record.id for record in found)
        print(
            f"streamwise apikey delete: {len(found)} keys are named {key!r}; give an id: {ids}",
            file=sys.stderr,
        )
        return 1
    await ring.delete(found[0].id)
    print(f"Deleted API key {found[0].keyName!r} ({found[0].id})")
    return 0
