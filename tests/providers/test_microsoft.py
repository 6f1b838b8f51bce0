"""The Microsoft provider: the shared contract over the Graph emulator, then what only Graph does.

Tokens come from msal (``app_token_source``) through the emulator's identity
endpoints, exactly as in production but for the session that routes the login
host to the loopback server.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from providers.base import (
    AuthRevoked,
    CursorExpired,
    NotFound,
    Notification,
    NotWritable,
    PreconditionFailed,
    ProviderError,
    RateLimited,
    Transient,
)
from providers.emulators.graph import GraphEmulator, Recorded
from providers.memory import Recurrence
from providers.microsoft.graph import (
    SUBSCRIPTION_LIFETIME,
    TAG_PROPERTY,
    MicrosoftProvider,
    app_token_source,
    error_for,
    parse_notifications,
    to_event,
)
from providers.microsoft.tokens import login_session
from providers.model import EventType, Response, Window

from .contract import (
    ANA,
    BO,
    CALENDARS,
    HOUR,
    PAGE_SIZE,
    T0,
    WEEK,
    WINDOW,
    ProviderContract,
    drain,
    shown,
)

GRAPH_ROOT = "https://graph.test/v1.0/"


@pytest.fixture
def emulator() -> Iterator[GraphEmulator]:
    with GraphEmulator(CALENDARS) as running:
        yield running


def graph_provider(emulator: GraphEmulator, **kw: object) -> MicrosoftProvider:
    tokens = app_token_source(
        emulator.https_authority,
        emulator.client_id,
        emulator.client_secret,
        http_client=login_session(emulator.ca_file),
    )
    return MicrosoftProvider(
        CALENDARS,
        tokens,
        graph_root=emulator.graph_root,
        page_size=PAGE_SIZE,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def provider(emulator: GraphEmulator) -> Iterator[MicrosoftProvider]:
    made = graph_provider(emulator)
    yield made
    made.close()


@pytest.fixture
def world(emulator: GraphEmulator) -> GraphEmulator:
    return emulator


class TestMicrosoft(ProviderContract):
    """Every provider's contract, over HTTP, with tokens from msal."""


# ------------------------------------------------------------ without a server


def graph_answer(
    status: int, code: str = "", headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened"}} if code else None
    return httpx.Response(status, json=body, headers=headers or {})


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (410, "SyncStateNotFound", CursorExpired),
        (400, "SyncStateNotFound", CursorExpired),
        (401, "InvalidAuthenticationToken", AuthRevoked),
        (403, "ErrorAccessDenied", AuthRevoked),
        (404, "MailboxNotEnabledForRESTAPI", AuthRevoked),
        (404, "ErrorInvalidUser", AuthRevoked),
        (404, "ErrorItemNotFound", NotFound),
        (409, "ErrorIrresolvableConflict", PreconditionFailed),
        (412, "ErrorIrresolvableConflict", PreconditionFailed),
        (500, "ErrorInternalServerError", Transient),
        (504, "", Transient),
        (400, "ErrorInvalidUrlQuery", ProviderError),
        (403, "ErrorSomethingElse", ProviderError),
    ],
)
def test_error_for_maps_graph_answers(status: int, code: str, expected: type) -> None:
    error = error_for(graph_answer(status, code))
    assert type(error) is expected
    if code:
        assert code in str(error)


@pytest.mark.parametrize("status", [429, 503])
def test_error_for_reads_retry_after(status: int) -> None:
    error = error_for(graph_answer(status, "ApplicationThrottled", {"Retry-After": "7"}))
    assert isinstance(error, RateLimited) and error.retry_after == 7.0
    bare = error_for(graph_answer(status, "ApplicationThrottled"))
    assert isinstance(bare, RateLimited) and bare.retry_after is None


def test_error_for_maps_transport_failures_and_msal_errors() -> None:
    request = httpx.Request("GET", GRAPH_ROOT)
    assert isinstance(error_for(httpx.ReadTimeout("slow", request=request)), Transient)
    assert isinstance(error_for(httpx.ConnectError("refused", request=request)), Transient)
    revoked = {"error": "invalid_client", "error_description": "AADSTS7000215: bad secret"}
    assert isinstance(error_for(revoked), AuthRevoked)
    consent = {"error": "invalid_request", "error_codes": [65001], "error_description": "x"}
    assert isinstance(error_for(consent), AuthRevoked)
    assert isinstance(error_for({"error": "temporarily_unavailable"}), Transient)


