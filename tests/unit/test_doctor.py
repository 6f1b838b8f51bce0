"""`syncd doctor`: each check one line, ok / warn / FAIL, and exit 1 on any FAIL."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from sqlalchemy import text

from providers.emulators.google import GoogleEmulator
from providers.google import GoogleOptions
from syncd import config, doctor, installation
from syncd.cli import main
from syncd.store import MIGRATIONS, connect, migrate

ANA, BO = "ana@example.test", "bo@example.test"


def setup(tmp_path: Path, extra: str = "", *, key_mode: int = 0o600, migrated: bool = True) -> Path:
    """A memory-provider installation: config, key file and (migrated) database."""
    key = tmp_path / "secrets.key"
    key.write_bytes(Fernet.generate_key() + b"\n")
    key.chmod(key_mode)
    database = tmp_path / "syncd.db"
    engine = connect(f"sqlite:///{database}")
    if migrated:
        migrate(engine)
    else:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE unrelated (x INTEGER)"))
    engine.dispose()
    path = tmp_path / "syncd.toml"
    path.write_text(
        "[syncd]\n"
        'database = "sqlite:///syncd.db"\n'
        'base_url = "https://agenda.example.org"\n'
        'key_file = "secrets.key"\n'
        "[[accounts]]\n"
        'name = "acme"\n'
        f'calendars = ["{ANA}"]\n' + extra,
        encoding="utf-8",
    )
    return path


def doctor_says(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    """Exit status, and each check's line by its name."""
    status = main(["doctor", "-c", str(path)])
    lines = capsys.readouterr().out.splitlines()
    by_name: dict[str, str] = {}
    for line in lines:
        level, rest = line.split(None, 1)
        assert level in ("ok", "warn", "FAIL"), line
        by_name[rest.partition(": ")[0]] = line
    return status, by_name


def test_a_sound_installation_is_all_ok_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines = doctor_says(setup(tmp_path), capsys)

    assert status == 0
    assert set(lines) == {
        "config",
        "key file",
        "installation",
        "secret files",
        "template",
        "database",
        "migrations",
        "base_url",
        "account acme",
    }
    assert all(line.startswith("ok") for line in lines.values()), lines


def test_a_key_file_others_can_read_fails_naming_the_file_and_the_rest_still_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = setup(tmp_path, key_mode=0o644)
    key = (tmp_path / "secrets.key").read_text(encoding="ascii").strip()

    status, lines = doctor_says(path, capsys)

    assert status == 1
    assert lines["key file"].startswith("FAIL")
    assert str(tmp_path / "secrets.key") in lines["key file"] and "0644" in lines["key file"]
    assert lines["migrations"].startswith("ok") and lines["account acme"].startswith("ok")
    assert key not in "\n".join(lines.values())


def test_the_bundled_template_is_checked_and_a_missing_one_fails_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines = doctor_says(setup(tmp_path), capsys)
    assert status == 0
    assert lines["template"].startswith("ok")
    assert (
        "6 talking points" in lines["template"]
        and str(config.BUNDLED_TEMPLATE) in lines["template"]
    )

    path = setup(tmp_path)
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            'key_file = "secrets.key"\n', 'key_file = "secrets.key"\ntemplate = "nowhere.md"\n'
        ),
        encoding="utf-8",
    )
    status, lines = doctor_says(path, capsys)
    assert status == 1
    assert lines["template"].startswith("FAIL")
    assert str(tmp_path / "nowhere.md") in lines["template"]
    assert lines["database"].startswith("ok")


def test_a_group_readable_key_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines = doctor_says(setup(tmp_path, key_mode=0o640), capsys)
    assert status == 0 and lines["key file"].startswith("warn")
    assert "readable by its group (mode 0640)" in lines["key file"]


def test_a_missing_key_file_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = setup(tmp_path)
    (tmp_path / "secrets.key").unlink()
    status, lines = doctor_says(path, capsys)
    assert status == 1 and "syncd keygen" in lines["key file"]


def test_a_systemd_credential_key_is_checked_only_where_systemd_provides_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = setup(tmp_path)
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            'key_file = "secrets.key"', 'key_file = "credential:syncd-key"'
        ),
        encoding="utf-8",
    )
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    status, lines = doctor_says(path, capsys)
    assert status == 0 and lines["key file"].startswith("warn")
    assert "LoadCredential=" in lines["key file"]

    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (tmp_path / "secrets.key").rename(credentials / "syncd-key")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    status, lines = doctor_says(path, capsys)
    assert status == 0 and lines["key file"].startswith("ok")


