"""The JSON API under ``/api/v1``: the meeting page's data and edits, same rules.

A FastAPI application mounted in the Starlette app: every request and
response body is a pydantic model declared once below, and the OpenAPI
document (``/api/v1/openapi.json``) is generated from them, so the document
cannot drift from what is served.

Access is decided exactly as for the pages (``service.Agendas``): an unknown
token and an agenda that is not the viewer's are the same 404. Every
state-changing call must send the CSRF double-submit token in
``X-CSRF-Token`` (403 otherwise; the ``csrf`` dependency), and every one with
a body ``Content-Type: application/json`` (415 otherwise; a DELETE takes no
body); ``GET /meetings/{token}`` hands that token out in its
``X-CSRF-Token`` response header together with the cookie. Errors are
``{"error": "..."}``, one line, 400 for a request that is wrong in itself.

A PATCH is partial: it changes the fields it names and keeps the others;
``"due": null`` clears a due date, while leaving ``due`` out keeps it. A
field the resource does not have is refused rather than ignored, so a typo
is not a silent no-op. Booleans and numbers are strict: ``"yes"`` is not
true and ``"1"`` is not 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from syncd import agenda
from syncd.people import name_of
from syncd.web import limits, security
from syncd.web.identity import Authenticator, SignInRequired, Viewer
from syncd.web.service import (
    MAX_ID,
    MAX_TEXT,
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
)
from syncd.web.settings import WebSettings

PREFIX = "/api/v1"
NOT_FOUND = "not found"


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# ------------------------------------------------------------------ responses


class Model(BaseModel):
    model_config = ConfigDict(frozen=True)


#: A moment as ``datetime.isoformat`` writes it ("+00:00", as this API always has).
Moment = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


class MeetingRefOut(Model):
    token: str
    title: str
    start: Moment
    end: Moment
    cancelled: bool


class TalkingPoint(Model):
    id: int
    text: str
    author: str = Field(description="An address, or '' for the template.")
    done: bool
    carried_from: Moment | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Only on a carried-over point: when the meeting it was raised in started.",
    )


class TalkingPoints(Model):
    talking_points: list[TalkingPoint]


class ActionItem(Model):
    id: int
    text: str
    owner: str
    author: str
    due: date | None
    done: bool
    done_at: Moment | None
    origin: MeetingRefOut


class Note(Model):
    body: str
    updated_at: Moment | None


class ViewerOut(Model):
    address: str | None
    sign_in: Literal["link", "proxy-header", "oidc", "demo"]
    can_edit: bool
    private_notes: bool


class Notes(Model):
    shared: Note
    private: Note | None = Field(
        description="The viewer's own private note; null when they have none."
    )


class Meeting(Model):
    meeting: MeetingRefOut
    people: list[str] = Field(min_length=2, max_length=2)
    names: dict[str, str] = Field(
        description="How the calendars and the directory name each of the two people "
        "(an address with no name known is shown by its first part)."
    )
    manager: str | None = Field(
        description="Which of the two manages the other, when the directory says so."
    )
    pair_token: str
    viewer: ViewerOut
    talking_points: list[TalkingPoint]
    carried_talking_points: list[TalkingPoint] = Field(
        description="Unchecked points of ended meetings, listed in the pair's next one; "
        "check one off with the done route of this meeting."
    )
    action_items: list[ActionItem]
    carried_action_items: list[ActionItem] = Field(
        description="Still-open items of every earlier meeting of the pair."
    )
    notes: Notes
    previous: MeetingRefOut | None
    next: MeetingRefOut | None
    invite_updated_at: Moment | None = Field(
        description="When syncd last wrote this meeting's block into the calendar invite; null "
        "before the first write. On Outlook every write mails the attendees, so the invite is "
        "refreshed on a few occasions only; this agenda is always current."
    )


class Error(Model):
    error: str


def _ref(ref: MeetingRef) -> MeetingRefOut:
    return MeetingRefOut(
        token=ref.token, title=ref.title, start=ref.start, end=ref.end, cancelled=ref.cancelled
    )


def _point(point: PointView) -> TalkingPoint:
    return TalkingPoint(
        id=point.id,
        text=point.text,
        author=point.author,
        done=point.done,
        carried_from=point.origin,
    )


def _item(item: ItemView) -> ActionItem:
    return ActionItem(
        id=item.id,
        text=item.text,
        owner=item.owner,
        author=item.author,
        due=item.due,
        done=item.done,
        done_at=item.done_at,
        origin=_ref(item.origin),
    )


def _note(note: NoteView) -> Note:
    return Note(body=note.body, updated_at=note.updated_at)


def _meeting(view: MeetingView) -> Meeting:
    return Meeting(
        meeting=_ref(view.meeting),
        people=list(view.people),
        names={address: name_of(address, view.named) for address in view.people},
        manager=view.manager,
        pair_token=view.pair_token,
        viewer=ViewerOut(
            address=view.access.viewer.address,
            sign_in=view.access.viewer.sign_in,
            can_edit=view.access.can_edit,
            private_notes=view.private_note is not None,
        ),
        talking_points=[_point(p) for p in view.points],
        carried_talking_points=[_point(p) for p in view.carried_points],
        action_items=[_item(i) for i in view.items],
        carried_action_items=[_item(i) for i in view.carried],
        notes=Notes(
            shared=_note(view.shared_note),
            private=_note(view.private_note) if view.private_note else None,
        ),
        previous=_ref(view.previous) if view.previous else None,
        next=_ref(view.next) if view.next else None,
        invite_updated_at=view.invite_updated_at,
    )


# ------------------------------------------------------------------- requests


def _iso_date(value: object) -> object:
    """A due date is "YYYY-MM-DD" or null: not a number of seconds, not a date-time."""
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return value
    raise PydanticCustomError("date_type", "Input should be a date (YYYY-MM-DD)")


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TEXT_PATTERN = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
Due = Annotated[date, BeforeValidator(_iso_date)]


#: What a person's text may be, as the document states it (``service.text_field`` enforces
#: it, with messages): not only white space, no NUL, at most ``service.MAX_TEXT`` characters.
Text = Annotated[
    StrictStr,
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": _TEXT_PATTERN}
    ),
]
Body = Annotated[
    StrictStr,
    WithJsonSchema({"type": "string", "maxLength": MAX_TEXT, "pattern": "^[^\\u0000]*$"}),
]


def _not_null(value: object, info: ValidationInfo) -> object:
    """A field left out keeps its value; one sent as null is a mistake, said as such."""
    if value is None:
        kind = "bool_type" if info.field_name == "done" else "string_type"
        raise PydanticCustomError(kind, "Input should not be null")
    return value


class Change(BaseModel):
    """A request body: unknown fields refused."""

    model_config = ConfigDict(extra="forbid")


class NewTalkingPoint(Change):
    text: Text


class TalkingPointChange(Change):
    text: Text | SkipJsonSchema[None] = None
    done: StrictBool | SkipJsonSchema[None] = None

    _present = field_validator("text", "done", mode="before")(_not_null)


class Done(Change):
    done: StrictBool = True


class Move(Change):
    """Exactly one of ``offset`` and ``position``."""

    offset: Annotated[StrictInt, Field(json_schema_extra={"enum": [-1, 1]})] | None = None
    position: Annotated[StrictInt, Field(ge=0, le=9999)] | None = None

    @field_validator("offset")
    @classmethod
    def _one_step(cls, value: int | None) -> int | None:
        if value is not None and value not in (-1, 1):
            raise PydanticCustomError("literal_error", "Input should be -1 or 1")
        return value


class NewActionItem(Change):
    text: Text
    owner: StrictStr
    due: Due | None = None


class ActionItemChange(Change):
    text: Text | SkipJsonSchema[None] = None
    owner: StrictStr | SkipJsonSchema[None] = None
    due: Due | None = Field(default=None, description="null clears it; left out, it is kept")
    done: StrictBool | SkipJsonSchema[None] = None

    _present = field_validator("text", "owner", "done", mode="before")(_not_null)


class NoteBody(Change):
    body: Body


# -------------------------------------------------------------------- errors

#: What a person reads for each kind of pydantic error, by the field it is about.
_MESSAGES: dict[str, str] = {
    "string_type": "{name} must be a string",
    "bool_type": "{name} must be true or false",
    "date_type": "{name} must be a date (YYYY-MM-DD)",
    "date_parsing": "{name} must be a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "{name} must be a date (YYYY-MM-DD)",
    "date_from_datetime_inexact": "{name} must be a date (YYYY-MM-DD)",
    "missing": "{name} is required",
    "literal_error": "{name} must be -1 (up) or 1 (down)",
    "int_type": "{name} must be a whole number",
    "greater_than_equal": "{name} must be a whole number from 0 (first)",
    "less_than_equal": "{name} must be at most 9999",
    "model_attributes_type": "the body must be a JSON object",
    "dict_type": "the body must be a JSON object",
    "json_invalid": "the body is not valid JSON",
    "json_type": "the body is not valid JSON",
}


def _one_line(errors: Sequence[Any]) -> str:
    """The first validation error as a sentence (pydantic's list is for programs)."""
    first = errors[0] if errors else {}
    kind = str(first.get("type", ""))
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "path")]
    name = loc[-1] if loc else "the body"
    if kind == "extra_forbidden":
        return f"unknown field {name!r}: this change does not have it"
    if loc and loc[0] == "id":
        return "not found"
    template = _MESSAGES.get(kind)
    if template is not None:
        return template.format(name=name)
    message = str(first.get("msg", "invalid request")).splitlines()[0]
    return f"{name}: {message}" if loc else message


