"""The agenda pages: ``/m/{token}`` (one meeting) and ``/p/{token}`` (the pair's history).

Plain HTML forms that work without JavaScript: every form posts, the edit is
applied, and the answer is a 303 back to the page (always a path of ours,
built here, never taken from the request). Templates are autoescaped: what a
person or an invite wrote is shown as text, never as markup.

With JavaScript, ``static/app.js`` posts the meeting page's edit forms with
fetch, follows the same 303 and swaps in the updated section, so the page
keeps its scroll position and focus; on any failure it submits the form the
plain way.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from syncd import agenda, people
from syncd.people import Named
from syncd.web import export, home, security, zones
from syncd.web.identity import Authenticator, SignInRequired, Viewer
from syncd.web.service import Agendas, Forbidden, Invalid, NotFound, Unavailable, due_field
from syncd.web.settings import WebSettings

TEMPLATES = Path(__file__).parent / "templates"
#: The fields a person types, shown again (as text) when an edit could not be saved,
#: labelled by what the form was for (the first part of its path that matches).
_TYPED = ("text", "body")
_WHAT = (
    ("/talking-points", "Talking point"),
    ("/action-items", "Action item"),
    ("/notes/private", "Your private notes"),
    ("/notes/shared", "Shared notes"),
)


def _who(author: str) -> str:
    if not author:
        return "from the template"
    if author == agenda.LINK_ACTOR:
        return f"added by {agenda.LINK_ACTOR}"
    return f"added by {author}"


_STATE_LABELS = {
    "cancelled": "Cancelled",
    "ended": "Ended",
    "in progress": "In progress",
    "next": "Next meeting",
    "later": "Later",
}
#: A web address in a person's text: shown as a link. Trailing punctuation is the
#: sentence's, not the address's ("see https://x.org/a." links to .../a).
_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


def _byline(author: str, named: Mapping[str, Named] | None = None) -> str:
    """The compact "who": a name, "template" or "via link"."""
    if not author:
        return "template"
    if author == agenda.LINK_ACTOR:
        return "via link"
    return people.name_of(author, named)


def _person(
    address: str,
    me: str | None = None,
    named: Mapping[str, Named] | None = None,
    manager: str | None = None,
) -> Markup:
    you = " (you)" if me is not None and address == me else ""
    role = Markup(' <span class="role">manager</span>') if manager == address else ""
    return Markup('<span class="person" title="{0}">{1}{2}</span>{3}').format(
        address, people.name_of(address, named), you, role
    )


def linked(text: str) -> Markup:
    """``text`` escaped, its http(s) addresses made links that leave no referrer behind.

    Only http and https: a ``javascript:`` or ``data:`` address stays text.
    """
    out: list[str] = []
    last = 0
    for found in _URL.finditer(text):
        url = found.group()
        while url and url[-1] in _TRAILING:
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break  # a Wikipedia-style address keeps its closing parenthesis
            url = url[:-1]
        end = found.start() + len(url)
        out.append(str(escape(text[last : found.start()])))
        out.append(
            str(
                Markup(
                    '<a href="{0}" rel="noopener noreferrer nofollow" target="_blank">{0}</a>'
                ).format(url)
            )
        )
        last = end
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


#: Characters of context an excerpt shows on each side of a search match.
EXCERPT = 80


def excerpt(text: str, query: str) -> Markup:
    """What a search result shows of ``text``: the matches marked, and around a long
    text only the neighbourhood of the first match (a 10,000-character point is not
    a search result)."""
    if not query:
        return linked(text)
    pattern = re.compile(re.escape(query), re.IGNORECASE)
    first = pattern.search(text)
    start, end = 0, len(text)
    if first is not None and len(text) > 2 * EXCERPT + len(query):
        start = max(0, first.start() - EXCERPT)
        end = min(len(text), first.end() + EXCERPT)
    elif first is None:
        end = min(len(text), 2 * EXCERPT)
    shown = text[start:end]
    out = ["…" if start > 0 else ""]
    last = 0
    for found in pattern.finditer(shown):
        out.append(str(escape(shown[last : found.start()])))
        out.append(str(Markup("<mark>{0}</mark>").format(found.group())))
        last = found.end()
    out.append(str(escape(shown[last:])))
    out.append("…" if end < len(text) else "")
    return Markup("".join(out))


@functools.lru_cache(maxsize=1024)
def _csrf_field(token: str) -> Markup:
    """The hidden field every form carries; made once per token, a page has dozens."""
    return Markup('<input type="hidden" name="csrf" value="{0}">').format(token)


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["who"] = _who
    env.filters["byline"] = _byline
    env.filters["name"] = people.name_of
    env.filters["person"] = _person
    env.filters["linked"] = linked
    env.filters["excerpt"] = excerpt
    # the form token as a hidden field: a filter, not an include (a page has dozens of forms)
    env.filters["csrf_field"] = _csrf_field
    env.filters["state"] = lambda state: _STATE_LABELS.get(state, state)
    env.filters["short"] = agenda.display_name
    env.filters["when"] = zones.when
    env.filters["clock"] = zones.clock
    env.filters["day"] = zones.day
    env.filters["abbr"] = zones.abbreviation
    return env


class Pages:
    def __init__(
        self, agendas: Agendas, authenticator: Authenticator, settings: WebSettings
    ) -> None:
        self.agendas = agendas
        self.authenticator = authenticator
        self.settings = settings
        self.env = environment()

    # -- rendering ---------------------------------------------------------------

    def render(
        self, request: Request, name: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        token = security.csrf_token(request, self.settings)
        html = self.env.get_template(name).render(csrf=token, **context)
        response = HTMLResponse(html, status_code=status)
        security.remember_csrf(response, request, token, self.settings)
        return response

    def not_found(self, request: Request) -> HTMLResponse:
        """The one 404: unknown token, somebody else's agenda, unknown path.

        What it suggests fits the sign-in mode: where nobody signs in, being
        signed in as the wrong person cannot be why.
        """
        try:
            viewer = self.authenticator.identify(request)
        except SignInRequired:
            viewer = Viewer(None, self.settings.sign_in)
        return self.render(request, "not_found.html", status=404, viewer=viewer)

    def error(
        self, request: Request, status: int, heading: str, message: str, back: str | None
    ) -> HTMLResponse:
        return self.render(
            request, "error.html", status=status, heading=heading, message=message, back=back
        )

    # -- pages -------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        """``/``: my next 1:1s and my action items; in link mode, how agendas are opened."""
        viewer = self.authenticator.identify(request)
        now = self.agendas.clock()
        view = await run_in_threadpool(
            home.home,
            self.agendas.factory,
            viewer,
            now,
            carry_points=self.settings.carry_talking_points,
        )
        zone = zones.for_request(request, self.settings)
        return self.render(
            request, "home.html", view=view, zone=zone, now=now, today=zones.local(now, zone).date()
        )

    async def meeting(self, request: Request) -> Response:
        token = request.path_params["token"]
        viewer = self.authenticator.identify(request)
        try:
            view = await run_in_threadpool(self.agendas.meeting, token, viewer)
        except NotFound:
            return self.not_found(request)
        zone = zones.for_request(request, self.settings)
        return self.render(
            request,
            "meeting.html",
            view=view,
            zone=zone,
            zone_choices=zones.choices(zone, self.settings),
        )

    async def pair(self, request: Request) -> Response:
        token = request.path_params["token"]
        query = request.query_params.get("q", "")[:200]
        viewer = self.authenticator.identify(request)
        try:
            view = await run_in_threadpool(
                lambda: self.agendas.pair(token, viewer, query, collapse_later=True)
            )
        except NotFound:
            return self.not_found(request)
        zone = zones.for_request(request, self.settings)
        return self.render(request, "pair.html", view=view, zone=zone)

    async def export_md(self, request: Request) -> Response:
        return await self._export(request, "md")

    async def export_json(self, request: Request) -> Response:
        return await self._export(request, "json")

    async def _export(self, request: Request, kind: str) -> Response:
        """The pair's history as a download; never with any private note, not even one's own."""
        token = request.path_params["token"]
        viewer = self.authenticator.identify(request)
        try:
            view = await run_in_threadpool(
                lambda: self.agendas.pair(token, viewer, private_notes=False)
            )
        except NotFound:
            return self.not_found(request)
        stem = f"1on1-{agenda.display_name(view.people[0])}-{agenda.display_name(view.people[1])}"
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
        zone = zones.for_request(request, self.settings)
        if kind == "md":
            body, media = export.markdown(view, zone), "text/markdown; charset=utf-8"
        else:
            body = json.dumps(export.as_json(view, zone), ensure_ascii=False, indent=2)
            media = "application/json"
        return Response(
            body,
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{stem}.{kind}"'},
        )

    # -- forms -------------------------------------------------------------------

    def _form(
        self, edit: Callable[[str, Viewer, dict[str, str]], object], anchor: str
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            token = request.path_params["token"]
            fields = await security.posted(request)
            back = f"/m/{quote(token, safe='')}"
            if not security.csrf_ok(request, fields.get(security.CSRF_FIELD), self.settings):
                return self._expired(request, back)
            viewer = self.authenticator.identify(request)
            try:
                await run_in_threadpool(edit, token, viewer, fields)
            except NotFound:
                return self.not_found(request)
            except Forbidden as refused:
                return self.error(request, 403, "Not allowed", str(refused), back)
            except Invalid as invalid:
                return self.error(request, 400, "That did not work", str(invalid), back)
            except Unavailable:
                return self._not_saved(request, fields, back)
            return RedirectResponse(f"{back}#{anchor}", status_code=303)

        return endpoint

    def _deleting(
        self, kind: str, remove: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A delete form: without ``confirm=yes``, first a page that asks.

        With JavaScript the page deletes at once and offers an undo for a few
        seconds instead (``app.js`` sends ``confirm=yes``); without it, this
        step is what stands between a slip of the finger and a lost point.
        """

        async def endpoint(request: Request) -> Response:
            token, ident = request.path_params["token"], request.path_params["id"]
            fields = await security.posted(request)
            if fields.get("confirm") == "yes":
                return await remove(request)
            back = f"/m/{quote(token, safe='')}"
            if not security.csrf_ok(request, fields.get(security.CSRF_FIELD), self.settings):
                return self._expired(request, back)
            viewer = self.authenticator.identify(request)
            try:
                text = await run_in_threadpool(self.agendas.deletable, token, viewer, kind, ident)
            except NotFound:
                return self.not_found(request)
            except Forbidden as refused:
                return self.error(request, 403, "Not allowed", str(refused), back)
            return self.render(
                request,
                "confirm_delete.html",
                kind=kind,
                text=text,
                action=request.url.path,  # routed here, so one of ours
                back=back,
            )

        return endpoint

    async def choose_zone(self, request: Request) -> Response:
        """Remember the viewer's time zone in their browser; back to the meeting."""
        token = request.path_params["token"]
        fields = await security.posted(request)
        back = f"/m/{quote(token, safe='')}"
        if not security.csrf_ok(request, fields.get(security.CSRF_FIELD), self.settings):
            return self._expired(request, back)
        viewer = self.authenticator.identify(request)
        try:
            await run_in_threadpool(self.agendas.check, token, viewer)
        except NotFound:
            return self.not_found(request)
        zone = zones.valid(fields.get(zones.FIELD))
        if zone is None:
            return self.error(
                request, 400, "That did not work", "Please pick a time zone from the list.", back
            )
        response = RedirectResponse(back, status_code=303)
        zones.remember(response, zone, self.settings)
        return response

    def _not_saved(self, request: Request, fields: dict[str, str], back: str) -> HTMLResponse:
        """The form again, holding what was typed, to post to the same place once more."""
        path = request.url.path
        what = next((label for part, label in _WHAT if part in path), "Text")
        typed = [(name, what, fields[name]) for name in _TYPED if name in fields]
        shown = {name for name, _, _ in typed} | {security.CSRF_FIELD}
        hidden = [(name, value) for name, value in fields.items() if name not in shown]
        response = self.render(
            request,
            "not_saved.html",
            status=503,
            action=path,  # routed here, so one of ours
            typed=typed,
            hidden=hidden,
            back=back,
        )
        response.headers["Retry-After"] = str(Unavailable.retry_after)
        return response

    def _expired(self, request: Request, back: str) -> HTMLResponse:
        return self.error(
            request,
            403,
            "Please try again",
            "This form has expired or did not come from this site. "
            "Reload the agenda and submit it again.",
            back,
        )

    def routes(self) -> list[Route]:
        """The pages, then every form of ``FORMS`` under ``/m/{token}``."""
        forms = [
            Route(
                f"/m/{{token}}{form.path}",
                self._form_endpoint(form),
                methods=["POST"],
            )
            for form in FORMS
        ]
        return [
            Route("/", self.home, methods=["GET"]),
            Route("/m/{token}", self.meeting, methods=["GET"]),
            *forms,
            Route("/m/{token}/zone", self.choose_zone, methods=["POST"]),
            Route("/p/{token}", self.pair, methods=["GET"]),
            Route("/p/{token}/export.md", self.export_md, methods=["GET"]),
            Route("/p/{token}/export.json", self.export_json, methods=["GET"]),
        ]

    def _form_endpoint(self, form: Form) -> Callable[[Request], Awaitable[Response]]:
        """``form``'s edit, given the agendas, the path's id (if any) and the fields."""
        agendas = self.agendas

        async def endpoint(request: Request) -> Response:
            ident: int | None = request.path_params.get("id")

            def edit(token: str, viewer: Viewer, fields: dict[str, str]) -> object:
                return form.edit(agendas, token, viewer, ident, fields)

            return await self._form(edit, form.anchor)(request)

        if form.deletes:
            return self._deleting(form.deletes, endpoint)
        return endpoint


