"""The bench organization: everyone in a weekly 1:1 with a partner and a weekly team of eight."""

from __future__ import annotations

from datetime import datetime, timedelta

from providers.calendar_world import WorldBuilder
from providers.memory import MemoryProvider, Recurrence


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