# ------------------------------------------------------------------ transport


class JsonRoute(APIRoute):
    """A route that answers 415 to a body that is not declared JSON, before anything else.

    And the body is parsed here once, so a document nested too deep for
    Python's parser is a 400 rather than an error inside FastAPI.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None

        async def checked(request: Request) -> Response:
            if takes_body:
                media = request.headers.get("content-type", "").split(";")[0].strip().lower()
                if media != "application/json":
                    return error(415, "send JSON (Content-Type: application/json)")
                raw = await request.body()  # bounded while read (web/limits.py)
                try:
                    request._json = json.loads(raw)  # kept where request.json() looks
                except (ValueError, RecursionError):  # RecursionError: nested too deep
                    return error(400, "the body is not valid JSON")
            return await handler(request)

        return checked


def _viewer(request: Request) -> Viewer:
    """Who is asking, as the app's sign-in mode tells (``SignInRequired`` is a 401)."""
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.identify(request)


def csrf(request: Request) -> None:
    """Every state-changing call proves it comes from a page of this site."""
    settings: WebSettings = request.app.state.settings
    if not security.csrf_ok(request, request.headers.get(security.CSRF_HEADER), settings):
        raise HTTPException(403, "missing or wrong X-CSRF-Token")


Who = Annotated[Viewer, Depends(_viewer)]
#: A row id in a path; past what a row id can be, it is nobody's (404), said in the document.
Id = Annotated[int, Path(ge=0, le=MAX_ID)]


