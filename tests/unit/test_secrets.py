"""Secrets at rest: the key file, sealed files, Google grants, and the commands around them."""

from __future__ import annotations

import json
import os
import stat
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from google.oauth2.credentials import Credentials

from providers.google import grant as google_grant
from providers.google.grant import SCOPES as GOOGLE_SCOPES
from providers.google.grant import authorize as authorize_google
from providers.google.grant import load as load_google_grant
from providers.google.grant import save as save_google_grant
from syncd.cli import main
from syncd.config import Settings, parse
from syncd.secrets import (
    SealedFile,
    SecretError,
    generate_key,
    load_key,
    resolve,
)

REFRESH_TOKEN = "1//0refresh-token-that-must-never-be-printed"
CLIENT_SECRET = "GOCSPX-client-secret-never-printed"


def settings_with_key(tmp_path: Path, key_file: str = "syncd.key", extra: str = "") -> Settings:
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\nkey_file = "{key_file}"\n{extra}', encoding="utf-8")
    return parse(config.read_text(encoding="utf-8"), config)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and text
    return text


def assert_no_chained_detail(error: BaseException) -> None:
    """A traceback of the error shows no library exception that might quote the key."""
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.fixture
def credentials_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(directory))
    return directory


def grant(**overrides: object) -> Credentials:
    fields: dict[str, object] = {
        "token": "ya29.access-token",
        "refresh_token": REFRESH_TOKEN,
        "client_id": "123.apps.googleusercontent.com",
        "client_secret": CLIENT_SECRET,
        "token_uri": "https://oauth2.googleapis.com/token",
        "scopes": list(GOOGLE_SCOPES),
    }
    fields.update(overrides)
    return Credentials(**fields)  # type: ignore[no-untyped-call]


# --------------------------------------------------------------------------- the key


def test_generate_key_writes_a_private_key_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "syncd.key"
    old_umask = os.umask(0)  # even a careless umask must not widen the mode
    try:
        generate_key(path)
    finally:
        os.umask(old_umask)
    assert mode(path) == 0o600
    key = path.read_bytes()
    Fernet(key.strip())  # a usable key
    assert sorted(p.name for p in path.parent.iterdir()) == ["syncd.key"]  # no temporary left

    with pytest.raises(SecretError) as caught:
        generate_key(path)
    assert "already exists" in one_line(caught.value)
    assert path.read_bytes() == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["syncd.key"]


def test_load_key_reads_the_generated_key(tmp_path: Path, no_credentials: None) -> None:
    settings = settings_with_key(tmp_path)
    generate_key(tmp_path / "syncd.key")
    fernet = load_key(settings)
    token = Fernet((tmp_path / "syncd.key").read_bytes().strip()).encrypt(b"x")
    assert fernet.decrypt(token) == b"x"


def test_load_key_accepts_a_group_readable_key(tmp_path: Path, no_credentials: None) -> None:
    """0640 root:syncd is the usual way to let only the service's group read it."""
    generate_key(tmp_path / "syncd.key")
    (tmp_path / "syncd.key").chmod(0o640)
    load_key(settings_with_key(tmp_path))


