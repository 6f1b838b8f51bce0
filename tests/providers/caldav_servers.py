"""Two real CalDAV servers nobody here wrote, and what people do to calendars on them.

``radicale`` and ``xandikos`` start the servers from PyPI on free loopback
ports, each with its own storage and a service user (Radicale: htpasswd and
a rights file letting that user write every collection; Xandikos: htpasswd
over https with its own self-signed certificate, which the account trusts
through ``ca_file``). ``CalDavWorld`` plays the people and their clients: it
writes ICS straight to the server with the caldav library, one copy per
held calendar, as a scheduling server delivers an invitation.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import caldav
import icalendar
import requests

from providers.calendar_model import Recurrence
from providers.model import Attendee, EventType

USER = "syncd"
PASSWORD = "app-password-for-tests"
_prefixes = itertools.count(1)


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    ca_file: str = ""

    def client(self) -> caldav.DAVClient:
        return caldav.DAVClient(
            url=self.url, username=USER, password=PASSWORD, ssl_verify_cert=self.ca_file or True
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, ca_file: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            requests.request(
                "OPTIONS", url, auth=(USER, PASSWORD), verify=ca_file or True, timeout=2
            )
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer: {log.read_text(errors='replace')[-2000:]}")


@contextmanager
def _running(command: list[str], folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextmanager
def radicale(folder: Path) -> Iterator[Server]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "users").write_text(f"{USER}:{PASSWORD}\n", encoding="utf-8")
    (folder / "rights").write_text(
        f"[service]\nuser: {USER}\ncollection: .*\npermissions: RrWw\n", encoding="utf-8"
    )
    port = _free_port()
    command = [
        sys.executable, "-m", "radicale",
        f"--storage-filesystem-folder={folder / 'storage'}",
        f"--server-hosts=127.0.0.1:{port}",
        "--auth-type=htpasswd",
        f"--auth-htpasswd-filename={folder / 'users'}",
        "--auth-htpasswd-encryption=plain",
        "--rights-type=from_file",
        "--auth-delay=0",  # Radicale pauses a second after each 401 (the first request of a client)
        f"--rights-file={folder / 'rights'}",
    ]  # fmt: skip
    with _running(command, folder) as process:
        url = f"http://127.0.0.1:{port}/"
        _wait(url, "", process, folder / "server.log")
        yield Server("radicale", url)


@contextmanager
def xandikos(folder: Path) -> Iterator[Server]:
    folder.mkdir(parents=True, exist_ok=True)
    digest = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
    (folder / "users").write_text(f"{USER}:{{SHA}}{digest}\n", encoding="utf-8")
    port = _free_port()
    executable = Path(sys.executable).with_name("xandikos")
    command = [
        str(executable), "serve",
        "-d", str(folder / "storage"),
        "--autocreate",
        "--autocert",  # Basic auth only over https: Xandikos makes its own certificate
        "--state-dir", str(folder / "state"),
        "--htpasswd", str(folder / "users"),
        "-l", "localhost", "-p", str(port),
    ]  # fmt: skip
    with _running(command, folder) as process:
        url = f"https://localhost:{port}/"
        certificate = folder / "state" / "certs" / "selfsigned.crt"
        deadline = time.monotonic() + 30
        while not certificate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        _wait(url, str(certificate), process, folder / "server.log")
        yield Server("xandikos", url, str(certificate))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


class CalDavWorld:
    """People's calendars on one server, under a prefix of their own (one per test)."""

    def __init__(self, server: Server, calendars: Sequence[str]) -> None:
        self.server = server
        self.prefix = f"t{next(_prefixes)}-{uuid.uuid4().hex[:6]}"
        self.calendar_url = f"{self.prefix}/{{address}}/calendar/"
        self.held = list(calendars)
        self.client = server.client()
        self._check(self.client.request(self.server.url + self.prefix + "/", "MKCOL"), 201)
        for address in self.held:
            self._make(address)

    # -- plumbing -----------------------------------------------------------------

    def url_of(self, address: str) -> str:
        return self.server.url + self.calendar_url.format(address=address)

    def _make(self, address: str) -> None:
        home = self.server.url + f"{self.prefix}/{address}/"
        self._check(self.client.request(home, "MKCOL"), 201, 405)
        self._check(self.client.request(self.url_of(address), "MKCALENDAR"), 201)

    @staticmethod
    def _check(answer: caldav.davclient.DAVResponse, *ok: int) -> None:
        if answer.status not in ok:
            raise AssertionError(f"{answer.status}: {str(answer.raw)[:300]}")

    def href(self, calendar: str, name: str) -> str:
        return self.url_of(calendar) + name

    def read(self, calendar: str, name: str) -> icalendar.Calendar:
        answer = self.client.request(self.href(calendar, name))
        self._check(answer, 200)
        return icalendar.Calendar.from_ical(answer.raw)

    def put(self, calendar: str, name: str, text: str | bytes, etag: str | None = None) -> None:
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        if etag:
            headers["If-Match"] = etag
        body = text.decode("utf-8") if isinstance(text, bytes) else text
        self._check(self.client.put(self.href(calendar, name), body, headers), 201, 204)

    def holding(self, uid: str) -> list[str]:
        """The held calendars with a copy of ``uid``."""
        found = []
        for calendar in self.held:
            answer = self.client.request(self.href(calendar, f"{uid}.ics"))
            if answer.status == 200:
                found.append(calendar)
        return found

    # -- WorldBuilder -----------------------------------------------------------------

    def create_event(
        self,
        organizer: str,
        attendees: Sequence[str | Attendee],
        title: str,
        start: datetime,
        end: datetime,
        *,
        description: str = "",
        html: bool = False,
        all_day: bool = False,
        event_type: EventType = EventType.DEFAULT,
        recurrence: Recurrence | None = None,
        ical_uid: str | None = None,
    ) -> str:
        uid = ical_uid or f"{uuid.uuid4()}@example.test"
        event = icalendar.Event()
        event.add("UID", uid)
        event.add("DTSTAMP", datetime(2029, 12, 1, tzinfo=UTC))
        if all_day:
            event.add("DTSTART", start.date())
            event.add("DTEND", end.date())
        else:
            event.add("DTSTART", _utc(start))
            event.add("DTEND", _utc(end))
        event.add("SUMMARY", title)
        if description:
            event.add("DESCRIPTION", description)
        event.add("ORGANIZER", f"mailto:{organizer}")
        people = [a if isinstance(a, Attendee) else Attendee(a) for a in attendees]
        if organizer not in {p.email for p in people}:
            people.insert(0, Attendee(organizer))
        for person in people:
            params = {"CN": person.name} if person.name else {}
            if person.is_resource:
                params["CUTYPE"] = "ROOM"
            event.add("ATTENDEE", f"mailto:{person.email}", parameters=params)
        if recurrence is not None:
            rule: dict[str, object] = {"FREQ": "DAILY", "INTERVAL": recurrence.interval_days}
            if recurrence.count is not None:
                rule["COUNT"] = recurrence.count
            if recurrence.until is not None:
                rule["UNTIL"] = _utc(recurrence.until)
            event.add("RRULE", rule)
        calendar = icalendar.Calendar()
        calendar.add("PRODID", "-//syncd tests//CalDavWorld//EN")
        calendar.add("VERSION", "2.0")
        calendar.add_component(event)
        text = calendar.to_ical()
        for address in [organizer, *(p.email for p in people)]:
            if address in self.held and address not in self.holding(uid):
                self.put(address, f"{uid}.ics", text)
        return uid

    # -- World ------------------------------------------------------------------------

    def copy_id(self, calendar: str, ical_uid: str, original_start: datetime | None = None) -> str:
        name = f"{ical_uid}.ics"
        if original_start is None:
            return name
        return f"{name}#{_utc(original_start):%Y%m%dT%H%M%SZ}"

    def edit_description(self, calendar: str, event_id: str, description: str) -> None:
        """A person edits their own copy in their own client."""
        name, _, recurrence = event_id.partition("#")
        stored = self.read(calendar, name)
        for component in stored.walk("VEVENT"):
            rid = component.get("RECURRENCE-ID")
            mine = (rid is None and not recurrence) or (
                rid is not None and f"{_utc(rid.dt):%Y%m%dT%H%M%SZ}" == recurrence
            )
            if mine:
                if "DESCRIPTION" in component:
                    del component["DESCRIPTION"]
                component.add("DESCRIPTION", description)
                if "SEQUENCE" not in component:
                    component.add("SEQUENCE", 1)
                break
        else:
            if not recurrence:
                raise AssertionError(f"{event_id}: no such component to edit")
            # "this occurrence only": the client adds an override for it
            original = datetime.strptime(recurrence, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            self._override(stored, original, description=description)
        self.put(calendar, name, stored.to_ical())

    def _override(
        self, stored: icalendar.Calendar, original: datetime, **changes: object
    ) -> icalendar.Event:
        master = next(c for c in stored.walk("VEVENT") if "RECURRENCE-ID" not in c)
        for component in stored.walk("VEVENT"):
            rid = component.get("RECURRENCE-ID")
            if rid is not None and _utc(rid.dt) == _utc(original):
                override = component
                break
        else:
            override = icalendar.Event()
            for key in ("UID", "DTSTAMP", "SUMMARY", "DESCRIPTION", "ORGANIZER"):
                if key in master:
                    override.add(key, master[key], encode=False)
            for attendee in master.get("ATTENDEE", []):
                override.add("ATTENDEE", attendee, encode=False)
            length = master["DTEND"].dt - master["DTSTART"].dt
            override.add("RECURRENCE-ID", _utc(original))
            override.add("DTSTART", _utc(original))
            override.add("DTEND", _utc(original) + length)
            stored.add_component(override)
        for key, value in changes.items():
            name = key.upper()
            if name in override:
                del override[name]
            override.add(name, value)
        return override

    def move_occurrence(
        self, ical_uid: str, original_start: datetime, new_start: datetime, new_end: datetime
    ) -> None:
        for calendar in self.holding(ical_uid):
            stored = self.read(calendar, f"{ical_uid}.ics")
            self._override(stored, original_start, dtstart=_utc(new_start), dtend=_utc(new_end))
            self.put(calendar, f"{ical_uid}.ics", stored.to_ical())

    def cancel_occurrence(self, ical_uid: str, original_start: datetime) -> None:
        """The organizer's client adds an EXDATE; attendees' copies get a CANCELLED override."""
        for calendar in self.holding(ical_uid):
            stored = self.read(calendar, f"{ical_uid}.ics")
            master = next(c for c in stored.walk("VEVENT") if "RECURRENCE-ID" not in c)
            if str(master.get("ORGANIZER", "")).lower() == f"mailto:{calendar}":
                master.add("EXDATE", _utc(original_start))
            else:
                self._override(stored, original_start, status="CANCELLED")
            self.put(calendar, f"{ical_uid}.ics", stored.to_ical())

    def delete_event(self, ical_uid: str) -> None:
        for calendar in self.holding(ical_uid):
            self._check(self.client.delete(self.href(calendar, f"{ical_uid}.ics")), 200, 204)

    def expire_cursors(self, calendar: str) -> None:
        """The calendar is restored from a backup: same objects, a collection with no history."""
        collection = caldav.Calendar(client=self.client, url=self.url_of(calendar))
        kept = [(o.url, o.data) for o in collection.objects(load_objects=True)]
        self._check(self.client.delete(self.url_of(calendar)), 200, 204)
        self._check(self.client.request(self.url_of(calendar), "MKCALENDAR"), 201)
        for url, data in kept:
            # Exported and imported again by a client, which stamps each object anew.
            # (Xandikos's sync tokens name the collection's content: a byte-identical
            # restore would be the same state, and its old tokens rightly still valid.)
            restored = icalendar.Calendar.from_ical(data)
            for component in restored.walk("VEVENT"):
                del component["DTSTAMP"]
                component.add("DTSTAMP", datetime.now(UTC))
            self._check(
                self.client.put(
                    str(url), restored.to_ical().decode(), {"Content-Type": "text/calendar"}
                ),
                201,
                204,
            )
