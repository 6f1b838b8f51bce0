"""Secrets at rest: the key that seals them, sealed files, Google grants and msal caches.

A refresh token is as good as the person's password for their calendar, so
nothing that holds one is ever written in the clear: it goes through a
``SealedFile`` (Fernet: AES-CBC plus HMAC, so a tampered or foreign file is
refused instead of read as garbage). The key comes from a file, or from a
systemd credential, and never from the config: a config file is copied into
tickets, backups and repositories far more freely than a key file.

Every failure is one ``SecretError`` line that names the file and the fix,
like a ``ConfigError``, and none of them carries key material or a token:
these lines end up in journals that more people can read than the key.

Files are written to a temporary sibling (mode 0600 from the start, so the
secret is never readable by others even for an instant) and renamed into
place, so a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msal  # type: ignore[import-untyped]
from cryptography.fernet import Fernet, InvalidToken
from google.oauth2.credentials import Credentials

from syncd.config import CREDENTIAL_PREFIX, credential_name, credential_name_problem

if TYPE_CHECKING:
    from syncd.config import Settings

#: ``calendar.events`` reads, writes and watches events, which is all syncd
#: does. The broader ``calendar`` scope would also let a leaked token delete
#: whole calendars, change their sharing (ACLs) and settings, none of which
#: syncd needs; least privilege keeps the damage of a leak to events.
GOOGLE_SCOPES = ("https://www.googleapis.com/auth/calendar.events",)

#: A single-user Microsoft grant: read and write the person's own calendar.
#: msal adds ``openid profile offline_access`` (offline_access brings the
#: refresh token).
MICROSOFT_SCOPES = ("Calendars.ReadWrite",)

#: Bumped if the sealed grant's JSON changes shape, so an old file is refused
#: with a clear line rather than misread.
_GRANT_VERSION = 1
_CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"


class SecretError(Exception):
    """A secret cannot be found, trusted or used; ``str()`` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.splitlines()))


def resolve(value: str, settings_dir: Path, key: str) -> Path:
    """The file a secret setting names: ``credential:NAME`` or a path.

    Resolved when used, not when the config is read, because
    ``$CREDENTIALS_DIRECTORY`` exists only in the environment systemd gives
    the service; ``syncd doctor`` run from a shell must still load the config.
    """
    value = value.strip()
    name = credential_name(value)
    if name is None:
        if not value:
            raise SecretError(f"{key}: not set")
        return settings_dir / Path(value).expanduser()
    problem = credential_name_problem(name)
    if problem:
        raise SecretError(f"{key}: {problem}")
    directory = os.environ.get(_CREDENTIALS_DIRECTORY, "")
    if not directory:
        raise SecretError(
            f"{key}: {CREDENTIAL_PREFIX}{name} needs $CREDENTIALS_DIRECTORY, which systemd "
            "sets for a unit with LoadCredential=; it is not set here"
        )
    return Path(directory) / name


def refuse_shared(path: Path, mode: int, where: str, noun: str) -> None:
    """A secret that others on the machine can read is refused: it may already be theirs."""
    if mode & 0o007:
        raise SecretError(
            f"{where}: {path} is accessible to others (mode {mode & 0o777:04o}); "
            f"run `chmod 600 {path}`, and replace the {noun} if others may have read it"
        )


def read_secret(value: str, settings_dir: Path, where: str, noun: str = "secret") -> bytes:
    """The content of the secret file a setting names, if no one else can read it.

    Every credential file syncd reads (service-account JSON, client secrets,
    OAuth client files, the session secret) comes through here, so none of
    them is used while others on the machine can read it. Files systemd hands
    over in ``$CREDENTIALS_DIRECTORY`` are exempt: systemd owns their mode.
    """
    path = resolve(value, settings_dir, where)
    try:
        info = path.stat()
        if not _is_credential(path):
            refuse_shared(path, info.st_mode, where, noun)
        return path.read_bytes()
    except FileNotFoundError:
        raise SecretError(f"{where}: {path} does not exist") from None
    except OSError as exc:
        raise SecretError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None