def test_parse_notifications_reads_the_json_body() -> None:
    body = json.dumps(
        {
            "value": [
                {"subscriptionId": "s1", "clientState": "secret", "changeType": "updated"},
                {"subscriptionId": "s2", "clientState": "other", "lifecycleEvent": "missed"},
                {"no": "subscription"},
            ]
        }
    ).encode()

    assert parse_notifications(body) == [
        Notification(channel_id="s1", token="secret"),
        Notification(channel_id="s2", token="other", lifecycle="missed"),
    ]
    assert parse_notifications(b"not json") == []
    assert parse_notifications(b'{"value": 3}') == []
    assert parse_notifications(b"[]") == []


def test_to_event_maps_an_occurrence_onto_its_series() -> None:
    item = {
        "@odata.etag": 'W/"abc"',
        "id": "occ-1",
        "type": "exception",
        "seriesMasterId": "master-1",
        "iCalUId": "differs-per-occurrence",
        "originalStart": "2030-01-14T10:00:00Z",
        "start": {"dateTime": "2030-01-15T10:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-15T11:00:00.0000000", "timeZone": "UTC"},
        "subject": "Ana / Bo",
        "body": {"contentType": "html", "content": "<p>hi</p>"},
        "organizer": {"emailAddress": {"address": ANA, "name": "Ana"}},
        "attendees": [
            {
                "type": "required",
                "status": {"response": "accepted"},
                "emailAddress": {"address": BO},
            },
            {
                "type": "resource",
                "status": {"response": "none"},
                "emailAddress": {"address": "r@x"},
            },
        ],
        "isOrganizer": False,
        "showAs": "oof",
        "singleValueExtendedProperties": [{"id": TAG_PROPERTY.upper(), "value": "tok"}],
    }

    event = to_event(BO, item, series_uid="series-uid")

    assert event.key.ical_uid == "series-uid"
    assert event.original_start == T0 + timedelta(days=7)
    assert event.start == T0 + timedelta(days=8)
    assert event.series_id == "master-1" and not event.recurring
    assert event.description_is_html and event.tag == "tok" and event.etag == 'W/"abc"'
    assert event.event_type is EventType.OUT_OF_OFFICE
    assert not event.is_organizer_copy and event.organizer == ANA
    people = {a.email: a for a in event.attendees}
    assert people[ANA].is_organizer and people[ANA].response is Response.ACCEPTED
    assert people["r@x"].is_resource and not people[BO].is_resource
    with pytest.raises(ValueError):
        to_event(BO, item)  # an occurrence cannot be named without its series


def test_a_cursor_is_refused_once_the_window_has_moved_past_its_round() -> None:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(
            200, json={"value": [], "@odata.deltaLink": f"{GRAPH_ROOT}users/x/delta?t=1"}
        )

    provider = MicrosoftProvider(
        [ANA], lambda: "token", graph_root=GRAPH_ROOT, transport=httpx.MockTransport(answer)
    )
    (page,) = provider.changes(ANA, None, WINDOW)
    assert page.cursor is not None
    nudged = Window(WINDOW.start + timedelta(days=3), WINDOW.end + timedelta(days=3))
    assert [p.events for p in provider.changes(ANA, page.cursor, nudged)] == [[]]

    requests.clear()
    moved = Window(WINDOW.start + timedelta(days=30), WINDOW.end + timedelta(days=30))
    with pytest.raises(CursorExpired):
        list(provider.changes(ANA, page.cursor, moved))
    with pytest.raises(CursorExpired):
        list(provider.changes(ANA, "some other provider's cursor", WINDOW))
    foreign = page.cursor.replace("graph.test", "elsewhere.test")
    with pytest.raises(CursorExpired):
        list(provider.changes(ANA, foreign, WINDOW))
    assert requests == [], "no request, and no token sent to another host"


