"""Microsoft single-user mode: the device code grant, the sealed msal cache, and revocation."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.base import AuthRevoked
from providers.emulators.graph import GraphEmulator
from syncd import assemble, cli, secrets
from syncd.config import Settings, load
from providers.model import Window

ANA = "ana@example.test"
BO = "bo@example.test"
T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
WINDOW = Window(T0 - timedelta(days=1), T0 + timedelta(days=30))


@pytest.fixture
def emulator() -> Iterator[GraphEmulator]:
    with GraphEmulator([ANA, BO]) as running:
        yield running


def write_config(tmp_path: Path, emulator: GraphEmulator, extra: str = "") -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(
        '[syncd]\nkey_file = "syncd.key"\n\n'
        '[[accounts]]\nname = "ana"\nprovider = "microsoft"\nmode = "single-user"\n'
        f'tenant = "{emulator.tenant}"\nclient_id = "{emulator.client_id}"\n'
        f'calendars = ["{ANA}"]\ngraph_root = "{emulator.graph_root}"\n{extra}',
        encoding="utf-8",
    )
    secrets.generate_key(tmp_path / "syncd.key")
    return path


def authorize(emulator: GraphEmulator, settings: Settings, user: str = ANA) -> str:
    account = settings.accounts[0]
    assert account.microsoft is not None and account.microsoft.token_file is not None
    sealed = secrets.SealedFile(account.microsoft.token_file, secrets.load_key(settings))
    cache = secrets.msal_cache(sealed)
    shown: list[str] = []

    def show(message: str) -> None:
        shown.append(message)
        emulator.approve_device_code(None, user)  # the person signs in before msal polls

    username = secrets.authorize_microsoft(
        emulator.authority,
        emulator.client_id,
        show,
        http_client=emulator.http_client(),
        cache=cache,
    )
    assert secrets.save_msal_cache(sealed, cache)
    assert len(shown) == 1 and "microsoft.com/devicelogin" in shown[0]
    return username


def test_device_code_grant_then_a_provider_reads_the_persons_calendar(
    tmp_path: Path, emulator: GraphEmulator
) -> None:
    settings = load(write_config(tmp_path, emulator))
    uid = emulator.create_event(ANA, [BO], "Ana / Bo", T0, T0 + HOUR, description="notes")

    assert authorize(emulator, settings) == ANA

    cache_file = tmp_path / "ana.msal-cache"
    sealed_bytes = cache_file.read_bytes()
    assert b"refresh_token" not in sealed_bytes.lower()
    assert b"RefreshToken" not in sealed_bytes
    assert ANA.encode() not in sealed_bytes
    assert cache_file.stat().st_mode & 0o077 == 0

    provider = assemble.microsoft(
        settings.accounts[0], settings, http_client=emulator.http_client()
    )
    try:
        events = [e for page in provider.changes(ANA, None, WINDOW) for e in page.events]
    finally:
        provider.close()
    assert [e.key.ical_uid for e in events] == [uid]


def test_a_delegated_token_reaches_only_its_own_mailbox(
    tmp_path: Path, emulator: GraphEmulator
) -> None:
    settings = load(write_config(tmp_path, emulator))
    authorize(emulator, settings)
    provider = assemble.microsoft(
        settings.accounts[0], settings, http_client=emulator.http_client()
    )
    try:
        with pytest.raises(AuthRevoked):
            list(provider.changes(BO, None, WINDOW))
    finally:
        provider.close()


def test_a_revoked_grant_is_auth_revoked_after_the_access_token_expires(
    tmp_path: Path, emulator: GraphEmulator
) -> None:
    settings = load(write_config(tmp_path, emulator))
    authorize(emulator, settings)
    provider = assemble.microsoft(
        settings.accounts[0], settings, http_client=emulator.http_client()
    )
    try:
        assert list(provider.changes(ANA, None, WINDOW)) is not None
        before = (tmp_path / "ana.msal-cache").read_bytes()
        # A refresh rotates the refresh token, and the sealed cache follows.
        emulator.expire_tokens()
        list(provider.changes(ANA, None, WINDOW))
        assert (tmp_path / "ana.msal-cache").read_bytes() != before

        emulator.revoke_user_grant(ANA)
        emulator.expire_tokens()
        with pytest.raises(AuthRevoked, match="invalid_grant") as caught:
            list(provider.changes(ANA, None, WINDOW))
        assert "syncd auth microsoft --account ana" in str(caught.value)
    finally:
        provider.close()


def test_msal_polls_while_the_code_is_pending(tmp_path: Path, emulator: GraphEmulator) -> None:
    settings = load(write_config(tmp_path, emulator))
    account = settings.accounts[0]
    assert account.microsoft is not None and account.microsoft.token_file is not None
    cache = secrets.msal_cache(
        secrets.SealedFile(account.microsoft.token_file, secrets.load_key(settings))
    )

    def show(message: str) -> None:
        threading.Timer(0.3, emulator.approve_device_code, (None, ANA)).start()

    username = secrets.authorize_microsoft(
        emulator.authority,
        emulator.client_id,
        show,
        http_client=emulator.http_client(),
        cache=cache,
    )
    assert username == ANA
    polls = [r for r in emulator.requests if r.op == "token"]
    assert [r.status for r in polls][-2:] == [400, 200], "pending first, then the tokens"


def test_an_unknown_client_fails_in_one_line(tmp_path: Path, emulator: GraphEmulator) -> None:
    settings = load(write_config(tmp_path, emulator))
    account = settings.accounts[0]
    assert account.microsoft is not None and account.microsoft.token_file is not None
    cache = secrets.msal_cache(
        secrets.SealedFile(account.microsoft.token_file, secrets.load_key(settings))
    )
    with pytest.raises(secrets.SecretError) as caught:
        secrets.authorize_microsoft(
            f"https://login.microsoftonline.com/{emulator.tenant}",
            "no-such-client",
            lambda message: None,
            http_client=emulator.http_client(),
            cache=cache,
        )
    assert "unauthorized_client" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_no_grant_yet_is_a_secret_error(tmp_path: Path, emulator: GraphEmulator) -> None:
    settings = load(write_config(tmp_path, emulator))
    with pytest.raises(secrets.SecretError, match="syncd auth microsoft --account ana"):
        assemble.microsoft(settings.accounts[0], settings, http_client=emulator.http_client())


def test_cli_auth_microsoft(
    tmp_path: Path,
    emulator: GraphEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator)
    monkeypatch.setattr(cli, "_MICROSOFT_HTTP_CLIENT", emulator.http_client())
    real_show = secrets.authorize_microsoft

    def approving(*args: object, **kwargs: object) -> str:
        def show(message: str) -> None:
            print(message, file=sys.stderr)
            emulator.approve_device_code(None, ANA)

        return real_show(args[0], args[1], show, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(secrets, "authorize_microsoft", approving)
    assert cli.main(["auth", "microsoft", "-c", str(config), "--account", "ana"]) == 0
    out, err = capsys.readouterr()
    sealed_in = tmp_path / "ana.msal-cache"
    assert (
        out.strip() == f"authorized microsoft account 'ana' as {ANA}; grant sealed in {sealed_in}"
    )
    assert "devicelogin" in err


def test_cli_auth_microsoft_refuses_organization_accounts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(
        '[syncd]\nkey_file = "syncd.key"\n[[accounts]]\nname = "org"\nprovider = "microsoft"\n'
        'tenant = "t"\nclient_id = "c"\nclient_secret_file = "s"\ncalendars = ["a@x.org"]\n',
        encoding="utf-8",
    )
    assert cli.main(["auth", "microsoft", "-c", str(config), "--account", "org"]) == 2
    err = capsys.readouterr().err
    assert "organization mode" in err and len(err.strip().splitlines()) == 1
