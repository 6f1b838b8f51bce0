"""Sync cost of an organization: on the memory provider, and over HTTP to the emulators.

Prints, for a first sync and for a steady-state pass with nothing changed:
wall time, time per calendar, provider calls per calendar and writes. The
steady state is what an organization pays every poll interval, so it is the
figure to watch: one changes call per calendar and no write.

Then the scheduler's own cost (``bench/scheduler.py``; ``python -m
bench.scheduler`` runs it alone): the idle claim every worker makes every
second, and how fast a backlog of due calendars is handed out.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.oauth2 import service_account
from sqlalchemy import select

from bench import figures, mails, scheduler
from providers.base import Provider
from providers.calendar_world import WorldBuilder
from providers.emulators.google import GoogleEmulator
from providers.emulators.graph import GraphEmulator
from providers.google import GoogleProvider
from providers.memory import MemoryProvider, Recurrence
from providers.microsoft import MicrosoftProvider, app_token_source
from syncd import detect
from syncd import scheduler as scheduler_module
from syncd.engine import CalendarSync, Policy, Report
from syncd.secrets import GOOGLE_SCOPES
from syncd.store import connect, migrate, sessions
from syncd.store.models import Calendar


def addresses(people: int) -> list[str]:
    return [f"p{i:04d}@example.org" for i in range(people)]


def organization(people: int, now: datetime) -> MemoryProvider:
    world = MemoryProvider(addresses(people), page_size=250)
    populate(world, people, now)
    return world


def populate(world: WorldBuilder, people: int, now: datetime) -> None:
    addresses = [f"p{i:04d}@example.org" for i in range(people)]
    start = now.replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=1)
    for i in range(0, people - 1, 2):  # every person has one weekly 1:1 with a partner
        slot = start + timedelta(days=i % 5, hours=(i // 5) % 8)
        world.create_event(
            addresses[i],
            [addresses[i], addresses[i + 1]],
            "1:1",
            slot,
            slot + timedelta(minutes=30),
            recurrence=Recurrence(interval_days=7),
        )
    for team in range(0, people, 8):  # and a weekly team meeting of eight
        members = addresses[team : team + 8]
        world.create_event(
            members[0], members, "Team", start, start + timedelta(hours=1),
            recurrence=Recurrence(interval_days=7),
        )  # fmt: skip


def measure(label: str, provider: Provider, calls: Callable[[], int]) -> None:
    """First sync, settle, steady state: wall, client CPU (this thread) and calls per calendar.

    The emulators serve from their own threads, so ``time.thread_time`` of
    the syncing thread is the client's CPU alone: adapter, client library,
    engine, SQLite.
    """
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        engine = connect(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate(engine)
        policy = Policy(
            base_url="https://agenda.example.org", zone=UTC, rules=detect.Rules(), template=()
        )
        syncer = CalendarSync(provider, sessions(engine), policy, account="bench")
        calendars = provider.calendars()
        ids: dict[str, int] = {}  # as a worker's claim hands them over, once known
        for phase in ("first sync", "settle", "steady state"):
            before = calls()
            report = Report()
            started, cpu = time.perf_counter(), time.thread_time()
            for address in calendars:
                report.merge(syncer.sync(address, now, ids.get(address)))
            elapsed, used = time.perf_counter() - started, time.thread_time() - cpu
            made = calls() - before
            print(
                f"{label:<7} {phase:<13} {len(calendars):>5} calendars  {elapsed:7.2f} s  "
                f"{1000 * elapsed / len(calendars):6.1f} ms/calendar  "
                f"{1000 * used / len(calendars):6.2f} ms CPU/calendar  "
                f"{made / len(calendars):5.2f} calls/calendar  writes {report.writes:>5}"
            )
            with syncer.factory() as session:
                ids = {row.address: row.id for row in session.scalars(select(Calendar))}
            if label == "memory":
                continue
            if phase == "first sync":
                bound = 4 if label == "graph" else None
                figures.record(
                    label, "calls per calendar, first sync", made / len(calendars), "", bound
                )
            if phase == "steady state":
                figures.record(
                    label, "calls per settled calendar per poll", made / len(calendars), "", 1
                )
                figures.record(
                    label, "client CPU per settled poll", 1000 * used / len(calendars), "ms"
                )
                figures.record(label, "writes in a settled pass", report.writes, "", 0)
        engine.dispose()


def google_floor(emulator: GoogleEmulator, people: list[str], rounds: int = 3) -> float:
    """What google-api-python-client itself costs per settled poll: ms of CPU per call.

    One built service, each person's credentials, ``events().list(syncToken=…)
    .execute()`` on a calendar where nothing changed, with the parameters
    the adapter sends (``showDeleted`` for the details of a cancelled
    occurrence, the page size): the least any client of this library can
    spend on the same poll.
    """
    import httplib2
    from google_auth_httplib2 import AuthorizedHttp
    from googleapiclient.discovery import build

    delegating = service_account.Credentials.from_service_account_info(
        emulator.service_account_info(), scopes=list(GOOGLE_SCOPES)
    )
    transport = httplib2.Http(timeout=30)
    service = build(
        "calendar", "v3", http=transport, static_discovery=True, cache_discovery=False,
        client_options={"api_endpoint": emulator.api_root},
    )  # fmt: skip
    events = service.events()
    tokens: dict[str, tuple[AuthorizedHttp, str]] = {}
    for person in people:
        http = AuthorizedHttp(delegating.with_subject(person), http=transport)
        request = events.list(calendarId=person, maxResults=250, singleEvents=False)
        page = request.execute(http=http)
        while "nextPageToken" in page:
            page = events.list(calendarId=person, pageToken=page["nextPageToken"]).execute(
                http=http
            )
        tokens[person] = (http, page["nextSyncToken"])
    started = time.thread_time()
    for _ in range(rounds):
        for person, (http, token) in tokens.items():
            events.list(
                calendarId=person, syncToken=token, maxResults=250, showDeleted=True
            ).execute(http=http)
    return 1000 * (time.thread_time() - started) / (rounds * len(people))


def day_of_polls(cadence: scheduler_module.Cadence) -> float:
    """Polls per settled calendar per day behind a healthy push channel, for the calendar
    whose jitter makes its interval the shortest (the worst any calendar does)."""
    shortest = min(cadence.interval(n, scheduler_module.Push.HEALTHY) for n in range(2000))
    return timedelta(days=1) / shortest


def run(people: int, google_people: int) -> None:
    memory = organization(people, datetime.now(UTC))
    measure("memory", memory, lambda: len(memory.requests))
    with GoogleEmulator(addresses(google_people)) as emulator:
        populate(emulator, google_people, datetime.now(UTC))
        delegating = service_account.Credentials.from_service_account_info(
            emulator.service_account_info(), scopes=list(GOOGLE_SCOPES)
        )
        google = GoogleProvider(
            addresses(google_people),
            lambda person: delegating.with_subject(person),
            api_root=emulator.api_root,
        )
        api = {"list", "get", "patch", "instances"}
        measure(
            "google",
            google,
            lambda: sum(1 for r in emulator.requests if r.op in api),
        )
        floor = google_floor(emulator, addresses(google_people))
        figures.record("google", "library floor: events().list(syncToken).execute()", floor, "ms")
        ours = next(
            f.value
            for f in figures.recorded()
            if f.area == "google" and f.name.startswith("client CPU")
        )
        figures.record("google", "client CPU per settled poll / floor", ours / floor, "×", 2)
    cadence = scheduler_module.Cadence()
    figures.record(
        "google",
        "list calls per settled calendar per day, push healthy",
        day_of_polls(cadence),
        "",
        4,
    )
    with GraphEmulator(addresses(google_people)) as tenant:
        populate(tenant, google_people, datetime.now(UTC))
        tokens = app_token_source(
            tenant.authority,
            tenant.client_id,
            tenant.client_secret,
            http_client=tenant.http_client(),
        )
        graph = MicrosoftProvider(addresses(google_people), tokens, graph_root=tenant.graph_root)
        api = {"delta", "get", "patch", "instances"}
        measure("graph", graph, lambda: sum(1 for r in tenant.requests if r.op in api))
        graph.close()
    figures.record(
        "graph",
        "delta calls per settled calendar per day, push healthy",
        day_of_polls(cadence),
        "",
        4,
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory   {peak:.0f} MiB")
    figures.record("process", "peak RSS (memory, Google and Graph runs)", peak, "MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=400, help="memory provider org size")
    parser.add_argument(
        "--google-people", type=int, default=60, help="org size over HTTP (Google and Graph)"
    )
    parser.add_argument(
        "--calendars",
        type=scheduler.organization_size,
        default=None,
        help="org size for the scheduler benchmark (default: 1000 and 10000)",
    )
    args = parser.parse_args()
    run(args.people, args.google_people)
    mails.run()
    for size in (args.calendars,) if args.calendars else scheduler.SIZES:
        scheduler.run(size)
    scheduler.scaling()
    figures.report()


if __name__ == "__main__":
    main()