def test_a_refused_token_is_refreshed_once_then_auth_revoked() -> None:
    class Tokens:
        def __init__(self) -> None:
            self.issued = 0

        def __call__(self) -> str:
            return f"t{self.issued}"

        def refresh(self) -> str:
            self.issued += 1
            return self()

    seen: list[str] = []
    good = {"t1"}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        if request.headers["authorization"].removeprefix("Bearer ") in good:
            return httpx.Response(404, json={"error": {"code": "ErrorItemNotFound"}})
        return httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken"}})

    tokens = Tokens()
    provider = MicrosoftProvider(
        [ANA], tokens, graph_root=GRAPH_ROOT, transport=httpx.MockTransport(answer)
    )
    with pytest.raises(NotFound):
        provider.get(ANA, "e1")
    assert seen == ["Bearer t0", "Bearer t1"]

    good.clear()
    seen.clear()
    with pytest.raises(AuthRevoked):
        provider.get(ANA, "e1")
    assert seen == ["Bearer t1", "Bearer t2"]


def test_subscriptions_are_capped_at_the_graph_maximum() -> None:
    bodies: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        return httpx.Response(201, json={"id": "sub-1", **body})

    provider = MicrosoftProvider(
        [ANA], lambda: "token", graph_root=GRAPH_ROOT, transport=httpx.MockTransport(answer)
    )
    before = datetime.now(UTC)
    channel = provider.watch(ANA, "https://hooks.test/graph", "ours", "secret", timedelta(days=30))

    assert channel.id == "sub-1" and channel.calendar == ANA  # Graph names it
    assert before + SUBSCRIPTION_LIFETIME - timedelta(minutes=11) <= channel.expires
    assert channel.expires <= datetime.now(UTC) + SUBSCRIPTION_LIFETIME
    (body,) = bodies
    assert body["clientState"] == "secret"
    assert body["resource"] == f"/users/{ANA}/events"
    assert body["notificationUrl"] == body["lifecycleNotificationUrl"] == "https://hooks.test/graph"


# ------------------------------------------------------------ through the emulator


def ops(emulator: GraphEmulator, op: str, mailbox: str | None = None) -> list[Recorded]:
    return [r for r in emulator.requests if r.op == op and mailbox in (None, r.mailbox)]


def weekly(world: GraphEmulator, count: int = 6) -> str:
    return world.create_event(
        ANA, [BO], "Ana / Bo weekly", T0, T0 + HOUR, recurrence=Recurrence(7, count=count)
    )


def test_stubs_are_completed_once_and_the_master_read_once_per_series(
    provider: MicrosoftProvider, emulator: GraphEmulator
) -> None:
    series = weekly(emulator)
    master = emulator.copy_id(ANA, series)

    events, _, cursor, _ = drain(provider, ANA, None)

    assert sorted(e.key.original_start for e in events) == [T0 + n * WEEK for n in range(6)]
    assert {e.key.ical_uid for e in events} == {series}
    reads = [r.path.rsplit("/", 1)[1] for r in ops(emulator, "get")]
    # the stubs lack body and tag: each is completed from the one read of its master
    assert reads == [master], "one read of the master for the whole series, none per stub"
    assert ops(emulator, "instances") == []
    assert {shown(e) for e in events} == {shown(events[0])}

    emulator.requests.clear()
    assert drain(provider, ANA, cursor)[0] == []
    assert [r.op for r in emulator.requests] == ["delta"], "a quiet calendar costs one request"

    emulator.requests.clear()
    again, _, _, _ = drain(provider, ANA, None)
    assert sorted(e.id for e in again) == sorted(e.id for e in events)
    assert ops(emulator, "get") == [], "a full sync re-reads no copy whose etag is unchanged"

    emulator.update_event(series, title="Ana / Bo weekly (new room)")
    emulator.requests.clear()
    changed, _, _, _ = drain(provider, ANA, cursor)
    assert {e.title for e in changed} == {"Ana / Bo weekly (new room)"}
    # six new versions, one read: the master, which is what changed
    assert [r.path.rsplit("/", 1)[1] for r in ops(emulator, "get")] == [master]


