"""The Graph emulator, seen only through msal and httpx, as providers/microsoft.py sees it.

Tokens come from msal with the production authority and the rewriting
``http_client`` of FACTS.md; API calls are plain httpx. Tests assert what such
a client notices: pages and links, status codes and error codes, etags and
bodies, notifications a webhook receives. The JSON the emulator emits is also
checked against the models of msgraph-sdk, so it cannot drift from Graph's
schema.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msal  # type: ignore[import-untyped]
import pytest

from providers.emulators.graph import GraphEmulator
from providers.memory import Recurrence
from providers.model import Attendee

ANA = "ana@example.test"
BO = "bo@example.test"
CY = "cy@example.test"
ROOM = "room-4@example.test"
SCOPE = ["https://graph.microsoft.com/.default"]
T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
WINDOW = {"startDateTime": "2030-01-01T00:00:00Z", "endDateTime": "2030-03-01T00:00:00Z"}
TAG = "String {d8ea3b58-23a6-47f2-9222-6906e83d35ee} Name syncdMeeting"
STUB_KEYS = {"@odata.type", "@odata.etag", "id", "seriesMasterId", "type", "start", "end"}


# ---------------------------------------------------------------------- fixtures


@pytest.fixture
def emulator() -> Iterator[GraphEmulator]:
    with GraphEmulator([ANA, BO, CY], page_size=3) as emu:
        yield emu


def msal_app(emu: GraphEmulator, secret: str | None = None) -> Any:
    return msal.ConfidentialClientApplication(
        emu.client_id,
        client_credential=secret or emu.client_secret,
        authority=emu.authority,
        http_client=emu.http_client(),
    )


def token(emu: GraphEmulator) -> str:
    result = msal_app(emu).acquire_token_for_client(SCOPE)
    assert "access_token" in result, result
    return str(result["access_token"])


@pytest.fixture
def graph(emulator: GraphEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emulator.graph_root,
        headers={"Authorization": f"Bearer {token(emulator)}"},
        trust_env=False,
    ) as client:
        yield client


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def delta(
    graph: httpx.Client, user: str, link: str | None = None, page_size: int | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Every page of one delta round: the pages, their values and the deltaLink."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
    if link is None:
        response = graph.get(f"users/{user}/calendarView/delta", params=WINDOW, headers=headers)
    else:
        response = graph.get(link, headers=headers)
    pages = []
    while True:
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        if "@odata.deltaLink" in page:
            assert "@odata.nextLink" not in page
            values = [value for p in pages for value in p["value"]]
            return pages, values, str(page["@odata.deltaLink"])
        response = graph.get(page["@odata.nextLink"], headers=headers)


def instances(graph: httpx.Client, user: str, master_id: str) -> list[dict[str, Any]]:
    response = graph.get(f"users/{user}/events/{master_id}/instances", params=WINDOW)
    values: list[dict[str, Any]] = []
    while True:
        assert response.status_code == 200, response.text
        page = response.json()
        values.extend(page["value"])
        if "@odata.nextLink" not in page:
            return values
        response = graph.get(page["@odata.nextLink"])


def get_event(graph: httpx.Client, user: str, event_id: str, **params: str) -> dict[str, Any]:
    response = graph.get(f"users/{user}/events/{event_id}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def patch_body(
    graph: httpx.Client, user: str, event_id: str, etag: str | None, content: str, **extra: Any
) -> httpx.Response:
    headers = {"If-Match": etag} if etag else {}
    payload = {"body": {"contentType": "html", "content": content}, **extra}
    return graph.patch(f"users/{user}/events/{event_id}", json=payload, headers=headers)


def weekly(emu: GraphEmulator, count: int = 6) -> str:
    return emu.create_event(
        ANA, [BO], "Ana / Bo weekly", T0, T0 + HOUR, recurrence=Recurrence(7, count=count)
    )


class Receiver:
    """A webhook endpoint: answers Graph's validation and keeps what is POSTed to it."""

    def __init__(self, *, echo: bool = True) -> None:
        self.echo = echo
        self.validations: list[str] = []
        self.notifications: list[dict[str, Any]] = []
        self.lifecycle: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                tokens = parse_qs(url.query).get("validationToken")
                if tokens is not None:
                    receiver.validations.append(tokens[0])
                    if receiver.echo:
                        self._answer(200, tokens[0].encode(), "text/plain; charset=utf-8")
                    else:
                        self._answer(200, b"{}", "application/json")
                    return
                payload = json.loads(raw)
                kept = receiver.lifecycle if url.path == "/lifecycle" else receiver.notifications
                kept.append(payload)
                self._answer(202, b"", "text/plain")

            def _answer(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/notify"
        self.lifecycle_url = f"http://127.0.0.1:{port}/lifecycle"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def subscribe(
    graph: httpx.Client, receiver: Receiver, user: str = ANA, **extra: Any
) -> httpx.Response:
    expires = datetime.now(UTC) + timedelta(days=2)
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.url,
        "lifecycleNotificationUrl": receiver.lifecycle_url,
        "resource": f"/users/{user}/events",
        "expirationDateTime": expires.isoformat().replace("+00:00", "Z"),
        "clientState": "secret-client-state",
        **extra,
    }
    return graph.post("subscriptions", json=body)