@pytest.mark.parametrize("file_mode", [0o644, 0o604, 0o602, 0o601])
def test_load_key_refuses_a_key_others_can_access(
    tmp_path: Path, no_credentials: None, file_mode: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "syncd.key"
    generate_key(path)
    path.chmod(file_mode)
    key = path.read_text(encoding="ascii").strip()
    with pytest.raises(SecretError) as caught:
        load_key(settings_with_key(tmp_path))
    message = one_line(caught.value)
    assert message.startswith(f"{tmp_path / 'syncd.toml'}: syncd.key_file: {path}")
    assert f"mode {file_mode:04o}" in message and "chmod 600" in message
    assert key not in message and key[:20] not in message
    assert_no_chained_detail(caught.value)
    out, err = capsys.readouterr()
    assert key not in out + err


def test_load_key_without_the_setting_says_to_run_keygen(tmp_path: Path) -> None:
    settings = parse("", tmp_path / "syncd.toml")
    with pytest.raises(SecretError) as caught:
        load_key(settings)
    message = one_line(caught.value)
    assert "syncd.key_file: not set" in message and "syncd keygen" in message


def test_load_key_with_a_missing_file_says_to_run_keygen(
    tmp_path: Path, no_credentials: None
) -> None:
    with pytest.raises(SecretError) as caught:
        load_key(settings_with_key(tmp_path))
    message = one_line(caught.value)
    assert f"{tmp_path / 'syncd.key'} does not exist" in message
    assert f"syncd keygen -c {tmp_path / 'syncd.toml'}" in message


@pytest.mark.parametrize(
    "content",
    [
        b"not-a-key-but-a-secret-password-nonetheless\n",
        b"x2S2Nqf5vH3kq2ZyXk0nL2mQ7b3o9Zr8eTqYJw1uV4=\n",  # one character short
        b"\xff\xfe binary",
        b"",
    ],
)
def test_load_key_refuses_a_malformed_key_without_showing_it(
    tmp_path: Path, no_credentials: None, content: bytes
) -> None:
    path = tmp_path / "syncd.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(SecretError) as caught:
        load_key(settings_with_key(tmp_path))
    message = one_line(caught.value)
    assert "does not hold a Fernet key" in message
    shown = content.strip().decode("utf-8", "replace")
    assert not shown or shown not in message
    assert_no_chained_detail(caught.value)


def test_load_key_from_a_systemd_credential_ignores_its_mode(
    tmp_path: Path, credentials_dir: Path
) -> None:
    """systemd sets up credential files itself; their mode is not ours to judge."""
    generate_key(credentials_dir / "syncd-key")
    (credentials_dir / "syncd-key").chmod(0o644)
    load_key(settings_with_key(tmp_path, "credential:syncd-key"))


# --------------------------------------------------------------------------- resolve


def test_resolve_credential_is_the_file_in_the_credentials_directory(
    tmp_path: Path, credentials_dir: Path
) -> None:
    path = resolve("credential:google-sa", tmp_path / "etc", "k")
    assert path == credentials_dir / "google-sa"


def test_resolve_paths_are_relative_to_the_config_directory(tmp_path: Path) -> None:
    assert resolve("keys/a.key", tmp_path, "k") == tmp_path / "keys" / "a.key"
    assert resolve("/var/lib/syncd/a.key", tmp_path, "k") == Path("/var/lib/syncd/a.key")


@pytest.mark.parametrize(
    "value", ["credential:../etc/shadow", "credential:a/b", "credential:..", "credential:"]
)
def test_resolve_refuses_credential_names_that_leave_the_directory(
    tmp_path: Path, credentials_dir: Path, value: str
) -> None:
    with pytest.raises(SecretError) as caught:
        resolve(value, tmp_path, "accounts[0].service_account_file")
    assert one_line(caught.value).startswith("accounts[0].service_account_file: credential")


def test_resolve_credential_needs_the_credentials_directory(
    tmp_path: Path, no_credentials: None
) -> None:
    with pytest.raises(SecretError) as caught:
        resolve("credential:google-sa", tmp_path, "k")
    assert "$CREDENTIALS_DIRECTORY" in one_line(caught.value)


def test_resolve_refuses_an_empty_setting(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="^k: not set$"):
        resolve(" ", tmp_path, "k")


# --------------------------------------------------------------------------- sealed files


def test_sealed_file_round_trips_and_keeps_no_plaintext(tmp_path: Path) -> None:
    fernet = Fernet(Fernet.generate_key())
    path = tmp_path / "state" / "secret.sealed"
    sealed = SealedFile(path, fernet)
    assert sealed.load() is None

    sealed.save(b"the refresh token")
    assert sealed.load() == b"the refresh token"
    assert b"the refresh token" not in path.read_bytes()
    assert mode(path) == 0o600

    sealed.save(b"a newer token")
    assert SealedFile(path, fernet).load() == b"a newer token"
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret.sealed"]


def test_a_different_key_is_reported_as_a_key_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "secret.sealed"
    SealedFile(path, Fernet(Fernet.generate_key())).save(b"the refresh token")
    with pytest.raises(SecretError) as caught:
        SealedFile(path, Fernet(Fernet.generate_key())).load()
    message = one_line(caught.value)
    assert message.startswith(f"{path}: the key does not match")
    assert "refresh" not in message


def test_a_tampered_file_does_not_decrypt(tmp_path: Path) -> None:
    fernet = Fernet(Fernet.generate_key())
    path = tmp_path / "secret.sealed"
    SealedFile(path, fernet).save(b"data")
    token = bytearray(path.read_bytes())
    token[-5] ^= 1
    path.write_bytes(bytes(token))
    with pytest.raises(SecretError, match="the key does not match"):
        SealedFile(path, fernet).load()


def test_sealed_file_repr_shows_no_key(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    assert key.decode() not in repr(SealedFile(tmp_path / "s", Fernet(key)))


# --------------------------------------------------------------------------- google grants


def test_google_grant_round_trips(tmp_path: Path) -> None:
    sealed = SealedFile(tmp_path / "ana.google-grant", Fernet(Fernet.generate_key()))
    assert load_google_grant(sealed) is None

    save_google_grant(sealed, grant())
    on_disk = (tmp_path / "ana.google-grant").read_bytes()
    assert REFRESH_TOKEN.encode() not in on_disk and CLIENT_SECRET.encode() not in on_disk

    loaded = load_google_grant(sealed)
    assert isinstance(loaded, Credentials)
    assert loaded.refresh_token == REFRESH_TOKEN
    assert loaded.client_id == "123.apps.googleusercontent.com"
    assert loaded.client_secret == CLIENT_SECRET
    assert loaded.token_uri == "https://oauth2.googleapis.com/token"
    assert tuple(loaded.scopes) == GOOGLE_SCOPES
    assert loaded.token is None  # the access token is fetched again, never kept
    assert b"ya29" not in (sealed.load() or b"")


def test_a_grant_without_a_refresh_token_is_refused(tmp_path: Path) -> None:
    sealed = SealedFile(tmp_path / "g", Fernet(Fernet.generate_key()))
    with pytest.raises(SecretError, match="no refresh token"):
        save_google_grant(sealed, grant(refresh_token=None))
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[]", b'{"version": 99}', json.dumps({"version": 1, "client_id": "x"}).encode()],
)
def test_a_sealed_file_that_is_no_grant_is_refused(tmp_path: Path, content: bytes) -> None:
    sealed = SealedFile(tmp_path / "g", Fernet(Fernet.generate_key()))
    sealed.save(content)
    with pytest.raises(SecretError) as caught:
        load_google_grant(sealed)
    assert one_line(caught.value).startswith(f"{tmp_path / 'g'}: ")


def test_scopes_are_least_privilege() -> None:
    assert GOOGLE_SCOPES == ("https://www.googleapis.com/auth/calendar.events",)


def test_authorize_google_with_a_missing_client_file(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="OAuth client file not found"):
        authorize_google(tmp_path / "missing.json", lambda url: None)


def test_authorize_google_with_a_file_that_is_no_client(tmp_path: Path) -> None:
    (tmp_path / "sa.json").write_text('{"type": "service_account"}', encoding="utf-8")
    with pytest.raises(SecretError, match="not an OAuth client JSON"):
        authorize_google(tmp_path / "sa.json", lambda url: None)


# --------------------------------------------------------------------------- commands

SINGLE_USER = """
[[accounts]]
name = "ana"
provider = "google"
mode = "single-user"
client_secrets_file = "client.json"
"""
ORGANIZATION = """
[[accounts]]
name = "workspace"
provider = "google"
calendars = ["ana@example.org"]
service_account_file = "sa.json"
[[accounts]]
name = "fake"
"""


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_keygen_writes_the_key_and_prints_only_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, '[syncd]\nkey_file = "keys/syncd.key"\n')
    assert main(["keygen", "-c", str(config)]) == 0
    path = tmp_path / "keys" / "syncd.key"
    assert capsys.readouterr().out == f"{path}\n"
    assert mode(path) == 0o600

    assert main(["keygen", "-c", str(config)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "already exists" in captured.err
    assert path.read_text(encoding="ascii").strip() not in captured.err


def test_keygen_without_key_file_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "-c", str(write_config(tmp_path, ""))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("syncd: config error: ") and "syncd.key_file: not set" in err
    assert err.count("\n") == 1


def test_keygen_for_a_credential_points_at_systemd_creds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, '[syncd]\nkey_file = "credential:syncd-key"\n')
    assert main(["keygen", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "systemd-creds encrypt --name=syncd-key" in err


@pytest.mark.parametrize(
    ("account", "fragment"),
    [
        ("workspace", "accounts[0].mode: account 'workspace' is in organization mode"),
        ("fake", "accounts[1].provider: account 'fake' is a memory account"),
        ("nobody", "accounts: no account named 'nobody'"),
    ],
)
def test_auth_refuses_accounts_that_take_no_grant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], account: str, fragment: str
) -> None:
    config = write_config(tmp_path, ORGANIZATION)
    assert main(["auth", "google", "-c", str(config), "--account", account]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err
    if account == "workspace":
        assert "no per-person auth is needed" in err


def test_auth_without_a_key_fails_before_asking_anyone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object, **kwargs: object) -> Credentials:
        raise AssertionError("the browser flow must not start")

    monkeypatch.setattr(google_grant, "authorize", never)
    config = write_config(tmp_path, SINGLE_USER)
    assert main(["auth", "google", "-c", str(config), "--account", "ana"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("syncd: secret error: ") and "syncd keygen" in err
    assert err.count("\n") == 1


def test_auth_seals_the_grant_and_prints_no_token(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_credentials: None,
) -> None:
    asked: list[Path] = []

    def authorize(client_secrets: Path, open_url: object, **kwargs: object) -> Credentials:
        asked.append(client_secrets)
        return grant()

    monkeypatch.setattr(google_grant, "authorize", authorize)
    config = write_config(tmp_path, '[syncd]\nkey_file = "syncd.key"\n' + SINGLE_USER)
    (tmp_path / "client.json").write_text('{"installed": {}}')
    (tmp_path / "client.json").chmod(0o600)
    assert main(["keygen", "-c", str(config)]) == 0
    capsys.readouterr()

    assert main(["auth", "google", "-c", str(config), "--account", "ana", "--no-browser"]) == 0
    out, err = capsys.readouterr()
    assert asked == [tmp_path / "client.json"]
    assert "'ana'" in out and str(tmp_path / "ana.google-grant") in out
    assert REFRESH_TOKEN not in out + err and CLIENT_SECRET not in out + err

    settings = parse(config.read_text(encoding="utf-8"), config)
    sealed = SealedFile(tmp_path / "ana.google-grant", load_key(settings))
    loaded = load_google_grant(sealed)
    assert loaded is not None and loaded.refresh_token == REFRESH_TOKEN


# --------------------------------------------------------------------------- end to end


def test_authorize_google_against_the_emulator_yields_a_grant_that_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Consent, code exchange, sealing, and a refresh from the sealed grant alone.

    The emulator consents at once and redirects to the flow's local server,
    so a background GET stands in for the person's browser.
    """
    from google.auth.transport.requests import Request

    from providers.emulators.google import GoogleEmulator

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the emulator speaks plain http
    with GoogleEmulator(["ana@example.test"]) as emulator:
        client = tmp_path / "client.json"
        client.write_text(json.dumps(emulator.client_config()), encoding="utf-8")
        pages: list[bytes] = []
        browsers: list[threading.Thread] = []

        def browser(url: str) -> None:
            assert url.startswith(emulator.auth_uri + "?")
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
            assert query["access_type"] == "offline" and query["prompt"] == "consent"
            assert query["scope"] == " ".join(GOOGLE_SCOPES)

            def visit() -> None:
                with urllib.request.urlopen(url, timeout=10) as answer:
                    pages.append(answer.read())

            browsers.append(threading.Thread(target=visit, daemon=True))
            browsers[-1].start()

        credentials = authorize_google(client, browser, timeout_seconds=10)
        for thread in browsers:
            thread.join(timeout=10)
        assert len(pages) == 1 and b"completed" in pages[0]
        assert credentials.refresh_token and credentials.token_uri == emulator.token_uri

        sealed = SealedFile(tmp_path / "ana.google-grant", Fernet(Fernet.generate_key()))
        save_google_grant(sealed, credentials)
        restored = load_google_grant(sealed)
        assert restored is not None and restored.token is None
        restored.refresh(Request())  # type: ignore[no-untyped-call]
        assert restored.token and restored.valid

        events = urllib.request.Request(
            emulator.api_root + "calendars/primary/events",
            headers={"Authorization": f"Bearer {restored.token}"},
        )
        with urllib.request.urlopen(events, timeout=10) as answer:
            assert answer.status == 200
