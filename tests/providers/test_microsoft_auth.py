"""Microsoft single-user mode: the device code grant, the sealed msal cache, and revocation.

Every client here reaches the emulator the way a deployment reaches its
cloud: through ``authority``/``graph_root`` in the config, over https for
the sign-in, trusting the CA named by ``ca_file``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import providers
from providers.base import AuthRevoked
from providers.emulators.graph import GraphEmulator
from providers.microsoft import MicrosoftOptions, tokens
from providers.microsoft.graph import MicrosoftProvider
from providers.model import Window
from syncd import assemble, cli, secrets
from syncd.config import Settings, load

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
        f'calendars = ["{ANA}"]\ngraph_root = "{emulator.graph_root}"\n'
        f'authority = "{emulator.login_root}"\nca_file = "{emulator.ca_file}"\n{extra}',
        encoding="utf-8",
    )
    secrets.generate_key(tmp_path / "syncd.key")
    return path


def options(settings: Settings) -> MicrosoftOptions:
    found = settings.accounts[0].options
    assert isinstance(found, MicrosoftOptions)
    return found


def authorize(emulator: GraphEmulator, settings: Settings, user: str = ANA) -> str:
    """``syncd auth`` through the plugin; the person signs in before msal polls."""
    account = settings.accounts[0]
    shown: list[str] = []

    def say(message: str, url: str | None = None) -> None:
        shown.append(message)
        emulator.approve_device_code(None, user)

    done = providers.plugin("microsoft").authorize(account, assemble.setup(account, settings), say)
    assert len(shown) == 1 and "microsoft.com/devicelogin" in shown[0]
    return done.split(" as ", 1)[1].split(";", 1)[0]


def provider(settings: Settings) -> MicrosoftProvider:
    account = settings.accounts[0]
    plugin = providers.plugin("microsoft")
    made = plugin.provider(account, assemble.setup(account, settings))  # type: ignore[attr-defined]
    assert isinstance(made, MicrosoftProvider)
    return made


def cache_of(settings: Settings) -> object:
    return tokens.msal_cache(
        secrets.SealedFile(Path(options(settings).token_file), secrets.load_key(settings))
    )


def login(emulator: GraphEmulator) -> object:
    return tokens.login_session(emulator.ca_file)


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

    graph = provider(settings)
    try:
        events = [e for page in graph.changes(ANA, None, WINDOW) for e in page.events]
    finally:
        graph.close()
    assert [e.key.ical_uid for e in events] == [uid]


def test_a_delegated_token_reaches_only_its_own_mailbox(
    tmp_path: Path, emulator: GraphEmulator
) -> None:
    settings = load(write_config(tmp_path, emulator))
    authorize(emulator, settings)
    graph = provider(settings)
    try:
        with pytest.raises(AuthRevoked):
            list(graph.changes(BO, None, WINDOW))
    finally:
        graph.close()


def test_a_revoked_grant_is_auth_revoked_after_the_access_token_expires(
    tmp_path: Path, emulator: GraphEmulator
) -> None:
    settings = load(write_config(tmp_path, emulator))
    authorize(emulator, settings)
    graph = provider(settings)
    try:
        assert list(graph.changes(ANA, None, WINDOW)) is not None
        before = (tmp_path / "ana.msal-cache").read_bytes()
        # A refresh rotates the refresh token, and the sealed cache follows.
        emulator.expire_tokens()
        list(graph.changes(ANA, None, WINDOW))
        assert (tmp_path / "ana.msal-cache").read_bytes() != before

        emulator.revoke_user_grant(ANA)
        emulator.expire_tokens()
        with pytest.raises(AuthRevoked, match="invalid_grant") as caught:
            list(graph.changes(ANA, None, WINDOW))
        assert "syncd auth --account ana" in str(caught.value)
    finally:
        graph.close()


def test_msal_polls_while_the_code_is_pending(tmp_path: Path, emulator: GraphEmulator) -> None:
    settings = load(write_config(tmp_path, emulator))

    def show(message: str) -> None:
        threading.Timer(0.3, emulator.approve_device_code, (None, ANA)).start()

    username = tokens.authorize(
        options(settings).endpoints.authority,
        emulator.client_id,
        options(settings).endpoints.delegated_scopes,
        show,
        http_client=login(emulator),
        cache=cache_of(settings),
    )
    assert username == ANA
    polls = [r for r in emulator.requests if r.op == "token"]
    assert [r.status for r in polls][-2:] == [400, 200], "pending first, then the tokens"


def test_an_unknown_client_fails_in_one_line(tmp_path: Path, emulator: GraphEmulator) -> None:
    settings = load(write_config(tmp_path, emulator))
    with pytest.raises(secrets.SecretError) as caught:
        tokens.authorize(
            options(settings).endpoints.authority,
            "no-such-client",
            options(settings).endpoints.delegated_scopes,
            lambda message: None,
            http_client=login(emulator),
            cache=cache_of(settings),
        )
    assert "unauthorized_client" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_no_grant_yet_is_a_secret_error(tmp_path: Path, emulator: GraphEmulator) -> None:
    settings = load(write_config(tmp_path, emulator))
    with pytest.raises(secrets.SecretError, match="syncd auth --account ana"):
        provider(settings)


def test_cli_auth_microsoft(
    tmp_path: Path,
    emulator: GraphEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator)
    real = tokens.authorize

    def approving(*args: object, **kwargs: object) -> str:
        """The person signs in as soon as the CLI shows the code."""

        def show(message: str) -> None:
            print(message, file=sys.stderr)
            emulator.approve_device_code(None, ANA)

        return real(args[0], args[1], args[2], show, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tokens, "authorize", approving)
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
