"""A small seeded organization for ``syncd demo``.

Eight people at example.org with what a real week holds: weekly and biweekly
1:1s, an ad-hoc 1:1, a team meeting, an out-of-office day and a room booking.
It lives in a memory-provider state file, so a second ``make demo`` continues
where the first stopped (and, the calendars being unchanged, writes nothing).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

from providers.memory import MemoryProvider, Recurrence
from syncd.model import Attendee, EventType

DOMAIN = "example.org"
PEOPLE = ("ana", "bo", "cy", "dee", "eli", "fay", "gus", "hal")


def _address(name: str) -> str:
    return f"{name}@{DOMAIN}"


def seed(now: datetime) -> MemoryProvider:
    world = MemoryProvider([_address(p) for p in PEOPLE])
    # Day 0 is tomorrow, so every seeded meeting is still ahead when the demo runs.
    tomorrow = datetime.combine(now.date() + timedelta(days=1), time(9, 0), tzinfo=now.tzinfo)

    def at(day: int, hour: int, minutes: int = 0) -> datetime:
        return tomorrow + timedelta(days=day, hours=hour - 9, minutes=minutes)

    def one_on_one(
        a: str,
        b: str,
        start: datetime,
        every: int | None,
        description: str = "",
        html: bool = False,
    ) -> None:
        world.create_event(
            _address(a),
            [_address(a), _address(b)],
            f"{a.title()} / {b.title()} 1:1",
            start,
            start + timedelta(minutes=30),
            recurrence=Recurrence(interval_days=every) if every else None,
            description=description,
            html=html,
        )

    one_on_one("ana", "bo", at(0, 10), 7, description="Standing agenda: wins, blockers.")
    one_on_one("ana", "cy", at(2, 14), 14)
    one_on_one("dee", "eli", at(3, 11), 7)
    one_on_one("fay", "gus", at(4, 15), 7, html=True, description="<p>Bring the roadmap.</p>")
    one_on_one("bo", "ana", at(2, 16), None)  # ad hoc, same pair as the weekly
    world.create_event(
        _address("ana"),
        [_address(p) for p in PEOPLE[:5]],
        "Team sync",
        at(0, 9),
        at(0, 10),
        recurrence=Recurrence(interval_days=7),
    )
    world.create_event(
        _address("hal"),
        [_address("hal")],
        "Out of office",
        at(2, 0),
        at(3, 0),
        all_day=True,
        event_type=EventType.OUT_OF_OFFICE,
    )
    world.create_event(
        _address("gus"),
        [_address("gus"), Attendee("board-room@resource.calendar.google.com", is_resource=True)],
        "Board room hold",
        at(3, 13),
        at(3, 14),
    )
    return world


CONFIG = """\
# Written by `syncd demo`: one memory account holding a seeded organization.
[syncd]
database = "sqlite:///syncd.db"
base_url = "http://localhost:8080"

[detect]
org_domains = ["example.org"]

[web]
listen = "127.0.0.1:8080"
secure_cookies = false  # the demo is served over plain http on localhost

[[accounts]]
name = "demo"
provider = "memory"
state_file = "calendars.json"
"""


def prepare(directory: Path, now: datetime) -> Path:
    """The demo's config file, with its calendars seeded on first use."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "syncd.toml"
    state = directory / "calendars.json"
    if not path.exists():
        path.write_text(CONFIG, encoding="utf-8")
    if not state.exists():
        seed(now).save(state)
    return path
