"""Fixtures shared by every test package: a migrated store on each backend.

Store-backed tests run on SQLite always, and also on PostgreSQL when
``SYNCD_TEST_POSTGRES_URL`` names a server (``.ci/run`` starts one), each test
in a fresh schema of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from syncd.store import connect, migrate
from tests.providers.caldav_servers import Server, radicale, xandikos

POSTGRES_URL = os.environ.get("SYNCD_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


@pytest.fixture(params=BACKENDS)
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = connect(f"sqlite:///{tmp_path / 'syncd.db'}")
        migrate(engine)
        yield engine
        engine.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = connect(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = connect(POSTGRES_URL, schema=schema)
    migrate(engine)
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def radicale_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Radicale from PyPI on a free loopback port, with its own storage and service user."""
    with radicale(tmp_path_factory.mktemp("radicale")) as server:
        yield server


@pytest.fixture(scope="session")
def xandikos_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Xandikos from PyPI over https (its own certificate), with its own storage and user."""
    with xandikos(tmp_path_factory.mktemp("xandikos")) as server:
        yield server


@pytest.fixture(params=["radicale", "xandikos"])
def caldav_server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(f"{request.param}_server")
