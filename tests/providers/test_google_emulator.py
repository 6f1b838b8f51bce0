"""The Google emulator, seen only through the real client libraries.

Everything here goes through google-api-python-client (static discovery) and
google-auth, as providers/google.py does, and asserts what such a client
notices: pages and tokens, status codes and error reasons, etags, headers of
push notifications. The emulator's resources are also checked against the
schemas of the discovery document shipped with the client, so it cannot drift
from the real API's shapes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import googleapiclient
import httplib2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from providers.emulators.google import GoogleEmulator
from providers.memory import Recurrence
from providers.model import Attendee, EventType

ANA = "ana@example.test"
BO = "bo@example.test"
CY = "cy@example.test"
ROOM = "room-4@resource.example.test"
SCOPE = "https://www.googleapis.com/auth/calendar"
T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
TIME_MIN = "2030-01-01T00:00:00Z"
TIME_MAX = "2030-03-01T00:00:00Z"

DISCOVERY = json.loads(
    (
        Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "calendar.v3.json"
    ).read_text(encoding="utf-8")
)


# ---------------------------------------------------------------------- fixtures


@pytest.fixture
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator([ANA, BO, CY], page_size=3) as emu:
        yield emu


def delegated(info: dict[str, str], user: str) -> Any:
    """Service-account credentials acting for ``user``, as organization mode uses them."""
    return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=[SCOPE]
    ).with_subject(user)


def credentials(emu: GoogleEmulator, user: str, info: dict[str, str] | None = None) -> Any:
    return delegated(info or emu.service_account_info(), user)


def calendar(emu: GoogleEmulator, user: str, info: dict[str, str] | None = None) -> Any:
    return build(
        "calendar",
        "v3",
        credentials=credentials(emu, user, info),
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": emu.api_root},
    )


def error_of(error: HttpError) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.content)["error"]
    return body


def reason_of(error: HttpError) -> str:
    return str(error_of(error)["errors"][0]["reason"])


def drain(service: Any, **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every page of one listing, and the items."""
    pages: list[dict[str, Any]] = []
    token = None
    while True:
        page = service.events().list(calendarId="primary", pageToken=token, **params).execute()
        pages.append(page)
        token = page.get("nextPageToken")
        if token is None:
            return pages, [item for p in pages for item in p.get("items", [])]


