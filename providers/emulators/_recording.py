"""What both emulators record of every request they receive, for tests to assert on.

One shape for both, so a test reads ``requests`` the same way whichever
service it drives: the request as sent (query, lower-cased headers, parsed
body), the status answered, the operation it was routed to, and whose it was.
"Whose" differs in meaning per service, so it has two fields: Google sets
``user``, the owner of the bearer token; Graph sets ``mailbox``, the mailbox
addressed (an app-only token belongs to nobody).

``RecordingApp`` is the part of each emulator's app that does not depend on
the service: it records every request, answered or not (an error a route
raised included), and sleeps the latency a test scripted; routing and the
error bodies stay with each service (``_answer``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from ._server import Response

__all__ = ["Recorded", "RecordingApp", "Unparsed", "parse_body", "segments"]


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
    #: When it arrived (``time.monotonic``): how long after a change it came.
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Unparsed:
    """A request body that was not valid JSON (kept so a handler can answer 400)."""

    text: str


def parse_body(headers: dict[str, str], raw: bytes) -> Any:
    """JSON or form bodies, parsed; ``None`` for none; ``Unparsed`` for broken JSON.

    Broken JSON is not refused here: each service answers it with its own
    error, and only once the route and token were checked, as they do.
    """
    if not raw:
        return None
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    text = raw.decode("utf-8", "replace")
    if kind == "application/x-www-form-urlencoded":
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}
    try:
        return json.loads(text)
    except ValueError:
        return Unparsed(text)


class _Delays(Protocol):
    def delay(self, op: str | None) -> float: ...


class RecordingApp:
    """Turns one HTTP request into one Response; knows nothing of sockets.

    A subclass routes in ``_answer`` and turns its own errors into answers
    there; ``handle`` records whatever came of it.
    """

    _faults: _Delays  # a subclass narrows it to its service's fault plan

    def __init__(self, faults: _Delays) -> None:
        self.requests: list[Recorded] = []  # the emulator hands this very list to tests
        self._faults = faults

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Response:
        url = urlsplit(target)
        query = parse_qs(url.query, keep_blank_values=True)
        record = Recorded(method, unquote(url.path), query, headers, parse_body(headers, raw))
        response = self._answer(record, url.path)
        record.status = response.status
        self.requests.append(record)
        return response

    def _answer(self, record: Recorded, raw_path: str) -> Response:
        """The answer to ``record``; ``raw_path`` is the path as sent (still percent-encoded)."""
        raise NotImplementedError

    def _pause(self, op: str | None) -> None:
        delay = self._faults.delay(op)
        if delay > 0:
            time.sleep(delay)


def segments(raw_path: str) -> list[str]:
    """The path's segments, each decoded on its own (so an encoded ``/`` stays in its segment)."""
    return [unquote(part) for part in raw_path.split("/")[1:]]
