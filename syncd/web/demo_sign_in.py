"""``syncd demo``'s sign-in: pick one of the seeded people, to see what they would see.

The demo has to show private notes, and private notes need a named person.
Real sign-in (an authenticating proxy, Google or Microsoft) is not there in
a demo, so this one asks nobody for proof: whoever opens the picker may be
anyone of the demo's people. That is only acceptable where every person and
every calendar is made up, so nothing a config file says turns it on:
``WebSettings(sign_in="demo")`` is built by ``syncd demo`` alone, with the
seeded people (``syncd.config`` refuses ``sign_in = "demo"`` with one line).

Without a pick the demo behaves as ``sign_in = "link"`` does: the link in the
invite opens the agenda, edits are "someone with the link's". The cookie
holds only an address, and an address that is not one of the demo's people
is nobody.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from syncd.people import Named
from syncd.web import security
from syncd.web.identity import Viewer, canonical
from syncd.web.oidc import safe_next
from syncd.web.pages import environment
from syncd.web.settings import WebSettings

COOKIE = "syncd-demo-person"


class DemoAuthenticator:
    def __init__(self, settings: WebSettings) -> None:
        if settings.sign_in != "demo":
            raise ValueError("demo sign-in is only for syncd demo")
        self.settings = settings
        self.people = tuple(canonical(person) for person in settings.demo_people)
        self.named = {canonical(a): Named(canonical(a), name) for a, name in settings.demo_names}
        self.env = environment()

    def identify(self, request: Request) -> Viewer:
        picked = canonical(request.cookies.get(COOKIE, ""))
        return Viewer(picked if picked in self.people else None, "demo")

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/signin", self.picker, methods=["GET"]),
            Route("/signin", self.pick, methods=["POST"]),
            Route("/signout", self.signout, methods=["POST"]),
        ]

    def _render(self, request: Request, status: int = 200, **context: object) -> HTMLResponse:
        token = security.csrf_token(request, self.settings)
        html = self.env.get_template("demo_sign_in.html").render(csrf=token, **context)
        response = HTMLResponse(html, status_code=status)
        security.remember_csrf(response, request, token, self.settings)
        return response

    async def picker(self, request: Request) -> Response:
        return self._render(
            request,
            people=self.people,
            named=self.named,
            current=self.identify(request).address,
            next=safe_next(request.query_params.get("next")),
        )

    async def _fields(self, request: Request) -> dict[str, str] | None:
        fields = await security.posted(request, max_fields=5)
        if not security.csrf_ok(request, fields.get(security.CSRF_FIELD), self.settings):
            return None
        return fields

    async def pick(self, request: Request) -> Response:
        fields = await self._fields(request)
        person = canonical((fields or {}).get("person", ""))
        if fields is None or person not in self.people:
            return self._render(
                request,
                status=400,
                people=self.people,
                named=self.named,
                current=None,
                next="/",
                problem="Please pick one of the people listed.",
            )
        response = RedirectResponse(safe_next(fields.get("next")), status_code=303)
        response.set_cookie(
            COOKIE,
            person,
            path="/",
            secure=self.settings.secure_cookies,
            httponly=True,
            samesite="lax",
        )
        return response

    async def signout(self, request: Request) -> Response:
        if await self._fields(request) is None:
            return self._render(
                request, status=403, people=self.people, named=self.named,
                current=None, next="/",
                problem="This form has expired. Please try again.",
            )  # fmt: skip
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(
            COOKIE, path="/", secure=self.settings.secure_cookies, httponly=True, samesite="lax"
        )
        return response
