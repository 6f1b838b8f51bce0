"""`syncd status`: what an operator reads about each calendar, from the database alone."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from providers.base import AuthRevoked, ProviderError
from syncd import config, status
from syncd.cli import main
from syncd.store import connect, migrate, transaction
from syncd.store.models import Calendar, PushChannel
from tests.conftest import POSTGRES_URL
from tests.unit.world import ANA, BO, CY, MONDAY, World


def database_url(engine: Engine) -> str:
    """A URL that reaches the same database (and, on PostgreSQL, the test's schema)."""
    if engine.dialect.name == "sqlite":
        return engine.url.render_as_string(hide_password=False)
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def write_config(tmp_path: Path, database: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[syncd]\ndatabase = "{database}"\n'
        "[[accounts]]\n"
        'name = "acme"\n'
        f'calendars = ["{ANA}", "{BO}", "{CY}"]\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def world(db_engine: Engine) -> World:
    return World(db_engine)


@pytest.fixture
def settings(db_engine: Engine, tmp_path: Path) -> config.Settings:
    return config.load(write_config(tmp_path, database_url(db_engine)))


def row_of(table: str, calendar: str) -> str:
    return next(line for line in table.splitlines() if f" {calendar} " in line)


def test_each_calendar_shows_last_sync_cursor_push_and_next_due(
    world: World, settings: config.Settings
) -> None:
    world.syncer.sync(ANA, world.now)
    with transaction(world.factory) as session:
        ana = session.query(Calendar).filter_by(address=ANA).one()
        session.add(
            PushChannel(
                calendar_id=ana.id,
                channel_id="ch-1",
                resource_id="r-1",
                token_digest="0" * 64,
                expires=world.now + timedelta(days=6),
                created_at=world.now,
            )
        )
    later = world.now + timedelta(minutes=3)

    calendars = status.collect(settings, later)
    table = status.format_table(calendars, later)

    assert [c.calendar for c in calendars] == [ANA, BO, CY]  # BO, CY: configured, never synced
    assert row_of(table, ANA).split()[2:9] == ["3m", "ago", "3m", "expires", "in", "5d", "in"]
    assert "never" in row_of(table, BO) and "polling" in row_of(table, BO)
    assert "RE-AUTH" not in table
    assert status.exit_status(calendars) == 0


def test_a_calendar_whose_grant_was_revoked_is_flagged_and_exits_1(
    world: World, settings: config.Settings
) -> None:
    world.provider.faults.fail("changes", AuthRevoked("invalid_grant"))
    world.sync()

    calendars = status.collect(settings, world.now)
    table = status.format_table(calendars, world.now)

    flagged = [line for line in table.splitlines() if "RE-AUTH" in line]
    assert len(flagged) == 1 and f" {ANA} " in flagged[0]
    assert "AuthRevoked: invalid_grant" in flagged[0]
    assert "never" in flagged[0]  # never due until someone re-authorises
    assert status.exit_status(calendars) == 1


def test_one_failed_sync_is_shown_but_only_a_streak_exits_1(
    world: World, settings: config.Settings
) -> None:
    world.provider.faults.fail("changes", ProviderError("HTTP 400 badRequest: bad window"))
    world.syncer.sync(BO, world.now)

    once = status.collect(settings, world.now)
    assert "ProviderError: HTTP 400 badRequest" in row_of(status.format_table(once, world.now), BO)
    assert status.exit_status(once) == 0

    for _ in range(status.ERROR_STREAK - 1):
        world.provider.faults.fail("changes", ProviderError("HTTP 400 badRequest: bad window"))
        world.syncer.sync(BO, world.now)
    streak = status.collect(settings, world.now)
    assert f"{status.ERROR_STREAK}x ProviderError" in row_of(
        status.format_table(streak, world.now), BO
    )
    assert status.exit_status(streak) == 1

    world.syncer.sync(BO, world.now)  # it recovers: the streak is over
    assert status.exit_status(status.collect(settings, world.now)) == 0


def test_a_1on1_ending_before_the_next_poll_makes_its_calendar_due_at_its_end(
    world: World, settings: config.Settings
) -> None:
    end = world.now + timedelta(minutes=1)
    world.provider.create_event(ANA, [ANA, BO], "Ana / Bo", end - timedelta(minutes=30), end)
    world.syncer.sync(ANA, world.now)

    (ana,) = [c for c in status.collect(settings, world.now) if c.calendar == ANA]
    assert ana.next_due == end


def test_json_is_a_machine_readable_list_with_the_same_exit_status(
    world: World, settings: config.Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    world.provider.faults.fail("changes", AuthRevoked("invalid_grant"))
    world.syncer.sync(ANA, world.now)
    world.syncer.sync(BO, world.now)

    assert main(["status", "--json", "-c", str(settings.path)]) == 1

    listed = {entry["calendar"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert set(listed) == {ANA, BO, CY}
    assert listed[ANA]["needs_reauth"] is True and listed[ANA]["next_due"] is None
    assert listed[ANA]["last_error"] == "AuthRevoked: invalid_grant"
    assert listed[BO]["last_sync"] is not None and listed[BO]["polling_only"] is True
    assert listed[CY]["last_sync"] is None


def test_an_unmigrated_database_is_one_line_exit_2_and_stays_unmigrated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.db"
    with connect(f"sqlite:///{empty}").begin() as conn:
        conn.execute(text("CREATE TABLE unrelated (x INTEGER)"))

    assert main(["status", "-c", str(write_config(tmp_path, f"sqlite:///{empty}"))]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no syncd schema yet; run `syncd migrate`" in err
    assert inspect(connect(f"sqlite:///{empty}")).get_table_names() == ["unrelated"]


def test_a_missing_database_file_is_reported_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.db"
    assert main(["status", "-c", str(write_config(tmp_path, f"sqlite:///{missing}"))]) == 2
    assert "does not exist yet; run `syncd migrate`" in capsys.readouterr().err
    assert not missing.exists()


def test_a_database_from_a_newer_syncd_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    engine = connect(url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    assert main(["status", "-c", str(write_config(tmp_path, url))]) == 2
    assert "revision 9999, which this syncd does not know" in capsys.readouterr().err


def test_an_unreachable_database_is_one_line_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    url = f"postgresql+psycopg://syncd:hunter2@127.0.0.1:{port}/syncd"

    assert main(["status", "-c", str(write_config(tmp_path, url))]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err
    assert "hunter2" not in err


def test_an_empty_installation_says_so(db_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text(f'[syncd]\ndatabase = "{database_url(db_engine)}"\n', encoding="utf-8")
    calendars = status.collect(config.load(path), MONDAY)
    assert calendars == []
    assert status.format_table(calendars, MONDAY).startswith("no calendars yet")
