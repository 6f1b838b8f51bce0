"""The Google emulator on the wire: routing, authentication, faults, recording.

Paths are the ones google-api-python-client sends once ``api_endpoint`` is
the emulator's ``api_root`` (rootUrl + servicePath = ``/calendar/v3/``), and
the OAuth endpoints sit where the service-account JSON and client config
point. Every request is recorded, answered or not, with what a test wants to
assert on: the query as sent, lower-cased headers, the parsed body, the status
answered and whose token it carried.

Per API request: route (404 for anything else), latency, bearer token (401),
scripted fault, scope (403), calendar (``primary`` or the token owner's own
address; anyone else's calendar is a 404 as for calendars one cannot see),
then the operation. The Admin SDK's ``/admin/directory/v1/users`` is routed
to google_directory after the bearer token is checked.
"""

from __future__ import annotations

import json
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

from . import _server
from ._inserts import InvalidInsert, from_google
from ._recording import Recorded, RecordingApp, segments
from ._server import RequestHandler, Response
from .google_auth import Authority, Grant
from .google_directory import Directory
from .google_errors import ApiError, OAuthError
from .google_faults import GoogleFaults
from .google_listing import Queries
from .google_push import PushHub
from .google_state import CalendarStore

__all__ = ["ApiApp", "Recorded", "Response", "serve"]

_SEND_UPDATES = frozenset({"all", "externalOnly", "none"})
_JSON = "application/json; charset=UTF-8"


