"""Database access: engine creation, the one transaction helper, migrations.

SQLite (WAL, foreign keys on) is the embedded default; PostgreSQL is the
organization-scale backend. The schema is only ever created by Alembic, so a
database made by ``syncd migrate`` and one made by a test are the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL with synchronous=NORMAL: a commit is durable once the process has
    # returned from it, across any crash of syncd itself; only a power cut or
    # kernel crash can undo the last commits, never corrupt the file (SQLite's
    # documented guarantee). The fsync per commit of FULL doubles a settled
    # poll's database cost; an organization that needs power-cut durability
    # runs PostgreSQL.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
    cursor.close()


def connect(url: str, *, schema: str | None = None) -> Engine:
    """An engine for ``url`` with the settings syncd relies on.

    ``schema`` (PostgreSQL only) puts every table in that schema, which lets
    several test runs or deployments share one server.
    """
    if url.startswith("postgresql") and schema:
        engine = create_engine(
            url, pool_pre_ping=True, connect_args={"options": f"-csearch_path={schema}"}
        )
    else:
        engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit on success, roll back on any exception: the only way syncd writes."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def statements(factory: sessionmaker[Session]) -> Iterator[Connection]:
    """A Core connection in one transaction (commit on success, roll back on error).

    For the few statements a settled poll runs on every calendar, where a
    Session's identity map and unit of work would cost more CPU than the
    statements themselves; everything else goes through ``transaction``.
    """
    bind = factory.kw["bind"]
    with bind.begin() as connection:
        yield connection


#: How long the write probe of ``/readyz`` waits for SQLite's write lock.
PROBE_BUSY_MS = 250
_BUSY_MS = 10000


def writable(engine: Engine) -> bool:
    """Whether the database takes writes now, without writing anything.

    SQLite: the write lock can be taken (within ``PROBE_BUSY_MS``, not the
    ten seconds an edit waits). PostgreSQL: the session is not read-only (a
    failed-over primary, a hot standby). Any database error is a no.
    """
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            if engine.dialect.name == "sqlite":
                cursor.execute("PRAGMA busy_timeout")
                current = cursor.fetchone()
                usual = int(current[0]) if current else _BUSY_MS
                cursor.execute(f"PRAGMA busy_timeout={min(PROBE_BUSY_MS, usual)}")
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                    cursor.execute("ROLLBACK")
                finally:
                    cursor.execute(f"PRAGMA busy_timeout={usual}")
                return True
            cursor.execute("SHOW transaction_read_only")
            row = cursor.fetchone()
            raw.rollback()
            return row is not None and str(row[0]).lower() == "off"
        finally:
            cursor.close()
    except engine.dialect.loaded_dbapi.Error:
        return False
    finally:
        raw.close()


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    command.upgrade(_alembic_config(engine), "head")


def pending_migrations(engine: Engine) -> list[str]:
    """Revisions not yet applied; empty when the schema is current."""
    script = ScriptDirectory.from_config(_alembic_config(engine))
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    heads = {rev.revision for rev in script.walk_revisions()}
    applied: set[str] = set()
    for head in current:
        applied.update(rev.revision for rev in script.iterate_revisions(head, "base"))
    return sorted(heads - applied)