def test_an_attendees_full_copy_needs_no_read(
    provider: MicrosoftProvider, emulator: GraphEmulator
) -> None:
    uid = emulator.create_event(ANA, [BO], "Ana / Bo", T0, T0 + HOUR, description="hi")

    events, _, _, _ = drain(provider, BO, None)

    (theirs,) = events
    assert theirs.key.ical_uid == uid and not theirs.is_organizer_copy and theirs.tag is None
    assert shown(theirs) == "hi" and theirs.organizer == ANA
    assert ops(emulator, "get") == [], "our tag never lives on an attendee's copy"


def test_a_write_sends_if_match_with_the_etag_read_and_keeps_the_html(
    provider: MicrosoftProvider, emulator: GraphEmulator
) -> None:
    uid = emulator.create_event(ANA, [BO], "Ana / Bo", T0, T0 + HOUR, description="my notes")
    before = provider.get(ANA, emulator.copy_id(ANA, uid))
    assert before.description_is_html, "Exchange keeps what a person types as HTML"
    body = before.description.replace("</body>", "<div>agenda</div>\r\n</body>")

    written = provider.update_description(ANA, before.id, body, before.etag, "tok")

    (patch,) = ops(emulator, "patch")
    assert patch.headers["if-match"] == before.etag
    assert patch.body["body"] == {"contentType": "html", "content": body}
    assert patch.body["singleValueExtendedProperties"] == [{"id": TAG_PROPERTY, "value": "tok"}]
    assert written.description == body, "the person's markup comes back byte for byte"
    assert written.tag == "tok" and written.etag != before.etag
    assert provider.get(ANA, before.id) == written


def test_a_persons_edit_between_read_and_write_is_a_precondition_failure(
    provider: MicrosoftProvider, emulator: GraphEmulator
) -> None:
    uid = emulator.create_event(ANA, [BO], "Ana / Bo", T0, T0 + HOUR, description="v1")
    event = provider.get(ANA, emulator.copy_id(ANA, uid))
    emulator.faults.before_patch(
        lambda calendar, event_id: emulator.edit_description(calendar, event_id, "v2"), times=1
    )

    with pytest.raises(PreconditionFailed):
        provider.update_description(ANA, event.id, "ours", event.etag, "tok")

    after = provider.get(ANA, event.id)
    assert shown(after) == "v2" and after.tag is None


def test_a_conflict_answer_is_a_precondition_failure(
    provider: MicrosoftProvider, emulator: GraphEmulator
) -> None:
    uid = emulator.create_event(ANA, [BO], "Ana / Bo", T0, T0 + HOUR)
    event = provider.get(ANA, emulator.copy_id(ANA, uid))
    emulator.faults.fail("patch", 409, "ErrorIrresolvableConflict")

    with pytest.raises(PreconditionFailed):
        provider.update_description(ANA, event.id, "ours", event.etag, "tok")


@pytest.mark.parametrize(
    ("status", "code"), [(429, "ApplicationThrottled"), (503, "ServiceUnavailable")]
)
def test_throttling_is_rate_limited_with_the_servers_retry_after(
    provider: MicrosoftProvider, emulator: GraphEmulator, status: int, code: str
) -> None:
    emulator.faults.fail("delta", status, code, retry_after=7)

    with pytest.raises(RateLimited) as raised:
        drain(provider, ANA, None)

    assert raised.value.retry_after == 7.0
    assert len(ops(emulator, "delta")) == 1, "the engine retries, not the adapter"
    assert drain(provider, ANA, None)[2]


def test_a_server_error_is_transient(provider: MicrosoftProvider, emulator: GraphEmulator) -> None:
    emulator.faults.fail("get", 500, "ErrorInternalServerError")

    with pytest.raises(Transient):
        provider.get(
            ANA, emulator.copy_id(ANA, emulator.create_event(ANA, [BO], "x", T0, T0 + HOUR))
        )


def test_a_forgotten_delta_token_is_cursor_expired(
    provider: MicrosoftProvider, emulator: GraphEmulator
) -> None:
    _, _, cursor, _ = drain(provider, ANA, None)
    emulator.faults.fail("delta", 410, "SyncStateNotFound")

    with pytest.raises(CursorExpired):
        drain(provider, ANA, cursor)