def test_an_unmigrated_database_is_a_failure_that_says_run_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines = doctor_says(setup(tmp_path, migrated=False), capsys)
    assert status == 1
    assert lines["database"].startswith("ok")
    assert lines["migrations"].startswith("FAIL") and "run `syncd migrate`" in lines["migrations"]


def test_a_database_behind_the_code_says_run_migrate_and_migrate_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = setup(tmp_path, migrated=False)
    engine = connect(f"sqlite:///{tmp_path / 'syncd.db'}")
    first = ScriptDirectory(str(MIGRATIONS)).get_base()
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS))
    alembic.attributes["engine"] = engine
    command.upgrade(alembic, first)  # an older syncd's schema
    engine.dispose()

    status, lines = doctor_says(path, capsys)
    assert status == 1
    assert f"at revision {first}, behind" in lines["migrations"]
    assert "run `syncd migrate`" in lines["migrations"]

    assert main(["migrate", "-c", str(path)]) == 0
    capsys.readouterr()
    status, lines = doctor_says(path, capsys)
    assert status == 0 and lines["migrations"].startswith("ok")


def test_a_missing_sqlite_file_is_a_warning_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = setup(tmp_path)
    (tmp_path / "syncd.db").unlink()
    status, lines = doctor_says(path, capsys)
    assert status == 0 and lines["database"].startswith("warn")
    assert "migrations" not in lines and not (tmp_path / "syncd.db").exists()


def test_an_unreachable_database_fails_without_showing_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = setup(tmp_path)
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "sqlite:///syncd.db", f"postgresql+psycopg://syncd:hunter2@127.0.0.1:{port}/syncd"
        ),
        encoding="utf-8",
    )
    status, lines = doctor_says(path, capsys)
    assert status == 1 and lines["database"].startswith("FAIL")
    assert f"127.0.0.1:{port}" in lines["database"]
    assert "hunter2" not in "\n".join(lines.values())


def test_an_http_webhook_url_fails_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text(
        "[[accounts]]\n"
        'name = "acme"\nprovider = "google"\n'
        f'calendars = ["{ANA}"]\nservice_account_file = "sa.json"\n'
        'webhook_url = "http://syncd.example.org/hooks/google"\n',
        encoding="utf-8",
    )
    status, lines = doctor_says(path, capsys)
    assert status == 1
    assert lines["config"].startswith("FAIL") and "accounts[0].webhook_url" in lines["config"]


@pytest.mark.parametrize(
    ("url", "level"),
    [
        ("https://syncd.example.org/hooks/google", doctor.Level.OK),
        ("http://localhost:8080/hooks/google", doctor.Level.WARN),
        ("http://syncd.example.org/hooks/google", doctor.Level.FAIL),
        ("", doctor.Level.OK),
    ],
)
def test_webhook_urls_must_be_https_except_on_localhost(url: str, level: doctor.Level) -> None:
    # Unvalidated on purpose: the config refuses plain http off this machine itself.
    options = GoogleOptions.model_construct(webhook_url=url)
    account = config.Account(name="acme", provider="google", options=options)
    check = doctor.webhook(account, 0)
    assert check is not None and check.level is level


@pytest.mark.parametrize(
    ("url", "level"),
    [
        ("https://agenda.example.org", doctor.Level.OK),
        ("http://localhost:8080", doctor.Level.OK),
        ("http://agenda.example.org", doctor.Level.WARN),
    ],
)
def test_base_url_should_be_https(url: str, level: doctor.Level) -> None:
    settings = config.parse(f'[syncd]\nbase_url = "{url}"\n', "syncd.toml")
    assert doctor.base_url(settings).level is level


@pytest.fixture
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator([ANA, BO]) as running:
        yield running


def google_account(name: str, calendar: str, emulator: GoogleEmulator) -> str:
    return (
        f'[[accounts]]\nname = "{name}"\nprovider = "google"\n'
        f'calendars = ["{calendar}"]\nservice_account_file = "sa.json"\n'
        f'api_root = "{emulator.api_root}"\n'
    )