def create(agendas: Agendas, authenticator: Authenticator, settings: WebSettings) -> FastAPI:
    """The API as an ASGI app, to mount at ``PREFIX``."""
    app = FastAPI(
        title="syncd agenda API",
        version="1",
        description=(
            "Read and edit one 1:1 meeting's agenda. Only the two people of the pair "
            "(and, read-only, configured admins) get anything but 404. State-changing "
            "calls need the X-CSRF-Token header, and those with a body "
            "Content-Type: application/json. PATCH changes only the fields it names."
        ),
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        servers=[{"url": PREFIX}],
    )
    app.router.route_class = JsonRoute

    app.state.authenticator, app.state.settings = authenticator, settings
    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": Error, "description": description}
        for status, description in (
            (400, "The request is wrong in itself"),
            (403, "No or a wrong X-CSRF-Token, or read-only access"),
            (404, "No such agenda, or not the viewer's"),
            (415, "The body is not declared JSON"),
            (503, "The database could not save this now; Retry-After says when to try"),
        )
    }
    guarded = [Depends(csrf)]

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message = _one_line(exc.errors())
        return error(404 if message == NOT_FOUND else 400, message)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, NOT_FOUND)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Exception) -> Response:
        return error(403, str(exc))

    @app.exception_handler(Invalid)
    async def invalid(request: Request, exc: Exception) -> Response:
        return error(400, str(exc))

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Exception) -> Response:
        busy = error(503, "the database could not save this now; try again")
        busy.headers["Retry-After"] = str(Unavailable.retry_after)
        return busy

    @app.exception_handler(limits.TooLarge)
    async def too_large(request: Request, exc: Exception) -> Response:
        refused = error(413, "request body too large")
        refused.headers["connection"] = "close"  # the rest of the body is not read
        return refused

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, exc: Exception) -> Response:
        return error(401, "sign in first")

    meeting = "/meetings/{token}"
    point = meeting + "/talking-points/{id:int}"
    item = meeting + "/action-items/{id:int}"

    @app.get(
        meeting,
        summary="Read a meeting's agenda as the viewer may see it",
        responses={404: errors[404]},
    )
    async def read_meeting(token: str, who: Who, request: Request, response: Response) -> Meeting:
        view = await run_in_threadpool(agendas.meeting, token, who)
        csrf_token = security.csrf_token(request, settings)
        response.headers[security.CSRF_HEADER] = csrf_token
        security.remember_csrf(response, request, csrf_token, settings)
        return _meeting(view)

    @app.post(
        meeting + "/talking-points",
        status_code=201,
        summary="Add a talking point",
        dependencies=guarded,
        responses=errors,
    )
    async def add_point(token: str, body: NewTalkingPoint, who: Who) -> TalkingPoint:
        return _point(await run_in_threadpool(agendas.add_talking_point, token, who, body.text))

    @app.patch(
        point,
        summary="Change a talking point's text and/or check it off; points of past meetings too",
        dependencies=guarded,
        responses=errors,
    )
    async def patch_point(token: str, id: Id, body: TalkingPointChange, who: Who) -> TalkingPoint:
        return _point(
            await run_in_threadpool(
                lambda: agendas.edit_talking_point(token, who, id, text=body.text, done=body.done)
            )
        )

    @app.delete(
        point,
        status_code=204,
        summary="Delete a talking point (either of the two people may)",
        response_class=Response,
        dependencies=guarded,
        responses=errors,
    )
    async def delete_point(token: str, id: Id, who: Who) -> Response:
        await run_in_threadpool(agendas.delete_talking_point, token, who, id)
        return Response(status_code=204)

    @app.post(
        point + "/done",
        summary="Check off (or reopen) a talking point",
        dependencies=guarded,
        responses=errors,
    )
    async def point_done(token: str, id: Id, body: Done, who: Who) -> TalkingPoint:
        return _point(
            await run_in_threadpool(agendas.set_talking_point_done, token, who, id, body.done)
        )

    @app.post(
        point + "/move",
        summary="Swap a talking point with the one above (offset -1) or below (1), nothing "
        "moving at either end; or put it at position (0 = first, past the end = last)",
        dependencies=guarded,
        responses=errors,
    )
    async def move_point(token: str, id: Id, body: Move, who: Who) -> TalkingPoints:
        points = await run_in_threadpool(
            agendas.move_talking_point, token, who, id, body.offset, body.position
        )
        return TalkingPoints(talking_points=[_point(p) for p in points])

    @app.post(
        meeting + "/action-items",
        status_code=201,
        summary="Add an action item",
        dependencies=guarded,
        responses=errors,
    )
    async def add_item(token: str, body: NewActionItem, who: Who) -> ActionItem:
        return _item(
            await run_in_threadpool(
                agendas.add_action_item, token, who, body.text, body.owner, body.due
            )
        )

    @app.patch(
        item,
        summary="Change an action item (an earlier meeting's too); due null clears the date",
        dependencies=guarded,
        responses=errors,
    )
    async def patch_item(token: str, id: Id, body: ActionItemChange, who: Who) -> ActionItem:
        due = body.due if "due" in body.model_fields_set else agenda.KEEP
        return _item(
            await run_in_threadpool(
                lambda: agendas.edit_action_item(
                    token, who, id, text=body.text, owner=body.owner, due=due, done=body.done
                )
            )
        )

    @app.delete(
        item,
        status_code=204,
        summary="Delete an action item (either of the two people may)",
        response_class=Response,
        dependencies=guarded,
        responses=errors,
    )
    async def delete_item(token: str, id: Id, who: Who) -> Response:
        await run_in_threadpool(agendas.delete_action_item, token, who, id)
        return Response(status_code=204)

    @app.post(
        item + "/done",
        summary="Mark an action item done (or open again)",
        dependencies=guarded,
        responses=errors,
    )
    async def item_done(token: str, id: Id, body: Done, who: Who) -> ActionItem:
        return _item(
            await run_in_threadpool(agendas.set_action_item_done, token, who, id, body.done)
        )

    @app.put(
        meeting + "/notes/shared",
        summary="Replace the shared notes",
        dependencies=guarded,
        responses=errors,
    )
    async def shared_note(token: str, body: NoteBody, who: Who) -> Note:
        return _note(
            await run_in_threadpool(lambda: agendas.save_note(token, who, body.body, private=False))
        )

    @app.put(
        meeting + "/notes/private",
        summary="Replace the viewer's own private notes",
        dependencies=guarded,
        responses=errors,
    )
    async def private_note(token: str, body: NoteBody, who: Who) -> Note:
        return _note(
            await run_in_threadpool(lambda: agendas.save_note(token, who, body.body, private=True))
        )

    generated = app.openapi

    def document() -> dict[str, Any]:
        """FastAPI's document, less its 422 answers: this API says 400 (``invalid_request``)."""
        if app.openapi_schema is None:
            doc = generated()
            for operations in doc["paths"].values():
                for operation in operations.values():
                    operation["responses"].pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                doc.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
    return app
