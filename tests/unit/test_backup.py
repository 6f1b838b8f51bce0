"""``syncd backup``: a consistent, private copy of the live database that opens on its own."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from syncd.cli import main
from syncd.store import connect, migrate, sessions, transaction
from syncd.store.models import Pair


def write_config(tmp_path: Path, database: str = "sqlite:///syncd.db") -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(f'[syncd]\ndatabase = "{database}"\n', encoding="utf-8")
    return path


def test_a_backup_taken_while_the_daemon_writes_is_whole_private_and_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'syncd.db'}")
    migrate(engine)
    factory = sessions(engine)
    stop = threading.Event()

    def keep_writing() -> None:  # the daemon, busy while the backup runs
        n = 0
        while not stop.is_set():
            with transaction(factory) as session:
                session.add(
                    Pair(
                        person_a=f"a{n}@x.org",
                        person_b=f"b{n}@x.org",
                        token=f"t{n}",
                        created_at=datetime.now(UTC),
                    )
                )
            n += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        target = tmp_path / "backups" / "syncd-copy.db"
        target.parent.mkdir()
        status = main(["backup", "-c", str(write_config(tmp_path)), str(target)])
    finally:
        stop.set()
        writer.join()
    engine.dispose()

    assert status == 0, capsys.readouterr().err
    assert "backed up" in capsys.readouterr().out
    assert target.stat().st_mode & 0o777 == 0o600
    copy = sqlite3.connect(target)
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    copied = copy.execute("SELECT count(*) FROM pairs").fetchone()[0]
    copy.close()
    restored = connect(f"sqlite:///{target}")
    with transaction(sessions(restored)) as session:
        assert session.scalar(select(func.count()).select_from(Pair)) == copied
    restored.dispose()


def test_backup_refuses_to_overwrite_and_names_pg_dump_for_postgresql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'syncd.db'}")
    migrate(engine)
    engine.dispose()
    existing = tmp_path / "old.db"
    existing.write_text("keep me")
    assert main(["backup", "-c", str(write_config(tmp_path)), str(existing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists" in err
    assert existing.read_text() == "keep me"

    postgres = write_config(tmp_path, "postgresql+psycopg://syncd@db.example.org/syncd")
    assert main(["backup", "-c", str(postgres), str(tmp_path / "new.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pg_dump" in err
    assert not (tmp_path / "new.db").exists()