class ApiApp(RecordingApp):
    _faults: GoogleFaults

    def __init__(
        self,
        *,
        store: CalendarStore,
        queries: Queries,
        authority: Authority,
        push: PushHub,
        faults: GoogleFaults,
        directory: Directory | None = None,
    ) -> None:
        super().__init__(faults)
        self.api_root = ""
        self._directory = directory
        self._store = store
        self._queries = queries
        self._authority = authority
        self._push = push

    def _answer(self, record: Recorded, raw_path: str) -> Response:
        try:
            return self._dispatch(record, segments(raw_path))
        except (ApiError, OAuthError) as error:
            return _json(error.status, error.body(), error.headers)

    # ---------------------------------------------------------------- routing

    def _dispatch(self, record: Recorded, segments: list[str]) -> Response:
        method = record.method
        if segments == ["token"] and method == "POST":
            record.op = "token"
            return self._token(record)
        if segments == ["o", "oauth2", "auth"] and method == "GET":
            record.op = "auth"
            return self._authorize(record)
        if segments[:1] == ["oauth2"] and segments[2:] == ["certs"] and method == "GET":
            record.op = "certs"
            if segments[1] == "v1":
                return _json(200, self._authority.certs_pem())
            if segments[1] == "v3":
                return _json(200, self._authority.certs_jwks())
        if segments[:3] == ["admin", "directory", "v1"] and self._directory is not None:
            return self._users(record, segments[3:])
        if segments[:2] != ["calendar", "v3"]:
            raise ApiError(404, "notFound")
        rest = segments[2:]
        if rest == ["channels", "stop"] and method == "POST":
            record.op = "stop"
            self._authorized(record, write=False)
            self._push.stop_channel(record.body)
            return Response(204)
        if len(rest) < 3 or rest[0] != "calendars" or rest[2] != "events":
            raise ApiError(404, "notFound")
        calendar_id, tail = rest[1], rest[3:]
        if tail == [] and method == "GET":
            record.op = "list"
            address = self._calendar(record, calendar_id, write=False)
            page = self._queries.list_events(address, record.query)
            page["items"] = [*page.get("items", ()), *self._faults.injected(address)]
            return _json(200, page)
        if tail == [] and method == "POST":
            record.op = "insert"
            address = self._calendar(record, calendar_id, write=True)
            try:
                uid = from_google(record.body).create(self._store, address)
            except InvalidInsert as invalid:
                reason = "required" if str(invalid).startswith("Missing") else "invalid"
                raise ApiError(400, reason, str(invalid), invalid.field, "body") from None
            return _json(200, self._queries.get(address, self._store.copy_id(address, uid)))
        if tail == ["watch"] and method == "POST":
            record.op = "watch"
            address = self._calendar(record, calendar_id, write=False)
            uri = f"{self.api_root}calendars/{quote(calendar_id, safe='@')}/events?alt=json"
            return _json(200, self._push.watch(address, record.body, uri))
        if len(tail) == 1 and method == "GET":
            record.op = "get"
            address = self._calendar(record, calendar_id, write=False)
            return _json(200, self._queries.get(address, tail[0]))
        if len(tail) == 1 and method == "PATCH":
            record.op = "patch"
            return self._patch(record, calendar_id, tail[0])
        if len(tail) == 2 and tail[1] == "instances" and method == "GET":
            record.op = "instances"
            address = self._calendar(record, calendar_id, write=False)
            return _json(200, self._queries.instances(address, tail[0], record.query))
        raise ApiError(404, "notFound")

    # ------------------------------------------------------------- operations

    def _token(self, record: Recorded) -> Response:
        self._pause(record.op)
        failure = self._faults.take("token")
        if failure is not None:
            raise failure
        form = record.body if isinstance(record.body, dict) else {}
        answer = self._authority.token(
            {str(k): str(v) for k, v in form.items()}, record.headers.get("authorization")
        )
        return _json(200, answer, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _users(self, record: Recorded, rest: list[str]) -> Response:
        """The Admin SDK's users.list; the directory checks scope, admin and parameters."""
        if rest != ["users"] or record.method != "GET" or self._directory is None:
            raise ApiError(404, "notFound")
        record.op = "users"
        self._pause(record.op)
        grant = self._authority.authenticate(record.headers.get("authorization"))
        record.user = grant.user
        return _json(200, self._directory.list_users(grant, record.query))

    def _authorize(self, record: Recorded) -> Response:
        location = self._authority.authorize(record.query)
        return Response(302, b"", {"Location": location, "Content-Type": "text/html"})

    def _patch(self, record: Recorded, calendar_id: str, event_id: str) -> Response:
        address = self._calendar(record, calendar_id, write=True)
        send_updates = record.query.get("sendUpdates", [None])[-1]
        if send_updates is not None and send_updates not in _SEND_UPDATES:
            raise ApiError(
                400, "invalid", f"Invalid value '{send_updates}'.", "sendUpdates", "parameter"
            )
        self._faults.run_before_patch(address, event_id)
        written = self._store.patch(
            address, event_id, record.body, record.headers.get("if-match"), send_updates
        )
        return _json(200, written)

    # ---------------------------------------------------------------- checks

    def _authorized(self, record: Recorded, *, write: bool) -> Grant:
        """Token, then scripted fault, then scope: the order Google's front end checks in."""
        self._pause(record.op)
        grant = self._authority.authenticate(record.headers.get("authorization"))
        record.user = grant.user
        failure = self._faults.take(str(record.op))
        if failure is not None:
            raise failure
        self._authority.require_scope(grant, write)
        return grant

    def _calendar(self, record: Recorded, calendar_id: str, *, write: bool) -> str:
        """The address a token may use: its owner's, by address or as ``primary``."""
        grant = self._authorized(record, write=write)
        wanted = grant.user if calendar_id == "primary" else calendar_id
        address = self._store.address(wanted)
        if address is None or address.casefold() != grant.user.casefold():
            raise ApiError(404, "notFound")
        return address


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    merged = {"Content-Type": _JSON, "Cache-Control": "no-cache, no-store, max-age=0"}
    merged.update(headers or {})
    return Response(status, json.dumps(payload).encode("utf-8"), merged)


class _Handler(RequestHandler):
    server_version = "ESF"


def serve(app: ApiApp, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A bound, not yet serving, threaded server for ``app``."""
    return _server.serve(app, _Handler, host, port)
