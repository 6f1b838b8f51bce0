"""``syncd demo``: the daemon, running against a small organization on the bundled emulators.

What runs: the bundled emulators (``providers/emulators``) on loopback
ports, seeded with eight people, and ``runtime.run`` (the same daemon as
``syncd run``) on a SQLite file in the demo directory, serving the agenda
pages on ``--listen``.

The organization (``providers/emulators/demo_org.py``, which also writes the
accounts' part of the config): six people on Google Workspace, two on
Microsoft 365, with their 1:1s and the meetings that must not become 1:1s.

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

import json
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from providers.emulators import demo_org
from providers.emulators.demo_org import DOMAIN, Copies, Organization, organization
from syncd import agenda, assemble, block, config
from syncd.engine import Report
from syncd.links import Link, people
from syncd.store import connect, sessions, transaction
from syncd.store.models import Calendar, Meeting, WriteLog
from syncd.web.settings import WebSettings

DEFAULT_LISTEN = "127.0.0.1:8080"

#: Files ``prepare`` owns in the demo directory (rewritten or removed each run),
#: besides the credential files the organization writes.
CONFIG_FILE = "syncd.toml"
DATABASE_FILE = "syncd.db"


def _toml(value: str | Sequence[str]) -> str:
    """A TOML value: JSON's string escapes are valid TOML basic-string escapes."""
    return json.dumps(value if isinstance(value, str) else list(value))


def prepare(directory: Path, world: Organization, listen: str) -> Path:
    """Write this run's config and credentials (and drop the last run's database).

    Returns the config file's path. The emulators' ports change every run, so
    the config is never reused.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (DATABASE_FILE, DATABASE_FILE + "-wal", DATABASE_FILE + "-shm"):
        (directory / stale).unlink(missing_ok=True)
    accounts = world.accounts(directory)
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

{accounts}"""
    path = directory / CONFIG_FILE
    path.write_text(text, encoding="utf-8")
    return path


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
        copies: Mapping[str, Copies],
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
    names = demo_org.people()
    everyone = tuple(address for address, _ in names)
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
    with runtime.stop_on_signals(stop), organization(datetime.now(UTC)) as world:
        settings = config.load(prepare(directory, world, listen))
        progress = Narration(settings, world.copies, stream)
        progress.say(
            f"demo: {world.summary()}",
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