def notified(receiver: Receiver) -> list[dict[str, Any]]:
    return [item for payload in receiver.notifications for item in payload["value"]]


# ---------------------------------------------------------------------- identity


def test_msal_gets_a_token_through_the_production_authority(emulator: GraphEmulator) -> None:
    assert emulator.authority == f"https://login.microsoftonline.com/{emulator.tenant}"
    result = msal_app(emulator).acquire_token_for_client(SCOPE)

    assert result["token_type"] == "Bearer"
    assert result["expires_in"] > 3000
    ops = [(r.method, r.op, r.status) for r in emulator.requests]
    assert ops == [("GET", "discovery", 200), ("POST", "token", 200)]
    form = emulator.requests[1].body
    assert form["grant_type"] == "client_credentials" and form["scope"] == SCOPE[0]
    response = httpx.get(
        f"{emulator.graph_root}users/{ANA}/calendarView/delta",
        params=WINDOW,
        headers={"Authorization": f"Bearer {result['access_token']}"},
    )
    assert response.status_code == 200


def test_a_wrong_secret_is_an_msal_error(emulator: GraphEmulator) -> None:
    result = msal_app(emulator, secret="not-the-secret").acquire_token_for_client(SCOPE)

    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret")
    assert result["error_codes"] == [7000215]
    assert [r.status for r in emulator.requests if r.op == "token"] == [401]


def test_revoked_consent_is_an_msal_error_until_granted_again(emulator: GraphEmulator) -> None:
    emulator.revoke_consent()

    result = msal_app(emulator).acquire_token_for_client(SCOPE)

    assert result["error"] == "unauthorized_client"
    assert "AADSTS700016" in result["error_description"]
    emulator.grant_consent()
    assert "access_token" in msal_app(emulator).acquire_token_for_client(SCOPE)


def test_scripted_token_failures_reach_msal(emulator: GraphEmulator) -> None:
    emulator.faults.fail("token", 400, "invalid_client", message="Secret expired.")
    emulator.faults.fail("token", 503, "temporarily_unavailable", retry_after=3)

    refused = msal_app(emulator).acquire_token_for_client(SCOPE)
    with pytest.raises(msal.exceptions.MsalServiceError, match="503"):
        msal_app(emulator).acquire_token_for_client(SCOPE)

    assert refused["error"] == "invalid_client"
    assert refused["error_description"].startswith("AADSTS7000215: Secret expired.")
    assert emulator.requests[-1].headers["client-request-id"]
    assert "access_token" in msal_app(emulator).acquire_token_for_client(SCOPE)


