"""What both emulators record of every request they receive, for tests to assert on.

One shape for both, so a test reads ``requests`` the same way whichever
service it drives: the request as sent (query, lower-cased headers, parsed
body), the status answered, the operation it was routed to, and whose it was.
"Whose" differs in meaning per service, so it has two fields: Google sets
``user``, the owner of the bearer token; Graph sets ``mailbox``, the mailbox
addressed (an app-only token belongs to nobody).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Recorded"]


@dataclass
class Recorded:
    """One HTTP request the emulator received, and what it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0
    op: str | None = None
    user: str | None = None
    mailbox: str | None = None