def test_each_google_account_is_read_once_and_a_failing_one_does_not_stop_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], emulator: GoogleEmulator
) -> None:
    (tmp_path / "sa.json").write_text(json.dumps(emulator.service_account_info()))
    (tmp_path / "sa.json").chmod(0o600)
    emulator.revoke(BO)  # delegation for bo is withdrawn: invalid_grant
    path = setup(
        tmp_path,
        google_account("revoked", BO, emulator) + google_account("workspace", ANA, emulator),
    )

    status, lines = doctor_says(path, capsys)

    assert status == 1
    assert lines["account revoked"].startswith("FAIL")
    assert "AuthRevoked" in lines["account revoked"] and BO in lines["account revoked"]
    assert lines["account workspace"].startswith("ok") and ANA in lines["account workspace"]
    assert lines["account acme"].startswith("ok")  # the memory account after them, too
    listed = [r for r in emulator.requests if r.op == "list" and r.user == ANA]
    assert len(listed) == 1  # one cheap read: the first page over a tiny window
    assert {"timeMin", "timeMax"} <= set(listed[0].query)
    private_key = emulator.service_account_info()["private_key"].splitlines()[1]
    assert private_key not in "\n".join(lines.values())


@pytest.mark.parametrize(
    ("mode", "level", "said"),
    [
        (0o644, "FAIL", "accessible to others (mode 0644"),
        (0o640, "warn", "readable by its group (mode 0640)"),
        (0o600, "ok", "readable by their owner only"),
    ],
)
def test_a_service_account_key_others_can_read_fails_in_doctor_and_stops_the_daemon(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    emulator: GoogleEmulator,
    mode: int,
    level: str,
    said: str,
) -> None:
    """The key acts for every person in the domain: a copy elsewhere is a breach."""
    key = tmp_path / "sa.json"
    key.write_text(json.dumps(emulator.service_account_info()))
    key.chmod(mode)
    path = setup(tmp_path, google_account("workspace", ANA, emulator))

    status, lines = doctor_says(path, capsys)
    assert lines["secret files"].startswith(level), lines["secret files"]
    assert said in lines["secret files"]
    if level != "ok":  # the line names the setting and the file to fix
        assert str(key) in lines["secret files"]
        assert "accounts[1].service_account_file" in lines["secret files"]

    once = main(["sync-once", "-c", str(path)])
    err = capsys.readouterr().err
    if level == "FAIL":
        assert status == 1 and once == 2
        assert err.count("\n") == 1 and str(key) in err and "0644" in err
        assert not [r for r in emulator.requests if r.op == "list"]
    else:
        assert status == 0 and once == 0, err


def test_a_service_account_credential_is_not_probed_outside_the_service(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    emulator: GoogleEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    account = google_account("workspace", ANA, emulator).replace(
        '"sa.json"', '"credential:google-sa"'
    )
    status, lines = doctor_says(setup(tmp_path, account), capsys)
    assert status == 0
    assert lines["account workspace"].startswith("warn")
    assert "credential:google-sa" in lines["account workspace"]
    assert not emulator.requests


def test_a_directory_that_cannot_be_listed_fails_even_when_calendars_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], emulator: GoogleEmulator
) -> None:
    (tmp_path / "sa.json").write_text(json.dumps(emulator.service_account_info()))
    (tmp_path / "sa.json").chmod(0o600)
    account = google_account("workspace", ANA, emulator)
    path = setup(
        tmp_path, account + f'directory = true\ndirectory_admin = "{BO}"\n'
    )  # bo is no administrator: users.list answers 403

    status, lines = doctor_says(path, capsys)

    assert status == 1
    assert lines["account workspace"].startswith("FAIL")
    assert "directory" in lines["account workspace"]


def test_the_installation_identity_comes_from_the_key_and_without_one_doctor_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = setup(tmp_path)
    key = (tmp_path / "secrets.key").read_bytes()
    status, lines = doctor_says(path, capsys)
    assert status == 0 and lines["installation"].startswith("ok")
    assert installation.identity(key, "https://agenda.example.org") in lines["installation"]

    path.write_text(
        path.read_text(encoding="utf-8").replace('key_file = "secrets.key"\n', ""),
        encoding="utf-8",
    )
    status, lines = doctor_says(path, capsys)
    assert status == 0 and lines["installation"].startswith("warn")
    assert "from base_url" in lines["installation"] and "syncd keygen" in lines["installation"]
