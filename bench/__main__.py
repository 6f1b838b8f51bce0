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
import json
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.oauth2 import service_account
from sqlalchemy import select

from bench import caldav, cycle, figures, mails, pages, peer, push, scheduler
from bench.org import addresses, organization, populate
from providers.base import Provider
from providers.emulators.google import GoogleEmulator
from providers.emulators.graph import GraphEmulator
from providers.google.calendar import GoogleProvider
from providers.google.grant import SCOPES as GOOGLE_SCOPES
from providers.microsoft.graph import MicrosoftProvider, app_token_source
from providers.microsoft.tokens import login_session
from providers.model import Window
from syncd import detect
from syncd import scheduler as scheduler_module
from syncd.engine import CalendarSync, Policy, Report, SyncState
from syncd.store import connect, migrate, sessions
from syncd.store.models import Calendar

#: Settled passes timed against the floor, alternating: the least of each is the figure.
SETTLED_ROUNDS = 7


def measure(
    label: str,
    provider: Provider,
    calls: Callable[[], int],
    floor: Callable[[], float] | None = None,
) -> None:
    """First sync, settle, steady state: wall, client CPU (this thread) and calls per calendar.

    The emulators serve from their own threads, so ``time.thread_time`` of
    the syncing thread is the client's CPU alone: adapter, client library,
    engine, SQLite. Each sync gets the row id and state a worker's claim
    hands it (the claim reads the row anyway; its cost is in the cycle's
    figures). With ``floor`` (ms of CPU per call of the client library
    alone), settled passes and floor rounds alternate, and the least of each
    is compared: this machine's speed drifts from second to second, and the
    least is the run least disturbed, for both alike.
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
        #: the row id and state a worker's claim hands each sync, once known
        claimed: dict[str, tuple[int, SyncState]] = {}
        for phase in ("first sync", "settle", "steady state"):
            before = calls()
            report = Report()
            started, cpu = time.perf_counter(), time.thread_time()
            for address in calendars:
                calendar_id, state = claimed.get(address, (None, None))
                report.merge(syncer.sync(address, now, calendar_id, state))
            elapsed, used = time.perf_counter() - started, time.thread_time() - cpu
            made = calls() - before
            print(
                f"{label:<7} {phase:<13} {len(calendars):>5} calendars  {elapsed:7.2f} s  "
                f"{1000 * elapsed / len(calendars):6.1f} ms/calendar  "
                f"{1000 * used / len(calendars):6.2f} ms CPU/calendar  "
                f"{made / len(calendars):5.2f} calls/calendar  writes {report.writes:>5}"
            )
            with syncer.factory() as session:  # what the next claim reads of each row
                claimed = {
                    row.address: (row.id, SyncState.of(row))
                    for row in session.scalars(select(Calendar))
                }
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
                figures.record(label, "writes in a settled pass", report.writes, "", 0)
        ours, floors = [1000 * used / len(calendars)], []
        for _ in range(SETTLED_ROUNDS if floor is not None else 0):
            cpu = time.thread_time()
            for address in calendars:
                syncer.sync(address, now, *claimed[address])
            ours.append(1000 * (time.thread_time() - cpu) / len(calendars))
            floors.append(floor())
            with syncer.factory() as session:
                claimed = {
                    row.address: (row.id, SyncState.of(row))
                    for row in session.scalars(select(Calendar))
                }
        if label != "memory":
            figures.record(label, "client CPU per settled poll", min(ours), "ms")
        if floors:
            figures.record(
                label, "library floor: events().list(syncToken).execute()", min(floors), "ms"
            )
            figures.record(
                label, "client CPU per settled poll / floor", min(ours) / min(floors), "×", 2
            )
        engine.dispose()


class FloorRound:
    """What google-api-python-client itself costs per settled poll: ms of CPU per call.

    One built service, each person's credentials, ``events().list(syncToken=…)
    .execute()`` on a calendar where nothing changed, with the parameters
    the adapter sends (``showDeleted`` for the details of a cancelled
    occurrence, the page size): the least any client of this library can
    spend on the same poll. Set up once; each call times one round over
    everyone.
    """

    def __init__(self, emulator: GoogleEmulator, people: list[str]) -> None:
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
        self.events = service.events()
        self.tokens: dict[str, tuple[AuthorizedHttp, str]] = {}
        for person in people:
            http = AuthorizedHttp(delegating.with_subject(person), http=transport)
            request = self.events.list(calendarId=person, maxResults=250, singleEvents=False)
            page = request.execute(http=http)
            while "nextPageToken" in page:
                page = self.events.list(calendarId=person, pageToken=page["nextPageToken"]).execute(
                    http=http
                )
            self.tokens[person] = (http, page["nextSyncToken"])

    def __call__(self) -> float:
        started = time.thread_time()
        for person, (http, token) in self.tokens.items():
            self.events.list(
                calendarId=person, syncToken=token, maxResults=250, showDeleted=True
            ).execute(http=http)
        return 1000 * (time.thread_time() - started) / len(self.tokens)


def token_requests(
    emulator: GoogleEmulator,
    provider: GoogleProvider,
    held: dict[str, service_account.Credentials],
) -> tuple[float, float]:
    """Token requests per person for a round of settled polls: within a token's hour, and
    once each token has expired (as it has by the next poll behind a healthy channel)."""
    now = datetime.now(UTC)
    window = Window(now, now + timedelta(days=1))
    cursors = {person: full_read_cursor(provider, person, window) for person in held}

    def round_of_polls() -> float:
        before = sum(1 for r in emulator.requests if r.op == "token")
        for person, cursor in cursors.items():
            list(provider.changes(person, cursor, window))
        return (sum(1 for r in emulator.requests if r.op == "token") - before) / len(held)

    within = round_of_polls()
    for credentials in held.values():  # the hour has passed, by the client's own clock
        credentials.expiry = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
    return within, round_of_polls()


def full_read_cursor(provider: Provider, calendar: str, window: Window) -> str | None:
    """The cursor a full read of ``calendar`` ends with."""
    cursor = None
    for page in provider.changes(calendar, None, window):
        cursor = page.cursor or cursor
    return cursor


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
        held: dict[str, service_account.Credentials] = {}  # what the adapter keeps per person
        google = GoogleProvider(
            addresses(google_people),
            lambda person: held.setdefault(person, delegating.with_subject(person)),
            api_root=emulator.api_root,
        )
        api = {"list", "get", "patch", "instances"}
        floor = FloorRound(emulator, addresses(google_people))
        measure(
            "google",
            google,
            lambda: sum(1 for r in emulator.requests if r.op in api),
            floor,
        )
        gcal_sync = peer.settled_poll_ms(emulator.api_root, held)
        if gcal_sync is None:
            print("peer skipped: gcal_sync is not installed (make bench installs it)")
        else:
            figures.record("google", "peer: gcal_sync, per settled poll", gcal_sync, "ms")
        within, expired = token_requests(emulator, google, held)
        figures.record(
            "google", "token requests per person, polls within a token's hour", within, "", 0
        )
    cadence = scheduler_module.Cadence()
    figures.record(
        "google",
        "list calls per settled calendar per day, push healthy",
        day_of_polls(cadence),
        "",
        4,
    )
    # Polls behind a healthy channel are hours apart, longer than a token lives:
    # each one needs the token request measured after expiry, and no more.
    figures.record(
        "google",
        "token requests per person per day, push healthy",
        day_of_polls(cadence) * expired,
        "",
        4,
    )
    with GraphEmulator(addresses(google_people)) as tenant:
        populate(tenant, google_people, datetime.now(UTC))
        tokens = app_token_source(
            tenant.https_authority,
            tenant.client_id,
            tenant.client_secret,
            http_client=login_session(tenant.ca_file),
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


#: Org sizes of the settled cycle: CPU per calendar at the larger within 1.2x the smaller.
CYCLE_SIZES = (1000, 10000)
#: The most a worker may hold syncing 10,000 calendars (issue #11).
RSS_BOUND_MIB = 250


def settled_cycles(sizes: list[int]) -> None:
    """The settled cycle on one worker per size (a fresh process each), and on PostgreSQL
    1 against 3 worker processes sharing one backlog."""
    per_calendar: dict[int, float] = {}
    for size in sizes:
        got = cycle.measure(size)
        print(f"cycle {json.dumps(got)}")
        per_calendar[size] = got["CPU per settled calendar ms"]
        area = f"cycle {size}"
        figures.record(
            area, "first pass (every calendar synced and written)", got["first pass s"], "s"
        )
        figures.record(area, "settled cycle, one worker", got["settled cycle s"], "s")
        figures.record(area, "CPU per settled calendar", got["CPU per settled calendar ms"], "ms")
        bound = RSS_BOUND_MIB if size >= 10000 else None
        figures.record(area, "peak RSS of the worker", got["peak RSS MiB"], "MiB", bound)
        figures.record(area, "errors", got["errors"], "", 0)
    if len(per_calendar) >= 2:
        small, large = min(per_calendar), max(per_calendar)
        figures.record(
            "cycle",
            f"CPU per settled calendar, {large} / {small}",
            per_calendar[large] / per_calendar[small],
            "×",
            1.2,
        )
    url = scheduler.postgres_url()
    if not url or not sizes:
        print("workers skipped: set SYNCD_BENCH_POSTGRES_URL to a PostgreSQL server")
        return
    size = min(sizes)
    drained = cycle.workers(size, url)
    print(f"workers {json.dumps(drained)}")
    for count, seconds in drained.items():
        figures.record(
            "workers", f"{size} marked calendars synced, {count} worker(s)", seconds, "s"
        )
    # 2 cores, shared with the emulator's process: 3 workers can at best use both.
    figures.record("workers", "3 workers over 1 (bound: 2 cores)", drained[1] / drained[3], "×", 2)


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
    parser.add_argument(
        "--cycle",
        type=int,
        nargs="*",
        default=list(CYCLE_SIZES),
        help="org sizes of the settled cycle on one worker (default: 1000 10000)",
    )
    args = parser.parse_args()
    run(args.people, args.google_people)
    mails.run()
    caldav.run()
    settled_cycles(args.cycle)
    latency = push.run()
    for name in ("p50", "p95"):
        bound = latency["bound"] if name == "p95" else None
        figures.record("push", f"push to block written, {name}", latency[name], "s", bound)
    figures.record(
        "push", "one round trip (list call, loopback)", 1000 * latency["round trip"], "ms"
    )
    for connections, (rps, p95) in pages.run().items():
        figures.record("pages", f"agenda page, {connections} connections", rps, "requests/s")
        figures.record("pages", f"agenda page p95, {connections} connections", 1000 * p95, "ms")
    for size in (args.calendars,) if args.calendars else scheduler.SIZES:
        scheduler.run(size)
    scheduler.scaling()
    figures.report()


if __name__ == "__main__":
    main()
