"""The command line both emulators share: ``python -m providers.emulators.<service>``.

Run as a process, an emulator serves until interrupted and prints its base URL
first, so a script can wait for that line before pointing a client at it. The
credentials a client needs are written to a file created private (mode 0600),
because they hold a private key or a client secret.

``--seed FILE`` fills the calendars from one JSON format that both emulators
read, so an admin can try ``syncd explain`` and ``sync-once`` on a world of
their own before pointing syncd at real calendars::

    {
      "users": ["ana@example.org", "bo@example.org"],
      "events": [
        {"organizer": "ana@example.org", "attendees": ["bo@example.org"],
         "title": "Ana / Bo", "in_days": 1, "at": "10:00", "minutes": 30,
         "every_days": 7, "description": "bring the numbers"},
        {"organizer": "bo@example.org", "attendees": ["ana@example.org"],
         "title": "quick chat", "start": "2030-01-07T15:00:00Z", "minutes": 15}
      ]
    }

An event starts at ``start`` (ISO 8601 with a zone) or ``in_days`` days from
today at ``at`` (HH:MM, UTC); ``every_days`` makes it a series (with an
optional ``count``); ``html: true`` marks the description as HTML. Users
named only as organizers or attendees are added too. A mistake is reported
as one line naming the event and the field.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from providers.calendar_model import Recurrence
from providers.calendar_world import WorldBuilder

from ._server import Served

__all__ = ["SeedError", "parser", "read_seed", "seed", "serve_until_interrupted", "users"]
__all__ += ["seeded", "write_private_json"]


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options every emulator takes (``--port``, ``--users``); a service adds its own."""
    made = argparse.ArgumentParser(prog=prog, description=description)
    made.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    made.add_argument("--users", default="", help="comma-separated user addresses")
    made.add_argument(
        "--seed", type=Path, metavar="FILE", help="calendars to start with (JSON; see README)"
    )
    return made


class SeedError(ValueError):
    """A seed file that cannot be used; ``str()`` is one line naming where."""


@dataclass(frozen=True)
class SeedEvent:
    organizer: str
    attendees: list[str]
    title: str
    start: datetime
    end: datetime
    description: str = ""
    html: bool = False
    recurrence: Recurrence | None = None


def _when(raw: dict[str, Any], where: str, now: datetime) -> datetime:
    if "start" in raw:
        try:
            moment = datetime.fromisoformat(str(raw["start"]).replace("Z", "+00:00"))
        except ValueError:
            raise SeedError(f"{where}.start: not an ISO 8601 time: {raw['start']!r}") from None
        if moment.tzinfo is None:
            raise SeedError(f"{where}.start: give a zone (Z or +HH:MM)")
        return moment.astimezone(UTC)
    try:
        days = int(raw.get("in_days", 1))
        hour, minute = (int(part) for part in str(raw.get("at", "09:00")).split(":"))
        day = now.date() + timedelta(days=days)
        return datetime.combine(day, time(hour, minute), tzinfo=UTC)
    except (TypeError, ValueError):
        raise SeedError(f"{where}: in_days is a number and at is HH:MM") from None


def read_seed(path: Path, now: datetime) -> tuple[list[str], list[SeedEvent]]:
    """The users and events of a seed file, checked; ``SeedError`` otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SeedError(f"{path}: {error.strerror or error}") from None
    except ValueError as error:
        raise SeedError(f"{path}: not JSON: {error}") from None
    if not isinstance(data, dict):
        raise SeedError(f"{path}: a JSON object with users and events")
    named = data.get("users", [])
    if not isinstance(named, list) or not all(isinstance(u, str) for u in named):
        raise SeedError(f"{path}: users: a list of addresses")
    found: list[SeedEvent] = []
    for index, raw in enumerate(data.get("events", [])):
        where = f"{path}: events[{index}]"
        if not isinstance(raw, dict):
            raise SeedError(f"{where}: an object")
        organizer, attendees = raw.get("organizer"), raw.get("attendees", [])
        if not isinstance(organizer, str) or "@" not in organizer:
            raise SeedError(f"{where}.organizer: an address")
        if not isinstance(attendees, list) or not all(isinstance(a, str) for a in attendees):
            raise SeedError(f"{where}.attendees: a list of addresses")
        start = _when(raw, where, now)
        minutes = raw.get("minutes", 30)
        if not isinstance(minutes, int) or minutes < 1:
            raise SeedError(f"{where}.minutes: a whole number of minutes, at least 1")
        recurrence = None
        if "every_days" in raw:
            every, count = raw["every_days"], raw.get("count")
            if (
                not isinstance(every, int)
                or every < 1
                or not (count is None or isinstance(count, int))
            ):
                raise SeedError(f"{where}.every_days: a whole number of days (count: optional)")
            recurrence = Recurrence(every, count=count)
        found.append(
            SeedEvent(
                organizer=organizer,
                attendees=[organizer, *(a for a in attendees if a != organizer)],
                title=str(raw.get("title", "")),
                start=start,
                end=start + timedelta(minutes=minutes),
                description=str(raw.get("description", "")),
                html=bool(raw.get("html", False)),
                recurrence=recurrence,
            )
        )
    everyone = list(dict.fromkeys([*named, *(p for e in found for p in e.attendees)]))
    return everyone, found


def seeded(
    made: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[list[str], list[SeedEvent]]:
    """Everyone to hold a calendar (``--users`` and the seed's) and the seed's events.

    A seed file that cannot be used ends the program with one line, status 2.
    """
    listed: list[str] = []
    events: list[SeedEvent] = []
    if args.seed is not None:
        try:
            listed, events = read_seed(args.seed, datetime.now(UTC))
        except SeedError as error:
            made.exit(2, f"{made.prog}: --seed: {error}\n")
    return list(dict.fromkeys([*users(args.users), *listed])), events


def seed(world: WorldBuilder, events: list[SeedEvent]) -> list[str]:
    """Create ``events`` in ``world``; their iCalUIDs, in order."""
    return [
        world.create_event(
            event.organizer,
            event.attendees,
            event.title,
            event.start,
            event.end,
            description=event.description,
            html=event.html,
            recurrence=event.recurrence,
        )
        for event in events
    ]


def users(raw: str) -> list[str]:
    return [user.strip() for user in raw.split(",") if user.strip()]


def write_private_json(path: Path, payload: Any) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)


def serve_until_interrupted(emulator: Served) -> int:
    emulator.start()
    try:  # an interrupt at any point from here stops the server cleanly
        print(emulator.base_url, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0