def instances(service: Any, event_id: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of one events.instances listing."""
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = (
            service.events()
            .instances(calendarId="primary", eventId=event_id, pageToken=token, **params)
            .execute()
        )
        items.extend(page["items"])
        token = page.get("nextPageToken")
        if token is None:
            return items


def weekly(emu: GoogleEmulator, count: int = 4, **kwargs: Any) -> str:
    return emu.create_event(
        ANA, [BO], "Ana / Bo weekly", T0, T0 + HOUR, recurrence=Recurrence(7, count=count), **kwargs
    )


# ------------------------------------------------------------------------- sync


def test_full_sync_pages_carry_next_page_token_and_only_the_last_a_sync_token(
    emulator: GoogleEmulator,
) -> None:
    uids = {
        emulator.create_event(ANA, [BO], f"m{n}", T0 + n * HOUR, T0 + (n + 1) * HOUR)
        for n in range(7)
    }
    service = calendar(emulator, ANA)

    pages, items = drain(service, timeMin=TIME_MIN, timeMax=TIME_MAX, maxResults=100)

    assert len(pages) == 3, "page_size 3 caps maxResults"
    assert all("nextPageToken" in p and "nextSyncToken" not in p for p in pages[:-1])
    assert "nextSyncToken" in pages[-1] and "nextPageToken" not in pages[-1]
    assert sorted(item["iCalUID"] for item in items) == sorted(uids)
    assert len({item["id"] for item in items}) == 7


def test_a_page_token_keeps_its_snapshot_while_the_calendar_changes(
    emulator: GoogleEmulator,
) -> None:
    for n in range(4):
        emulator.create_event(ANA, [BO], f"m{n}", T0 + n * HOUR, T0 + (n + 1) * HOUR)
    service = calendar(emulator, ANA)
    first = service.events().list(calendarId="primary", maxResults=2).execute()

    emulator.create_event(ANA, [BO], "late", T0 - HOUR, T0)
    rest = service.events().list(calendarId="primary", pageToken=first["nextPageToken"]).execute()

    seen = [i["summary"] for i in first["items"] + rest["items"]]
    assert "late" not in seen and len(seen) == 4


def test_incremental_sync_returns_only_changes_and_a_deletion_as_cancelled(
    emulator: GoogleEmulator,
) -> None:
    edited = emulator.create_event(ANA, [BO], "edited", T0, T0 + HOUR)
    deleted = emulator.create_event(ANA, [BO], "deleted", T0 + HOUR, T0 + 2 * HOUR)
    emulator.create_event(ANA, [BO], "untouched", T0 + 2 * HOUR, T0 + 3 * HOUR)
    service = calendar(emulator, ANA)
    pages, _ = drain(service, timeMin=TIME_MIN, timeMax=TIME_MAX)
    token = pages[-1]["nextSyncToken"]

    emulator.edit_description(ANA, emulator.copy_id(ANA, edited), "bring slides")
    gone_id = emulator.copy_id(ANA, deleted)
    emulator.delete_event(deleted)
    far = T0 + timedelta(days=400)
    outside = emulator.create_event(ANA, [BO], "far outside the window", far, far + HOUR)

    pages, items = drain(service, syncToken=token)

    by_id = {item["id"]: item for item in items}
    assert set(by_id) == {
        emulator.copy_id(ANA, edited),
        gone_id,
        emulator.copy_id(ANA, outside),
    }
    assert by_id[emulator.copy_id(ANA, edited)]["description"] == "bring slides"
    assert by_id[gone_id]["status"] == "cancelled"
    assert set(by_id[gone_id]) == {"kind", "etag", "id", "status"}
    assert "recurringEventId" not in by_id[gone_id]
    _, again = drain(service, syncToken=pages[-1]["nextSyncToken"])
    assert again == []


def test_a_deleted_event_is_still_returned_by_get_as_cancelled(emulator: GoogleEmulator) -> None:
    uid = emulator.create_event(ANA, [BO], "soon gone", T0, T0 + HOUR)
    event_id = emulator.copy_id(ANA, uid)
    emulator.delete_event(uid)

    ours = calendar(emulator, ANA).events().get(calendarId="primary", eventId=event_id).execute()
    theirs = calendar(emulator, BO).events().get(calendarId="primary", eventId=event_id).execute()

    assert ours["status"] == theirs["status"] == "cancelled"
    assert ours["summary"] == "soon gone", "the organizer keeps the details"
    assert "summary" not in theirs
    with pytest.raises(HttpError) as caught:
        calendar(emulator, ANA).events().get(calendarId="primary", eventId="nosuchid").execute()
    assert caught.value.status_code == 404


def test_sync_token_with_time_min_is_a_400(emulator: GoogleEmulator) -> None:
    service = calendar(emulator, ANA)
    token = drain(service)[0][-1]["nextSyncToken"]

    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId="primary", syncToken=token, timeMin=TIME_MIN).execute()

    assert caught.value.status_code == 400
    detail = error_of(caught.value)["errors"][0]
    assert detail["location"] == "timeMin" and detail["locationType"] == "parameter"


@pytest.mark.parametrize("how", ["expired", "garbage", "other calendar"])
def test_an_unusable_sync_token_is_410_full_sync_required(
    emulator: GoogleEmulator, how: str
) -> None:
    service = calendar(emulator, ANA)
    token = drain(service)[0][-1]["nextSyncToken"]
    if how == "expired":
        emulator.faults.expire_sync_tokens(ANA)
    elif how == "garbage":
        token = "1" + token
    else:
        token = drain(calendar(emulator, BO))[0][-1]["nextSyncToken"]

    with pytest.raises(HttpError) as caught:
        service.events().list(calendarId="primary", syncToken=token).execute()

    assert caught.value.status_code == 410
    detail = error_of(caught.value)["errors"][0]
    assert detail["reason"] == "fullSyncRequired" and detail["domain"] == "calendar"
    assert detail["message"] == "Sync token is no longer valid, a full sync is required."


def test_full_sync_lists_a_cancelled_exception_as_a_stub(emulator: GoogleEmulator) -> None:
    uid = weekly(emulator)
    emulator.cancel_occurrence(uid, T0 + WEEK)

    _, items = drain(calendar(emulator, ANA), timeMin=TIME_MIN, timeMax=TIME_MAX)

    stub = next(item for item in items if item["status"] == "cancelled")
    assert set(stub) == {"kind", "etag", "id", "status", "recurringEventId", "originalStartTime"}
    assert stub["originalStartTime"]["dateTime"] == "2030-01-14T10:00:00Z"


# -------------------------------------------------------------------- instances


def test_instances_show_a_moved_and_a_cancelled_occurrence(emulator: GoogleEmulator) -> None:
    uid = weekly(emulator, count=4)
    moved, cancelled = T0 + WEEK, T0 + 2 * WEEK
    emulator.move_occurrence(
        uid, moved, moved + timedelta(days=1), moved + timedelta(days=1) + HOUR
    )
    emulator.cancel_occurrence(uid, cancelled)
    master = emulator.copy_id(ANA, uid)
    service = calendar(emulator, ANA)

    shown = instances(service, master)
    every = instances(service, master, showDeleted=True)

    assert len(shown) == 3
    assert [i["id"] for i in every] == [
        f"{master}_{T0 + n * WEEK:%Y%m%dT%H%M%SZ}" for n in range(4)
    ]
    assert every[1]["start"]["dateTime"] == "2030-01-15T10:00:00Z"
    assert every[1]["originalStartTime"]["dateTime"] == "2030-01-14T10:00:00Z"
    assert every[1]["recurringEventId"] == master
    assert every[2]["status"] == "cancelled"
    with pytest.raises(HttpError) as caught:
        single = emulator.create_event(ANA, [BO], "one-off", T0, T0 + HOUR)
        instances(service, emulator.copy_id(ANA, single))
    assert caught.value.status_code == 404


# ----------------------------------------------------------------------- writes


def test_patch_with_a_stale_if_match_is_412_condition_not_met(emulator: GoogleEmulator) -> None:
    uid = emulator.create_event(ANA, [BO], "1:1", T0, T0 + HOUR, description="v1")
    event_id = emulator.copy_id(ANA, uid)
    events = calendar(emulator, ANA).events()
    read = events.get(calendarId=ANA, eventId=event_id).execute()
    emulator.faults.before_patch(
        lambda cal, eid: emulator.edit_description(cal, eid, "v2 by a person"), times=1
    )

    request = events.patch(calendarId=ANA, eventId=event_id, body={"description": "ours"})
    request.headers["If-Match"] = read["etag"]
    with pytest.raises(HttpError) as caught:
        request.execute()

    assert caught.value.status_code == 412
    detail = error_of(caught.value)["errors"][0]
    assert detail == {
        "domain": "global",
        "reason": "conditionNotMet",
        "message": "Precondition Failed",
        "locationType": "header",
        "location": "If-Match",
    }
    assert emulator.description(ANA, event_id) == "v2 by a person"


def test_patching_one_instance_leaves_the_master_and_the_others_alone(
    emulator: GoogleEmulator,
) -> None:
    uid = weekly(emulator, description="series text")
    master_id = emulator.copy_id(ANA, uid)
    service = calendar(emulator, ANA)
    events = service.events()
    master = events.get(calendarId=ANA, eventId=master_id).execute()
    before = instances(service, master_id)
    target = before[1]

    request = events.patch(
        calendarId=ANA,
        eventId=target["id"],
        body={"description": "agenda 2", "extendedProperties": {"private": {"tag": "t2"}}},
        sendUpdates="none",
    )
    request.headers["If-Match"] = target["etag"]
    written = request.execute()

    after = instances(service, master_id)
    assert written["etag"] != target["etag"]
    assert written["extendedProperties"]["private"] == {"tag": "t2"}
    for old, new in zip(before, after, strict=True):
        if old["id"] == target["id"]:
            assert new["description"] == "agenda 2" and new["etag"] == written["etag"]
        else:
            assert new == old
    assert events.get(calendarId=ANA, eventId=master_id).execute() == master


def test_patching_a_master_description_changes_every_generated_instance(
    emulator: GoogleEmulator,
) -> None:
    uid = weekly(emulator, description="old")
    master_id = emulator.copy_id(ANA, uid)
    service = calendar(emulator, ANA)
    before = instances(service, master_id)

    service.events().patch(calendarId=ANA, eventId=master_id, body={"description": "new"}).execute()

    after = instances(service, master_id)
    assert {i["description"] for i in after} == {"new"}
    assert all(a["etag"] != b["etag"] for a, b in zip(before, after, strict=True))


def test_the_organizers_patch_reaches_the_attendees_copy(emulator: GoogleEmulator) -> None:
    uid = weekly(emulator)
    when = T0 + WEEK
    ours_id = emulator.copy_id(ANA, uid, when)
    theirs_id = emulator.copy_id(BO, uid, when)
    bo_events = calendar(emulator, BO).events()
    theirs_before = bo_events.get(calendarId="primary", eventId=theirs_id).execute()

    calendar(emulator, ANA).events().patch(
        calendarId=ANA,
        eventId=ours_id,
        body={
            "description": "shared agenda",
            "extendedProperties": {"private": {"tag": "ours"}, "shared": {"pair": "p1"}},
        },
    ).execute()

    theirs = bo_events.get(calendarId="primary", eventId=theirs_id).execute()
    assert theirs_id == ours_id, "Google keeps one id across attendees' copies"
    assert theirs["description"] == "shared agenda"
    assert theirs["etag"] != theirs_before["etag"]
    assert theirs["extendedProperties"] == {"shared": {"pair": "p1"}}
    assert theirs["organizer"] == {"email": ANA}
    people = {a["email"]: a for a in theirs["attendees"]}
    assert people[ANA]["organizer"] is True and "self" not in people[ANA]
    assert people[BO]["self"] is True


@pytest.mark.parametrize(
    ("send_updates", "mailed"),
    [
        (None, []),
        ("none", []),
        ("externalOnly", ["zed@elsewhere.test"]),
        ("all", [BO, CY, "zed@elsewhere.test"]),
    ],
)
def test_send_updates_decides_who_gets_an_update_mail(
    emulator: GoogleEmulator, send_updates: str | None, mailed: list[str]
) -> None:
    """Events: patch, ``sendUpdates``: absent and "none" mail nobody, "externalOnly" the
    guests outside the domain's calendars, "all" every guest but the organizer."""
    uid = emulator.create_event(ANA, [ANA, BO, CY, "zed@elsewhere.test"], "Planning", T0, T0 + HOUR)
    extra = {} if send_updates is None else {"sendUpdates": send_updates}
    calendar(emulator, ANA).events().patch(
        calendarId=ANA, eventId=emulator.copy_id(ANA, uid), body={"description": "new"}, **extra
    ).execute()

    assert sorted(mail.recipient for mail in emulator.mails) == mailed
    assert all(mail.subject == "Planning" and mail.organizer == ANA for mail in emulator.mails)


def test_an_attendee_may_not_patch_the_description(emulator: GoogleEmulator) -> None:
    uid = emulator.create_event(ANA, [BO], "1:1", T0, T0 + HOUR, description="invite")
    event_id = emulator.copy_id(BO, uid)
    events = calendar(emulator, BO).events()

    with pytest.raises(HttpError) as caught:
        events.patch(calendarId=BO, eventId=event_id, body={"description": "mine"}).execute()

    assert caught.value.status_code == 403
    assert reason_of(caught.value) == "forbiddenForNonOrganizer"
    assert error_of(caught.value)["errors"][0]["domain"] == "calendar"
    own = events.patch(
        calendarId=BO, eventId=event_id, body={"extendedProperties": {"private": {"k": "v"}}}
    ).execute()
    assert own["extendedProperties"]["private"] == {"k": "v"}
    assert emulator.description(ANA, event_id) == "invite"


# ----------------------------------------------------------------------- schema


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = DISCOVERY["schemas"][schema["$ref"]]
    return schema


def assert_matches(value: Any, schema: dict[str, Any], path: str) -> None:
    """Every field present exists in the schema with the right JSON type, recursively."""
    schema = _resolve(schema)
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict), f"{path} is not an object"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                assert_matches(item, properties[key], f"{path}.{key}")
            else:
                assert extra is not None, f"{path}.{key} is not in the schema"
                assert_matches(item, extra, f"{path}[{key}]")
    elif kind == "array":
        assert isinstance(value, list), f"{path} is not an array"
        for index, item in enumerate(value):
            assert_matches(item, schema["items"], f"{path}[{index}]")
    elif kind == "string":
        assert isinstance(value, str), f"{path} is not a string"
        if schema.get("format") == "date-time":
            assert datetime.fromisoformat(value).tzinfo is not None, f"{path}: {value!r}"
        elif schema.get("format") == "int64":
            assert value.lstrip("-").isdigit(), f"{path}: {value!r}"
    elif kind == "boolean":
        assert isinstance(value, bool), f"{path} is not a boolean"
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{path} not integer"
    else:
        pytest.fail(f"{path}: schema type {kind!r} not handled")


