"""The Admin SDK Directory API's ``users.list``, as far as a client listing its people needs.

``GET /admin/directory/v1/users`` (google-api-python-client builds that path
on the emulator's ``base_url`` given as ``api_endpoint``: the discovery
document's ``servicePath`` is empty). The people are the emulator's users, each
with the flags a directory keeps and a calendar does not: suspended,
archived, administrator. ``primaryEmail`` is the address as it was added, so a
test can give it any case.

Per request, in this order: bearer token (401, in google_http), scripted
fault, scope (403 ``insufficientPermissions`` without one of the
admin.directory.user scopes), administrator (403 ``forbidden`` "Not
Authorized to access this resource/api" unless the delegated subject is an
admin), then the parameters. Choices where the reference leaves room:

* ``customer`` is ``my_customer`` or the customer's id; ``domain`` one of the
  domains its users' addresses are in. Neither is 400 ``badRequest`` (as
  Google answers); an unknown customer is 400 ``badRequest`` too; a domain the
  customer does not have is 403 ``forbidden``.
* Users come sorted by ``primaryEmail`` (case-insensitively); ``orderBy`` and
  ``sortOrder`` are not implemented. ``showDeleted=true`` lists nobody.
* ``maxResults`` is 1 to 500 (default 100; 400 ``invalid`` outside). Page
  tokens are opaque, bound to the customer/domain they were issued for, and an
  unreadable or foreign one is 400 ``invalid``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._paging import PageTokens, last, page_size, window
from .google_auth import Authority, Grant
from .google_errors import ApiError
from .google_faults import GoogleFaults
from .google_state import CalendarStore

__all__ = ["DEFAULT_PAGE_SIZE", "Directory"]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
_NOT_AUTHORIZED = "Not Authorized to access this resource/api"
_CREATED = "2024-01-15T09:00:00.000Z"
_TOKENS = PageTokens("s")  # bound to the customer and domain listed


@dataclass
class _Flags:
    suspended: bool = False
    archived: bool = False
    admin: bool = False
    full_name: str | None = None  # None: made from the address
    manager: str | None = None  # a relations entry of type "manager"


class Directory:
    """Who is in the emulated Workspace customer, and ``users.list`` over them."""

    def __init__(self, store: CalendarStore, authority: Authority, faults: GoogleFaults) -> None:
        self.customer_id = "C0" + secrets.token_hex(4)
        self.faults = faults
        self._store = store
        self._authority = authority
        self._lock = threading.Lock()
        self._flags: dict[str, _Flags] = {}

    # ------------------------------------------------------------------ people

    def set_flags(
        self,
        address: str,
        *,
        suspended: bool | None = None,
        archived: bool | None = None,
        admin: bool | None = None,
        full_name: str | None = None,
        manager: str | None = None,
    ) -> None:
        """Change what the directory says of one person (None leaves a flag as it is).

        ``manager`` is the address their ``relations`` name as manager ("" removes it).
        """
        with self._lock:
            flags = self._flags.setdefault(address.casefold(), _Flags())
            if full_name is not None:
                flags.full_name = full_name
            if manager is not None:
                flags.manager = manager or None
            if suspended is not None:
                flags.suspended = suspended
            if archived is not None:
                flags.archived = archived
            if admin is not None:
                flags.admin = admin

    def _flags_of(self, address: str) -> _Flags:
        with self._lock:
            return self._flags.get(address.casefold(), _Flags())

    # ---------------------------------------------------------------- users.list

    def list_users(self, grant: Grant, query: Mapping[str, list[str]]) -> dict[str, Any]:
        """One page of ``users.list`` for a caller already authenticated as ``grant``."""
        failure = self.faults.take("users")
        if failure is not None:
            raise failure
        self._authority.require_directory_scope(grant)
        if not self._flags_of(grant.user).admin:
            raise ApiError(403, "forbidden", _NOT_AUTHORIZED)

        customer, domain = last(query, "customer"), last(query, "domain")
        if customer is None and domain is None:
            raise ApiError(400, "badRequest")
        if customer is not None and customer not in ("my_customer", self.customer_id):
            raise ApiError(400, "badRequest")
        people = sorted(self._store.calendars(), key=str.casefold)
        if domain is not None:
            wanted = domain.casefold()
            if wanted not in {_domain(address) for address in people}:
                raise ApiError(403, "forbidden", _NOT_AUTHORIZED)
            people = [address for address in people if _domain(address) == wanted]
        if (last(query, "showDeleted") or "").lower() == "true":
            people = []
        size = _page_size(last(query, "maxResults"))
        scope = f"{customer or ''}|{(domain or '').casefold()}"
        start = _offset(last(query, "pageToken"), scope)
        page, following = window(people, start, size)
        answer: dict[str, Any] = {"kind": "admin#directory#users", "etag": _etag(scope, start)}
        if page:
            answer["users"] = [self._user(address) for address in page]
        if following is not None:
            answer["nextPageToken"] = _TOKENS.issue(following, scope)
        return answer

    def _user(self, address: str) -> dict[str, Any]:
        flags = self._flags_of(address)
        local = address.split("@", 1)[0]
        given = local.split(".", 1)[0].title()
        family = local.split(".", 1)[1].title() if "." in local else ""
        user: dict[str, Any] = {
            "kind": "admin#directory#user",
            "id": _user_id(address),
            "etag": _etag(address, int(flags.suspended) + 2 * int(flags.archived)),
            "primaryEmail": address,
            "name": {
                "givenName": given,
                "familyName": family,
                "fullName": flags.full_name or f"{given} {family}".strip(),
            },
            "isAdmin": flags.admin,
            "isDelegatedAdmin": False,
            "lastLoginTime": "1970-01-01T00:00:00.000Z",
            "creationTime": _CREATED,
            "agreedToTerms": True,
            "suspended": flags.suspended,
            "archived": flags.archived,
            "changePasswordAtNextLogin": False,
            "ipWhitelisted": False,
            "emails": [{"address": address, "primary": True}],
            "customerId": self.customer_id,
            "orgUnitPath": "/",
            "isMailboxSetup": True,
            "isEnrolledIn2Sv": False,
            "isEnforcedIn2Sv": False,
            "includeInGlobalAddressList": True,
        }
        if flags.suspended:
            user["suspensionReason"] = "ADMIN"
        if flags.manager:
            user["relations"] = [{"value": flags.manager, "type": "manager"}]
        return user


def _domain(address: str) -> str:
    return address.rpartition("@")[2].casefold()


def _page_size(raw: str | None) -> int:
    try:
        return page_size(raw, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    except ValueError:
        message = f"Invalid value '{raw}'. Values must be within the range: [1, {MAX_PAGE_SIZE}]"
        raise ApiError(400, "invalid", message, "maxResults", "parameter") from None


def _offset(token: str | None, scope: str) -> int:
    try:
        return _TOKENS.offset(token, scope)
    except ValueError:
        raise ApiError(400, "invalid", "Invalid Input", "pageToken", "parameter") from None


def _etag(*parts: object) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode("utf-8")).hexdigest()[:27]
    return f'"{digest}"'


def _user_id(address: str) -> str:
    """A stable 21-digit id per address, shaped like the Directory API's user ids."""
    digest = hashlib.sha256(address.casefold().encode("utf-8")).digest()
    return str(100_000_000_000_000_000_000 + int.from_bytes(digest[:8], "big"))
