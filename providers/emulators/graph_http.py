"""The Graph emulator on the wire: routing, authentication, faults, recording.

Two hosts share one port. Requests whose path starts with ``/v1.0/`` are
Graph; the rest are the identity platform (msal's requests to
``https://login.microsoftonline.com/...`` arrive here through the rewriting
session). Every request is recorded, answered or not, with what a test wants
to assert on: the query as sent, lower-cased headers, the parsed body, the
status answered, the operation and the mailbox.

Per Graph request: route (400 ``BadRequest`` "Resource not found for the
segment" as Graph answers unknown paths; ``/me`` is refused for app-only
tokens), latency, bearer token (401), scripted fault, mailbox (404
``ErrorInvalidUser``, 403 ``ErrorAccessDenied`` when disabled), then the
operation. Graph answers carry ``request-id`` and ``client-request-id`` (the
client's, when it sent one) and OData's JSON content type. ``GET /users``
(list users) goes to graph_directory once the token is checked.
"""

from __future__ import annotations

import json
import ssl
import uuid
from http.server import ThreadingHTTPServer
from typing import Any

from . import _server
from ._inserts import InvalidInsert, from_graph
from ._recording import Recorded, RecordingApp, segments
from ._server import RequestHandler, Response
from .graph_directory import Directory
from .graph_errors import EntraError, GraphError
from .graph_faults import GraphFaults
from .graph_identity import LOGIN_HOST, Authority, Grant
from .graph_model import Mailbox
from .graph_patch import parse_patch
from .graph_push import PushHub
from .graph_query import Prefer
from .graph_store import MailboxStore
from .graph_views import Page, Views

__all__ = ["GraphApp", "Recorded", "Response", "serve"]

_ODATA_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
_LOGIN_JSON = "application/json; charset=utf-8"
_DELTA_NAMES = frozenset({"delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"})


