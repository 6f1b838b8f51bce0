"""Every fault the calendar APIs answer with, at every step, on both emulators: nothing is lost.

The savings of issue #11 (no GET before a write, stretched polls, coalesced
Outlook writes) all lean on the server refusing what is stale. This matrix
proves that the leaner paths lose nothing: for each provider, each fault
(throttling with Retry-After, server errors, token endpoint failures, an
expired change cursor, a person typing between our read and our write) is
injected on a first sync and on the sync after a change (a person's own
text in the invite and a talking point on the agenda page), and the
organization is synced until it settles. Then, as a person would check:

* every 1:1 occurrence in the horizon carries exactly one block, with the
  talking point in it;
* nothing a person typed into an invite is gone (lost edits);
* no description anywhere holds two blocks (duplicate blocks).

It prints one line: ``faults injected: N, converged: N, lost edits: 0,
duplicate blocks: 0``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from providers.emulators.graph import GraphEmulator
from syncd import push
from syncd.engine import CalendarSync
from syncd.store import sessions
from tests.e2e.org import ANA, BO, CY, EVE, PEOPLE, Org, google_org, policy, seed
from tests.e2e.test_microsoft_tenant import graph_provider

TYPED = "PS: bring the Q3 numbers"
RACED = "typed while syncd was writing"
POINT = "Hiring plan for Q1"
BEGIN = re.compile(r"─{2,}\s*1:1\s*agenda\s*─{2,}", re.IGNORECASE)
ROUNDS = 8


@dataclass(frozen=True)
class Fault:
    """One way a server answers badly: ``inject(emulator)`` arms it before a sync.

    ``typed`` collects the copies a person typed into while syncd was writing.
    """

    name: str
    inject: Callable[[Any], None]
    typed: list[tuple[str, str]] = field(default_factory=list)


def failing(
    op: str, status: int, code: str, times: int = 2, retry_after: float | None = None
) -> Fault:
    def inject(emulator: Any) -> None:
        emulator.faults.fail(op, status, code, times=times, retry_after=retry_after)

    return Fault(f"{op} {status} {code}", inject)


def expired_cursors() -> Fault:
    def inject(emulator: Any) -> None:
        for person in PEOPLE:
            emulator.expire_cursors(person)

    return Fault("expired cursor", inject)


def typing_during_the_write() -> Fault:
    typed: list[tuple[str, str]] = []

    def inject(emulator: Any) -> None:
        typed.clear()

        def types(calendar: str, event_id: str) -> None:
            body = emulator.description(calendar, event_id)
            emulator.edit_description(calendar, event_id, f"{body}\n{RACED}")
            typed.append((calendar, event_id))

        emulator.faults.before_patch(types, times=1)

    return Fault("a person types between read and write", inject, typed)


GOOGLE_FAULTS = [
    failing("list", 429, "rateLimitExceeded", retry_after=0.01),
    failing("list", 403, "userRateLimitExceeded"),
    failing("list", 503, "backendError"),
    failing("patch", 500, "backendError"),
    failing("patch", 412, "conditionNotMet", times=1),
    failing("get", 503, "backendError"),
    failing("token", 503, "temporarily_unavailable"),
    expired_cursors(),
    typing_during_the_write(),
]
GRAPH_FAULTS = [
    failing("delta", 429, "ApplicationThrottled", retry_after=0.01),
    failing("delta", 503, "ServiceNotAvailable", retry_after=0.01),
    failing("get", 500, "ErrorInternalServerError"),
    failing("patch", 503, "ServiceNotAvailable"),
    failing("patch", 409, "ErrorIrresolvableConflict", times=1),
    failing("patch", 412, "ErrorIrresolvableConflict", times=1),
    # msal holds a failed token answer for its Retry-After (5 s without one) of real
    # time; this matrix runs on a simulated clock, so the answer says 0
    failing("token", 503, "temporarily_unavailable", retry_after=0),
    expired_cursors(),
    typing_during_the_write(),
]


def google(engine: Engine, now: datetime) -> AbstractContextManager[Org]:
    return google_org(engine, now, sleep=_no_wait)


@contextmanager
def graph_org(engine: Engine, now: datetime) -> Iterator[Org]:
    with GraphEmulator(PEOPLE) as emulator:
        provider = graph_provider(emulator, PEOPLE)
        syncer = CalendarSync(
            provider, sessions(engine), policy(), account="contoso", sleep=_no_wait
        )
        try:
            yield Org(emulator, syncer, now)
        finally:
            provider.close()


def _no_wait(seconds: float) -> None:
    """Backoffs cost no wall time here; that they happen is what counts."""


@dataclass
class Outcome:
    converged: bool = False
    lost_edits: int = 0
    duplicate_blocks: int = 0
    why: str = ""


def settle(org: Org) -> bool:
    """Sync everyone until a pass writes nothing and fails nowhere."""
    for _ in range(ROUNDS):
        org.now += timedelta(minutes=1)
        report = org.sync_all()
        if report.writes == 0 and not report.errors:
            return True
    return False


def check(
    org: Org, events: dict[str, tuple[str, datetime]], changed: bool, fault: Fault
) -> Outcome:
    uid, first = events["weekly"]
    outcome = Outcome(converged=True)
    expected: list[tuple[str, str, datetime | None]] = [
        (ANA, uid, first),
        (ANA, uid, first + timedelta(days=7)),
        (CY, events["biweekly"][0], events["biweekly"][1]),
        (EVE, events["adhoc"][0], None),
    ]
    for calendar, event_uid, start in expected:
        text = org.block_of(calendar, event_uid, start)
        if text is None:
            outcome.converged, outcome.why = False, f"no block in {calendar} {start}"
        elif changed and calendar == ANA and start == first and POINT not in text:
            outcome.converged, outcome.why = False, "the talking point did not reach the invite"
    bodies = []
    for name, (event_uid, start) in events.items():
        starts = [start, start + timedelta(days=7)] if name in ("weekly", "biweekly") else [None]
        for person in PEOPLE:
            for moment in starts:
                try:
                    copy = org.emulator.copy_id(person, event_uid, moment)
                except LookupError:  # not invited
                    continue
                bodies.append(html.unescape(org.emulator.description(person, copy)))
    outcome.duplicate_blocks = sum(1 for body in bodies if len(BEGIN.findall(body)) > 1)
    if changed:
        ours = html.unescape(org.emulator.description(ANA, org.emulator.copy_id(ANA, uid, first)))
        outcome.lost_edits = int(TYPED not in ours)
    for calendar, event_id in fault.typed:
        outcome.lost_edits += int(
            RACED not in html.unescape(org.emulator.description(calendar, event_id))
        )
    return outcome


def run_cell(
    make: Callable[[Engine, datetime], Any], engine: Engine, fault: Fault, phase: str
) -> Outcome:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with make(engine, now) as org:
        events = seed(org)
        uid, first = events["weekly"]
        if phase == "change":
            if not settle(org):
                return Outcome(why="did not settle before the change")
            copy = org.emulator.copy_id(ANA, uid, first)
            body = org.emulator.description(ANA, copy)
            org.emulator.edit_description(ANA, copy, f"{body}\n{TYPED}")
            org.add_point(uid, first, POINT, BO)
            org.now += push.DEBOUNCE
            if org.syncer.provider.mails_attendees:
                # Outlook: the talking point waits for the refresh before the meeting
                org.now = first - timedelta(hours=1)
        fault.inject(org.emulator)
        if not settle(org):
            outcome = check(org, events, phase == "change", fault)
            outcome.converged, outcome.why = False, outcome.why or "still writing or failing"
            return outcome
        return check(org, events, phase == "change", fault)


MATRIX = [
    (label, make, fault, phase)
    for label, make, faults in (
        ("google", google_org, GOOGLE_FAULTS),
        ("graph", graph_org, GRAPH_FAULTS),
    )
    for fault in faults
    for phase in ("first sync", "change")
]


def test_every_fault_at_every_step_converges_and_loses_nothing(
    db_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    from syncd.store.models import Base

    failures: list[str] = []
    converged = lost = duplicates = 0
    for label, make, fault, phase in MATRIX:
        with db_engine.begin() as conn:  # each cell on an empty database
            Base.metadata.drop_all(conn)
            Base.metadata.create_all(conn)
        outcome = run_cell(make, db_engine, fault, "change" if phase == "change" else "first")
        converged += outcome.converged
        lost += outcome.lost_edits
        duplicates += outcome.duplicate_blocks
        if not outcome.converged or outcome.lost_edits or outcome.duplicate_blocks:
            failures.append(f"{label} / {fault.name} / {phase}: {outcome}")
    summary = (
        f"faults injected: {len(MATRIX)}, converged: {converged}, "
        f"lost edits: {lost}, duplicate blocks: {duplicates}"
    )
    with capsys.disabled():
        print(f"\nfault matrix: {summary}")
    assert failures == [], "\n".join(failures)
    assert converged == len(MATRIX) and lost == 0 and duplicates == 0
