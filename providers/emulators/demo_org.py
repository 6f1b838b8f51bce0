"""The organization ``syncd demo`` runs against: eight people on the two bundled emulators.

Six people on Google Workspace, two on Microsoft 365, all at example.org. Ana
and Bo meet weekly (the latest one ended under an hour ago, so there is a past
agenda to add action items to) and once ad hoc; Ana and Cy every two weeks;
Dee and Eli weekly; Gus and Hal weekly in Outlook; Ana (Google) and Gus
(Outlook) weekly across the two systems, found as one pair with one agenda.
A team meeting, two out-of-office days and two room bookings (one person and
a room: two attendees, not two people) must not become 1:1s.

Everything that knows these are Google and Microsoft emulators is here, so
``syncd/demo.py`` (the daemon's side of the demo) names no provider: it asks
this module for the accounts' TOML, the people and a reader of the invites.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple, Protocol

from providers.calendar_model import Recurrence
from providers.calendar_world import WorldBuilder
from providers.emulators.google import GoogleEmulator
from providers.emulators.graph import GraphEmulator
from providers.model import Attendee, EventType

__all__ = ["NAMES", "Copies", "Organization", "address", "organization", "people", "seed"]

DOMAIN = "example.org"
GOOGLE_PEOPLE = ("ana", "bo", "cy", "dee", "eli", "fay")
OUTLOOK_PEOPLE = ("gus", "hal")
#: How the invites name them (the pages show these, not addresses).
NAMES = {
    "ana": "Ana Lima",
    "bo": "Bo Berg",
    "cy": "Cy Okafor",
    "dee": "Dee Ramos",
    "eli": "Eli Novak",
    "fay": "Fay Chen",
    "gus": "Gus Meyer",
    "hal": "Hal Ito",
}
GOOGLE_ACCOUNT = "workspace"
MICROSOFT_ACCOUNT = "m365"
#: The credential files ``Organization.accounts`` writes into the demo directory.
SERVICE_ACCOUNT_FILE = "google-service-account.json"
CLIENT_SECRET_FILE = "graph-client-secret"


def address(name: str) -> str:
    return f"{name}@{DOMAIN}"


def person(name: str) -> Attendee:
    return Attendee(address(name), NAMES[name])


def seed(google: WorldBuilder, graph: WorldBuilder, now: datetime) -> None:
    """Give the two emulators the organization described in the module docstring.

    Everything is placed relative to ``now`` so that it is ahead of (or, for
    the one past meeting, just behind) whoever runs the demo, whenever that is.
    """
    tomorrow = datetime.combine(now.date() + timedelta(days=1), time(9), tzinfo=UTC)

    def at(day: int, hour: int) -> datetime:
        return tomorrow + timedelta(days=day, hours=hour - 9)

    half_hour = timedelta(minutes=30)
    weekly, biweekly = Recurrence(interval_days=7), Recurrence(interval_days=14)

    def one_on_one(
        world: WorldBuilder,
        a: str,
        b: str,
        start: datetime,
        every: Recurrence | None,
        description: str = "",
    ) -> None:
        world.create_event(
            address(a),
            [person(a), person(b)],
            f"{a.title()} / {b.title()}" + (" 1:1" if every else ""),
            start,
            start + half_hour,
            recurrence=every,
            description=description,
            html=description.startswith("<"),
        )

    # The weekly one began an hour before the last full quarter hour, so its
    # first meeting ended 30 to 45 minutes ago: a past agenda, ready for
    # action items that the next invites will carry.
    quarter = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    one_on_one(google, "ana", "bo", quarter - timedelta(hours=1), weekly,
               description="Standing agenda: wins, blockers.")  # fmt: skip
    one_on_one(google, "bo", "ana", at(1, 16), None)  # ad hoc: same pair, same history
    one_on_one(google, "ana", "cy", at(0, 14), biweekly)
    one_on_one(google, "dee", "eli", at(1, 11), weekly,
               description="<p>Bring the <b>roadmap</b>.</p>")  # fmt: skip
    one_on_one(graph, "hal", "gus", at(0, 10), weekly)

    # Ana (Google) organizes, Gus (Outlook) is invited: each system holds its
    # copy of the one meeting, Exchange keeping Google's UID inside its own.
    cross = at(2, 15)
    uid = f"ana-gus-weekly@{DOMAIN}"
    for world in (google, graph):
        world.create_event(
            address("ana"), [person("ana"), person("gus")], "Ana / Gus 1:1",
            cross, cross + half_hour, recurrence=weekly, ical_uid=uid,
        )  # fmt: skip

    google.create_event(
        address("ana"), [address(p) for p in GOOGLE_PEOPLE], "Team sync",
        at(0, 9), at(0, 10), recurrence=weekly,
    )  # fmt: skip
    google.create_event(
        address("eli"), [address("eli")], "Out of office", at(2, 0), at(3, 0),
        all_day=True, event_type=EventType.OUT_OF_OFFICE,
    )  # fmt: skip
    graph.create_event(
        address("gus"), [address("gus")], "Out of office", at(3, 0), at(4, 0),
        all_day=True, event_type=EventType.OUT_OF_OFFICE,
    )  # fmt: skip
    google.create_event(
        address("fay"),
        [address("fay"), Attendee("board-room@resource.calendar.google.com", is_resource=True)],
        "Board room hold", at(2, 13), at(2, 14),
    )  # fmt: skip
    graph.create_event(
        address("hal"), [address("hal"), Attendee(f"room-4@{DOMAIN}", is_resource=True)],
        "Quarterly planning prep", at(1, 13), at(1, 14),
    )  # fmt: skip


def _toml(value: str | Sequence[str]) -> str:
    """A TOML value: JSON's string escapes are valid TOML basic-string escapes."""
    return json.dumps(value if isinstance(value, str) else list(value))


