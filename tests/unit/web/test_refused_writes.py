"""An edit the database refuses loses nothing: the form comes back holding what was typed.

The refusal is real: another connection holds SQLite's write lock (as a
long backup or a second process can), so the edit's transaction times out
with "database is locked". The engine's busy timeout is cut from ten
seconds to a fraction of one, only so that the test does not wait.
"""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from syncd.web.service import Agendas
from tests.unit.web.conftest import Browser, Org

TYPED = "Ask about the Q3 offsite <and> the budget ✓"


@pytest.fixture
def locked(org: Org, db_engine: Engine) -> Iterator[sqlite3.Connection]:
    """A second connection holding the write lock; released when the test ends."""
    if db_engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write lock; PostgreSQL edits lock rows, not the database")

    def impatient(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=200")

    db_engine.dispose()  # new connections, each with the short timeout
    event.listen(db_engine, "connect", impatient)
    holder = sqlite3.connect(str(db_engine.url.database), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield holder
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        event.remove(db_engine, "connect", impatient)


def test_a_refused_edit_comes_back_with_the_typed_text_and_saves_once_the_lock_is_gone(
    org: Org, locked: sqlite3.Connection
) -> None:
    meeting, _ = org.tokens(0)
    app = org.app()
    bo = Browser(app, "bo@example.org")
    csrf = bo.csrf(f"/m/{meeting}")

    page = bo.client.post(
        f"/m/{meeting}/talking-points", data={"text": TYPED, "csrf": csrf}, follow_redirects=False
    )

    assert page.status_code == 503
    assert page.headers["Retry-After"] == "5"
    assert "Not saved yet" in page.text and "try again" in page.text
    assert ">Talking point</label>" in page.text
    # the form again, posting to the same place, holding exactly what was typed
    assert f'action="/m/{meeting}/talking-points"' in page.text
    assert f">\n{html.escape(TYPED)}</textarea>" in page.text
    assert page.text.count('name="csrf"') == page.text.count("<form")

    answer = bo.api("POST", f"/api/v1/meetings/{meeting}/talking-points", {"text": TYPED})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.json()["error"]

    ready = bo.get("/readyz")
    assert ready.status_code == 503 and ready.json()["reason"] == "database refuses writes"

    locked.execute("ROLLBACK")  # the other writer is done

    assert bo.get("/readyz").status_code == 200
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    again = bo.client.post(
        f"/m/{meeting}/talking-points", data={**fields, "text": TYPED}, follow_redirects=False
    )
    assert again.status_code == 303
    points = bo.get(f"/api/v1/meetings/{meeting}").json()["talking_points"]
    assert [p["text"] for p in points].count(TYPED) == 1


def test_on_postgresql_an_edit_behind_a_held_row_lock_gives_up_and_keeps_the_text(
    org: Org, db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row another transaction holds (a long migration, a stuck worker) must not hang the page."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's row locks; SQLite's database lock is tested above")
    monkeypatch.setattr(Agendas, "lock_wait_seconds", 0.3)  # instead of ten seconds
    meeting, _ = org.tokens(0)
    bo = Browser(org.app(), "bo@example.org")
    csrf = bo.csrf(f"/m/{meeting}")
    with db_engine.connect() as holder:
        holder.execute(text("SELECT id FROM meetings WHERE token = :t FOR UPDATE"), {"t": meeting})
        page = bo.client.post(
            f"/m/{meeting}/talking-points",
            data={"text": TYPED, "csrf": csrf},
            follow_redirects=False,
        )
        holder.rollback()
    assert page.status_code == 503
    assert f">\n{html.escape(TYPED)}</textarea>" in page.text
