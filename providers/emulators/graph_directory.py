"""Graph's ``GET /v1.0/users`` (list users), as far as a client listing its people needs.

The users are the emulator's mailboxes (``mail`` and ``userPrincipalName``
the address as added, ``accountEnabled`` false once ``disable_user`` was
called) and people without a mailbox (``add_user_without_mailbox``: no
``mail``, as for an account without an Exchange licence).

Per request, in this order: bearer token (401, in graph_http), scripted
fault, permission (403 ``Authorization_RequestDenied`` "Insufficient
privileges to complete the operation." unless an app-only token carries
User.Read.All, User.ReadWrite.All, Directory.Read.All or
Directory.ReadWrite.All, the application permissions the reference lists for
this call), then the query options. Choices where the reference leaves room:

* ``$select`` takes the user properties listed in ``USER_PROPERTIES``; another
  is 400 ``Request_BadRequest``. Without it the reference's default set comes
  back (which does not include ``accountEnabled``).
* ``$filter`` understands ``accountEnabled eq true|false`` only; anything else
  is 400 ``Request_UnsupportedQuery``.
* ``$expand`` takes ``manager``, optionally with its own ``$select``
  (``manager($select=mail)``); anything else is 400 ``Request_BadRequest``.
  The manager comes as a user object with ``@odata.type``; someone without
  one has no ``manager`` property. As Graph's known issue says, a page with
  ``$expand`` holds at most 100 users, whatever ``$top`` asks.
* ``$top`` is 1 to 999 (default 100; 400 outside, with Graph's message).
  Users come sorted by ``userPrincipalName``; ``@odata.nextLink`` repeats the
  query with an opaque ``$skiptoken`` bound to the filter it was issued for.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from ._paging import PageTokens, last, page_size, window
from .graph_errors import GraphError
from .graph_faults import GraphFaults
from .graph_identity import Grant
from .graph_store import MailboxStore

__all__ = ["DEFAULT_PAGE_SIZE", "USER_PROPERTIES", "USER_READ_ROLES", "Directory"]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999
#: The application permissions that may list users, least privileged first.
USER_READ_ROLES = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
DEFAULT_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
USER_PROPERTIES = frozenset(
    {*DEFAULT_PROPERTIES, "accountEnabled", "mailNickname", "userType", "otherMails"}
)
_FILTER = re.compile(r"^\s*accountEnabled\s+eq\s+(?P<value>true|false)\s*$")
_EXPAND = re.compile(r"^\s*manager\s*(?:\(\s*\$select\s*=\s*(?P<select>[\w,\s]+)\))?\s*$")
#: Graph's known limit: "$expand on directory objects returns a maximum of 100 objects"
EXPAND_PAGE_LIMIT = 100
_USER_NAMESPACE = uuid.UUID("3f0c9b1e-8a52-4a55-9d0e-5b9b7d6c2a10")
_TOKENS = PageTokens("f")  # bound to the $filter listed


@dataclass
class _Person:
    """Someone the directory lists who has no mailbox."""

    user_id: str
    principal: str
    enabled: bool


class Directory:
    """Who is in the emulated tenant, and ``GET /users`` over them."""

    def __init__(self, store: MailboxStore, tenant: str, faults: GraphFaults) -> None:
        self.faults = faults
        self._store = store
        self._tenant = tenant
        self._lock = threading.Lock()
        self._without_mailbox: dict[str, _Person] = {}
        self._managers: dict[str, str] = {}  # person (casefolded) -> manager's address

    def set_manager(self, address: str, manager: str | None) -> None:
        """Who ``address`` reports to, as an admin sets it in Entra ID (None: nobody)."""
        with self._lock:
            if manager is None:
                self._managers.pop(address.casefold(), None)
            else:
                self._managers[address.casefold()] = manager

    def add_user_without_mailbox(self, principal: str, *, enabled: bool = True) -> None:
        user_id = str(uuid.uuid5(_USER_NAMESPACE, f"{self._tenant}/{principal.casefold()}"))
        with self._lock:
            self._without_mailbox[principal.casefold()] = _Person(user_id, principal, enabled)

    def list_users(
        self, grant: Grant, query: Mapping[str, list[str]], graph_root: str
    ) -> dict[str, Any]:
        """One page of users for a caller already authenticated as ``grant``."""
        failure = self.faults.take("users")
        if failure is not None:
            raise failure
        if grant.user is not None or not grant.roles & USER_READ_ROLES:
            raise GraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )

        selected = _select(last(query, "$select"))
        wanted = _filter(last(query, "$filter"))
        size = _top(last(query, "$top"))
        expand = _expand(last(query, "$expand"))
        if expand is not None:
            size = min(size, EXPAND_PAGE_LIMIT)
        everyone = self._users()
        users = sorted(everyone, key=lambda user: str(user["userPrincipalName"]).casefold())
        if wanted is not None:
            users = [user for user in users if user["accountEnabled"] is wanted]
        bound = last(query, "$filter") or ""
        page, following = window(users, _offset(last(query, "$skiptoken"), bound), size)
        shown = selected or DEFAULT_PROPERTIES
        context = f"{graph_root}$metadata#users"
        if selected:
            context += f"({','.join(selected)})"
        answer: dict[str, Any] = {"@odata.context": context}
        if following is not None:
            options = {name: values[-1] for name, values in query.items() if name != "$skiptoken"}
            options["$skiptoken"] = _TOKENS.issue(following, bound)
            answer["@odata.nextLink"] = (
                f"{graph_root}users?{urlencode(options, quote_via=quote, safe='$(),')}"
            )
        by_principal = {str(user["userPrincipalName"]): user for user in everyone}
        with self._lock:
            managers = dict(self._managers)
        answer["value"] = [_shown(user, shown, expand, managers, by_principal) for user in page]
        return answer

    def _users(self) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = []
        for address in self._store.addresses():
            box = self._store.mailbox(address)
            if box is not None:
                users.append(_user(box.user_id, address, address, not box.disabled))
        with self._lock:
            people = list(self._without_mailbox.values())
        users.extend(_user(p.user_id, p.principal, None, p.enabled) for p in people)
        return users


def _user(user_id: str, principal: str, mail: str | None, enabled: bool) -> dict[str, Any]:
    local = principal.split("@", 1)[0]
    given, _, family = local.partition(".")
    return {
        "id": user_id,
        "accountEnabled": enabled,
        "businessPhones": [],
        "displayName": f"{given.title()} {family.title()}".strip(),
        "givenName": given.title(),
        "jobTitle": None,
        "mail": mail,
        "mailNickname": local,
        "mobilePhone": None,
        "officeLocation": None,
        "otherMails": [],
        "preferredLanguage": None,
        "surname": family.title() or None,
        "userPrincipalName": principal,
        "userType": "Member",
    }


def _select(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    for name in names:
        if name not in USER_PROPERTIES:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"Parsing OData Select and Expand failed: Could not find a property named "
                f"'{name}' on type 'microsoft.graph.user'.",
            )
    return names


def _shown(
    user: dict[str, Any],
    shown: tuple[str, ...],
    expand: tuple[str, ...] | None,
    managers: Mapping[str, str],
    by_principal: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """One user of a page: the selected properties, and the manager when expanded."""
    out = {name: user.get(name) for name in shown}
    if expand is None:
        return out
    manager = managers.get(str(user["userPrincipalName"]).casefold())
    boss = by_principal.get(manager) if manager is not None else None
    if boss is not None:
        fields = expand or DEFAULT_PROPERTIES
        out["manager"] = {
            "@odata.type": "#microsoft.graph.user",
            **{name: boss.get(name) for name in fields},
        }
    return out


def _expand(raw: str | None) -> tuple[str, ...] | None:
    """None: no ``$expand``; else the manager's properties to show (() = the default set)."""
    if raw is None:
        return None
    match = _EXPAND.match(raw)
    if match is None:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Parsing OData Select and Expand failed: Could not find a property named "
            f"'{raw.split('(', 1)[0].strip()}' on type 'microsoft.graph.user'.",
        )
    return _select(match["select"]) if match["select"] else ()


def _filter(raw: str | None) -> bool | None:
    if raw is None:
        return None
    match = _FILTER.match(raw)
    if match is None:
        raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
    return match["value"] == "true"


def _top(raw: str | None) -> int:
    try:
        return page_size(raw, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    except ValueError:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Invalid page size specified: '{raw}'. Must be between 1 and {MAX_PAGE_SIZE} "
            "inclusive.",
        ) from None


def _offset(token: str | None, bound: str) -> int:
    try:
        return _TOKENS.offset(token, bound)
    except ValueError:
        raise GraphError(400, "Request_BadRequest", "Invalid paging token.") from None
