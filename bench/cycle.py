"""A settled cycle at organization scale: every calendar polled once, nothing new.

One worker (``syncd.runtime.Worker``, its thread pool, the scheduler's
claims and releases, the engine, the Google adapter) against the Google
emulator running in a process of its own, so that this process's CPU time
and peak RSS are syncd's alone. Each size runs in a fresh process, because
peak RSS is a figure of a process's whole life::

    python -m bench.cycle --calendars 10000

prints one JSON line: the first pass (wall), then the settled cycles (wall,
CPU per calendar) and the peak RSS. The worker's clock is moved past the poll
interval between cycles, so every calendar is due at once; a cycle is the
time from that moment until each calendar has been synced.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.oauth2 import service_account
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from providers.google.calendar import GoogleProvider
from providers.google.grant import SCOPES as GOOGLE_SCOPES
from syncd import config, detect, scheduler
from syncd.engine import CalendarSync, Policy
from syncd.runtime import Worker
from syncd.store import connect, migrate, sessions, transaction
from syncd.store.models import Calendar

ACCOUNT = "bench"
#: Longer than any calendar's poll interval (5 minutes less its jitter), shorter
#: than the engine's hourly replan: each cycle is a settled poll of everyone.
STEP = timedelta(minutes=6)


def addresses(people: int) -> list[str]:
    return [f"p{i:05d}@example.org" for i in range(people)]


def seed(people: int) -> dict[str, Any]:
    """The bench organization in the emulators' seed format: weekly 1:1s, teams of eight."""
    everyone = addresses(people)
    events: list[dict[str, Any]] = []
    for i in range(0, people - 1, 2):
        events.append(
            {
                "organizer": everyone[i],
                "attendees": [everyone[i + 1]],
                "title": "1:1",
                "in_days": 1 + i % 5,
                "at": f"{9 + (i // 5) % 8:02d}:00",
                "minutes": 30,
                "every_days": 7,
            }
        )
    for team in range(0, people, 8):
        members = everyone[team : team + 8]
        events.append(
            {
                "organizer": members[0],
                "attendees": members[1:],
                "title": "Team",
                "in_days": 1,
                "at": "09:00",
                "minutes": 60,
                "every_days": 7,
            }
        )
    return {"users": everyone, "events": events}


@dataclass
class Served:
    api_root: str
    service_account: dict[str, str]