class GraphApp(RecordingApp):
    _faults: GraphFaults

    def __init__(
        self,
        *,
        store: MailboxStore,
        views: Views,
        authority: Authority,
        push: PushHub,
        faults: GraphFaults,
        directory: Directory | None = None,
    ) -> None:
        super().__init__(faults)
        self.base_url = ""
        self._directory = directory
        self._store = store
        self._views = views
        self._authority = authority
        self._push = push

    def _answer(self, record: Recorded, raw_path: str) -> Response:
        path = segments(raw_path)
        request_id = str(uuid.uuid4())
        client_request_id = record.headers.get("client-request-id") or request_id
        try:
            if path[:1] == ["v1.0"]:
                response = self._graph(record, path[1:], raw_path)
            else:
                response = self._identity(record, path)
        except GraphError as error:
            response = _json(error.status, error.body(request_id, client_request_id), _ODATA_JSON)
            response.headers.update(error.headers)
        except EntraError as error:
            response = _json(error.status, error.body(client_request_id), _LOGIN_JSON)
            response.headers.update(error.headers)
            response.headers["Cache-Control"] = "no-store, no-cache"
        response.headers.setdefault("request-id", request_id)
        response.headers.setdefault("client-request-id", client_request_id)
        return response

    # ------------------------------------------------------------- identity

    @staticmethod
    def _login_root(record: Recorded) -> str:
        """Where the client reached the identity platform: its https host, or the production one.

        Over the https listener a client was configured with this emulator as
        its authority (``authority = "https://127.0.0.1:…"``, or a name a test
        resolves here), so the documents send it back to the host it asked.
        Over plain http it came through ``http_client()``, which rewrites the
        production login host: the documents keep naming that host.
        """
        if record.headers.get(":scheme") == "https" and record.headers.get("host"):
            return f"https://{record.headers['host']}"
        return f"https://{LOGIN_HOST}"

    def _identity(self, record: Recorded, segments: list[str]) -> Response:
        method = record.method
        login = self._login_root(record)
        if segments == ["common", "discovery", "instance"] and method == "GET":
            record.op = "discovery"
            return _json(200, self._authority.instance_discovery(record.query, login), _LOGIN_JSON)
        if len(segments) == 4 and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            record.op = "discovery"
            config = self._authority.openid_configuration(segments[0], login)
            return _json(200, config, _LOGIN_JSON)
        if (
            len(segments) == 4
            and segments[1:] == ["oauth2", "v2.0", "devicecode"]
            and method == "POST"
        ):
            record.op = "devicecode"
            form = record.body if isinstance(record.body, dict) else {}
            answer = self._authority.device_code(
                segments[0], {str(k): str(v) for k, v in form.items()}
            )
            return _json(200, answer, _LOGIN_JSON)
        if len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "authorize"]:
            record.op = "authorize"
            sign_in = self._authority.authorize(segments[0], record.query)
            if sign_in.form_post:
                page = sign_in.page().encode("utf-8")
                return Response(200, page, {"Content-Type": "text/html; charset=utf-8"})
            location = sign_in.location()
            return Response(302, b"", {"Location": location, "Content-Type": "text/html"})
        if len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "token"] and method == "POST":
            record.op = "token"
            self._pause("token")
            failure = self._faults.take("token")
            if failure is not None:
                raise failure
            form = record.body if isinstance(record.body, dict) else {}
            answer = self._authority.token(
                segments[0],
                {str(k): str(v) for k, v in form.items()},
                record.headers.get("authorization"),
                login,
            )
            response = _json(200, answer, _LOGIN_JSON)
            response.headers.update({"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})
            return response
        return _json(404, {"error": "not_found", "error_description": "Not found."}, _LOGIN_JSON)

    # ---------------------------------------------------------------- graph

    def _base(self, record: Recorded) -> str:
        """The root links point back to: the https host the client addressed, or plain http."""
        if record.headers.get(":scheme") == "https" and record.headers.get("host"):
            return f"https://{record.headers['host']}/"
        return self.base_url

    def _graph(self, record: Recorded, rest: list[str], raw_path: str) -> Response:
        method = record.method
        base = self._base(record)
        if rest[:1] == ["me"]:
            raise GraphError(
                400, "BadRequest", "/me request is only valid with delegated authentication flow."
            )
        if rest[:1] == ["subscriptions"]:
            return self._subscriptions(record, rest[1:])
        if rest == ["users"] and self._directory is not None:
            _allow(method, "GET")
            grant = self._authorized(record, "users")
            graph_root = f"{base}v1.0/"
            return _json(
                200, self._directory.list_users(grant, record.query, graph_root), _ODATA_JSON
            )
        if len(rest) < 3 or rest[0] != "users":
            raise _no_segment(rest[0] if rest else "")
        user, tail = rest[1], rest[2:]
        if tail[:1] == ["calendar"]:
            tail = tail[1:]
        link = f"{base.rstrip('/')}{raw_path}"
        if len(tail) == 2 and tail[0] == "calendarView" and tail[1] in _DELTA_NAMES:
            _allow(method, "GET")
            box = self._mailbox(record, "delta", user)
            page = self._views.delta(box, record.query, self._prefer(record), link)
            page.body["value"] = [*page.body["value"], *self._faults.injected(box.address)]
            return _page(page)
        if tail == ["events"] and method == "POST":
            box = self._mailbox(record, "insert", user)
            try:
                uid = from_graph(record.body).create(self._store, box.address)
            except InvalidInsert as invalid:
                raise GraphError(
                    400, "ErrorInvalidRequest", f"{invalid.field}: {invalid}"
                ) from None
            with self._store.lock:
                event_id = self._store.copy_id(box.address, uid)
                page = self._views.get(box, event_id, {}, self._prefer(record))
            response = _page(page)
            response.status = 201
            return response
        if len(tail) == 2 and tail[0] == "events":
            if method == "PATCH":
                return self._patch(record, user, tail[1])
            _allow(method, "GET")
            box = self._mailbox(record, "get", user)
            return _page(self._views.get(box, tail[1], record.query, self._prefer(record)))
        if len(tail) == 3 and tail[0] == "events" and tail[2] == "instances":
            _allow(method, "GET")
            box = self._mailbox(record, "instances", user)
            page = self._views.instances(box, tail[1], record.query, self._prefer(record), link)
            return _page(page)
        raise _no_segment(tail[0] if tail else user)

    def _patch(self, record: Recorded, user: str, event_id: str) -> Response:
        box = self._mailbox(record, "patch", user)
        change = parse_patch(record.body)
        with self._store.lock:
            if self._store.resolve(box.address, event_id) is None:
                raise GraphError(404, "ErrorItemNotFound")
        self._faults.run_before_patch(box.address, event_id)
        hit = self._store.patch(
            box.address, event_id, change.body, change.props, record.headers.get("if-match")
        )
        with self._store.lock:
            page = self._views.get(box, hit.id, {}, self._prefer(record))
        return _page(page)

    def _subscriptions(self, record: Recorded, rest: list[str]) -> Response:
        method = record.method
        if not rest:
            _allow(method, "POST")
            self._authorized(record, "subscribe")
            return _json(201, self._push.subscribe(record.body), _ODATA_JSON)
        subscription_id = rest[0]
        if rest[1:] == ["reauthorize"]:
            _allow(method, "POST")
            self._authorized(record, "renew")
            self._push.get(subscription_id)
            return Response(204)
        if len(rest) != 1:
            raise _no_segment(rest[1])
        if method == "PATCH":
            self._authorized(record, "renew")
            return _json(200, self._push.renew(subscription_id, record.body), _ODATA_JSON)
        if method == "DELETE":
            self._authorized(record, "unsubscribe")
            self._push.unsubscribe(subscription_id)
            return Response(204)
        _allow(method, "GET")
        self._authorized(record, "subscription")
        return _json(200, self._push.get(subscription_id), _ODATA_JSON)

    # ---------------------------------------------------------------- checks

    def _authorized(self, record: Recorded, op: str) -> Grant:
        """Latency, bearer token, then a scripted fault: the order Graph's front end uses."""
        record.op = op
        self._pause(op)
        grant = self._authority.authenticate(record.headers.get("authorization"))
        failure = self._faults.take(op) if op != "subscription" else None
        if failure is not None:
            raise failure
        return grant

    def _mailbox(self, record: Recorded, op: str, user: str) -> Mailbox:
        grant = self._authorized(record, op)
        box = self._store.mailbox(user)
        if box is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
        record.mailbox = box.address
        if grant.user is not None and grant.user.casefold() != box.address.casefold():
            # A delegated token reaches its own user's mailbox only (no shared calendars here).
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials.")
        if box.disabled:
            raise GraphError(403, "ErrorAccessDenied")
        return box

    @staticmethod
    def _prefer(record: Recorded) -> Prefer:
        return Prefer.parse(record.headers.get("prefer"))


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise GraphError(
            405, "BadRequest", f"The HTTP method '{method}' is not supported for this resource."
        )


def _no_segment(segment: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def _json(status: int, payload: Any, content_type: str) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"), {"Content-Type": content_type})


def _page(page: Page) -> Response:
    response = _json(200, page.body, _ODATA_JSON)
    response.headers.update(page.headers)
    return response


class _Handler(RequestHandler):
    server_version = "Microsoft-IIS/10.0"


def serve(
    app: GraphApp, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
) -> ThreadingHTTPServer:
    """A bound, not yet serving, threaded server for ``app``."""
    return _server.serve(app, _Handler, host, port, tls)