def test_every_resource_matches_the_discovery_document(emulator: GoogleEmulator) -> None:
    series = weekly(emulator, count=6, description="<b>agenda</b>")
    emulator.move_occurrence(series, T0 + WEEK, T0 + WEEK + HOUR, T0 + WEEK + 2 * HOUR)
    emulator.cancel_occurrence(series, T0 + 2 * WEEK)
    emulator.create_event(
        ANA,
        [Attendee(BO, name="Bo", optional=True), Attendee(ROOM, is_resource=True)],
        "with a room",
        T0,
        T0 + HOUR,
    )
    emulator.create_event(ANA, [], "alone", T0, T0 + HOUR, event_type=EventType.FOCUS_TIME)
    emulator.create_event(
        ANA,
        [BO],
        "offsite",
        T0,
        T0 + timedelta(days=2),
        all_day=True,
        recurrence=Recurrence(14, until=T0 + timedelta(days=60)),
    )
    doomed = emulator.create_event(ANA, [BO], "doomed", T0, T0 + HOUR)
    service = calendar(emulator, ANA)
    token = drain(service)[0][-1]["nextSyncToken"]
    master = emulator.copy_id(ANA, series)
    patched = (
        service.events()
        .patch(
            calendarId=ANA,
            eventId=f"{master}_20300121T100000Z",
            body={"description": "x", "extendedProperties": {"private": {"a": "b"}, "shared": {}}},
        )
        .execute()
    )
    doomed_id = emulator.copy_id(ANA, doomed)
    emulator.delete_event(doomed)

    envelopes = [
        *drain(service, timeMin=TIME_MIN, timeMax=TIME_MAX, showDeleted=True)[0],
        *drain(service, singleEvents=True, orderBy="startTime", timeMax=TIME_MAX)[0],
        *drain(service, syncToken=token, showDeleted=True)[0],
        *drain(service, syncToken=token)[0],
        service.events()
        .instances(calendarId="primary", eventId=master, showDeleted=True)
        .execute(),
    ]
    singles = [
        patched,
        service.events().get(calendarId=ANA, eventId=master).execute(),
        service.events().get(calendarId=ANA, eventId=doomed_id).execute(),
    ]
    channel = (
        service.events()
        .watch(
            calendarId="primary",
            body={"id": "c1", "type": "web_hook", "address": "http://127.0.0.1:9/", "token": "t"},
        )
        .execute()
    )

    kinds = set()
    for envelope in envelopes:
        assert_matches(envelope, {"$ref": "Events"}, "Events")
        for item in envelope["items"]:
            kinds.add((item["status"], "recurrence" in item, "recurringEventId" in item))
    for event in singles:
        assert_matches(event, {"$ref": "Event"}, "Event")
    assert_matches(channel, {"$ref": "Channel"}, "Channel")
    assert ("cancelled", False, True) in kinds and ("confirmed", True, False) in kinds
    assert ("cancelled", False, False) in kinds and ("confirmed", False, True) in kinds


