"""The OpenAPI 3.1 document of ``/api/v1``, written by hand (a test keeps it honest)."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/responses/Error"}
#: The database refused the edit: nothing was saved; try again after Retry-After seconds.
_BUSY = {
    "description": "Not saved: the database refused the edit; retry after Retry-After seconds",
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "The meeting's agenda token, as in the invite's link.",
    "schema": {"type": "string"},
}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
_CSRF = {
    "name": "X-CSRF-Token",
    "in": "header",
    "required": True,
    "description": "The value of the CSRF cookie, as handed out by GET /meetings/{token}.",
    "schema": {"type": "string"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _edit(
    summary: str, request: str, status: str, result: str, *, with_id: bool = False
) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [_TOKEN, *([_ID] if with_id else []), _CSRF],
        "requestBody": {"required": True, **_json(_ref(request))},
        "responses": {
            status: {"description": "Done", **_json(_ref(result))},
            "400": _ERROR,
            "403": _ERROR,
            "404": _ERROR,
            "413": _ERROR,
            "415": _ERROR,
            "503": _BUSY,
        },
    }


def _delete(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [_TOKEN, _ID, _CSRF],
        "responses": {
            "204": {"description": "Deleted"},
            "403": _ERROR,
            "404": _ERROR,
            "503": _BUSY,
        },
    }


def _change(**properties: Any) -> dict[str, Any]:
    """A PATCH body: any of ``properties``, at least one, nothing else."""
    return {
        "type": "object",
        "properties": properties,
        "minProperties": 1,
        "additionalProperties": False,
    }


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_MOMENT = {"type": "string", "format": "date-time"}


def document() -> dict[str, Any]:
    meeting = "/api/v1/meetings/{token}"
    ref = _object(
        ["token", "title", "start", "end", "cancelled"],
        token=_STRING,
        title=_STRING,
        start=_MOMENT,
        end=_MOMENT,
        cancelled={"type": "boolean"},
    )
    point = _object(
        ["id", "text", "author", "done"],
        id={"type": "integer"},
        text=_STRING,
        author={"type": "string", "description": "An address, or '' for the template."},
        done={"type": "boolean"},
        carried_from={
            **_MOMENT,
            "description": "Only on a carried-over point: when its meeting started.",
        },
    )
    item = _object(
        ["id", "text", "owner", "author", "due", "done", "done_at", "origin"],
        id={"type": "integer"},
        text=_STRING,
        owner=_STRING,
        author=_STRING,
        due={"type": ["string", "null"], "format": "date"},
        done={"type": "boolean"},
        done_at={"type": ["string", "null"], "format": "date-time"},
        origin=_ref("MeetingRef"),
    )
    note = _object(
        ["body", "updated_at"],
        body=_STRING,
        updated_at={"type": ["string", "null"], "format": "date-time"},
    )
    meeting_schema = _object(
        [
            "meeting",
            "people",
            "pair_token",
            "viewer",
            "talking_points",
            "action_items",
            "carried_action_items",
            "carried_talking_points",
            "notes",
            "previous",
            "next",
            "invite_updated_at",
        ],
        meeting=_ref("MeetingRef"),
        people={"type": "array", "items": _STRING, "minItems": 2, "maxItems": 2},
        pair_token=_STRING,
        viewer=_object(
            ["address", "sign_in", "can_edit", "private_notes"],
            address=_NULLABLE_STRING,
            sign_in={"type": "string", "enum": ["link", "proxy-header", "oidc"]},
            can_edit={"type": "boolean"},
            private_notes={"type": "boolean"},
        ),
        talking_points={"type": "array", "items": _ref("TalkingPoint")},
        action_items={"type": "array", "items": _ref("ActionItem")},
        carried_action_items={
            "type": "array",
            "items": _ref("ActionItem"),
            "description": "Still-open items of every earlier meeting of the pair.",
        },
        carried_talking_points={
            "type": "array",
            "items": _ref("TalkingPoint"),
            "description": "Unchecked points of ended meetings, listed in the pair's next one; "
            "check one off with the done route of this meeting.",
        },
        notes=_object(
            ["shared", "private"],
            shared=_ref("Note"),
            private={
                "oneOf": [_ref("Note"), {"type": "null"}],
                "description": "The viewer's own private note; null when they have none.",
            },
        ),
        previous={"oneOf": [_ref("MeetingRef"), {"type": "null"}]},
        next={"oneOf": [_ref("MeetingRef"), {"type": "null"}]},
        invite_updated_at={
            "type": ["string", "null"],
            "format": "date-time",
            "description": (
                "When syncd last wrote this meeting's block into the calendar invite; null "
                "before the first write. On Outlook every write mails the attendees, so the "
                "invite is refreshed on a few occasions only; this agenda is always current."
            ),
        },
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "syncd agenda API",
            "version": "1",
            "description": (
                "Read and edit one 1:1 meeting's agenda. Only the two people of the pair "
                "(and, read-only, configured admins) get anything but 404. State-changing "
                "calls need the X-CSRF-Token header, and those with a body "
                "Content-Type: application/json. PATCH changes only the fields it names."
            ),
        },
        "paths": {
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "The OpenAPI document"}},
                }
            },
            meeting: {
                "get": {
                    "summary": "Read a meeting's agenda as the viewer may see it",
                    "parameters": [_TOKEN],
                    "responses": {
                        "200": {
                            "description": "The agenda",
                            "headers": {
                                "X-CSRF-Token": {
                                    "description": "The token to send with edits",
                                    "schema": _STRING,
                                }
                            },
                            **_json(_ref("Meeting")),
                        },
                        "404": _ERROR,
                    },
                }
            },
            f"{meeting}/talking-points": {
                "post": _edit("Add a talking point", "NewTalkingPoint", "201", "TalkingPoint")
            },
            f"{meeting}/talking-points/{{id}}": {
                "patch": _edit(
                    "Change a talking point's text and/or check it off; "
                    "points of past meetings too",
                    "TalkingPointChange",
                    "200",
                    "TalkingPoint",
                    with_id=True,
                ),
                "delete": _delete("Delete a talking point (either of the two people may)"),
            },
            f"{meeting}/talking-points/{{id}}/done": {
                "post": _edit(
                    "Check off (or reopen) a talking point",
                    "Done",
                    "200",
                    "TalkingPoint",
                    with_id=True,
                )
            },
            f"{meeting}/talking-points/{{id}}/move": {
                "post": _edit(
                    "Swap a talking point with the one above (offset -1) or below (1), "
                    "nothing moving at either end; or put it at position (0 = first, "
                    "past the end = last), as a drag does",
                    "Move",
                    "200",
                    "TalkingPoints",
                    with_id=True,
                )
            },
            f"{meeting}/action-items": {
                "post": _edit("Add an action item", "NewActionItem", "201", "ActionItem")
            },
            f"{meeting}/action-items/{{id}}": {
                "patch": _edit(
                    "Change an action item of this or an earlier meeting of the pair: "
                    "any of text, owner, due date, done",
                    "ActionItemChange",
                    "200",
                    "ActionItem",
                    with_id=True,
                ),
                "delete": _delete(
                    "Delete an action item of this or an earlier meeting of the pair "
                    "(either of the two people may)"
                ),
            },
            f"{meeting}/action-items/{{id}}/done": {
                "post": _edit(
                    "Mark an action item of this or an earlier meeting done (or open)",
                    "Done",
                    "200",
                    "ActionItem",
                    with_id=True,
                )
            },
            f"{meeting}/notes/shared": {
                "put": _edit("Replace the shared notes", "NoteBody", "200", "Note")
            },
            f"{meeting}/notes/private": {
                "put": _edit(
                    "Replace the viewer's own private notes (not in link mode)",
                    "NoteBody",
                    "200",
                    "Note",
                )
            },
        },
        "components": {
            "schemas": {
                "MeetingRef": ref,
                "TalkingPoint": point,
                "ActionItem": item,
                "Note": note,
                "Meeting": meeting_schema,
                "NewTalkingPoint": _object(["text"], text=_STRING),
                "NewActionItem": _object(
                    ["text", "owner"],
                    text=_STRING,
                    owner={"type": "string", "description": "One of the two people."},
                    due={"type": ["string", "null"], "format": "date"},
                ),
                "TalkingPointChange": _change(text=_STRING, done={"type": "boolean"}),
                "ActionItemChange": _change(
                    text=_STRING,
                    owner={"type": "string", "description": "One of the two people."},
                    due={
                        "type": ["string", "null"],
                        "format": "date",
                        "description": "null clears the due date; leave it out to keep it.",
                    },
                    done={"type": "boolean"},
                ),
                "Done": _object([], done={"type": "boolean", "default": True}),
                "Move": {
                    **_object(
                        [],
                        offset={"type": "integer", "enum": [-1, 1]},
                        position={"type": "integer", "minimum": 0, "maximum": 9999},
                    ),
                    "description": "Exactly one of offset and position.",
                },
                "TalkingPoints": _object(
                    ["talking_points"],
                    talking_points={
                        "type": "array",
                        "items": _ref("TalkingPoint"),
                        "description": "The meeting's talking points in their new order.",
                    },
                ),
                "NoteBody": _object(["body"], body=_STRING),
                "Error": _object(["error"], error=_STRING),
            },
            "responses": {
                "Error": {"description": "An error", **_json(_ref("Error"))},
            },
        },
    }
