"""Attendee mails per Outlook occurrence over a simulated week of agenda edits, and on Google.

One pair (Ana organizes a weekly 1:1 with Bo) adds a talking point every
three hours for a week, and syncd syncs both calendars every half hour, as
the scheduler would with push marks and the mail budget's wake-ups. The
emulators record the meeting updates Exchange (every write to the
organizer's copy) and Google (``sendUpdates``) would mail; what Bo finds in
his inbox per occurrence is the figure. Bound: ``syncd.budget.MAX_MAILS``.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.oauth2 import service_account
from sqlalchemy import select

from bench import figures
from providers.base import Provider
from providers.emulators.google import GoogleEmulator
from providers.emulators.graph import GraphEmulator
from providers.google.calendar import GoogleProvider
from providers.google.grant import SCOPES as GOOGLE_SCOPES
from providers.memory import Recurrence
from providers.microsoft.graph import MicrosoftProvider, app_token_source
from providers.microsoft.tokens import login_session
from syncd import agenda, budget, detect, push
from syncd.engine import CalendarSync, Policy
from syncd.store import connect, migrate, sessions, transaction
from syncd.store.models import Meeting

ANA, BO = "ana@example.org", "bo@example.org"


def week(emulator: Any, provider: Provider) -> Counter[datetime | None]:
    """Bo's meeting updates per occurrence after a week of edits."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = now + timedelta(days=7)
    uid = emulator.create_event(
        ANA, [ANA, BO], "Ana / Bo", first, first + timedelta(minutes=30),
        recurrence=Recurrence(interval_days=7),
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        engine = connect(f"sqlite:///{Path(tmp) / 'mails.db'}")
        migrate(engine)
        policy = Policy(
            base_url="https://agenda.example.org",
            zone=UTC,
            rules=detect.Rules(org_domains=("example.org",)),
            template=(),
        )
        factory = sessions(engine)
        syncer = CalendarSync(provider, factory, policy, account="bench", sleep=lambda s: None)
        step = timedelta(minutes=30)
        for n in range(int(timedelta(days=7) / step) + 2):
            if n % 6 == 1:
                with transaction(factory) as session:
                    meeting = session.scalars(
                        select(Meeting).where(
                            Meeting.ical_uid == uid, Meeting.original_start == first
                        )
                    ).one()
                    agenda.add_talking_point(session, meeting, f"point {n}", BO, now)
                    push.mark_pair_due(session, meeting.pair_id, now)
            for person in (ANA, BO):
                syncer.sync(person, now)
            now += step
        engine.dispose()
    return Counter(mail.occurrence for mail in emulator.mails if mail.recipient == BO)


def run() -> None:
    with GraphEmulator([ANA, BO]) as tenant:
        tokens = app_token_source(
            tenant.https_authority, tenant.client_id, tenant.client_secret,
            http_client=login_session(tenant.ca_file),
        )  # fmt: skip
        graph = MicrosoftProvider([ANA, BO], tokens, graph_root=tenant.graph_root)
        try:
            outlook = week(tenant, graph)
        finally:
            graph.close()
    worst = max(outlook.values(), default=0)
    per = ", ".join(f"{at:%Y-%m-%d}: {n}" for at, n in sorted(outlook.items(), key=str))
    print(f"mails   Outlook: Bo's meeting updates per occurrence over a week: {per}")
    figures.record(
        "graph",
        "attendee mails per Outlook occurrence, a week of edits",
        worst,
        "",
        budget.MAX_MAILS,
    )
    with GoogleEmulator([ANA, BO]) as emulator:
        delegating = service_account.Credentials.from_service_account_info(
            emulator.service_account_info(), scopes=list(GOOGLE_SCOPES)
        )
        google = GoogleProvider(
            [ANA, BO], lambda person: delegating.with_subject(person), api_root=emulator.api_root
        )
        mailed = sum(week(emulator, google).values())
    print(f"mails   Google (sendUpdates=none): {mailed}")
    figures.record("google", "attendee mails over a week of edits", mailed, "", 0)
