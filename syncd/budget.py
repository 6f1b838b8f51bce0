"""When a block may be rewritten on a calendar where every write mails the attendees.

Exchange mails every attendee a meeting update whenever the organizer's copy
of a meeting changes, and a block rewrite is such a change; so is a Google
write when ``sendUpdates`` asks for mail. Rewriting the invite on every
agenda edit would mail the other person once per talking point. On such a
calendar an occurrence's block is written only on these occasions:

``FIRST``
    The copy carries no block yet: the link has to get into the invite.
``CARRY``
    A meeting of the pair ended since the block was written: its open action
    items now belong in this invite. This is the write the product exists for.
``REFRESH``
    Once per occurrence, within ``lead`` of its start and at least ``gap``
    after the last write, when the agenda changed since: the invite people
    glance at just before the meeting shows the current talking points.
``REMOVE``
    The occurrence stopped being a 1:1 (a third person, an opt-out): its
    attendees changed, so it is mailed anyway, and the block must go.

Anything else waits, and the agenda page, which is always current, says when
the invite was last refreshed. So a 1:1 occurrence costs each attendee at
most three syncd mails over its life (``MAX_MAILS``), usually two. Where
writes mail nobody (Google's default), every change is written at once.

Pure functions over plain values; the engine reads and stores the state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd import config

#: The defaults are the schema's (``[sync]``): a setting is defined once.
_SYNC = config.Sync()

__all__ = ["MAX_MAILS", "Budget", "Copy", "Occasion", "Wait", "decide"]

#: The most meeting updates syncd causes per occurrence and attendee: its
#: first block, the carry-over, and one refresh before the meeting.
MAX_MAILS = 3


class Occasion(enum.StrEnum):
    FIRST = "first block"
    CARRY = "carry-over"
    REFRESH = "refresh before the meeting"
    REMOVE = "removal"
    FREE = "unmailed"  # the provider mails nobody: every change is written


@dataclass(frozen=True, slots=True)
class Budget:
    """``[sync] invite_refresh_lead_minutes`` and ``invite_refresh_gap_minutes``."""

    lead: timedelta = timedelta(minutes=_SYNC.invite_refresh_lead_minutes)
    gap: timedelta = timedelta(minutes=_SYNC.invite_refresh_gap_minutes)


@dataclass(frozen=True, slots=True)
class Copy:
    """What the decision needs to know about one organizer copy whose block is out of date."""

    start: datetime
    has_block: bool
    written_at: datetime | None  # when syncd last wrote its block (None: not known)
    refreshes: int  # REFRESH writes made so far
    previous_end: datetime | None  # the end of the pair's latest meeting that has ended


@dataclass(frozen=True, slots=True)
class Wait:
    """Not now; look again at ``until`` (None: not before the meeting)."""

    until: datetime | None


def decide(copy: Copy, now: datetime, budget: Budget, *, mailed: bool) -> Occasion | Wait:
    """Whether the out-of-date block of ``copy`` is written now, and why; or until when it waits."""
    if not mailed:
        return Occasion.FREE
    if not copy.has_block:
        return Occasion.FIRST
    ended = copy.previous_end
    if ended is not None and ended <= now and (copy.written_at is None or copy.written_at < ended):
        return Occasion.CARRY
    if copy.refreshes > 0:
        return Wait(None)
    at = copy.start - budget.lead
    if copy.written_at is not None:
        at = max(at, copy.written_at + budget.gap)
    if at >= copy.start or now >= copy.start:
        # Too close to the last write, or the meeting is under way (notes
        # typed during it are no reason to mail): the page has it.
        return Wait(None)
    return Occasion.REFRESH if at <= now else Wait(at)