def _flag(fields: dict[str, str]) -> bool:
    return fields.get("done", "true") != "false"


def _offset(fields: dict[str, str]) -> int | None:
    if "position" in fields:
        return None
    return {"-1": -1, "1": 1}.get(fields.get("offset", ""), 0)


def _position(fields: dict[str, str]) -> int | str | None:
    value = fields.get("position")
    return int(value) if value is not None and value.isascii() and value.isdigit() else value


#: What one form does: the agendas, the meeting token, the viewer, the path's id, the fields.
FormEdit = Callable[[Agendas, str, Viewer, int | None, dict[str, str]], object]


@dataclass(frozen=True)
class Form:
    """One form of the meeting page: where it posts, where the page comes back to, what
    it does, and (for a delete) what it deletes, so that it asks first without JavaScript."""

    path: str
    anchor: str
    edit: FormEdit
    deletes: str = ""


def _id(ident: int | None) -> int:
    assert ident is not None, "routed with {id:int}"
    return ident


#: Every form of the meeting page, in one table (the routes are made from it).
FORMS: tuple[Form, ...] = (
    Form(
        "/talking-points",
        "talking-points",
        lambda a, t, v, i, f: a.add_talking_point(t, v, f.get("text", "")),
    ),
    Form(
        "/talking-points/{id:int}/done",
        "talking-points",
        lambda a, t, v, i, f: a.set_talking_point_done(t, v, _id(i), _flag(f)),
    ),
    Form(
        "/talking-points/{id:int}/move",
        "talking-points",
        lambda a, t, v, i, f: a.move_talking_point(t, v, _id(i), _offset(f), _position(f)),
    ),
    Form(
        "/talking-points/{id:int}/edit",
        "talking-points",
        lambda a, t, v, i, f: a.edit_talking_point(t, v, _id(i), text=f.get("text", "")),
    ),
    Form(
        "/talking-points/{id:int}/delete",
        "talking-points",
        lambda a, t, v, i, f: a.delete_talking_point(t, v, _id(i)),
        deletes="talking point",
    ),
    Form(
        "/action-items",
        "action-items",
        lambda a, t, v, i, f: a.add_action_item(
            t, v, f.get("text", ""), f.get("owner", ""), due_field(f.get("due"))
        ),
    ),
    Form(
        "/action-items/{id:int}/done",
        "action-items",
        lambda a, t, v, i, f: a.set_action_item_done(t, v, _id(i), _flag(f)),
    ),
    Form(
        "/action-items/{id:int}/edit",
        "action-items",
        lambda a, t, v, i, f: a.edit_action_item(
            t,
            v,
            _id(i),
            text=f.get("text", ""),
            owner=f.get("owner", ""),
            due=due_field(f.get("due")),
        ),
    ),
    Form(
        "/action-items/{id:int}/delete",
        "action-items",
        lambda a, t, v, i, f: a.delete_action_item(t, v, _id(i)),
        deletes="action item",
    ),
    Form(
        "/notes/shared",
        "shared-notes",
        lambda a, t, v, i, f: a.save_note(t, v, f.get("body", ""), private=False),
    ),
    Form(
        "/notes/private",
        "private-notes",
        lambda a, t, v, i, f: a.save_note(t, v, f.get("body", ""), private=True),
    ),
)