def test_a_disabled_user_is_auth_revoked_for_that_mailbox_only(
    provider: MicrosoftProvider, emulator: GraphEmulator
) -> None:
    uid = emulator.create_event(ANA, [BO], "Ana / Bo", T0, T0 + HOUR)
    emulator.disable_user(BO)

    with pytest.raises(AuthRevoked):
        drain(provider, BO, None)
    with pytest.raises(AuthRevoked):
        provider.get(BO, emulator.copy_id(BO, uid))
    assert [e.key.ical_uid for e in drain(provider, ANA, None)[0]] == [uid]


def test_a_refused_token_is_replaced_once(
    provider: MicrosoftProvider, emulator: GraphEmulator
) -> None:
    uid = emulator.create_event(ANA, [BO], "Ana / Bo", T0, T0 + HOUR)
    event_id = emulator.copy_id(ANA, uid)
    provider.get(ANA, event_id)
    assert len(ops(emulator, "token")) == 1
    provider.get(ANA, event_id)
    assert len(ops(emulator, "token")) == 1, "msal caches the token"

    emulator.expire_tokens()
    emulator.requests.clear()
    provider.get(ANA, event_id)

    assert [(r.op, r.status) for r in emulator.requests] == [
        ("get", 401),
        ("token", 200),
        ("get", 200),
    ]


def test_withdrawn_consent_is_auth_revoked(
    provider: MicrosoftProvider, emulator: GraphEmulator
) -> None:
    uid = emulator.create_event(ANA, [BO], "Ana / Bo", T0, T0 + HOUR)
    event_id = emulator.copy_id(ANA, uid)
    provider.get(ANA, event_id)

    emulator.revoke_consent()
    provider.get(ANA, event_id)  # a token already issued works until it expires
    emulator.expire_tokens()

    with pytest.raises(AuthRevoked, match="unauthorized_client"):
        provider.get(ANA, event_id)


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [(401, "invalid_client", AuthRevoked), (503, "temporarily_unavailable", Transient)],
)
def test_token_endpoint_failures_are_mapped(
    emulator: GraphEmulator, status: int, error: str, expected: type[Exception]
) -> None:
    provider = graph_provider(emulator)
    emulator.faults.fail("token", status, error)

    with pytest.raises(expected):
        drain(provider, ANA, None)
    assert ops(emulator, "delta") == [], "no request goes out without a token"


