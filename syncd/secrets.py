"""Secrets at rest: the key that seals them, sealed files, and the secret files settings name.

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
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken

from providers.base import SetupError
from providers.options import CREDENTIAL_PREFIX, credential_name, credential_name_problem

if TYPE_CHECKING:
    from syncd.config import Settings

_CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"


#: A secret cannot be found, trusted or used; ``str()`` is one line. The same
#: class as the providers' ``SetupError``: a plugin reading its secrets through
#: ``AccountSecrets`` fails the same way syncd does.
SecretError = SetupError


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


class AccountSecrets:
    """The ``providers.base.Secrets`` one account's plugin gets: files read with syncd's rules."""

    def __init__(self, settings: Settings, where: str) -> None:
        self._settings = settings
        self._where = where

    def read(self, key: str, value: str, noun: str = "secret") -> bytes:
        where = f"{self._where}.{key}"
        return read_secret(value, self._settings.directory, where, noun)

    def path(self, key: str, value: str) -> Path:
        return resolve(value, self._settings.directory, f"{self._where}.{key}")

    def sealed(self, path: str) -> SealedFile:
        return SealedFile(Path(path), load_key(self._settings))
