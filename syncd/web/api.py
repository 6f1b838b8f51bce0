"""The JSON API under ``/api/v1``: the meeting page's data and edits, same rules.

Access is decided exactly as for the pages (``service.Agendas``): an unknown
token and an agenda that is not the viewer's are the same 404. Every
state-changing call must send the CSRF double-submit token in
``X-CSRF-Token`` (403 otherwise), and every one with a body
``Content-Type: application/json`` (415 otherwise; a DELETE takes no body);
``GET /api/v1/meetings/{token}`` hands that token out in its
``X-CSRF-Token`` response header together with the cookie. Errors are
``{"error": "..."}``.

A PATCH is partial: it changes the fields it names and keeps the others;
``"due": null`` clears a due date, while leaving ``due`` out keeps it. A
field the resource does not have is refused rather than ignored, so a typo
is not a silent no-op.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd import agenda
from syncd.web import openapi, security
from syncd.web.identity import Authenticator, Viewer
from syncd.web.service import (
    Agendas,
    Forbidden,
    Invalid,
    ItemView,
    MeetingRef,
    MeetingView,
    NoteView,
    NotFound,
    PointView,
    Unavailable,
    due_field,
)
from syncd.web.settings import WebSettings

PREFIX = "/api/v1"


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


NOT_FOUND = "not found"


def _ref(ref: MeetingRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {
        "token": ref.token,
        "title": ref.title,
        "start": ref.start.isoformat(),
        "end": ref.end.isoformat(),
        "cancelled": ref.cancelled,
    }


def point_json(point: PointView) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": point.id,
        "text": point.text,
        "author": point.author,
        "done": point.done,
    }
    if point.origin is not None:
        shown["carried_from"] = point.origin.isoformat()
    return shown


def item_json(item: ItemView) -> dict[str, Any]:
    return {
        "id": item.id,
        "text": item.text,
        "owner": item.owner,
        "author": item.author,
        "due": item.due.isoformat() if item.due else None,
        "done": item.done,
        "done_at": item.done_at.isoformat() if item.done_at else None,
        "origin": _ref(item.origin),
    }


def note_json(note: NoteView) -> dict[str, Any]:
    return {
        "body": note.body,
        "updated_at": note.updated_at.isoformat() if note.updated_at else None,
    }


def meeting_json(view: MeetingView) -> dict[str, Any]:
    return {
        "meeting": _ref(view.meeting),
        "people": list(view.people),
        "pair_token": view.pair_token,
        "viewer": {
            "address": view.access.viewer.address,
            "sign_in": view.access.viewer.sign_in,
            "can_edit": view.access.can_edit,
            "private_notes": view.private_note is not None,
        },
        "talking_points": [point_json(point) for point in view.points],
        "carried_talking_points": [point_json(point) for point in view.carried_points],
        "action_items": [item_json(item) for item in view.items],
        "carried_action_items": [item_json(item) for item in view.carried],
        "notes": {
            "shared": note_json(view.shared_note),
            "private": note_json(view.private_note) if view.private_note else None,
        },
        "previous": _ref(view.previous),
        "next": _ref(view.next),
        "invite_updated_at": view.invite_updated_at.isoformat() if view.invite_updated_at else None,
    }


# An edit answers (status, JSON body); a body of None is an empty answer (204).
Edit = Callable[[str, Viewer, dict[str, Any]], tuple[int, dict[str, Any] | None]]


def _only(fields: dict[str, Any], allowed: frozenset[str]) -> None:
    """Refuse a field the resource does not have ("id" is the path's)."""
    unknown = sorted(set(fields) - allowed - {"id"})
    if unknown:
        names = ", ".join(sorted(allowed))
        raise Invalid(f"unknown field {unknown[0]!r}: a change names only {names}")


class Api:
    def __init__(
        self, agendas: Agendas, authenticator: Authenticator, settings: WebSettings
    ) -> None:
        self.agendas = agendas
        self.authenticator = authenticator
        self.settings = settings

    async def meeting(self, request: Request) -> Response:
        viewer = self.authenticator.identify(request)
        try:
            view = await run_in_threadpool(
                self.agendas.meeting, request.path_params["token"], viewer
            )
        except NotFound:
            return error(404, NOT_FOUND)
        token = security.csrf_token(request, self.settings)
        response = JSONResponse(meeting_json(view), headers={security.CSRF_HEADER: token})
        security.remember_csrf(response, request, token, self.settings)
        return response

    async def document(self, request: Request) -> Response:
        return JSONResponse(openapi.document())

    def _edit(
        self, edit: Edit, *, with_body: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint that checks the request, runs ``edit`` and maps its errors.

        ``with_body=False`` (DELETE): no body is read, so none is required.
        """

        async def endpoint(request: Request) -> Response:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if with_body and media != "application/json":
                return error(415, "send JSON (Content-Type: application/json)")
            submitted = request.headers.get(security.CSRF_HEADER)
            if not security.csrf_ok(request, submitted, self.settings):
                return error(403, "missing or wrong X-CSRF-Token")
            body: object = {}
            if with_body:
                raw = await request.body()  # bounded while read (web/limits.py)
                try:
                    body = json.loads(raw)
                except (ValueError, RecursionError):  # RecursionError: nested too deep
                    return error(400, "the body is not valid JSON")
            if not isinstance(body, dict):
                return error(400, "the body must be a JSON object")
            viewer = self.authenticator.identify(request)
            token = request.path_params["token"]
            fields = {**body, **{k: v for k, v in request.path_params.items() if k == "id"}}
            try:
                status, payload = await run_in_threadpool(edit, token, viewer, fields)
            except NotFound:
                return error(404, NOT_FOUND)
            except Forbidden as refused:
                return error(403, str(refused))
            except Invalid as invalid:
                return error(400, str(invalid))
            except Unavailable:
                busy = error(503, "the database could not save this now; try again")
                busy.headers["Retry-After"] = str(Unavailable.retry_after)
                return busy
            if payload is None:
                return Response(status_code=status)
            return JSONResponse(payload, status_code=status)

        return endpoint

    def routes(self) -> list[Route]:
        a = self.agendas

        def done(fields: dict[str, Any]) -> bool:
            value = fields.get("done", True)
            if not isinstance(value, bool):
                raise Invalid("done must be true or false")
            return value

        def text(fields: dict[str, Any], name: str) -> str:
            value = fields.get(name)
            if not isinstance(value, str):
                raise Invalid(f"{name} must be a string")
            return value

        def add_point(t: str, v: Viewer, f: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            return 201, point_json(a.add_talking_point(t, v, text(f, "text")))

        def point_done(t: str, v: Viewer, f: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            return 200, point_json(a.set_talking_point_done(t, v, f["id"], done(f)))

        def move_point(t: str, v: Viewer, f: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            points = a.move_talking_point(t, v, f["id"], f.get("offset"), f.get("position"))
            return 200, {"talking_points": [point_json(point) for point in points]}

        def add_item(t: str, v: Viewer, f: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            item = a.add_action_item(
                t, v, text(f, "text"), text(f, "owner"), due_field(f.get("due"))
            )
            return 201, item_json(item)

        def item_done(t: str, v: Viewer, f: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            return 200, item_json(a.set_action_item_done(t, v, f["id"], done(f)))

        def optional_text(fields: dict[str, Any], name: str) -> str | None:
            return text(fields, name) if name in fields else None

        def optional_done(fields: dict[str, Any]) -> bool | None:
            return done(fields) if "done" in fields else None

        def patch_point(t: str, v: Viewer, f: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            _only(f, frozenset({"text", "done"}))
            point = a.edit_talking_point(
                t, v, f["id"], text=optional_text(f, "text"), done=optional_done(f)
            )
            return 200, point_json(point)

        def delete_point(t: str, v: Viewer, f: dict[str, Any]) -> tuple[int, None]:
            a.delete_talking_point(t, v, f["id"])
            return 204, None

        def patch_item(t: str, v: Viewer, f: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            _only(f, frozenset({"text", "owner", "due", "done"}))
            item = a.edit_action_item(
                t,
                v,
                f["id"],
                text=optional_text(f, "text"),
                owner=optional_text(f, "owner"),
                due=due_field(f["due"]) if "due" in f else agenda.KEEP,
                done=optional_done(f),
            )
            return 200, item_json(item)

        def delete_item(t: str, v: Viewer, f: dict[str, Any]) -> tuple[int, None]:
            a.delete_action_item(t, v, f["id"])
            return 204, None

        def shared(t: str, v: Viewer, f: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            return 200, note_json(a.save_note(t, v, text(f, "body"), private=False))

        def private(t: str, v: Viewer, f: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            return 200, note_json(a.save_note(t, v, text(f, "body"), private=True))

        meeting = f"{PREFIX}/meetings/{{token}}"
        return [
            Route(f"{PREFIX}/openapi.json", self.document, methods=["GET"]),
            Route(meeting, self.meeting, methods=["GET"]),
            Route(f"{meeting}/talking-points", self._edit(add_point), methods=["POST"]),
            Route(
                f"{meeting}/talking-points/{{id:int}}", self._edit(patch_point), methods=["PATCH"]
            ),
            Route(
                f"{meeting}/talking-points/{{id:int}}",
                self._edit(delete_point, with_body=False),
                methods=["DELETE"],
            ),
            Route(
                f"{meeting}/talking-points/{{id:int}}/done",
                self._edit(point_done),
                methods=["POST"],
            ),
            Route(
                f"{meeting}/talking-points/{{id:int}}/move",
                self._edit(move_point),
                methods=["POST"],
            ),
            Route(f"{meeting}/action-items", self._edit(add_item), methods=["POST"]),
            Route(f"{meeting}/action-items/{{id:int}}", self._edit(patch_item), methods=["PATCH"]),
            Route(
                f"{meeting}/action-items/{{id:int}}",
                self._edit(delete_item, with_body=False),
                methods=["DELETE"],
            ),
            Route(
                f"{meeting}/action-items/{{id:int}}/done", self._edit(item_done), methods=["POST"]
            ),
            Route(f"{meeting}/notes/shared", self._edit(shared), methods=["PUT"]),
            Route(f"{meeting}/notes/private", self._edit(private), methods=["PUT"]),
        ]