class InFlight(httpx.BaseTransport):
    """Counts requests in flight per mailbox, on the wire (the body read before it ends)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lock = threading.Lock()
        self._now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.peak_total = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")
        mailbox = parts[3] if len(parts) > 3 and parts[2] == "users" else ""
        with self._lock:
            self._now[mailbox] += 1
            self.peak[mailbox] = max(self.peak[mailbox], self._now[mailbox])
            self.peak_total = max(self.peak_total, sum(self._now.values()))
        try:
            response = self._inner.handle_request(request)
            response.read()
            return response
        finally:
            with self._lock:
                self._now[mailbox] -= 1


def test_never_more_than_four_requests_in_flight_for_one_mailbox(
    emulator: GraphEmulator,
) -> None:
    wire = InFlight()
    provider = graph_provider(emulator, transport=wire)
    ana = [
        emulator.copy_id(ANA, emulator.create_event(ANA, [BO], f"m{n}", T0, T0 + HOUR))
        for n in range(6)
    ]
    bo = emulator.copy_id(BO, emulator.create_event(BO, [ANA], "other", T0, T0 + HOUR))
    emulator.faults.latency(0.15, "get")

    with ThreadPoolExecutor(max_workers=12) as pool:
        jobs = [pool.submit(provider.get, ANA, ana[n % 6]) for n in range(10)]
        jobs += [pool.submit(provider.get, BO, bo) for _ in range(2)]
        assert all(job.result().id for job in jobs)

    assert wire.peak[ANA] == 4, "Graph allows four concurrent requests per mailbox"
    assert wire.peak_total > 4, "other mailboxes are not held up by a busy one"

    cold = InFlight()
    events, _, _, _ = drain(graph_provider(emulator, transport=cold), ANA, None)
    assert len(events) == 7
    assert cold.peak[ANA] == 4, "a page's reads run in parallel, up to the same limit"


def test_a_master_or_an_attendees_copy_is_never_patched(emulator: GraphEmulator) -> None:
    warm = graph_provider(emulator)
    series = weekly(emulator)
    single = emulator.create_event(ANA, [BO], "Ana / Bo", T0, T0 + HOUR)
    master = warm.get(ANA, emulator.copy_id(ANA, series))
    theirs = warm.get(BO, emulator.copy_id(BO, single))

    for provider in (warm, graph_provider(emulator)):  # known copies, and a cold cache
        with pytest.raises(NotWritable):
            provider.update_description(ANA, master.id, "x", master.etag, "tok")
        with pytest.raises(NotWritable):
            provider.update_description(BO, theirs.id, "x", theirs.etag, "tok")

    assert ops(emulator, "patch") == []


def test_instances_of_a_series_come_in_series_order_with_the_masters_identity(
    provider: MicrosoftProvider, emulator: GraphEmulator
) -> None:
    series = weekly(emulator, count=4)
    emulator.move_occurrence(series, T0 + 2 * WEEK, T0 + 2 * WEEK + HOUR, T0 + 2 * WEEK + 2 * HOUR)
    master = emulator.copy_id(ANA, series)

    occurrences = provider.instances(ANA, master, WINDOW)

    assert [o.original_start for o in occurrences] == [T0 + n * WEEK for n in range(4)]
    assert {o.key.ical_uid for o in occurrences} == {series}
    assert all(o.is_organizer_copy and o.series_id == master for o in occurrences)
    reads = [r.path.rsplit("/", 1)[1] for r in ops(emulator, "get")]
    assert reads == [master], "the master is read once, for its iCalUId"


class Receiver:
    """A webhook endpoint: answers Graph's validation handshake and keeps every POST body."""

    def __init__(self) -> None:
        bodies: list[bytes] = []

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                token = parse_qs(urlsplit(self.path).query).get("validationToken")
                answer = token[0].encode() if token else b""
                if not token:
                    bodies.append(body)
                self.send_response(200 if token else 202)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.bodies = bodies
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/graph"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_a_subscription_notifies_with_our_client_state_and_can_be_renewed_and_stopped(
    provider: MicrosoftProvider, emulator: GraphEmulator
) -> None:
    with Receiver() as hook:
        channel = provider.watch(ANA, hook.url, "ours", "s3cret", timedelta(days=30))
        assert channel.expires <= datetime.now(UTC) + SUBSCRIPTION_LIFETIME

        emulator.create_event(ANA, [BO], "Ana / Bo", T0, T0 + HOUR)
        emulator.faults.lifecycle(channel.id, "reauthorizationRequired")
        assert emulator.wait_for_notifications()

        seen = [entry for body in hook.bodies for entry in parse_notifications(body)]
        assert Notification(channel.id, "s3cret") in seen
        assert Notification(channel.id, "s3cret", lifecycle="reauthorizationRequired") in seen

        renewed = provider.renew(channel, timedelta(hours=2))
        assert renewed.id == channel.id and renewed.expires < channel.expires

        provider.stop(channel)
        provider.stop(channel)  # already gone: not an error
        assert [r.status for r in ops(emulator, "unsubscribe")] == [204, 404]


def test_an_unreachable_graph_host_is_named_in_the_error(emulator: GraphEmulator) -> None:
    import socket

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    tokens = app_token_source(
        emulator.https_authority,
        emulator.client_id,
        emulator.client_secret,
        http_client=login_session(emulator.ca_file),
    )
    provider = MicrosoftProvider(CALENDARS, tokens, graph_root=f"http://127.0.0.1:{port}/v1.0/")
    try:
        with pytest.raises(Transient) as failed:
            list(provider.changes(ANA, None, WINDOW))
    finally:
        provider.close()
    assert f"cannot reach 127.0.0.1:{port}" in str(failed.value)
