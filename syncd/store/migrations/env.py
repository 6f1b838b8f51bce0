"""Alembic environment: always run against the engine syncd hands over.

On PostgreSQL several processes (workers started together by systemd, web
replicas) may migrate one database at the same moment; a transaction-scoped
advisory lock makes them take turns, so the later ones find the schema
current instead of racing to create the same tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from syncd.store.models import Base

#: Any fixed number: the advisory lock that guards syncd's migrations.
MIGRATION_LOCK = 0x5F1CD

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
