"""The text of writable copies held for the next write: exact, versioned, bounded."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from providers.model import Event
from syncd.bodies import Bodies

START = datetime(2026, 12, 8, 10, tzinfo=UTC)


def event(event_id: str, description: str, etag: str = '"1"') -> Event:
    return Event(
        id=event_id,
        calendar_id="ana@example.org",
        ical_uid=f"uid-{event_id}",
        title="Ana / Bo",
        start=START,
        end=START + timedelta(minutes=30),
        organizer="ana@example.org",
        description=description,
        description_is_html=True,
        etag=etag,
        tag="inst:tok",
        is_organizer_copy=True,
    )


def test_the_text_comes_back_exactly_for_the_version_it_was_read_at() -> None:
    bodies = Bodies()
    text = "Zoom passcode 1234\x00 \ud800 ✨"  # kept as read, unstorable characters too
    bodies.keep("ana@example.org", event("e1", text))

    held = bodies.get("ana@example.org", "e1", '"1"')
    assert held is not None
    assert (held.description, held.is_html, held.tag) == (text, True, "inst:tok")
    assert bodies.get("ana@example.org", "e1", '"2"') is None  # another version: read it
    assert bodies.get("bo@example.org", "e1", '"1"') is None


def test_a_newer_read_replaces_the_older_and_forget_drops_it() -> None:
    bodies = Bodies()
    bodies.keep("ana@example.org", event("e1", "old", '"1"'))
    bodies.keep("ana@example.org", event("e1", "new", '"2"'))
    assert len(bodies) == 1
    held = bodies.get("ana@example.org", "e1", '"2"')
    assert held is not None and held.description == "new"
    bodies.forget("ana@example.org", "e1")
    assert len(bodies) == 0 and bodies.size == 0


def test_the_bound_drops_the_least_recently_used_first() -> None:
    bodies = Bodies(limit_chars=3 * (100 + len("inst:tok") + 3))
    for name in ("a", "b", "c"):
        bodies.keep("ana@example.org", event(name, "x" * 100))
    assert bodies.get("ana@example.org", "a", '"1"') is not None  # a is used again

    bodies.keep("ana@example.org", event("d", "x" * 100))

    assert bodies.get("ana@example.org", "b", '"1"') is None  # the oldest unused went
    assert all(bodies.get("ana@example.org", n, '"1"') for n in ("a", "c", "d"))
    assert bodies.size <= 3 * (100 + len("inst:tok") + 3)


def test_a_text_larger_than_the_bound_is_not_held() -> None:
    bodies = Bodies(limit_chars=50)
    bodies.keep("ana@example.org", event("big", "x" * 500))
    assert len(bodies) == 0 and bodies.size == 0


def test_threads_keep_the_size_exact() -> None:
    bodies = Bodies(limit_chars=10_000)

    def churn(worker: int) -> None:
        for n in range(300):
            bodies.keep("ana@example.org", event(f"{worker}-{n % 40}", "y" * (n % 97)))

    threads = [threading.Thread(target=churn, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = 0
    for worker in range(4):
        for n in range(40):
            held = bodies.get("ana@example.org", f"{worker}-{n}", '"1"')
            total += held.size if held else 0
    assert bodies.size == total <= 10_000