# ------------------------------------------------------------------------- push


class Receiver:
    """A webhook endpoint that keeps the headers of every POST it gets."""

    def __init__(self, status: int = 200) -> None:
        self.got: list[dict[str, str]] = []
        received = self.got

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def watch(emu: GoogleEmulator, url: str, channel_id: str = "chan-1", **extra: Any) -> Any:
    body = {"id": channel_id, "type": "web_hook", "address": url, "token": "secret", **extra}
    return calendar(emu, ANA).events().watch(calendarId="primary", body=body).execute()


def test_watch_sends_sync_then_exists_with_increasing_numbers_until_stopped(
    emulator: GoogleEmulator, receiver: Receiver
) -> None:
    channel = watch(emulator, receiver.url, params={"ttl": "3600"})
    assert emulator.wait_for_notifications()
    uid = emulator.create_event(ANA, [BO], "new", T0, T0 + HOUR)
    calendar(emulator, ANA).events().patch(
        calendarId=ANA, eventId=emulator.copy_id(ANA, uid), body={"description": "via API"}
    ).execute()
    emulator.create_event(BO, [CY], "not ana's", T0, T0 + HOUR)
    assert emulator.wait_for_notifications()

    assert channel["kind"] == "api#channel" and channel["id"] == "chan-1"
    assert [h["x-goog-resource-state"] for h in receiver.got] == ["sync", "exists", "exists"]
    assert [int(h["x-goog-message-number"]) for h in receiver.got] == [1, 2, 3]
    first = receiver.got[0]
    assert first["x-goog-channel-id"] == "chan-1"
    assert first["x-goog-channel-token"] == "secret"
    assert first["x-goog-resource-id"] == channel["resourceId"]
    assert first["x-goog-resource-uri"] == channel["resourceUri"]
    expires = parsedate_to_datetime(first["x-goog-channel-expiration"])
    assert abs(expires.timestamp() * 1000 - int(channel["expiration"])) < 1000
    assert [n.status for n in emulator.notifications] == [200, 200, 200]

    stop = {"id": channel["id"], "resourceId": channel["resourceId"]}
    calendar(emulator, ANA).channels().stop(body=stop).execute()
    emulator.create_event(ANA, [BO], "after stop", T0, T0 + HOUR)
    assert emulator.wait_for_notifications()
    assert len(receiver.got) == 3
    assert emulator.requests[-1].status == 204
    with pytest.raises(HttpError) as caught:
        calendar(emulator, ANA).channels().stop(body=stop).execute()
    assert caught.value.status_code == 404


