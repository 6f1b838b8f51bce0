"""The Google provider, through the real google-api-python-client, against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from google.oauth2 import service_account

from providers.base import (
    AuthRevoked,
    NotWritable,
    ProviderError,
    QuotaExceeded,
    RateLimited,
    Transient,
    read_event,
)
from providers.emulators.google import GoogleEmulator
from providers.google.calendar import GoogleProvider, to_event
from providers.google.grant import SCOPES as GOOGLE_SCOPES
from providers.model import Unreadable
from tests.providers.contract import ANA, BO, CALENDARS, PAGE_SIZE, T0, WINDOW, ProviderContract


@pytest.fixture
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(CALENDARS) as running:
        yield running


def google_provider(emulator: GoogleEmulator, **kw: object) -> GoogleProvider:
    delegating = service_account.Credentials.from_service_account_info(
        emulator.service_account_info(), scopes=list(GOOGLE_SCOPES)
    )
    return GoogleProvider(
        CALENDARS,
        lambda person: delegating.with_subject(person),
        api_root=emulator.api_root,
        page_size=PAGE_SIZE,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def provider(emulator: GoogleEmulator) -> GoogleProvider:
    return google_provider(emulator)


@pytest.fixture
def world(emulator: GoogleEmulator) -> GoogleEmulator:
    return emulator


class TestGoogle(ProviderContract):
    """Every provider's contract, over HTTP."""


# --- what only the Google adapter does: error mapping over the wire, channels ----------


@pytest.mark.parametrize(
    ("status", "reason", "retry_after", "expected"),
    [
        (429, "rateLimitExceeded", 7, RateLimited),
        (403, "rateLimitExceeded", None, RateLimited),
        (403, "userRateLimitExceeded", None, RateLimited),
        (403, "quotaExceeded", None, QuotaExceeded),
        (500, "backendError", None, Transient),
        (503, "backendError", None, Transient),
        (400, "invalid", None, ProviderError),
    ],
)
def test_http_failures_map_to_typed_errors(
    provider: GoogleProvider, emulator: GoogleEmulator, status, reason, retry_after, expected
) -> None:
    emulator.faults.fail("list", status, reason, retry_after=retry_after)
    with pytest.raises(expected) as caught:
        list(provider.changes(ANA, None, WINDOW))
    assert type(caught.value) is expected
    if retry_after is not None:
        assert caught.value.retry_after == pytest.approx(retry_after)  # type: ignore[attr-defined]


def test_a_revoked_grant_is_auth_revoked_for_that_person_only(
    provider: GoogleProvider, emulator: GoogleEmulator
) -> None:
    emulator.revoke(BO)
    with pytest.raises(AuthRevoked):
        list(provider.changes(BO, None, WINDOW))
    assert list(provider.changes(ANA, None, WINDOW))


def test_an_attendee_copy_is_not_writable(
    provider: GoogleProvider, emulator: GoogleEmulator
) -> None:
    uid = emulator.create_event(ANA, [ANA, BO], "1:1", T0, T0 + timedelta(minutes=30))
    copy = provider.get(BO, emulator.copy_id(BO, uid))
    with pytest.raises(NotWritable):
        provider.update_description(BO, copy.id, "x", copy.etag, None)


def test_writes_send_if_match_and_the_configured_send_updates(emulator: GoogleEmulator) -> None:
    provider = google_provider(emulator, send_updates="all")
    uid = emulator.create_event(ANA, [ANA, BO], "1:1", T0, T0 + timedelta(minutes=30))
    event = provider.get(ANA, emulator.copy_id(ANA, uid))

    written = provider.update_description(ANA, event.id, "agenda", event.etag, "tok")

    patch = [r for r in emulator.requests if r.method == "PATCH"][-1]
    assert patch.headers["if-match"] == event.etag
    assert patch.query["sendUpdates"] == ["all"]
    assert patch.body == {
        "description": "agenda",
        "extendedProperties": {"private": {"syncdMeeting": "tok"}},
    }
    assert written.tag == "tok" and written.etag != event.etag


def test_an_unreachable_api_host_is_named_in_the_error() -> None:
    import socket

    from google.oauth2.credentials import Credentials

    from providers.base import Transient

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    provider = GoogleProvider(
        [ANA],
        lambda person: Credentials(token="x"),
        api_root=f"http://127.0.0.1:{port}/calendar/v3/",
    )
    with pytest.raises(Transient) as failed:
        list(provider.changes(ANA, None, WINDOW))
    assert f"cannot reach 127.0.0.1:{port}" in str(failed.value)


def test_a_persons_token_is_reused_across_polls_and_threads(emulator: GoogleEmulator) -> None:
    """Quota: one token request per person per token lifetime, not one per poll or thread."""
    import threading

    provider = google_provider(emulator)

    def poll_everyone() -> None:
        for person in CALENDARS:
            list(provider.changes(person, None, WINDOW))

    poll_everyone()
    poll_everyone()
    other = threading.Thread(target=poll_everyone)
    other.start()
    other.join()

    tokens = [r for r in emulator.requests if r.op == "token"]
    lists = [r for r in emulator.requests if r.op == "list"]
    assert len(lists) == 3 * len(CALENDARS)
    assert len(tokens) == len(CALENDARS)  # each person's one token, for all three polls
    assert {r.user for r in lists} == set(CALENDARS)  # and each list made as its own person


def test_an_etag_httplib2_cannot_send_makes_the_event_unreadable_not_the_sync_fail() -> None:
    """httplib2 reads a header's value as a regex replacement: a backslash breaks the write.

    Found by tests/reliability/test_unreadable_events.py: such an event once
    failed the whole calendar's sync with "bad escape \\x"; now it is skipped.
    """
    item = {
        "id": "odd1",
        "etag": '"31\\x81"',
        "status": "confirmed",
        "iCalUID": "odd1@google.com",
        "summary": "Ana / Bo",
        "start": {"dateTime": "2030-01-07T10:00:00Z"},
        "end": {"dateTime": "2030-01-07T11:00:00Z"},
        "organizer": {"email": ANA, "self": True},
    }
    outcome = read_event(item, lambda raw: to_event(ANA, raw))
    assert isinstance(outcome, Unreadable)
    assert outcome.event_id == "odd1" and "backslash" in outcome.reason
