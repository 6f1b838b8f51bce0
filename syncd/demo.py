"""``syncd demo``: the daemon, running against a small organization on the bundled emulators.

What runs: the Google Calendar and Microsoft Graph emulators
(``providers/emulators``) on loopback ports, seeded with eight people at
example.org, and ``runtime.run`` (the same daemon as ``syncd run``) on a
SQLite file in the demo directory, serving the agenda pages on ``--listen``.

The organization: six people on Google Workspace, two on Microsoft 365. Ana
and Bo meet weekly (the latest one ended under an hour ago, so there is a past
agenda to add action items to) and once ad hoc; Ana and Cy every two weeks;
Dee and Eli weekly; Gus and Hal weekly in Outlook; Ana (Google) and Gus
(Outlook) weekly across the two systems, found as one pair with one agenda.
A team meeting, two out-of-office days and two room bookings (one person and
a room: two attendees, not two people) must not become 1:1s.

Why everything starts fresh each run: the emulators keep their calendars in
memory, and a database from an earlier run would hold cursors and meetings
that the new calendars know nothing of. So every run rewrites the config,
the credentials and the database in the demo directory; nothing else there
is touched.

What it prints: one line per calendar sync; after the first pass over every
calendar, ``first sync complete`` and the agenda links; then, each time syncd
rewrites an invite (someone edited an agenda, a meeting ended), the block the
invite now carries, read back from the emulator's copy of the event.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Protocol, TextIO

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from providers.calendar_model import Recurrence
from providers.calendar_world import WorldBuilder
from providers.emulators.google import GoogleEmulator
from providers.emulators.graph import GraphEmulator
from providers.model import Attendee, EventType
from syncd import agenda, assemble, block, config
from syncd.engine import Report
from syncd.links import Link, people
from syncd.store import connect, sessions, transaction
from syncd.store.models import Calendar, Meeting, WriteLog
from syncd.web.settings import WebSettings

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
DEFAULT_LISTEN = "127.0.0.1:8080"

#: Files ``prepare`` owns in the demo directory (rewritten or removed each run).
CONFIG_FILE = "syncd.toml"
SERVICE_ACCOUNT_FILE = "google-service-account.json"
CLIENT_SECRET_FILE = "graph-client-secret"
DATABASE_FILE = "syncd.db"


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


def prepare(directory: Path, google: GoogleEmulator, graph: GraphEmulator, listen: str) -> Path:
    """Write this run's config and credentials (and drop the last run's database).

    Returns the config file's path. The emulators' ports change every run, so
    the config is never reused.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (DATABASE_FILE, DATABASE_FILE + "-wal", DATABASE_FILE + "-shm"):
        (directory / stale).unlink(missing_ok=True)
    _write_private(
        directory / SERVICE_ACCOUNT_FILE, json.dumps(google.service_account_info(), indent=1)
    )
    _write_private(directory / CLIENT_SECRET_FILE, graph.client_secret + "\n")
    text = f"""\
# Written by `syncd demo` for one run: the emulators listen on new ports each
# time, so this file (and {DATABASE_FILE}) are rewritten whenever the demo starts.
[syncd]
database = "sqlite:///{DATABASE_FILE}"
base_url = {_toml("http://" + listen)}

[detect]
org_domains = [{_toml(DOMAIN)}]

[web]
listen = {_toml(listen)}
sign_in = "link"          # the demo replaces it: the link opens, or pick a person at /signin
secure_cookies = false    # the demo is served over plain http on loopback

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
    path = directory / CONFIG_FILE
    path.write_text(text, encoding="utf-8")
    return path


@contextlib.contextmanager
def organization(now: datetime) -> Iterator[tuple[GoogleEmulator, GraphEmulator]]:
    """Both emulators, serving and seeded, until the block is left."""
    with (
        GoogleEmulator([address(p) for p in GOOGLE_PEOPLE]) as google,
        GraphEmulator([address(p) for p in OUTLOOK_PEOPLE]) as graph,
    ):
        seed(google, graph, now)
        yield google, graph


class _Copies(Protocol):
    def description(self, calendar: str, event_id: str) -> str: ...


def agenda_links(session: Session, base_url: str, now: datetime) -> tuple[list[Link], list[Link]]:
    """(upcoming, just ended): the meetings whose link is in an invite, and those past.

    Upcoming means syncd wrote the meeting's block into an invite, which is
    where a person would find the link; meetings further out than the
    horizon have agendas too but no invite carrying them yet.
    """
    invited = select(WriteLog.meeting_id).where(
        WriteLog.outcome == "written", WriteLog.meeting_id.is_not(None)
    )
    upcoming = session.scalars(
        select(Meeting)
        .where(Meeting.id.in_(invited), Meeting.start > now, Meeting.cancelled.is_(False))
        .order_by(Meeting.start, Meeting.id)
    ).all()
    ended = session.scalars(
        select(Meeting)
        .where(Meeting.end <= now, Meeting.cancelled.is_(False))
        .order_by(Meeting.start.desc(), Meeting.id)
    ).all()

    def link(meeting: Meeting) -> Link:
        url = agenda.meeting_url(base_url, meeting)
        return Link(meeting.start, people(meeting), url)

    return [link(m) for m in upcoming], [link(m) for m in ended]


class Narration:
    """``runtime.run``'s ``on_sync``: what the demo prints as the daemon works.

    Syncs may finish on several scheduler threads at once, so every call runs
    under one lock and writes whole lines, flushed at once: a person (or a
    test) reading the pipe sees each line as it happens.
    """

    def __init__(
        self,
        settings: config.Settings,
        copies: Mapping[str, _Copies],
        out: TextIO,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._copies = copies
        self._out = out
        self._clock = clock
        self._lock = threading.Lock()
        self._expected = {(a.name, c) for a in settings.accounts for c in a.calendars}
        self._seen: set[tuple[str, str]] = set()
        self._first = Report()
        self._complete = threading.Event()
        self._shown_writes = 0
        self._engine: Engine = connect(settings.syncd.database)
        self._factory = sessions(self._engine)

    @property
    def first_pass_done(self) -> bool:
        return self._complete.is_set()

    def say(self, *lines: str) -> None:
        with self._lock:
            self._print(*lines)

    def _print(self, *lines: str) -> None:
        self._out.write("".join(line + "\n" for line in lines))
        self._out.flush()

    def __call__(self, account: str, calendar: str, report: Report) -> None:
        with self._lock:
            provider = self._settings.account(account).provider
            failed = f", error: {report.errors[0]}" if report.errors else ""
            self._print(
                f"synced {calendar} ({provider}): {report.events_seen} events, "
                f"{report.writes} writes{failed}"
            )
            if self._complete.is_set():
                if report.writes:
                    self._show_invites(self._new_writes())
                return
            self._seen.add((account, calendar))
            self._first.merge(report)
            if self._expected <= self._seen:
                self._complete.set()
                self._announce()

    def _announce(self) -> None:
        report = self._first
        now = self._clock()
        with transaction(self._factory) as session:
            upcoming, ended = agenda_links(session, self._settings.syncd.base_url, now)
        self._print(
            "",
            f"first sync complete: {len(self._expected)} calendars, {report.events_seen} "
            f"events, {report.one_on_ones} 1:1s, {report.writes} invites written, "
            f"{len(report.errors)} errors",
            "",
            "agenda links of the upcoming 1:1s (each is in its invite; the link alone opens it):",
            *(link.line() for link in upcoming),
        )
        if ended:
            self._print(
                "",
                "just ended (add an action item there: the pair's next invite will list it):",
                *(link.line() for link in ended),
            )
        base = self._settings.syncd.base_url.rstrip("/")
        self._print(
            "",
            f"to see it as one of the people (their 1:1s, action items and private notes), "
            f"pick who you are at {base}/signin; {base}/ is then that person's home",
        )
        writes = self._new_writes()
        if writes:
            self._show_invites(writes[:1])
        self._print(
            "",
            "watching for changes; each invite syncd rewrites is shown here. Ctrl-C stops.",
        )

    def _new_writes(self) -> list[tuple[str, str, str, datetime]]:
        """Writes not shown yet: (calendar, event id, title, start), oldest first."""
        with transaction(self._factory) as session:
            rows = session.execute(
                select(WriteLog, Calendar, Meeting)
                .join(Calendar, Calendar.id == WriteLog.calendar_id)
                .join(Meeting, Meeting.id == WriteLog.meeting_id)
                .where(WriteLog.id > self._shown_writes, WriteLog.outcome == "written")
                .order_by(Meeting.start, WriteLog.id)
            ).all()
            last = session.scalar(select(func.max(WriteLog.id)))
        self._shown_writes = last or 0
        return [(c.address, w.event_id, m.title, m.start) for w, c, m in rows]

    def _show_invites(self, writes: Sequence[tuple[str, str, str, datetime]]) -> None:
        accounts = {c: a.name for a in self._settings.accounts for c in a.calendars}
        for calendar, event_id, title, start in writes:
            copies = self._copies.get(accounts.get(calendar, ""))
            if copies is None:
                continue
            text = block.extract(copies.description(calendar, event_id)) or "(no block)"
            self._print(
                "",
                f"the invite of {title!r} on {start:%a %d %b %H:%M} UTC in {calendar} now reads:",
                *("    " + line for line in text.splitlines()),
            )

    def close(self) -> None:
        self._engine.dispose()


def web_settings(settings: config.Settings) -> WebSettings:
    """The config's ``[web]`` with the demo's sign-in: pick any seeded person, see their notes."""
    everyone = tuple(address(p) for p in (*GOOGLE_PEOPLE, *OUTLOOK_PEOPLE))
    names = tuple((address(p), NAMES[p]) for p in (*GOOGLE_PEOPLE, *OUTLOOK_PEOPLE))
    return replace(
        assemble.web_settings(settings), sign_in="demo", demo_people=everyone, demo_names=names
    )


def run(
    directory: Path,
    listen: str = DEFAULT_LISTEN,
    *,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Seed, start, and run the daemon until ``stop`` (or SIGINT/SIGTERM); its exit status."""
    from syncd import runtime

    stream = out if out is not None else sys.stdout
    stop = stop if stop is not None else threading.Event()
    with runtime.stop_on_signals(stop), organization(datetime.now(UTC)) as (google, graph):
        settings = config.load(prepare(directory, google, graph, listen))
        progress = Narration(settings, {GOOGLE_ACCOUNT: google, MICROSOFT_ACCOUNT: graph}, stream)
        progress.say(
            f"demo: {len(GOOGLE_PEOPLE)} people on the Google emulator ({google.base_url}), "
            f"{len(OUTLOOK_PEOPLE)} on the Graph emulator ({graph.base_url})",
            f"demo: syncd serves the agenda pages on {settings.syncd.base_url}; "
            f"config and database in {directory}/",
        )
        try:
            status = runtime.run(
                settings,
                stop=stop,
                on_sync=progress,
                web=web_settings(settings),
            )
        finally:
            progress.close()
    progress.say("demo stopped")
    return status