def _write_private(path: Path, text: str) -> None:
    """Created 0600: the file holds a private key or a client secret."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def people() -> tuple[tuple[str, str], ...]:
    """(address, name) of everyone, Google's people first."""
    return tuple((address(p), NAMES[p]) for p in (*GOOGLE_PEOPLE, *OUTLOOK_PEOPLE))


class Copies(Protocol):
    """An emulator's own copy of each invite, as a person would read it."""

    def description(self, calendar: str, event_id: str) -> str: ...


class Organization(NamedTuple):
    google: GoogleEmulator
    graph: GraphEmulator

    @property
    def copies(self) -> Mapping[str, Copies]:
        """Each account's emulator, by account name: where the invites can be read back."""
        return {GOOGLE_ACCOUNT: self.google, MICROSOFT_ACCOUNT: self.graph}

    def summary(self) -> str:
        return (
            f"{len(GOOGLE_PEOPLE)} people on the Google emulator ({self.google.base_url}), "
            f"{len(OUTLOOK_PEOPLE)} on the Graph emulator ({self.graph.base_url})"
        )

    def accounts(self, directory: Path) -> str:
        """The ``[[accounts]]`` of a config in ``directory``, with their credential files there."""
        google, graph = self
        _write_private(
            directory / SERVICE_ACCOUNT_FILE, json.dumps(google.service_account_info(), indent=1)
        )
        _write_private(directory / CLIENT_SECRET_FILE, graph.client_secret + "\n")
        return f"""\
[[accounts]]
name = {_toml(GOOGLE_ACCOUNT)}
provider = "google"
calendars = {_toml([address(p) for p in GOOGLE_PEOPLE])}
service_account_file = {_toml(SERVICE_ACCOUNT_FILE)}
api_root = {_toml(google.api_root)}

[[accounts]]
name = {_toml(MICROSOFT_ACCOUNT)}
provider = "microsoft"
calendars = {_toml([address(p) for p in OUTLOOK_PEOPLE])}
tenant = {_toml(graph.tenant)}
client_id = {_toml(graph.client_id)}
client_secret_file = {_toml(CLIENT_SECRET_FILE)}
# The Graph emulator stands in for the global cloud: sign-in on its https
# listener (msal takes https authorities only), trusting the CA it made.
authority = {_toml(graph.login_root)}
graph_root = {_toml(graph.graph_root)}
ca_file = {_toml(graph.ca_file)}
"""


@contextlib.contextmanager
def organization(now: datetime) -> Iterator[Organization]:
    """Both emulators, serving and seeded, until the block is left."""
    with (
        GoogleEmulator([address(p) for p in GOOGLE_PEOPLE]) as google,
        GraphEmulator([address(p) for p in OUTLOOK_PEOPLE]) as graph,
    ):
        seed(google, graph, now)
        yield Organization(google, graph)