@contextmanager
def google_emulator(people: int, folder: Path) -> Iterator[Served]:
    """``python -m providers.emulators.google`` seeded with the organization, until exit."""
    seeded, key = folder / "seed.json", folder / "service-account.json"
    seeded.write_text(json.dumps(seed(people)), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "providers.emulators.google", "--seed", str(seeded)]
        + ["--service-account", str(key)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base = process.stdout.readline().strip()
        if not base.startswith("http"):
            raise RuntimeError(f"the Google emulator did not start (said {base!r})")
        info = json.loads(key.read_text(encoding="utf-8"))
        yield Served(base + "calendar/v3/", info)
    finally:
        process.terminate()
        process.wait(timeout=30)


def drain(worker: Worker, calendars: int) -> tuple[float, float]:
    """Step the worker until ``calendars`` more syncs ended: (wall seconds, CPU seconds)."""
    target = worker.totals.syncs + calendars
    started, cpu = time.perf_counter(), time.process_time()
    while worker.totals.syncs < target:
        worker.step(wait_seconds=0.05)
    return time.perf_counter() - started, time.process_time() - cpu


def syncer_for(factory: sessionmaker[Session], served: Served, people: int) -> CalendarSync:
    """The Google account of the bench organization, as ``syncd run`` assembles one."""
    delegating = service_account.Credentials.from_service_account_info(
        served.service_account, scopes=list(GOOGLE_SCOPES)
    )
    provider = GoogleProvider(
        addresses(people),
        lambda person: delegating.with_subject(person),
        api_root=served.api_root,
    )
    policy = Policy(
        base_url="https://agenda.example.org",
        zone=UTC,
        rules=detect.Rules(org_domains=("example.org",)),
    )
    return CalendarSync(provider, factory, policy, account=ACCOUNT)


def run(people: int, url: str | None, cycles: int = 2) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, google_emulator(people, Path(tmp)) as served:
        engine = connect(url or f"sqlite:///{Path(tmp) / 'cycle.db'}")
        migrate(engine)
        factory = sessions(engine)
        syncer = syncer_for(factory, served, people)
        scheduler.enroll(factory, ACCOUNT, "google", addresses(people))
        clock = [datetime.now(UTC)]
        worker = Worker(factory, {ACCOUNT: syncer}, {}, config.Sync(), clock=lambda: clock[0])
        try:
            first_wall, _ = drain(worker, people)
            first_writes = worker.totals.writes
            settled: list[tuple[float, float]] = []
            for _ in range(cycles):
                clock[0] += STEP
                before = worker.totals.writes
                settled.append(drain(worker, people))
                if worker.totals.writes != before:
                    raise RuntimeError("a settled cycle wrote to a calendar")
            errors = worker.totals.errors
        finally:
            worker.drain()
            engine.dispose()
    wall, cpu = settled[-1]  # the last: every cache as warm as it gets
    return {
        "calendars": people,
        "database": engine.dialect.name,
        "first pass s": first_wall,
        "first pass writes": first_writes,
        "settled cycle s": wall,
        "CPU per settled calendar ms": 1000 * cpu / people,
        "peak RSS MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "errors": errors,
    }


def workers(people: int, url: str, counts: tuple[int, ...] = (1, 3)) -> dict[int, float]:
    """Seconds for ``n`` worker processes to sync every calendar once, on PostgreSQL.

    The organization is synced first (its blocks written); then, for each
    count, every calendar is marked due at once and ``n`` processes, each
    one ``Worker`` on the real clock, share the backlog through their claims.
    A marked calendar is planned in full (a mark asks for that), so these
    are real syncs: list, plan, no write.
    """
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = connect(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = connect(url, schema=schema)
    drained: dict[int, float] = {}
    try:
        migrate(engine)
        factory = sessions(engine)
        with tempfile.TemporaryDirectory() as tmp, google_emulator(people, Path(tmp)) as served:
            scheduler.enroll(factory, ACCOUNT, "google", addresses(people))
            first = Worker(
                factory, {ACCOUNT: syncer_for(factory, served, people)}, {}, config.Sync()
            )
            drain(first, people)
            first.drain()
            key = Path(tmp) / "service-account.json"
            for count in counts:
                drained[count] = _drain_with(count, people, url, schema, served, key, factory)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return drained


def _drain_with(
    count: int,
    people: int,
    url: str,
    schema: str,
    served: Served,
    key: Path,
    factory: sessionmaker[Session],
) -> float:
    command = [sys.executable, "-m", "bench.cycle", "--work", url, schema, served.api_root]
    command += [str(key), str(people)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    try:
        for process in processes:  # each one's imports and settle_hints, off the clock
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("a bench worker did not start")
        marked = datetime.now(UTC)
        with transaction(factory) as session:
            session.execute(update(Calendar).values(next_sync_at=marked, due_hint=None))
        started = time.perf_counter()
        while True:
            with factory() as session:
                left = session.scalar(
                    select(func.count())
                    .select_from(Calendar)
                    .where(or_(Calendar.last_sync_at.is_(None), Calendar.last_sync_at < marked))
                )
            if not left:
                return time.perf_counter() - started
            if any(process.poll() is not None for process in processes):
                raise RuntimeError("a bench worker ended early")
            time.sleep(0.05)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)


def work(url: str, schema: str, api_root: str, key: Path, people: int) -> None:
    """One worker process of ``workers``: says "ready", then syncs until terminated."""
    engine = connect(url, schema=schema)
    factory = sessions(engine)
    served = Served(api_root, json.loads(key.read_text(encoding="utf-8")))
    worker = Worker(factory, {ACCOUNT: syncer_for(factory, served, people)}, {}, config.Sync())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    worker.run(stop)
    engine.dispose()


def measure(people: int, url: str | None = None) -> dict[str, Any]:
    """One size in a fresh process (its own peak RSS): what ``run`` returns."""
    command = [sys.executable, "-m", "bench.cycle", "--calendars", str(people)]
    if url:
        command += ["--database", url]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.cycle --calendars {people} failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calendars", type=int, default=1000)
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: SQLite)")
    parser.add_argument("--work", nargs=5, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work:
        url, schema, api_root, key, people = args.work
        work(url, schema, api_root, Path(key), int(people))
        return
    print(json.dumps(run(args.calendars, args.database)))


if __name__ == "__main__":
    main()
