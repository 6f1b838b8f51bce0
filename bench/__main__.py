"""Sync cost of an organization on the memory provider and SQLite.

Prints, for a first sync and for a steady-state pass with nothing changed:
wall time, time per calendar, provider calls per calendar and writes. The
steady state is what an organization pays every poll interval, so it is the
figure to watch: one changes call per calendar and no write.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from providers.memory import MemoryProvider, Recurrence
from syncd import detect
from syncd.engine import CalendarSync, Policy, Report
from syncd.store import connect, migrate, sessions


def organization(people: int, now: datetime) -> MemoryProvider:
    addresses = [f"p{i:04d}@example.org" for i in range(people)]
    world = MemoryProvider(addresses, page_size=250)
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
    return world


def run(people: int) -> None:
    now = datetime.now(UTC)
    world = organization(people, now)
    with tempfile.TemporaryDirectory() as tmp:
        engine = connect(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate(engine)
        policy = Policy(
            base_url="https://agenda.example.org", zone=UTC, rules=detect.Rules(), template=()
        )
        syncer = CalendarSync(world, sessions(engine), policy, account="bench")
        calendars = world.calendars()
        for label in ("first sync", "settle", "steady state"):
            before = len(world.requests)
            report = Report()
            started = time.perf_counter()
            for address in calendars:
                report.merge(syncer.sync(address, now))
            elapsed = time.perf_counter() - started
            calls = len(world.requests) - before
            print(
                f"{label:<13} {len(calendars):>5} calendars  {elapsed:7.2f} s  "
                f"{1000 * elapsed / len(calendars):6.1f} ms/calendar  "
                f"{calls / len(calendars):5.2f} calls/calendar  writes {report.writes:>5}"
            )
        engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory   {peak:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=400)
    run(parser.parse_args().people)


if __name__ == "__main__":
    main()