def test_dropped_and_duplicated_notifications(emulator: GoogleEmulator, receiver: Receiver) -> None:
    emulator.faults.drop_notifications(1)
    watch(emulator, receiver.url)
    emulator.wait_for_notifications()
    emulator.faults.duplicate_notifications(1)
    emulator.create_event(ANA, [BO], "one", T0, T0 + HOUR)
    emulator.create_event(ANA, [BO], "two", T0, T0 + HOUR)
    assert emulator.wait_for_notifications()

    numbers = [int(h["x-goog-message-number"]) for h in receiver.got]
    assert numbers == [2, 2, 3], "the sync (1) was lost, 2 came twice"
    assert [(n.message_number, n.status) for n in emulator.notifications] == [
        (1, None),
        (2, 200),
        (2, 200),
        (3, 200),
    ]


def test_an_expired_channel_sends_nothing_more(
    emulator: GoogleEmulator, receiver: Receiver
) -> None:
    watch(emulator, receiver.url, expiration=str(int(time.time() * 1000) + 300))
    assert emulator.wait_for_notifications()
    time.sleep(0.35)

    emulator.create_event(ANA, [BO], "late", T0, T0 + HOUR)
    assert emulator.wait_for_notifications()

    assert [h["x-goog-resource-state"] for h in receiver.got] == ["sync"]


