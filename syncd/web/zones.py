"""The time zone a viewer sees meeting times in.

By default ``WebSettings.zone`` (``[web] timezone``, else ``[syncd]
timezone``). A viewer may pick another on the meeting page; the choice lives
in a cookie of their browser (SameSite=Lax, nothing secret in it) and is
checked against zoneinfo on every read: a cookie that names no zone is
ignored, as if it were not there.
"""

from __future__ import annotations

import re
from datetime import date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import Response

from syncd.web.settings import WebSettings

FIELD = "zone"
MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie
_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")

#: What the meeting page's select offers (plus the default and the current zone).
COMMON = (
    "UTC",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Helsinki",
    "Europe/Istanbul",
    "Africa/Lagos",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)


def cookie_name(settings: WebSettings) -> str:
    return "__Host-syncd-zone" if settings.secure_cookies else "syncd-zone"


def valid(name: object) -> ZoneInfo | None:
    """The zone of this IANA name, or None for anything else."""
    if not isinstance(name, str) or len(name) > 64 or not _SHAPE.fullmatch(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def for_request(request: Request, settings: WebSettings) -> ZoneInfo:
    """The viewer's choice if their cookie names a zone, else the configured default."""
    return valid(request.cookies.get(cookie_name(settings))) or ZoneInfo(settings.zone)


def remember(response: Response, zone: ZoneInfo, settings: WebSettings) -> None:
    response.set_cookie(
        cookie_name(settings),
        zone.key,
        max_age=MAX_AGE,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def choices(current: ZoneInfo, settings: WebSettings) -> list[str]:
    """The select's options: the common zones, the default and the current one."""
    names = list(COMMON)
    for extra in (settings.zone, current.key):
        if extra not in names:
            names.append(extra)
    return names


def local(moment: datetime, zone: tzinfo | None) -> datetime:
    return moment.astimezone(zone) if zone is not None else moment


def when(moment: datetime, zone: tzinfo | None = None) -> str:
    """``Tue 03 Mar 2026, 10:00`` (the zone's abbreviation is ``abbreviation``)."""
    return f"{local(moment, zone):%a %d %b %Y, %H:%M}"


def clock(moment: datetime, zone: tzinfo | None = None) -> str:
    return f"{local(moment, zone):%H:%M}"


def abbreviation(moment: datetime, zone: tzinfo | None = None) -> str:
    return f"{local(moment, zone):%Z}"


def day(moment: date, zone: tzinfo | None = None) -> str:
    """A date as ``03 Mar 2026``; a moment first moved into ``zone``."""
    if isinstance(moment, datetime):
        moment = local(moment, zone)
    return f"{moment:%d %b %Y}"
