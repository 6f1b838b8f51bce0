"""The store: migrations match the models, times round-trip, transactions roll back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select

from syncd.store import migrate, pending_migrations, sessions, transaction
from syncd.store.models import Base, Calendar, Pair


def test_migrations_create_exactly_the_schema_the_models_describe(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert pending_migrations(db_engine) == []


def test_migrate_is_idempotent(db_engine: Engine) -> None:
    migrate(db_engine)
    assert pending_migrations(db_engine) == []


def test_times_come_back_aware_utc_on_every_backend(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    berlin_noon = datetime(2026, 11, 24, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    with transaction(factory) as session:
        session.add(Pair(person_a="a@x", person_b="b@x", token="t1", created_at=berlin_noon))
    with transaction(factory) as session:
        pair = session.scalars(select(Pair)).one()
        assert pair.created_at == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
        assert pair.created_at.tzinfo is UTC


def test_naive_times_are_refused(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    with pytest.raises(Exception, match="naive"), transaction(factory) as session:
        session.add(
            Pair(person_a="a@x", person_b="b@x", token="t", created_at=datetime(2026, 1, 1))
        )
        session.flush()


def test_a_failed_transaction_leaves_nothing_behind(db_engine: Engine) -> None:
    factory = sessions(db_engine)
    with pytest.raises(RuntimeError), transaction(factory) as session:
        session.add(Calendar(account="a", provider="memory", address="ana@example.org"))
        session.flush()
        raise RuntimeError("crash mid-transaction")
    with transaction(factory) as session:
        assert session.scalars(select(Calendar)).all() == []
