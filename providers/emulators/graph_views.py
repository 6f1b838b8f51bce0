"""What the read endpoints answer: calendarView delta, one event, a series' instances.

calendarView delta, as the reference and reported traffic describe it:

* The first call of a round needs ``startDateTime`` and ``endDateTime``; the
  window then travels inside the state tokens and later calls just GET the
  links as given. ``$select``, ``$expand``, ``$filter``, ``$orderby``,
  ``$search`` and ``$top`` are refused (400 ``ErrorInvalidUrlQuery``).
* It lists single events, occurrences and exceptions that overlap the window,
  never series masters. A generated occurrence is a stub (``@odata.type``,
  ``@odata.etag``, ``id``, ``seriesMasterId``, ``type``, ``start``, ``end``:
  what Graph really sends); exceptions and single events are full events.
* A round is snapshotted when its first page is asked for; later pages
  (``$skiptoken``) serve that snapshot, retrying a page is safe, and the
  ``@odata.deltaLink`` on the last page names the change log position of the
  snapshot. ``Prefer: odata.maxpagesize`` applies per request.
* An incremental round lists, in change order, everything changed since the
  token: what is now visible inside the window in full (or as a stub), and
  everything else (deleted, moved out of the window, an organizer's cancelled
  occurrence, or changed *outside* the window) as
  ``{"id", "@removed": {"reason": "deleted"}}``, as the reference warns. A
  change to a series lists all its occurrences in the window; replays are
  possible, as Graph allows.
* An expired (``expire_delta_tokens``), forged, foreign or forgotten token is
  410 ``SyncStateNotFound`` with Exchange's message; the emulator remembers
  the last 512 rounds' snapshots.

``instances`` lists the occurrences and exceptions of a series whose current
slot overlaps the window, in full, exceptions first then occurrences (each by
start, as the reference's example orders them), paged with ``$skip`` links.
The organizer's cancelled occurrences are absent; an attendee's show
``isCancelled``. On an id that is not a series master it answers an empty
collection.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .graph_errors import GraphError
from .graph_model import Item, Mailbox, is_occurrence, occurrence_id, originals, parse_occurrence_id
from .graph_query import Prefer, Query, apply_select, expand_filter, option, select, window
from .graph_resources import EVENT_TYPE, removed, render, stub
from .graph_store import Hit, MailboxStore

__all__ = ["Page", "Views"]

_NOT_WITH_DELTA = ("$select", "$expand", "$filter", "$orderby", "$search", "$top")
_DELTA_QUERY_ERROR = (
    "The following parameters are not supported with change tracking over the 'Events' "
    "resource: '$orderby, $filter, $select, $expand, $search, $top'."
)
_ROUNDS_KEPT = 512


@dataclass(frozen=True)
class Page:
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class _Round:
    user: str
    epoch: int
    start: datetime
    end: datetime
    seq: int
    entries: list[dict[str, Any]]


class Views:
    def __init__(self, store: MailboxStore, *, page_size: int, context_root: str = "") -> None:
        self.context_root = context_root
        self._store = store
        self._page_size = page_size
        self._key = secrets.token_bytes(32)
        self._rounds: OrderedDict[str, _Round] = OrderedDict()

    # ----------------------------------------------------------------- delta

    def delta(self, box: Mailbox, query: Query, prefer: Prefer, url: str) -> Page:
        """One page of a calendarView delta round (``url`` is the path the links repeat)."""
        if any(option(query, name) is not None for name in _NOT_WITH_DELTA):
            raise GraphError(400, "ErrorInvalidUrlQuery", _DELTA_QUERY_ERROR)
        size = prefer.page_size or self._page_size
        with self._store.lock:
            skip = option(query, "$skiptoken")
            if skip is not None:
                round_id, offset = self._open_skip(box, skip)
            else:
                round_id, offset = self._begin(box, query, prefer), 0
            found = self._rounds[round_id]
            self._rounds.move_to_end(round_id)
        entries = found.entries[offset : offset + size]
        body: dict[str, Any] = {"@odata.context": self._context("Collection(event)")}
        if offset + size < len(found.entries):
            token = self._seal(
                {"r": round_id, "o": offset + size, "m": box.user_id, "g": box.epoch}
            )
            body["@odata.nextLink"] = f"{url}?$skiptoken={token}"
        else:
            state = {
                "m": found.user,
                "g": found.epoch,
                "s": found.start.isoformat(),
                "e": found.end.isoformat(),
                "q": found.seq,
            }
            body["@odata.deltaLink"] = f"{url}?$deltatoken={self._seal(state)}"
        body["value"] = entries
        return Page(body, prefer.applied("odata.track-changes"))

    def _begin(self, box: Mailbox, query: Query, prefer: Prefer) -> str:
        token = option(query, "$deltatoken")
        if token is None:
            start, end = window(query)
            entries = self._snapshot(box, start, end, prefer)
        else:
            start, end, since = self._open_delta(box, token)
            entries = self._changes(box, start, end, since, prefer)
        round_id = secrets.token_hex(12)
        self._rounds[round_id] = _Round(box.user_id, box.epoch, start, end, box.seq, entries)
        while len(self._rounds) > _ROUNDS_KEPT:
            self._rounds.popitem(last=False)
        return round_id

    def _snapshot(
        self, box: Mailbox, start: datetime, end: datetime, prefer: Prefer
    ) -> list[dict[str, Any]]:
        found: list[tuple[datetime, dict[str, Any]]] = []
        for hit in self._store.held(box.address):
            if hit.item.recurrence is None:
                if _overlaps(hit.item.start, hit.item.end, start, end):
                    found.append((hit.item.start, self._entry(hit, prefer)))
                continue
            for occurrence in self._occurrences(hit, start, end):
                if self._store.visible(occurrence):
                    slot = _slot(occurrence)
                    found.append((slot[0], self._entry(occurrence, prefer)))
        found.sort(key=lambda pair: pair[0])
        return [entry for _, entry in found]

    def _changes(
        self, box: Mailbox, start: datetime, end: datetime, since: int, prefer: Prefer
    ) -> list[dict[str, Any]]:
        latest: dict[str, int] = {}
        first = bisect.bisect_right(box.log, since, key=lambda entry: entry[0])
        for seq, event_id in box.log[first:]:
            latest.pop(event_id, None)
            latest[event_id] = seq
        entries: dict[str, dict[str, Any]] = {}
        for event_id in latest:
            for entry in self._resolve_change(box, event_id, start, end, prefer):
                entries.pop(entry["id"], None)
                entries[entry["id"]] = entry
        return list(entries.values())

    def _resolve_change(
        self, box: Mailbox, event_id: str, start: datetime, end: datetime, prefer: Prefer
    ) -> Iterator[dict[str, Any]]:
        hit = self._store.resolve(box.address, event_id)
        if hit is not None and hit.moment is None and hit.item.recurrence is not None:
            for occurrence in self._occurrences(hit, start, end):
                if self._store.visible(occurrence):
                    yield self._entry(occurrence, prefer)
                else:
                    yield removed(occurrence.id)
            return
        if hit is not None:
            lower, upper = _slot(hit)
            yield (
                self._entry(hit, prefer)
                if _overlaps(lower, upper, start, end)
                else removed(event_id)
            )
            return
        stone = self._store.tombstone(box.address, event_id)
        if stone is not None and stone.item.recurrence is not None:
            for moment in _candidates(stone.item, start, end):
                yield removed(occurrence_id(stone.copy.id, moment))
            return
        yield removed(event_id)

    def _entry(self, hit: Hit, prefer: Prefer) -> dict[str, Any]:
        if hit.moment is not None and hit.state is None:
            return stub(hit)
        event = {"@odata.type": EVENT_TYPE}
        event.update(render(self._store, hit, text_body=prefer.text_body))
        return event

    def _occurrences(self, master: Hit, start: datetime, end: datetime) -> Iterator[Hit]:
        """Occurrences whose current slot overlaps [start, end), visible or not."""
        for moment in sorted(_candidates(master.item, start, end)):
            occurrence = replace(master, moment=moment)
            lower, upper = _slot(occurrence)
            if _overlaps(lower, upper, start, end):
                yield occurrence

    # ------------------------------------------------------------- get, list

    def get(self, box: Mailbox, event_id: str, query: Query, prefer: Prefer) -> Page:
        keep, props = select(query), expand_filter(query)
        with self._store.lock:
            hit = self._require(box, event_id)
            event = render(self._store, hit, props=props, text_body=prefer.text_body)
        context = self._context(f"users('{box.user_id}')/events/$entity")
        return Page({"@odata.context": context, **apply_select(event, keep)}, prefer.applied())

    def instances(
        self, box: Mailbox, event_id: str, query: Query, prefer: Prefer, url: str
    ) -> Page:
        start, end = window(query)
        keep, props = select(query), expand_filter(query)
        top, skip = _count(query, "$top"), _count(query, "$skip") or 0
        size = prefer.page_size or top or self._page_size
        with self._store.lock:
            master = self._require(box, event_id)
            found: list[Hit] = []
            if master.moment is None and master.item.recurrence is not None:
                found = [o for o in self._occurrences(master, start, end) if self._store.visible(o)]
            found.sort(key=lambda hit: (hit.state is None, _slot(hit)[0]))
            chosen = found[skip : skip + size]
            values = [
                apply_select(
                    render(self._store, hit, props=props, text_body=prefer.text_body), keep
                )
                for hit in chosen
            ]
        body: dict[str, Any] = {"@odata.context": self._context("Collection(event)")}
        if skip + size < len(found):
            params = {k: v[-1] for k, v in query.items() if k.casefold() != "$skip" and v}
            params["$skip"] = str(skip + size)
            body["@odata.nextLink"] = f"{url}?{_query_string(params)}"
        body["value"] = values
        return Page(body, prefer.applied())

    def _require(self, box: Mailbox, event_id: str) -> Hit:
        hit = self._store.resolve(box.address, event_id)
        if hit is not None:
            return hit
        if not event_id.startswith("AAMkA") or (
            parse_occurrence_id(event_id) is None and not _decodes(event_id)
        ):
            raise GraphError(400, "ErrorInvalidIdMalformed")
        raise GraphError(404, "ErrorItemNotFound")

    def _context(self, what: str) -> str:
        return f"{self.context_root}$metadata#{what}"

    # --------------------------------------------------------------- tokens

    def _seal(self, state: dict[str, Any]) -> str:
        raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode("utf-8")
        mac = hmac.new(self._key, raw, hashlib.sha256).digest()[:12]
        return f"{_b64(raw)}.{_b64(mac)}"

    def _open(self, box: Mailbox, token: str) -> dict[str, Any]:
        """A token's state if this emulator issued it for this mailbox and epoch; else 410."""
        body, _, mac = token.partition(".")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
            state = json.loads(raw)
        except (binascii.Error, ValueError):
            raise _gone(box) from None
        expected = hmac.new(self._key, raw, hashlib.sha256).digest()[:12]
        if not isinstance(state, dict) or not hmac.compare_digest(given, expected):
            raise _gone(box)
        if state.get("m") != box.user_id or state.get("g") != box.epoch:
            raise _gone(box)
        return state

    def _open_skip(self, box: Mailbox, token: str) -> tuple[str, int]:
        state = self._open(box, token)
        round_id, offset = state.get("r"), state.get("o")
        if not isinstance(round_id, str) or round_id not in self._rounds:
            raise _gone(box)
        if not isinstance(offset, int) or offset < 0:
            raise _gone(box)
        return round_id, offset

    def _open_delta(self, box: Mailbox, token: str) -> tuple[datetime, datetime, int]:
        state = self._open(box, token)
        try:
            start = datetime.fromisoformat(str(state["s"]))
            end = datetime.fromisoformat(str(state["e"]))
            since = int(state["q"])
        except (KeyError, TypeError, ValueError):
            raise _gone(box) from None
        if since > box.seq:
            raise _gone(box)
        return start, end, since


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decodes(event_id: str) -> bool:
    body = event_id[len("AAMkA") :]
    try:
        base64.urlsafe_b64decode(body.encode("ascii"))
    except (binascii.Error, ValueError):
        return False
    return True


