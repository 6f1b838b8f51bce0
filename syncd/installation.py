"""Which syncd installation wrote a block: an identity that survives losing the database.

Two installations can watch the same calendars (a test instance beside
production, a second team's deployment, a restore next to the original).
Each must leave the other's blocks alone, or they overwrite each other's
links on every pass and, on Outlook, mail every attendee each time. So
every block syncd writes carries, in the event's hidden property, a tag
naming its installation and its meeting: ``<installation>.<token>``.

The installation's identity is derived from the key (``syncd.key_file``),
which the admin keeps apart from the database: a restored or rebuilt
database with the same key is the same installation, and adopts its own
tags (see ``agenda.meeting_for``); a second installation, with its own key,
is a different one. Without a key the identity comes from ``base_url``:
stable, and different for any two installations that serve different
addresses. A tag without an installation (``<token>``) was written before
tags named one; it is taken as this installation's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_CONTEXT = b"syncd installation identity v1"
_SEPARATOR = "."


def identity(key: bytes | None, base_url: str) -> str:
    """A short, stable name of this installation: 16 lowercase letters and digits."""
    material = key.strip() if key else base_url.rstrip("/").encode()
    digest = hmac.new(material, _CONTEXT, hashlib.sha256).digest()
    return "s" + base64.b32encode(digest[:10]).decode("ascii").lower()


def tag(installation: str, token: str) -> str:
    """The hidden property's value for one meeting's block."""
    return f"{installation}{_SEPARATOR}{token}"


def parse_tag(value: str | None) -> tuple[str | None, str | None]:
    """(installation, token) of a tag; installation None for an old bare token."""
    if not value:
        return None, None
    installation, found, token = value.partition(_SEPARATOR)
    if not found:
        return None, value
    return installation, token or None
