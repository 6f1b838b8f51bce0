"""Paging of the two directory listings (Google's ``users.list``, Graph's ``GET /users``).

Both services page a user listing by an opaque token; the emulators make it
an offset bound to the listing it was issued for (Google: customer and
domain; Graph: the ``$filter``), so a token of another listing is refused
rather than silently paging something else. The errors a bad page size or
token gets differ per service, so these helpers raise ``ValueError`` and
each directory answers it in its own words.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["PageTokens", "last", "page_size", "window"]

T = TypeVar("T")


def last(query: Mapping[str, list[str]], name: str) -> str | None:
    """A query parameter's value; the last one counts when it is repeated."""
    values = query.get(name)
    return values[-1] if values else None


def page_size(raw: str | None, default: int, maximum: int) -> int:
    """The page size asked for, ``default`` if none; ValueError unless 1 to ``maximum``."""
    if raw is None:
        return default
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= maximum:
        raise ValueError(f"page size {raw!r} is not within 1 to {maximum}")
    return size


def window(items: Sequence[T], start: int, size: int) -> tuple[Sequence[T], int | None]:
    """The page from ``start``, and where the next one starts (None: this is the last)."""
    following = start + size
    return items[start:following], following if following < len(items) else None


@dataclass(frozen=True)
class PageTokens:
    """Opaque tokens holding an offset and the listing they are bound to.

    ``key`` is what the bound is called inside the token; each service keeps
    its own, so its tokens stay the same bytes.
    """

    key: str

    def issue(self, offset: int, bound: str) -> str:
        raw = json.dumps({"o": offset, self.key: bound}, separators=(",", ":")).encode("utf-8")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def offset(self, token: str | None, bound: str) -> int:
        """Where the page ``token`` names starts (0 for none); ValueError if it is not ours."""
        if token is None:
            return 0
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if not isinstance(data, dict) or data.get(self.key) != bound:
                raise ValueError("a token of another listing")
            offset = data["o"]
            if not isinstance(offset, int) or offset < 0:
                raise ValueError("not an offset")
            return offset
        except (ValueError, KeyError, binascii.Error, UnicodeDecodeError):
            raise ValueError(f"not a page token of this listing: {token!r}") from None