def test_watch_refuses_a_long_channel_id_or_a_bad_type(emulator: GoogleEmulator) -> None:
    events = calendar(emulator, ANA).events()
    for body in (
        {"id": "x" * 65, "type": "web_hook", "address": "http://127.0.0.1:9/"},
        {"id": "ok", "type": "email", "address": "http://127.0.0.1:9/"},
    ):
        with pytest.raises(HttpError) as caught:
            events.watch(calendarId="primary", body=body).execute()
        assert caught.value.status_code == 400


# ------------------------------------------------------------------------- auth


def test_the_service_account_gets_a_bearer_token_for_its_subject(emulator: GoogleEmulator) -> None:
    creds = credentials(emulator, ANA)

    creds.refresh(google.auth.transport.requests.Request())

    assert creds.token and creds.valid
    token_call = emulator.requests[-1]
    assert token_call.path == "/token" and token_call.status == 200
    assert token_call.body["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"


def test_a_foreign_key_or_an_unknown_subject_is_invalid_grant(emulator: GoogleEmulator) -> None:
    forged = dict(emulator.service_account_info())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged["private_key"] = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()

    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        calendar(emulator, ANA, forged).events().list(calendarId="primary").execute()
    with pytest.raises(google.auth.exceptions.RefreshError, match="Invalid email or User ID"):
        calendar(emulator, "nobody@example.test").events().list(calendarId="primary").execute()


def test_revocation_refuses_the_old_token_and_every_refresh(emulator: GoogleEmulator) -> None:
    service = calendar(emulator, ANA)
    service.events().list(calendarId="primary").execute()

    emulator.revoke(ANA)

    with pytest.raises(google.auth.exceptions.RefreshError) as caught:
        service.events().list(calendarId="primary").execute()
    assert "invalid_grant" in str(caught.value)
    assert "Token has been expired or revoked." in str(caught.value)
    statuses = [(r.op, r.status) for r in emulator.requests[-2:]]
    assert statuses == [("list", 401), ("token", 400)]
    calendar(emulator, BO).events().list(calendarId="primary").execute()


def test_an_unknown_bearer_token_is_401_auth_error(emulator: GoogleEmulator) -> None:
    service = build(
        "calendar",
        "v3",
        http=httplib2.Http(),
        static_discovery=True,
        client_options={"api_endpoint": emulator.api_root},
    )
    request = service.events().list(calendarId="primary")
    request.headers["authorization"] = "Bearer not-a-token"

    with pytest.raises(HttpError) as caught:
        request.execute()

    assert caught.value.status_code == 401
    assert error_of(caught.value)["errors"][0] == {
        "domain": "global",
        "reason": "authError",
        "message": "Invalid Credentials",
        "locationType": "header",
        "location": "Authorization",
    }


def test_a_token_for_ana_cannot_read_bos_calendar(emulator: GoogleEmulator) -> None:
    emulator.create_event(BO, [CY], "bo and cy", T0, T0 + HOUR)
    events = calendar(emulator, ANA).events()

    with pytest.raises(HttpError) as caught:
        events.list(calendarId=BO).execute()

    assert caught.value.status_code == 404 and reason_of(caught.value) == "notFound"
    assert emulator.requests[-1].user == ANA


def test_installed_app_flow_consents_and_refreshes(
    emulator: GoogleEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google_auth_oauthlib.flow import InstalledAppFlow

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the emulator speaks plain http

    class Browser:
        """Follows the authorization URL the way a consenting person's browser would."""

        def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
            def visit() -> None:
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                opener.open(url, timeout=5).read()

            threading.Thread(target=visit, daemon=True).start()
            return True

    monkeypatch.setattr("webbrowser.get", lambda using=None: Browser())
    flow = InstalledAppFlow.from_client_config(emulator.client_config(), scopes=[SCOPE])

    creds = flow.run_local_server(
        host="127.0.0.1", port=0, open_browser=True, login_hint=BO, timeout_seconds=10
    )

    assert creds.refresh_token
    auth = next(r for r in emulator.requests if r.op == "auth")
    assert auth.status == 302 and auth.query["login_hint"] == [BO]
    service = build(
        "calendar",
        "v3",
        credentials=creds,
        static_discovery=True,
        client_options={"api_endpoint": emulator.api_root},
    )
    service.events().list(calendarId="primary").execute()
    assert emulator.requests[-1].user == BO
    emulator.expire_tokens(BO)
    service.events().list(calendarId="primary").execute()
    assert [r.op for r in emulator.requests[-3:]] == ["list", "token", "list"]
    emulator.revoke(BO)
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        service.events().list(calendarId="primary").execute()


# ----------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("status", "reason", "domain"),
    [
        (429, "rateLimitExceeded", "usageLimits"),
        (403, "rateLimitExceeded", "usageLimits"),
        (403, "userRateLimitExceeded", "usageLimits"),
        (500, "backendError", "global"),
    ],
)
def test_scripted_failures_are_answered_as_planned(
    emulator: GoogleEmulator, status: int, reason: str, domain: str
) -> None:
    emulator.faults.fail("list", status, reason, times=2, retry_after=7)
    events = calendar(emulator, ANA).events()

    for _ in range(2):
        with pytest.raises(HttpError) as caught:
            events.list(calendarId="primary").execute()
        assert caught.value.status_code == status
        detail = error_of(caught.value)["errors"][0]
        assert (detail["reason"], detail["domain"]) == (reason, domain)
        assert caught.value.resp["retry-after"] == "7"
    events.list(calendarId="primary").execute()
    assert [r.status for r in emulator.requests if r.op == "list"] == [status, status, 200]


def test_a_token_endpoint_failure_reaches_google_auth(emulator: GoogleEmulator) -> None:
    emulator.faults.fail("token", 400, "invalid_grant", message="Account disabled")

    with pytest.raises(google.auth.exceptions.RefreshError, match="Account disabled"):
        calendar(emulator, ANA).events().list(calendarId="primary").execute()


def test_latency_delays_only_the_named_operation(emulator: GoogleEmulator) -> None:
    uid = emulator.create_event(ANA, [BO], "1:1", T0, T0 + HOUR)
    events = calendar(emulator, ANA).events()
    events.list(calendarId="primary").execute()
    emulator.faults.latency(0.2, op="get")

    started = time.monotonic()
    events.list(calendarId="primary").execute()
    listed = time.monotonic() - started
    events.get(calendarId="primary", eventId=emulator.copy_id(ANA, uid)).execute()
    got = time.monotonic() - started - listed

    assert listed < 0.15 <= 0.2 <= got


def test_requests_record_what_the_client_sent(emulator: GoogleEmulator) -> None:
    uid = emulator.create_event(ANA, [BO], "1:1", T0, T0 + HOUR)
    event_id = emulator.copy_id(ANA, uid)
    service = calendar(emulator, ANA)
    token = drain(service)[0][-1]["nextSyncToken"]
    drain(service, syncToken=token, showDeleted=True)
    etag = service.events().get(calendarId=ANA, eventId=event_id).execute()["etag"]
    request = service.events().patch(
        calendarId=ANA, eventId=event_id, body={"description": "d"}, sendUpdates="none"
    )
    request.headers["If-Match"] = etag
    request.execute()

    incremental = next(r for r in emulator.requests if "syncToken" in r.query)
    assert incremental.query["syncToken"] == [token]
    assert incremental.path == "/calendar/v3/calendars/primary/events"
    patch = emulator.requests[-1]
    assert (patch.method, patch.op, patch.status, patch.user) == ("PATCH", "patch", 200, ANA)
    assert patch.path == f"/calendar/v3/calendars/{ANA}/events/{event_id}"
    assert patch.headers["if-match"] == etag
    assert patch.query["sendUpdates"] == ["none"]
    assert patch.body == {"description": "d"}


def test_runs_as_a_command_and_prints_its_base_url(tmp_path: Path) -> None:
    key_file = tmp_path / "sa.json"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "providers.emulators.google",
            "--users",
            f"{ANA},{BO}",
            "--service-account",
            str(key_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        info = json.loads(key_file.read_text())
        assert info["token_uri"] == base_url + "token"
        service = build(
            "calendar",
            "v3",
            credentials=delegated(info, BO),
            static_discovery=True,
            client_options={"api_endpoint": base_url + "calendar/v3/"},
        )
        assert service.events().list(calendarId="primary").execute()["items"] == []
    finally:
        process.terminate()
        process.wait(timeout=5)
