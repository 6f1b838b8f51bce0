"""``syncd backup FILE``: a consistent copy of a live SQLite database.

Copying the file while the daemon writes can catch a transaction half-way
(and misses what still sits in the WAL); SQLite's online backup API copies
a consistent snapshot page by page while the daemon goes on. The copy is
written to a temporary file next to FILE, made private (mode 0600: it holds
every agenda and the sealed grants) and moved into place only when whole,
so an interrupted backup never leaves a truncated FILE behind.

PostgreSQL has its own tool for this (``pg_dump``, see README "Backups and
recovery"); syncd does not wrap it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from syncd import config, status


class BackupError(Exception):
    """Why no backup was made; one line."""


def backup(settings: config.Settings, target: Path) -> int:
    """Copy the database to ``target``; the number of pages copied."""
    source = status.sqlite_file(settings.syncd.database)
    if source is None:
        raise BackupError(
            f"{status.database_label(settings.syncd.database)} is not a SQLite file; "
            "back up PostgreSQL with pg_dump (README: Backups and recovery)"
        )
    if not source.exists():
        raise BackupError(f"{source} does not exist (nothing synced yet?)")
    target = target.expanduser().absolute()
    if target.exists():
        raise BackupError(f"{target} exists; name a new file")
    if target.resolve() == source.resolve():
        raise BackupError(f"{target} is the database itself")
    partial = target.with_name(f".{target.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(descriptor)
    pages = 0
    try:
        live = sqlite3.connect(source, timeout=30)
        copy = sqlite3.connect(partial)
        try:

            def progress(_status: int, _remaining: int, total: int) -> None:
                nonlocal pages
                pages = total

            live.backup(copy, pages=1024, progress=progress)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            copy.close()
            live.close()
        os.replace(partial, target)
    except (sqlite3.Error, OSError) as error:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {source} failed: {error}") from None
    return pages
