"""A pair's history as Markdown and JSON, for people to keep.

Exports never contain a private note, not even the viewer's own: a file is
easily forwarded, and one rule is easier to trust than "only yours".
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from syncd.web.service import ItemView, PairView, PointView

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~])")


def _md(text: str) -> str:
    """Text as literal Markdown: nothing a person wrote becomes a link or markup."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _md_lines(text: str, prefix: str) -> list[str]:
    return [f"{prefix}{_md(line)}" for line in text.splitlines()] or [prefix.rstrip()]


def _stamp(moment: datetime, zone: ZoneInfo) -> str:
    there = moment.astimezone(zone)
    return f"{there:%Y-%m-%d %H:%M} {there:%Z}"


def markdown(view: PairView, zone: ZoneInfo) -> str:
    """Times in ``zone``, each with its abbreviation."""
    a, b = view.people
    out = [
        f"# 1:1 history: {_md(a)} and {_md(b)}",
        "",
        f"Times are in {_md(zone.key)}. Private notes are not exported.",
        "",
    ]
    out += ["## Open action items", ""]
    for item in view.open_items:
        origin = f" (from {item.origin.start.astimezone(zone):%Y-%m-%d})"
        out.append(f"- [ ] {_md(item.owner)}: {_md(item.text)}{_due(item)}{origin}")
    if not view.open_items:
        out.append("Nothing open.")
    for entry in view.meetings:
        meeting = entry.meeting
        state = " (cancelled)" if meeting.cancelled else ""
        out += ["", f"## {_stamp(meeting.start, zone)}: {_md(meeting.title)}{state}", ""]
        if entry.points:
            out += ["### Talking points", ""]
            out += [f"- [{'x' if p.done else ' '}] {_md(p.text)}{_author(p)}" for p in entry.points]
            out.append("")
        if entry.items:
            out += ["### Action items", ""]
            out += [
                f"- [{'x' if i.done else ' '}] {_md(i.owner)}: {_md(i.text)}{_due(i)}"
                for i in entry.items
            ]
            out.append("")
        if entry.shared_note:
            out += ["### Shared notes", ""]
            out += _md_lines(entry.shared_note, "> ")
    return "\n".join(out).rstrip() + "\n"


def _due(item: ItemView) -> str:
    return f" (due {item.due.isoformat()})" if item.due else ""


def _author(point: PointView) -> str:
    return f" ({_md(point.author)})" if point.author else ""


def _item(item: ItemView, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": item.id,
        "text": item.text,
        "owner": item.owner,
        "author": item.author,
        "due": item.due.isoformat() if item.due else None,
        "done": item.done,
        "done_at": item.done_at.astimezone(zone).isoformat() if item.done_at else None,
        "origin": item.origin.start.astimezone(zone).isoformat(),
    }


def as_json(view: PairView, zone: ZoneInfo) -> dict[str, Any]:
    """Moments as ISO 8601 with the offset of ``zone``, named in ``timezone``."""
    return {
        "people": list(view.people),
        "timezone": zone.key,
        "private_notes": "not exported",
        "open_action_items": [_item(item, zone) for item in view.open_items],
        "meetings": [
            {
                "start": entry.meeting.start.astimezone(zone).isoformat(),
                "end": entry.meeting.end.astimezone(zone).isoformat(),
                "title": entry.meeting.title,
                "cancelled": entry.meeting.cancelled,
                "talking_points": [
                    {"id": p.id, "text": p.text, "author": p.author, "done": p.done}
                    for p in entry.points
                ],
                "action_items": [_item(item, zone) for item in entry.items],
                "shared_notes": entry.shared_note,
            }
            for entry in view.meetings
        ],
    }
