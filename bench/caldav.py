"""CalDAV: what a settled poll costs against a real server, beside the client library's floor.

Radicale (from PyPI) on loopback, a calendar per person holding a weekly
1:1 series and a few single events. After the first (full) read, a poll
with nothing changed is one sync-collection REPORT. The floor is the same
REPORT made by the caldav library itself (``objects_by_sync_token``), which
the provider calls; the figure says what the provider adds on top: mapping,
paging, the cursor. A first sync (every object read and parsed, occurrences
expanded for the window) is timed per calendar as well.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import caldav

from bench import figures
from providers.calendar_model import Recurrence
from providers.model import Window
from tests.providers.caldav_servers import CalDavWorld, radicale
from tests.providers.test_caldav import connected

PEOPLE = tuple(f"p{i:02d}@example.org" for i in range(6))
ROUNDS = 40


def run() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    window = Window(now - timedelta(days=1), now + timedelta(days=28))
    with tempfile.TemporaryDirectory() as folder, radicale(Path(folder) / "server") as server:
        world = CalDavWorld(server, PEOPLE)
        for n, person in enumerate(PEOPLE):
            other = PEOPLE[(n + 1) % len(PEOPLE)]
            start = now + timedelta(days=1, hours=n)
            world.create_event(
                person, [person, other], f"1:1 {n}", start, start + timedelta(minutes=30),
                recurrence=Recurrence(7, count=12),
            )  # fmt: skip
            for k in range(4):
                single = now + timedelta(days=2 + k, hours=n)
                world.create_event(person, [person, other], f"sync {n}.{k}", single,
                                   single + timedelta(minutes=30))  # fmt: skip
        (Path(folder) / "client").mkdir()
        for provider in connected(world, Path(folder) / "client", PEOPLE):
            started = time.perf_counter()
            cursors = {}
            for person in PEOPLE:
                pages = list(provider.changes(person, None, window))
                cursors[person] = pages[-1].cursor
            first = (time.perf_counter() - started) / len(PEOPLE)

            ours: list[float] = []
            for _ in range(ROUNDS):
                for person in PEOPLE:
                    tick = time.perf_counter()
                    pages = list(provider.changes(person, cursors[person], window))
                    ours.append(time.perf_counter() - tick)
                    cursors[person] = pages[-1].cursor
        client = server.client()
        floor: list[float] = []
        tokens = {}
        for person in PEOPLE:
            collection = caldav.Calendar(client=client, url=world.url_of(person))
            tokens[person] = collection.objects_by_sync_token(load_objects=False).sync_token
        for _ in range(ROUNDS):
            for person in PEOPLE:
                collection = caldav.Calendar(client=client, url=world.url_of(person))
                tick = time.perf_counter()
                listing = collection.objects_by_sync_token(tokens[person], load_objects=False)
                floor.append(time.perf_counter() - tick)
                tokens[person] = listing.sync_token
    settled, base = statistics.median(ours), statistics.median(floor)
    figures.record("caldav", "settled poll (Radicale, loopback), p50", 1000 * settled, "ms")
    figures.record("caldav", "caldav library's own REPORT, p50 (floor)", 1000 * base, "ms")
    figures.record("caldav", "settled poll over the floor", settled / base, "x")
    figures.record("caldav", "first sync of a calendar (13 objects)", 1000 * first, "ms")


if __name__ == "__main__":
    run()
    print(figures.table())  # alone: the table only; `make bench` writes the results