def load_key(settings: Settings) -> Fernet:
    """The Fernet key named by ``syncd.key_file``, if it can be trusted.

    A key file others can read is refused rather than warned about: once
    another account could have copied it, every sealed secret is exposed, and
    the operator has to know now. Files under ``$CREDENTIALS_DIRECTORY`` are
    exempt because systemd owns their permissions (and reports them 0400 or
    0440 with an ACL of its own).
    """
    where = f"{settings.path}: syncd.key_file"
    keygen = f"`syncd keygen -c {settings.path}`"
    if not settings.syncd.key_file.strip():
        raise SecretError(
            f'{where}: not set; name the file for the key (e.g. key_file = "syncd.key") '
            f"and run {keygen} to create it"
        )
    path = resolve(settings.syncd.key_file, settings.directory, where)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SecretError(f"{where}: {path} does not exist; run {keygen} to create it") from None
    except OSError as exc:
        raise SecretError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    if not _is_credential(path):
        refuse_shared(path, info.st_mode, where, "key")
    try:
        text = path.read_bytes().strip()
    except OSError as exc:
        raise SecretError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        return _KeyFernet(text)
    except (ValueError, TypeError):
        # Deliberately without the exception or the text: both may show the key.
        raise SecretError(
            f"{where}: {path} does not hold a Fernet key (32 url-safe base64-encoded bytes, "
            f"as {keygen} writes)"
        ) from None


