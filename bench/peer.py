"""A peer library's cost for the same settled poll: gcal_sync (aiohttp and pydantic).

gcal_sync is what Home Assistant syncs Google calendars with. It reads the
same emulator with the same people's delegated tokens: one
``async_list_events_page(SyncEventsRequest(sync_token=…))`` per calendar
where nothing changed, in one event loop on this thread, so ``thread_time``
is the client's CPU (the emulator serves from its own threads).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from google.auth.transport.requests import Request


def settled_poll_ms(api_root: str, credentials: dict[str, Any], rounds: int = 3) -> float | None:
    """ms of CPU per settled poll through gcal_sync; None when it is not installed."""
    try:
        import aiohttp
        from gcal_sync.api import GoogleCalendarService, SyncEventsRequest
        from gcal_sync.auth import AbstractAuth
    except ImportError:
        return None

    tokens: dict[str, str] = {}
    for person, held in credentials.items():
        if not held.valid:
            held.refresh(Request())
        tokens[person] = held.token

    class Delegated(AbstractAuth):  # type: ignore[misc]
        def __init__(self, session: aiohttp.ClientSession, person: str) -> None:
            super().__init__(session, host=api_root.rstrip("/"))
            self.person = person

        async def async_get_access_token(self) -> str:
            return tokens[self.person]

    async def measure() -> float:
        async with aiohttp.ClientSession() as session:
            services = {p: GoogleCalendarService(Delegated(session, p)) for p in tokens}
            cursors: dict[str, str] = {}
            for person, service in services.items():
                request = SyncEventsRequest(calendar_id=person)
                page = await service.async_list_events_page(request)
                while page.page_token:
                    request.page_token = page.page_token
                    page = await service.async_list_events_page(request)
                if page.sync_token is None:
                    raise RuntimeError("gcal_sync's full sync ended without a sync token")
                cursors[person] = page.sync_token
            started = time.thread_time()
            for _ in range(rounds):
                for person, service in services.items():
                    request = SyncEventsRequest(calendar_id=person, sync_token=cursors[person])
                    await service.async_list_events_page(request)
            return 1000 * (time.thread_time() - started) / (rounds * len(services))

    return asyncio.run(measure())