def _gone(box: Mailbox) -> GraphError:
    """Exchange's words for a sync state it no longer has (the generations are illustrative)."""
    generation = box.epoch + 1
    return GraphError(
        410,
        "SyncStateNotFound",
        f"The sync state generation is not found; generation={box.epoch};"
        f"[highest={generation}][{generation}].",
    )


def _overlaps(lower: datetime, upper: datetime, start: datetime, end: datetime) -> bool:
    return lower < end and upper > start


def _slot(hit: Hit) -> tuple[datetime, datetime]:
    if hit.moment is None:
        return hit.item.start, hit.item.end
    slot = hit.item.slot(hit.moment)
    return slot.start, slot.end


def _candidates(item: Item, start: datetime, end: datetime) -> set[datetime]:
    """Original starts worth looking at: slots in the window, and every moved occurrence."""
    moved = {moment for moment in item.shifts if is_occurrence(item, moment)}
    return set(originals(item, start, end)) | moved


def _query_string(params: dict[str, str]) -> str:
    """Query options as Graph writes them in links: ``$`` left literal, values escaped."""
    return "&".join(f"{quote(k, safe='$')}={quote(v, safe=':')}" for k, v in params.items())


def _count(query: Query, name: str) -> int | None:
    raw = option(query, name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for query option '{name}'.")
    return int(raw)