def test_api_calls_need_a_live_token_issued_here(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    url = f"users/{ANA}/events/AAMkAnone"
    missing = httpx.get(emulator.graph_root + url)
    forged = httpx.get(emulator.graph_root + url, headers={"Authorization": "Bearer abc.def.ghi"})
    emulator.expire_tokens()
    expired = graph.get(url)

    for response in (missing, forged, expired):
        assert response.status_code == 401
        assert error_code(response) == "InvalidAuthenticationToken"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "expired" in expired.json()["error"]["message"]


def test_a_disabled_user_is_403_on_that_mailbox_only(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    emulator.disable_user(BO)

    denied = graph.get(f"users/{BO}/calendarView/delta", params=WINDOW)
    allowed = graph.get(f"users/{ANA}/calendarView/delta", params=WINDOW)

    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "ErrorAccessDenied"
    assert denied.json()["error"]["message"] == "Access is denied. Check credentials and try again."
    assert set(denied.json()["error"]["innerError"]) == {"date", "request-id", "client-request-id"}
    assert allowed.status_code == 200


def test_unknown_users_and_me_are_refused(emulator: GraphEmulator, graph: httpx.Client) -> None:
    unknown = graph.get("users/nobody@example.test/calendarView/delta", params=WINDOW)
    me = graph.get("me/calendarView/delta", params=WINDOW)
    by_id = graph.get(f"users/{emulator.user_id(ANA)}/calendarView/delta", params=WINDOW)

    assert (unknown.status_code, error_code(unknown)) == (404, "ErrorInvalidUser")
    assert (me.status_code, error_code(me)) == (400, "BadRequest")
    assert by_id.status_code == 200


# ------------------------------------------------------------------------- delta


def test_delta_pages_through_next_links_to_a_delta_link(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    uids = {
        emulator.create_event(ANA, [BO], f"m{n}", T0 + n * HOUR, T0 + (n + 1) * HOUR)
        for n in range(5)
    }

    pages, values, link = delta(graph, ANA, page_size=2)

    assert [len(p["value"]) for p in pages] == [2, 2, 1]
    assert all(p["@odata.nextLink"].startswith(emulator.graph_root) for p in pages[:-1])
    assert "$skiptoken=" in pages[0]["@odata.nextLink"]
    assert link.startswith(emulator.graph_root) and "$deltatoken=" in link
    assert sorted(v["iCalUId"] for v in values) == sorted(uids)
    assert all(v["type"] == "singleInstance" for v in values)
    default_pages, _, _ = delta(graph, ANA)
    assert [len(p["value"]) for p in default_pages] == [3, 2]
    retried = graph.get(pages[0]["@odata.nextLink"], headers={"Prefer": "odata.maxpagesize=2"})
    assert retried.json()["value"] == pages[1]["value"]


def test_incremental_delta_returns_only_changes_and_removals(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    edited = emulator.create_event(ANA, [BO], "edited", T0, T0 + HOUR)
    emulator.create_event(ANA, [BO], "untouched", T0 + HOUR, T0 + 2 * HOUR)
    gone = emulator.create_event(ANA, [BO], "gone", T0 + 2 * HOUR, T0 + 3 * HOUR)
    _, _, link = delta(graph, ANA)
    edited_id, gone_id = emulator.copy_id(ANA, edited), emulator.copy_id(ANA, gone)

    emulator.edit_description(ANA, edited_id, "bring the slides")
    emulator.delete_event(gone)
    _, changes, next_link = delta(graph, ANA, link)

    by_id = {change["id"]: change for change in changes}
    assert set(by_id) == {edited_id, gone_id}
    assert by_id[gone_id]["@removed"] == {"reason": "deleted"}
    assert by_id[edited_id]["bodyPreview"] == "bring the slides"
    assert delta(graph, ANA, next_link)[1] == []
    assert graph.get(f"users/{ANA}/events/{gone_id}").status_code == 404


def test_a_change_outside_the_window_comes_as_removed(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    _, _, link = delta(graph, ANA)
    late = T0 + timedelta(days=300)

    uid = emulator.create_event(ANA, [BO], "far away", late, late + HOUR)

    _, changes, _ = delta(graph, ANA, link)
    assert changes == [
        {
            "@odata.type": "#microsoft.graph.event",
            "id": emulator.copy_id(ANA, uid),
            "@removed": {"reason": "deleted"},
        }
    ]


def test_stale_or_forged_delta_tokens_are_410(emulator: GraphEmulator, graph: httpx.Client) -> None:
    for n in range(4):
        emulator.create_event(ANA, [BO], f"m{n}", T0 + n * HOUR, T0 + (n + 1) * HOUR)
    first = graph.get(f"users/{ANA}/calendarView/delta", params=WINDOW).json()
    _, _, link = delta(graph, ANA)

    emulator.expire_cursors(ANA)

    for stale in (link, first["@odata.nextLink"], link[:-4] + "AAAA"):
        response = graph.get(stale)
        assert response.status_code == 410
        assert error_code(response) == "SyncStateNotFound"
        assert response.json()["error"]["message"].startswith("The sync state generation")
    assert len(delta(graph, ANA)[1]) == 4
    assert graph.get(link.replace(ANA, BO)).status_code == 410


def test_delta_refuses_query_options_and_needs_a_window(graph: httpx.Client) -> None:
    selected = graph.get(f"users/{ANA}/calendarView/delta", params={**WINDOW, "$select": "subject"})
    windowless = graph.get(f"users/{ANA}/calendarView/delta")

    assert (selected.status_code, error_code(selected)) == (400, "ErrorInvalidUrlQuery")
    assert (windowless.status_code, error_code(windowless)) == (400, "ErrorInvalidParameter")


def test_delta_lists_occurrences_never_masters(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    uid = weekly(emulator, count=4)
    moved, cancelled = T0 + WEEK, T0 + 2 * WEEK
    emulator.move_occurrence(uid, moved, moved + HOUR, moved + 2 * HOUR)
    emulator.cancel_occurrence(uid, cancelled)
    master = emulator.copy_id(ANA, uid)

    _, values, _ = delta(graph, ANA)

    assert {v["type"] for v in values} == {"occurrence", "exception"}
    assert all(v["seriesMasterId"] == master for v in values)
    assert len(values) == 3, "the organizer's cancelled occurrence is gone"
    plain = [v for v in values if v["type"] == "occurrence"]
    assert len(plain) == 2 and all(set(v) == STUB_KEYS for v in plain)
    (exception,) = [v for v in values if v["type"] == "exception"]
    assert exception["id"] == emulator.copy_id(ANA, uid, moved)
    assert exception["start"]["dateTime"] == "2030-01-14T11:00:00.0000000"
    assert exception["originalStart"] == "2030-01-14T10:00:00Z"
    _, theirs, _ = delta(graph, BO)
    assert len(theirs) == 4
    (dropped,) = [v for v in theirs if v.get("isCancelled")]
    assert dropped["subject"] == "Canceled: Ana / Bo weekly"
    assert dropped["id"] == emulator.copy_id(BO, uid, cancelled) != master


def test_invitees_gained_or_lost_gain_or_lose_copies(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    uid = weekly(emulator, count=3)
    bo_master = emulator.copy_id(BO, uid)
    _, bo_before, bo_link = delta(graph, BO)
    _, _, cy_link = delta(graph, CY)

    emulator.update_event(uid, title="Ana / Cy weekly", attendees=[CY])

    _, bo_changes, _ = delta(graph, BO, bo_link)
    _, cy_changes, _ = delta(graph, CY, cy_link)
    assert {c["id"] for c in bo_changes} == {o["id"] for o in bo_before}
    assert all(c["@removed"] == {"reason": "deleted"} for c in bo_changes)
    assert len(cy_changes) == 3 and all(c["type"] == "occurrence" for c in cy_changes)
    cy_master = get_event(graph, CY, cy_changes[0]["seriesMasterId"])
    assert cy_master["subject"] == "Ana / Cy weekly" and cy_master["iCalUId"] == uid
    assert graph.get(f"users/{BO}/events/{bo_master}").status_code == 404


def test_the_emulator_is_a_contract_world(emulator: GraphEmulator) -> None:
    from tests.providers.contract import World

    world: World = emulator
    uid = world.create_event(ANA, [BO], "typed", T0, T0 + HOUR)
    assert world.copy_id(ANA, uid) != world.copy_id(BO, uid)


# ----------------------------------------------------------- get and instances


def test_get_reads_a_master_and_an_occurrence(emulator: GraphEmulator, graph: httpx.Client) -> None:
    uid = weekly(emulator, count=6)
    master_id = emulator.copy_id(ANA, uid)

    master = get_event(graph, ANA, master_id)
    third = get_event(graph, ANA, emulator.copy_id(ANA, uid, T0 + 2 * WEEK))

    assert master["type"] == "seriesMaster" and master["iCalUId"] == uid
    assert master["recurrence"]["pattern"] == {
        "type": "weekly",
        "interval": 1,
        "month": 0,
        "dayOfMonth": 0,
        "daysOfWeek": ["monday"],
        "firstDayOfWeek": "sunday",
        "index": "first",
    }
    assert master["recurrence"]["range"]["type"] == "numbered"
    assert master["recurrence"]["range"]["numberOfOccurrences"] == 6
    assert third["type"] == "occurrence" and third["seriesMasterId"] == master_id
    assert third["originalStart"] == "2030-01-21T10:00:00Z"
    assert third["start"] == {"dateTime": "2030-01-21T10:00:00.0000000", "timeZone": "UTC"}
    assert third["iCalUId"] != uid and third["iCalUId"][40:] == uid[40:]
    assert third["@odata.etag"] == master["@odata.etag"]
    assert third["recurrence"] is None
    theirs = get_event(graph, BO, emulator.copy_id(BO, uid))
    assert theirs["id"] != master_id and theirs["iCalUId"] == uid
    assert theirs["isOrganizer"] is False and master["isOrganizer"] is True
    assert theirs["organizer"]["emailAddress"]["address"] == ANA
    assert [a["emailAddress"]["address"] for a in theirs["attendees"]] == [BO]


def test_get_of_unknown_ids(emulator: GraphEmulator, graph: httpx.Client) -> None:
    uid = emulator.create_event(ANA, [BO], "x", T0, T0 + HOUR)
    ana_id = emulator.copy_id(ANA, uid)

    foreign = graph.get(f"users/{BO}/events/{ana_id}")
    malformed = graph.get(f"users/{ANA}/events/not-an-id")

    assert (foreign.status_code, error_code(foreign)) == (404, "ErrorItemNotFound")
    assert foreign.json()["error"]["message"] == "The specified object was not found in the store."
    assert (malformed.status_code, error_code(malformed)) == (400, "ErrorInvalidIdMalformed")


def test_instances_apply_moves_and_cancellations(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    uid = weekly(emulator, count=6)
    moved, cancelled = T0 + WEEK, T0 + 2 * WEEK
    emulator.move_occurrence(
        uid, moved, moved + timedelta(days=1), moved + timedelta(days=1, hours=1)
    )
    emulator.cancel_occurrence(uid, cancelled)

    ours = instances(graph, ANA, emulator.copy_id(ANA, uid))
    theirs = instances(graph, BO, emulator.copy_id(BO, uid))

    assert len(ours) == 5 and len(theirs) == 6
    assert ours[0]["type"] == "exception", "exceptions come first, as in the reference"
    assert ours[0]["start"]["dateTime"].startswith("2030-01-15T10:00")
    assert ours[0]["originalStart"] == "2030-01-14T10:00:00Z"
    assert cancelled.strftime("%Y-%m-%dT%H:%M:%SZ") not in {o["originalStart"] for o in ours}
    assert [o["isCancelled"] for o in theirs].count(True) == 1
    assert all("body" in o and "subject" in o for o in ours), "instances are full events"
    assert len({o["id"] for o in ours}) == 5


def test_instances_page_with_skip_links(emulator: GraphEmulator, graph: httpx.Client) -> None:
    uid = weekly(emulator, count=7)

    first = graph.get(f"users/{ANA}/events/{emulator.copy_id(ANA, uid)}/instances", params=WINDOW)

    assert len(first.json()["value"]) == 3
    assert "$skip=3" in first.json()["@odata.nextLink"]
    assert len(instances(graph, ANA, emulator.copy_id(ANA, uid))) == 7


# ------------------------------------------------------------------------ writes


def test_patch_with_a_stale_etag_is_412_and_changes_nothing(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    uid = emulator.create_event(ANA, [BO], "x", T0, T0 + HOUR, description="v1")
    event_id = emulator.copy_id(ANA, uid)
    stale = get_event(graph, ANA, event_id)["@odata.etag"]
    emulator.edit_description(ANA, event_id, "v2 by a person")
    current = get_event(graph, ANA, event_id)

    response = patch_body(graph, ANA, event_id, stale, "ours")

    assert response.status_code == 412
    assert error_code(response) == "ErrorIrresolvableConflict"
    assert "change key" in response.json()["error"]["message"]
    assert get_event(graph, ANA, event_id) == current


def test_a_person_editing_before_our_patch_makes_it_412(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    uid = emulator.create_event(ANA, [BO], "x", T0, T0 + HOUR)
    event_id = emulator.copy_id(ANA, uid)
    etag = get_event(graph, ANA, event_id)["@odata.etag"]
    emulator.faults.before_patch(
        lambda calendar, eid: emulator.edit_description(calendar, eid, "typed"), times=1
    )

    assert patch_body(graph, ANA, event_id, etag, "ours").status_code == 412
    fresh = get_event(graph, ANA, event_id)["@odata.etag"]
    assert patch_body(graph, ANA, event_id, fresh, "ours").status_code == 200


def test_patching_one_occurrence_leaves_master_and_siblings_intact(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    uid = weekly(emulator)
    master_id = emulator.copy_id(ANA, uid)
    master = get_event(graph, ANA, master_id)
    before = instances(graph, ANA, master_id)
    target = before[1]

    response = patch_body(
        graph,
        ANA,
        target["id"],
        target["@odata.etag"],
        "agenda 2",
        singleValueExtendedProperties=[{"id": TAG, "value": "tok2"}],
    )

    assert response.status_code == 200
    written = response.json()
    assert written["type"] == "exception" and written["@odata.etag"] != target["@odata.etag"]
    after = {o["id"]: o for o in instances(graph, ANA, master_id)}
    assert set(after) == {o["id"] for o in before}
    for old in before:
        if old["id"] != target["id"]:
            assert after[old["id"]] == old
    assert "agenda 2" in after[target["id"]]["body"]["content"]
    assert get_event(graph, ANA, master_id) == master
    expanded = get_event(
        graph,
        ANA,
        target["id"],
        **{"$expand": f"singleValueExtendedProperties($filter=id eq '{TAG}')"},
    )
    assert expanded["singleValueExtendedProperties"] == [{"id": TAG, "value": "tok2"}]


def test_the_organizers_patch_reaches_the_attendees_copy(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    uid = weekly(emulator)
    ours = get_event(graph, ANA, emulator.copy_id(ANA, uid, T0 + WEEK))
    theirs_id = emulator.copy_id(BO, uid, T0 + WEEK)
    theirs_before = get_event(graph, BO, theirs_id)

    response = patch_body(
        graph,
        ANA,
        ours["id"],
        ours["@odata.etag"],
        "<p>shared agenda</p>",
        singleValueExtendedProperties=[{"id": TAG, "value": "tok"}],
    )

    assert response.status_code == 200
    expand = {"$expand": f"singleValueExtendedProperties($filter=id eq '{TAG}')"}
    theirs = get_event(graph, BO, theirs_id, **expand)
    assert "<p>shared agenda</p>" in theirs["body"]["content"]
    assert theirs["@odata.etag"] != theirs_before["@odata.etag"]
    assert theirs["type"] == "exception"
    assert "singleValueExtendedProperties" not in theirs, "our tag stays in the organizer's copy"


def test_an_attendees_edit_stays_in_their_copy(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    uid = emulator.create_event(ANA, [BO], "x", T0, T0 + HOUR, description="invite")
    theirs = get_event(graph, BO, emulator.copy_id(BO, uid))
    ours_before = get_event(graph, ANA, emulator.copy_id(ANA, uid))

    emulator.edit_description(BO, theirs["id"], "my private scribbles")
    response = patch_body(graph, BO, theirs["id"], None, "<b>and more</b>")

    assert response.status_code == 200
    assert "and more" in get_event(graph, BO, theirs["id"])["body"]["content"]
    assert get_event(graph, ANA, ours_before["id"]) == ours_before


def test_exchange_mails_every_attendee_when_the_organizers_meeting_changes(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    """The meeting updates a real mailbox would send, recorded (Graph event update)."""
    uid = emulator.create_event(
        ANA, [BO, CY], "Ana / Bo / Cy", T0, T0 + HOUR, recurrence=Recurrence(7, count=4)
    )
    ours = get_event(graph, ANA, emulator.copy_id(ANA, uid, T0 + WEEK))

    stale = patch_body(graph, ANA, ours["id"], '"not-the-etag"', "<p>lost race</p>")
    tag_only = graph.patch(
        f"users/{ANA}/events/{ours['id']}",
        json={"singleValueExtendedProperties": [{"id": TAG, "value": "tok"}]},
    )
    theirs = emulator.copy_id(BO, uid, T0 + WEEK)
    their_edit = patch_body(graph, BO, theirs, None, "<p>my own notes</p>")
    assert (stale.status_code, tag_only.status_code, their_edit.status_code) == (412, 200, 200)
    assert emulator.mails == [], "a refused write, our tag and an attendee's copy mail nobody"

    written = patch_body(graph, ANA, ours["id"], None, "<p>shared agenda</p>")

    assert written.status_code == 200
    mails = emulator.mails
    assert sorted(mail.recipient for mail in mails) == [BO, CY]
    assert {(m.organizer, m.subject, m.occurrence) for m in mails} == {
        (ANA, "Ana / Bo / Cy", T0 + WEEK)
    }


def test_written_bodies_are_stored_as_outlook_stores_them(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    uid = emulator.create_event(ANA, [BO], "x", T0, T0 + HOUR)
    event_id = emulator.copy_id(ANA, uid)
    fragment = '<p>Agenda &amp; notes</p>\n<div data-syncd="1">keep   me</div>'

    patch_body(graph, ANA, event_id, None, fragment)
    html = get_event(graph, ANA, event_id)["body"]

    assert html == {
        "contentType": "html",
        "content": (
            '<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; '
            f'charset=utf-8">\r\n</head>\r\n<body>\r\n{fragment}\r\n</body>\r\n</html>\r\n'
        ),
    }
    text = {"body": {"contentType": "text", "content": "a < b\nsecond line"}}
    assert graph.patch(f"users/{ANA}/events/{event_id}", json=text).status_code == 200
    stored = get_event(graph, ANA, event_id)
    assert stored["body"]["contentType"] == "html"
    assert "a &lt; b<br>\r\nsecond line" in stored["body"]["content"]
    assert stored["bodyPreview"] == "a < b second line"
    document = "<html><head><title>t</title></head><body><p>whole</p></body></html>"
    patch_body(graph, ANA, event_id, None, document)
    kept = get_event(graph, ANA, event_id)["body"]["content"]
    assert kept.endswith("<title>t</title></head><body><p>whole</p></body></html>")
    assert 'charset=utf-8">' in kept
    as_text = graph.get(
        f"users/{ANA}/events/{event_id}", headers={"Prefer": 'outlook.body-content-type="text"'}
    )
    assert as_text.json()["body"] == {"contentType": "text", "content": "whole"}


def test_patch_refuses_what_it_does_not_model(emulator: GraphEmulator, graph: httpx.Client) -> None:
    uid = emulator.create_event(ANA, [BO], "x", T0, T0 + HOUR)
    event_id = emulator.copy_id(ANA, uid)
    before = get_event(graph, ANA, event_id)
    url = f"users/{ANA}/events/{event_id}"

    subject = graph.patch(url, json={"subject": "new"})
    unknown = graph.patch(url, json={"colour": "red"})
    bad_prop = graph.patch(
        url, json={"singleValueExtendedProperties": [{"id": "syncd", "value": "x"}]}
    )
    broken = graph.patch(url, content=b"{not json", headers={"Content-Type": "application/json"})

    assert (subject.status_code, error_code(subject)) == (400, "ErrorInvalidRequest")
    assert (unknown.status_code, error_code(unknown)) == (400, "RequestBodyRead")
    assert (bad_prop.status_code, error_code(bad_prop)) == (400, "ErrorInvalidProperty")
    assert (broken.status_code, error_code(broken)) == (400, "BadRequest")
    assert get_event(graph, ANA, event_id) == before


def test_throttling_carries_retry_after(emulator: GraphEmulator, graph: httpx.Client) -> None:
    emulator.faults.fail("delta", 429, "ApplicationThrottled", retry_after=2.5, times=2)

    first = graph.get(f"users/{ANA}/calendarView/delta", params=WINDOW)
    second = graph.get(f"users/{ANA}/calendarView/delta", params=WINDOW)
    third = graph.get(f"users/{ANA}/calendarView/delta", params=WINDOW)

    assert [r.status_code for r in (first, second, third)] == [429, 429, 200]
    assert first.headers["Retry-After"] == "3"
    assert error_code(first) == "ApplicationThrottled"
    assert first.json()["error"]["innerError"]["request-id"] == first.headers["request-id"]
    assert [r.op for r in emulator.requests[-3:]] == ["delta"] * 3
    assert emulator.requests[-1].mailbox == ANA


# ----------------------------------------------------------------- subscriptions


def test_subscription_handshake_then_notifications_with_client_state(
    emulator: GraphEmulator, graph: httpx.Client, receiver: Receiver
) -> None:
    uid = emulator.create_event(ANA, [BO], "x", T0, T0 + HOUR)
    event_id = emulator.copy_id(ANA, uid)
    emulator.wait_for_notifications()

    response = subscribe(graph, receiver)

    assert response.status_code == 201
    created = response.json()
    assert created["resource"] == f"/users/{ANA}/events"
    assert created["clientState"] == "secret-client-state"
    assert created["applicationId"] == emulator.client_id
    assert len(receiver.validations) == 2
    assert receiver.validations[0].startswith("Validation: Testing client application")
    emulator.edit_description(ANA, event_id, "typed")
    assert emulator.wait_for_notifications()
    (change,) = notified(receiver)
    assert change["subscriptionId"] == created["id"]
    assert change["clientState"] == "secret-client-state"
    assert change["changeType"] == "updated"
    assert change["tenantId"] == emulator.tenant
    assert change["resourceData"]["id"] == event_id
    assert change["resource"] == f"Users/{emulator.user_id(ANA)}/Events/{event_id}"

    etag = get_event(graph, ANA, event_id)["@odata.etag"]
    written = patch_body(graph, ANA, event_id, etag, "agenda").json()
    assert emulator.wait_for_notifications()
    ours = notified(receiver)[-1]
    assert ours["resourceData"]["@odata.etag"] == written["@odata.etag"]
    assert [s.kind for s in emulator.notifications] == ["updated", "updated"]
    assert all(s.status == 202 for s in emulator.notifications)


def test_created_and_deleted_are_notified_to_each_mailbox(
    emulator: GraphEmulator, graph: httpx.Client, receiver: Receiver
) -> None:
    subscribe(graph, receiver, user=BO, changeType="created,deleted")

    uid = emulator.create_event(ANA, [BO], "x", T0, T0 + HOUR)
    theirs = emulator.copy_id(BO, uid)
    emulator.edit_description(ANA, emulator.copy_id(ANA, uid), "only an update")
    emulator.delete_event(uid)
    assert emulator.wait_for_notifications()

    kinds = [(n["changeType"], n["resourceData"]["id"]) for n in notified(receiver)]
    assert kinds == [("created", theirs), ("deleted", theirs)]
    assert "@odata.etag" not in notified(receiver)[1]["resourceData"]


def test_a_receiver_that_does_not_echo_is_refused(
    emulator: GraphEmulator, graph: httpx.Client
) -> None:
    silent = Receiver(echo=False)
    try:
        response = subscribe(graph, silent)
    finally:
        silent.close()

    assert response.status_code == 400
    assert error_code(response) == "ValidationError"
    assert "validationToken" in response.json()["error"]["message"]
    unreachable = graph.post(
        "subscriptions",
        json={
            "changeType": "updated",
            "notificationUrl": "http://127.0.0.1:9/nothing",
            "resource": f"users/{ANA}/events",
            "expirationDateTime": (datetime.now(UTC) + HOUR).isoformat(),
        },
    )
    assert (unreachable.status_code, error_code(unreachable)) == (400, "ValidationError")


def test_subscription_requests_are_checked(graph: httpx.Client, receiver: Receiver) -> None:
    too_long = subscribe(graph, receiver, clientState="x" * 129)
    too_far = subscribe(
        graph,
        receiver,
        expirationDateTime=(datetime.now(UTC) + timedelta(days=8)).isoformat(),
    )
    other = subscribe(graph, receiver, resource="/users/ana@example.test/messages")

    assert (too_long.status_code, error_code(too_long)) == (400, "InvalidRequest")
    assert (too_far.status_code, error_code(too_far)) == (400, "ExtensionError")
    assert "minutes in the future" in too_far.json()["error"]["message"]
    assert other.status_code == 400
    assert receiver.validations == [], "nothing is validated for a request that is refused"


def test_renewal_and_deletion(graph: httpx.Client, receiver: Receiver) -> None:
    created = subscribe(graph, receiver).json()
    later = (datetime.now(UTC) + timedelta(days=6)).replace(microsecond=0)

    renewed = graph.patch(
        f"subscriptions/{created['id']}", json={"expirationDateTime": later.isoformat()}
    )
    deleted = graph.delete(f"subscriptions/{created['id']}")
    again = graph.delete(f"subscriptions/{created['id']}")

    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"].startswith(later.strftime("%Y-%m-%dT%H:%M:%S"))
    assert deleted.status_code == 204
    assert (again.status_code, error_code(again)) == (404, "ResourceNotFound")


def test_lifecycle_notifications(
    emulator: GraphEmulator, graph: httpx.Client, receiver: Receiver
) -> None:
    created = subscribe(graph, receiver).json()

    emulator.faults.lifecycle(created["id"], "reauthorizationRequired")
    emulator.faults.lifecycle(ANA, "missed")
    emulator.faults.lifecycle(created["id"], "subscriptionRemoved")
    assert emulator.wait_for_notifications()
    emulator.create_event(ANA, [BO], "after removal", T0, T0 + HOUR)
    assert emulator.wait_for_notifications()

    events = [item["lifecycleEvent"] for p in receiver.lifecycle for item in p["value"]]
    assert events == ["reauthorizationRequired", "missed", "subscriptionRemoved"]
    assert all(
        item["clientState"] == "secret-client-state" and item["subscriptionId"] == created["id"]
        for p in receiver.lifecycle
        for item in p["value"]
    )
    assert notified(receiver) == []
    assert (
        graph.patch(
            f"subscriptions/{created['id']}",
            json={"expirationDateTime": (datetime.now(UTC) + HOUR).isoformat()},
        ).status_code
        == 404
    )


def test_dropped_and_duplicated_notifications(
    emulator: GraphEmulator, graph: httpx.Client, receiver: Receiver
) -> None:
    subscribe(graph, receiver)
    emulator.faults.drop_notifications(1)
    emulator.faults.duplicate_notifications(1)

    first = emulator.create_event(ANA, [BO], "lost", T0, T0 + HOUR)
    emulator.create_event(ANA, [BO], "twice", T0, T0 + HOUR)
    assert emulator.wait_for_notifications()

    assert [s.status for s in emulator.notifications] == [None, 202, 202]
    ids = [n["resourceData"]["id"] for n in notified(receiver)]
    assert emulator.copy_id(ANA, first) not in ids and len(ids) == 2 and ids[0] == ids[1]


# ------------------------------------------------------------------------ schema


class _Probe:
    """A stand-in ParseNode: records which typed read a model's deserializer asks for."""

    def __init__(self) -> None:
        self.call: tuple[str, Any] = ("", None)

    def __getattr__(self, name: str) -> Any:
        def read(*args: Any) -> None:
            self.call = (name, args[0] if args else None)

        return read


def _is_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_date(value: Any) -> bool:
    try:
        date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _check_value(value: Any, call: tuple[str, Any], where: str) -> list[str]:
    method, arg = call
    primitive: dict[str, Callable[[Any], bool]] = {
        "get_str_value": lambda v: isinstance(v, str),
        "get_bool_value": lambda v: isinstance(v, bool),
        "get_int_value": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "get_float_value": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "get_datetime_value": _is_time,
        "get_date_value": _is_date,
    }
    if method in primitive:
        return [] if primitive[method](value) else [f"{where}: {value!r} is not {method}"]
    if method == "get_enum_value":
        allowed = {member.value for member in arg}
        return [] if value in allowed else [f"{where}: {value!r} not in {sorted(allowed)}"]
    if method == "get_collection_of_enum_values":
        allowed = {member.value for member in arg}
        ok = isinstance(value, list) and all(v in allowed for v in value)
        return [] if ok else [f"{where}: {value!r} not a list of {sorted(allowed)}"]
    if method == "get_collection_of_primitive_values":
        ok = isinstance(value, list) and all(isinstance(v, arg) for v in value)
        return [] if ok else [f"{where}: {value!r} is not a list of {arg.__name__}"]
    if method == "get_object_value":
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not an object"]
        return schema_problems(value, arg, where)
    if method == "get_collection_of_object_values":
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not an array"]
        return [
            p
            for i, v in enumerate(value)
            for p in _check_value(v, ("get_object_value", arg), f"{where}[{i}]")
        ]
    return [f"{where}: the SDK reads it with {method}, which this check does not know"]


def schema_problems(value: dict[str, Any], model: type, where: str = "") -> list[str]:
    """Fields the SDK model does not know, or values of the wrong shape (annotations excepted)."""
    fields = model().get_field_deserializers()
    problems: list[str] = []
    for key, item in value.items():
        if key.startswith("@odata.") or "@odata." in key or key == "@removed":
            continue
        if key not in fields:
            problems.append(f"{where}.{key}: unknown to {model.__name__}")
            continue
        if item is None:
            continue
        probe = _Probe()
        fields[key](probe)
        problems.extend(_check_value(item, probe.call, f"{where}.{key}"))
    return problems


def test_emitted_json_is_what_the_msgraph_sdk_models_know(
    emulator: GraphEmulator, graph: httpx.Client, receiver: Receiver
) -> None:
    from msgraph.generated.models.event import Event
    from msgraph.generated.models.event_collection_response import EventCollectionResponse
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.subscription import Subscription
    from msgraph.generated.users.item.calendar_view.delta.delta_get_response import (
        DeltaGetResponse,
    )

    uid = emulator.create_event(
        ANA,
        [BO, Attendee(CY, optional=True), Attendee(ROOM, name="Room 4", is_resource=True)],
        "everything",
        T0,
        T0 + HOUR,
        description="hi",
    )
    series = emulator.create_event(
        ANA, [BO], "series", T0, T0 + HOUR, recurrence=Recurrence(1, until=T0 + 5 * WEEK)
    )
    emulator.move_occurrence(
        series,
        T0 + timedelta(days=1),
        T0 + timedelta(days=1, hours=2),
        T0 + timedelta(days=1, hours=3),
    )
    emulator.cancel_occurrence(series, T0 + timedelta(days=2))
    single_id = emulator.copy_id(ANA, uid)
    patch_body(
        graph, ANA, single_id, None, "x", singleValueExtendedProperties=[{"id": TAG, "value": "t"}]
    )
    expand = {"$expand": f"singleValueExtendedProperties($filter=id eq '{TAG}')"}

    documents: list[tuple[dict[str, Any], type]] = [
        (get_event(graph, ANA, single_id, **expand), Event),
        (get_event(graph, ANA, emulator.copy_id(ANA, series)), Event),
        (get_event(graph, BO, emulator.copy_id(BO, series, T0 + timedelta(days=2))), Event),
        (get_event(graph, ANA, emulator.copy_id(ANA, series, T0 + timedelta(days=3))), Event),
        (
            graph.get(
                f"users/{ANA}/events/{emulator.copy_id(ANA, series)}/instances", params=WINDOW
            ).json(),
            EventCollectionResponse,
        ),
        (subscribe(graph, receiver).json(), Subscription),
        (graph.get(f"users/{ANA}/events/AAMkAnothing").json(), ODataError),
    ]
    for user in (ANA, BO):
        pages, _, _ = delta(graph, user, page_size=4)
        documents.extend((page, DeltaGetResponse) for page in pages)
    emulator.delete_event(uid)
    documents.append((delta(graph, ANA)[0][-1], DeltaGetResponse))

    problems = [p for doc, model in documents for p in schema_problems(doc, model, model.__name__)]
    assert problems == []


# ---------------------------------------------------------------------------- CLI


def test_runs_as_a_module_until_interrupted() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "providers.emulators.graph",
            "--port",
            "0",
            "--users",
            f"{ANA},{BO}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        tenant = "11111111-2222-3333-4444-555555555555"
        url = f"{base_url}{tenant}/v2.0/.well-known/openid-configuration"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=5) as response:
            config = json.load(response)
        assert config["token_endpoint"] == (
            f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
        )
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
