"""An installation's identity: from its key, stable across databases, distinct between keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from syncd import assemble, installation
from syncd.config import parse


def settings_with(tmp_path: Path, key: bytes | None, base_url: str = "https://a.example.org"):
    lines = ["[syncd]", f'base_url = "{base_url}"']
    if key is not None:
        (tmp_path / "syncd.key").write_bytes(key + b"\n")
        (tmp_path / "syncd.key").chmod(0o600)
        lines.append('key_file = "syncd.key"')
    return parse("\n".join(lines) + "\n", tmp_path / "syncd.toml")


def test_the_identity_comes_from_the_key_and_survives_a_new_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    key = Fernet.generate_key()
    one = assemble.policy(settings_with(tmp_path, key)).installation
    # the same key on another machine, with another database and another address
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = assemble.policy(settings_with(elsewhere, key, "https://b.example.org")).installation
    assert one == again
    assert re_shape(one)

    other = tmp_path / "other"
    other.mkdir()
    assert assemble.policy(settings_with(other, Fernet.generate_key())).installation != one


def test_without_a_key_the_identity_comes_from_the_base_url(tmp_path: Path) -> None:
    first = assemble.policy(settings_with(tmp_path, None, "https://a.example.org")).installation
    same = assemble.policy(settings_with(tmp_path, None, "https://a.example.org/")).installation
    other = assemble.policy(settings_with(tmp_path, None, "https://b.example.org")).installation
    assert first == same != other


def re_shape(value: str) -> bool:
    return value.startswith("s") and len(value) == 17 and value.isalnum() and value.islower()


def test_tags_name_their_installation_and_old_bare_tokens_are_read_as_ours() -> None:
    tag = installation.tag("sabc", "TOKEN_with-chars")
    assert installation.parse_tag(tag) == ("sabc", "TOKEN_with-chars")
    assert installation.parse_tag("TOKEN_with-chars") == (None, "TOKEN_with-chars")
    assert installation.parse_tag(None) == (None, None)
    assert installation.parse_tag("") == (None, None)