class _KeyFernet(Fernet):
    """A Fernet that keeps its key's text for ``installation_key`` (never shown)."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self._text = key

    def __repr__(self) -> str:
        return "<Fernet key>"


def installation_key(settings: Settings) -> bytes | None:
    """The key's bytes, from which this installation's identity is derived; None unset.

    The same checks as ``load_key`` (it must exist, be private and be a key):
    an identity from a key file others could swap would be no identity.
    """
    if not settings.syncd.key_file.strip():
        return None
    fernet = load_key(settings)
    assert isinstance(fernet, _KeyFernet)
    return fernet._text


def _is_credential(path: Path) -> bool:
    directory = os.environ.get(_CREDENTIALS_DIRECTORY, "")
    if not directory:
        return False
    return path.resolve().is_relative_to(Path(directory).resolve())


def generate_key(path: Path) -> None:
    """Write a new key to ``path``, which must not exist.

    Overwriting a key would make every file sealed with it unreadable, so an
    existing file is an error, checked atomically (no window in which two
    ``keygen`` runs both win).
    """
    _write_private(path, Fernet.generate_key() + b"\n", replace=False)


class SealedFile:
    """A file whose content is Fernet-encrypted with one key."""

    def __init__(self, path: Path, fernet: Fernet) -> None:
        self.path = path
        self._fernet = fernet

    def __repr__(self) -> str:  # the key must not show up in a debugger or a log
        return f"SealedFile({str(self.path)!r})"

    def save(self, data: bytes) -> None:
        _write_private(self.path, self._fernet.encrypt(data), replace=True)

    def load(self) -> bytes | None:
        """The plaintext, or ``None`` if nothing was saved yet."""
        try:
            token = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SecretError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise SecretError(
                f"{self.path}: the key does not match (the file was sealed with another key "
                "or changed since)"
            ) from None


def save_google_grant(sealed: SealedFile, credentials: Credentials) -> None:
    """Keep what refreshes a single-user grant; the access token is not kept.

    An access token lives an hour and is fetched again from the refresh
    token, so storing it would only add one more secret to leak.
    """
    if not credentials.refresh_token:
        raise SecretError(
            f"{sealed.path}: Google returned no refresh token, so the grant would stop "
            "working within an hour; remove syncd's access at "
            "https://myaccount.google.com/permissions and authorize again"
        )
    grant = {
        "version": _GRANT_VERSION,
        "refresh_token": credentials.refresh_token,
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
        "token_uri": credentials.token_uri,
        "scopes": list(credentials.scopes or GOOGLE_SCOPES),
    }
    sealed.save(json.dumps(grant).encode("utf-8"))


def load_google_grant(sealed: SealedFile) -> Credentials | None:
    """The saved grant as credentials that refresh themselves, or ``None``."""
    raw = sealed.load()
    if raw is None:
        return None
    try:
        grant = json.loads(raw)
    except ValueError:
        grant = None
    if not isinstance(grant, dict) or grant.get("version") != _GRANT_VERSION:
        raise SecretError(f"{sealed.path}: not a Google grant saved by this version of syncd")
    fields = ("refresh_token", "client_id", "client_secret", "token_uri")
    if not all(isinstance(grant.get(name), str) and grant[name] for name in fields):
        raise SecretError(f"{sealed.path}: the Google grant is incomplete; authorize again")
    scopes = grant.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise SecretError(f"{sealed.path}: the Google grant is incomplete; authorize again")
    return Credentials(  # type: ignore[no-untyped-call]
        token=None,
        refresh_token=grant["refresh_token"],
        client_id=grant["client_id"],
        client_secret=grant["client_secret"],
        token_uri=grant["token_uri"],
        scopes=scopes,
    )


def authorize_google(
    client_secrets: Path,
    open_url: Callable[[str], None],
    *,
    timeout_seconds: float | None = 600,
) -> Credentials:
    """One person's consent, through a browser and a one-shot local server.

    ``open_url`` gets the authorization URL and must return at once (a
    browser launch, a printed line, or a test's background request): the
    local server that receives Google's redirect only starts listening for
    it after ``open_url`` returns. ``access_type=offline`` and
    ``prompt=consent`` make Google send a refresh token even to a person who
    has granted access before.
    """
    from google_auth_oauthlib.flow import InstalledAppFlow, WSGITimeoutError
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error  # type: ignore[import-untyped]

    try:
        flow = InstalledAppFlow.from_client_secrets_file(
            str(client_secrets), scopes=list(GOOGLE_SCOPES)
        )
    except FileNotFoundError:
        raise SecretError(f"{client_secrets}: OAuth client file not found") from None
    except OSError as exc:
        raise SecretError(f"{client_secrets}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, KeyError):
        raise SecretError(
            f"{client_secrets}: not an OAuth client JSON for an installed (Desktop) or web app"
        ) from None

    authorization_url = flow.authorization_url

    def announce(**kwargs: object) -> tuple[str, str]:
        url, state = authorization_url(**kwargs)
        open_url(url)
        return url, state

    flow.authorization_url = announce
    try:
        with _relaxed_token_scope():
            credentials = flow.run_local_server(
                host="localhost",
                port=0,
                open_browser=False,
                authorization_prompt_message="",
                timeout_seconds=timeout_seconds,
                access_type="offline",
                prompt="consent",
            )
    except OAuth2Error as exc:
        # The error code and Google's description only; never the request.
        reason = exc.error + (f" ({exc.description})" if exc.description else "")
        raise SecretError(f"Google authorization failed: {reason}") from None
    except WSGITimeoutError:
        raise SecretError("Google authorization timed out: no answer from the browser") from None
    if not isinstance(credentials, Credentials):
        raise SecretError("Google authorization returned no user credentials")
    granted = credentials.granted_scopes
    if granted is not None and not set(GOOGLE_SCOPES) <= set(granted):
        raise SecretError(
            "Google authorization did not grant calendar event access; authorize again "
            "and leave the calendar permission checked"
        )
    return credentials


def msal_cache(sealed: SealedFile) -> Any:
    """The sealed msal token cache (a ``msal.SerializableTokenCache``), empty if none yet."""
    cache = msal.SerializableTokenCache()
    raw = sealed.load()
    if raw is None:
        return cache
    try:
        state = json.loads(raw)
    except ValueError:
        state = None
    if not isinstance(state, dict):
        raise SecretError(f"{sealed.path}: not an msal token cache saved by syncd")
    cache.deserialize(raw.decode("utf-8"))
    return cache


def save_msal_cache(sealed: SealedFile, cache: Any) -> bool:
    """Seal the cache again if msal changed it (a refresh rotates tokens); True if written."""
    if not cache.has_state_changed:
        return False
    sealed.save(str(cache.serialize()).encode("utf-8"))
    cache.has_state_changed = False
    return True


def _msal_problem(result: Any) -> str:
    """``error (first line of the description)`` of an msal error dict: no token in it."""
    if not isinstance(result, dict):
        return "no answer"
    error = str(result.get("error") or "no token in the answer")
    lines = str(result.get("error_description") or "").strip().splitlines()
    return error + (f" ({lines[0]})" if lines else "")


def authorize_microsoft(
    authority: str,
    client_id: str,
    show: Callable[[str], None],
    *,
    http_client: Any = None,
    cache: Any,
) -> str:
    """One person's delegated grant through the device authorization grant.

    ``show`` gets msal's instruction (the page and the code to enter there)
    and must return at once; msal then polls the token endpoint at the
    interval the identity platform asked for until the person has signed in,
    declined, or the code ran out. The tokens land in ``cache`` (seal it with
    ``save_msal_cache``); other people's accounts are dropped from it, so the
    cache holds exactly one account. Returns the signed-in username.
    """
    try:
        app = msal.PublicClientApplication(
            client_id, authority=authority, http_client=http_client, token_cache=cache
        )
        flow = app.initiate_device_flow(scopes=list(MICROSOFT_SCOPES))
    except ValueError as error:
        # msal's word for an authority that answered 4xx (unknown tenant) or non-JSON.
        first = (str(error).splitlines() or [""])[0]
        raise SecretError(f"Microsoft sign-in could not start: {authority}: {first}") from None
    except Exception as error:
        raise SecretError(
            f"Microsoft sign-in could not start: {type(error).__name__} talking to {authority}"
        ) from None
    if not isinstance(flow, dict) or "user_code" not in flow:
        raise SecretError(f"Microsoft sign-in could not start: {_msal_problem(flow)}")
    show(str(flow.get("message") or f"enter {flow['user_code']} at {flow['verification_uri']}"))
    try:
        result = app.acquire_token_by_device_flow(flow)
    except Exception as error:
        raise SecretError(
            f"Microsoft sign-in failed: {type(error).__name__} talking to {authority}"
        ) from None
    if not isinstance(result, dict) or "access_token" not in result:
        raise SecretError(f"Microsoft sign-in failed: {_msal_problem(result)}")
    claims = result.get("id_token_claims") or {}
    username = str(claims.get("preferred_username") or claims.get("upn") or "")
    accounts = app.get_accounts()
    mine = [a for a in accounts if username and a.get("username") == username]
    if not mine or "refresh_token" not in result:
        raise SecretError(
            "Microsoft sign-in returned no account or no refresh token, so the grant could not "
            "be kept; check that the app registration allows public client flows"
        )
    for account in accounts:
        if account not in mine:
            app.remove_account(account)
    return username


@contextlib.contextmanager
def _relaxed_token_scope() -> Iterator[None]:
    """Let oauthlib accept a grant whose scopes differ from the request.

    Google adds scopes granted earlier and lets people uncheck ones asked
    for; oauthlib would raise a bare ``Warning`` and drop the token either
    way. ``authorize_google`` checks the granted scopes itself instead, and
    can say what is missing.
    """
    name = "OAUTHLIB_RELAX_TOKEN_SCOPE"
    before = os.environ.get(name)
    os.environ[name] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _write_private(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only."""
    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise SecretError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            # link() fails if the name exists, unlike rename(): no overwrite race.
            os.link(temporary, path)
    except FileExistsError:
        raise SecretError(f"{path}: already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise SecretError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    _sync_directory(directory)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable; best effort where directories cannot be opened."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
