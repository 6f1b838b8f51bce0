"""Is this event a 1:1? A pure function of one Event and the configured rules.

The answer always carries a reason, because "why did (or didn't) syncd touch
my meeting?" is the first question anyone asks; ``syncd explain`` prints it and
the metrics count by it. Reason codes are stable strings for that reason.

A 1:1 is exactly two distinct *people*, the organizer included even when the
provider leaves them out of the attendee list. Addresses are compared in
canonical form (trimmed, no ``mailto:``, case-folded, aliases mapped), so one
person listed twice or under two aliases counts once. Rooms and resources
(``Attendee.is_resource`` or an address in ``resource_domains``) are not
people. A group (``Attendee.is_group`` or an address in ``group_addresses``)
is not one person either, but it stands for people who would all read the
block in their copy of the invite, so an invited group rules the event out.
An attendee without an address is a person nobody can identify: it counts,
so that it can never turn a three-person meeting into a 1:1, but the event
cannot be paired. Recurring masters and single events are judged alike.

Checks run in this order, and the first that fails gives the reason. The
order puts what the event *is* before who is in it, and settled facts before
passing ones, so the reason names the most useful fix:

1. ``cancelled`` - a cancelled event or occurrence is nobody's meeting.
2. ``out-of-office`` / ``focus-time`` / ``working-location`` /
   ``not-a-meeting`` - only default events are meetings.
3. ``all-day`` - all-day entries are reminders and blockers, not meetings.
4. ``opt-out`` - the marker in the title or description is someone's explicit
   wish, and it holds whoever is invited.
5. ``title-excluded``, then ``title-not-included`` - an operator's rule.
6. ``group-invited`` - its members would read the agenda in the invite.
7. ``fewer-than-two-people`` / ``more-than-two-people``.
8. ``outside-org`` - the pair fails the domain rule; this never changes by
   itself, so it is reported before a decline.
9. ``declined`` - one of the two declined; this may change with a reply.
10. ``one-on-one``.
"""

from __future__ import annotations

import enum
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from providers.model import Event, EventType, Response
from syncd.config import Detect, DomainPolicy, Settings, fold_address

#: The defaults are the schema's (``[detect]``): a rule is defined once.
_DETECT = Detect()

#: How many addresses a detail sentence lists before it summarises the rest.
_SHOWN = 5


class Reason(enum.StrEnum):
    ONE_ON_ONE = "one-on-one"
    CANCELLED = "cancelled"
    ALL_DAY = "all-day"
    OUT_OF_OFFICE = "out-of-office"
    FOCUS_TIME = "focus-time"
    WORKING_LOCATION = "working-location"
    OTHER_TYPE = "not-a-meeting"
    TOO_FEW = "fewer-than-two-people"
    TOO_MANY = "more-than-two-people"
    DECLINED = "declined"
    OUTSIDE_ORG = "outside-org"
    TITLE_EXCLUDED = "title-excluded"
    TITLE_NOT_INCLUDED = "title-not-included"
    OPT_OUT = "opt-out"
    GROUP_INVITED = "group-invited"
    #: Not decided here: the engine's ``judge`` gives it to an event whose block
    #: another syncd installation wrote (its tag names that installation).
    OTHER_INSTALLATION = "other-installation"


_TYPE_REASONS: Mapping[EventType, Reason] = {
    EventType.OUT_OF_OFFICE: Reason.OUT_OF_OFFICE,
    EventType.FOCUS_TIME: Reason.FOCUS_TIME,
    EventType.WORKING_LOCATION: Reason.WORKING_LOCATION,
    EventType.OTHER: Reason.OTHER_TYPE,
}


@dataclass(frozen=True, slots=True)
class Rules:
    """The detection settings in the form ``classify`` needs.

    Values are normalised on construction (domains and addresses case-folded,
    patterns compiled case-insensitively), so tests can write them by hand the
    way an operator would in the config file. ``aliases`` must be flat, each
    alias mapping to its final address, which ``syncd.config`` guarantees.
    """

    org_domains: tuple[str, ...] = _DETECT.org_domains
    domain_policy: DomainPolicy = _DETECT.domain_policy
    title_include: tuple[str, ...] = _DETECT.title_include
    title_exclude: tuple[str, ...] = _DETECT.title_exclude
    opt_out_marker: str = _DETECT.opt_out_marker
    group_addresses: tuple[str, ...] = _DETECT.group_addresses
    resource_domains: tuple[str, ...] = _DETECT.resource_domains
    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    _include: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _exclude: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _groups: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def domains(values: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(v.strip().removeprefix("@").casefold() for v in values)

        def compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
            return tuple(re.compile(p, re.IGNORECASE) for p in patterns)

        aliases = {fold_address(k): fold_address(v) for k, v in self.aliases.items()}
        set_ = object.__setattr__
        set_(self, "org_domains", domains(self.org_domains))
        set_(self, "resource_domains", domains(self.resource_domains))
        set_(self, "group_addresses", tuple(fold_address(a) for a in self.group_addresses))
        set_(self, "opt_out_marker", self.opt_out_marker.strip().casefold())
        set_(self, "aliases", MappingProxyType(aliases))
        set_(self, "_include", compiled(self.title_include))
        set_(self, "_exclude", compiled(self.title_exclude))
        set_(self, "_groups", frozenset(self.group_addresses))

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        detect, people = settings.detect, settings.people
        return cls(
            org_domains=detect.org_domains,
            domain_policy=detect.domain_policy,
            title_include=detect.title_include,
            title_exclude=detect.title_exclude,
            opt_out_marker=detect.opt_out_marker,
            group_addresses=detect.group_addresses,
            resource_domains=detect.resource_domains,
            aliases=people.aliases,
        )

    def excluded_by(self, title: str) -> str | None:
        """The first exclude pattern the title matches, if any."""
        return next((p.pattern for p in self._exclude if p.search(title)), None)

    def included(self, title: str) -> bool:
        return not self._include or any(p.search(title) for p in self._include)

    def is_group(self, canonical_address: str) -> bool:
        return canonical_address in self._groups

    def is_resource(self, canonical_address: str) -> bool:
        return _in_domains(canonical_address, self.resource_domains)

    def in_org(self, canonical_address: str) -> bool:
        return _in_domains(canonical_address, self.org_domains)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer for one event.

    ``people`` is the pair, sorted, in canonical form: the key under which the
    pair's history is kept, whichever of the two organised the event.
    """

    reason: Reason
    detail: str
    people: tuple[str, str] | None = None

    @property
    def is_one_on_one(self) -> bool:
        return self.reason is Reason.ONE_ON_ONE


def canonical(address: str, rules: Rules) -> str:
    """The one spelling under which a person is known, whatever the provider sent."""
    folded = fold_address(address)
    return rules.aliases.get(folded, folded)


def classify(event: Event, rules: Rules) -> Verdict:
    if event.cancelled:
        return Verdict(Reason.CANCELLED, "the event is cancelled")
    type_reason = _TYPE_REASONS.get(event.event_type)
    if type_reason is not None:
        return Verdict(
            type_reason, f"the event is of type {event.event_type.value!r}, not a meeting"
        )
    if event.all_day:
        return Verdict(Reason.ALL_DAY, "the event lasts all day")

    marker = rules.opt_out_marker
    if marker:
        if marker in event.title.casefold():
            return Verdict(Reason.OPT_OUT, f"the title contains {marker!r}")
        body = html.unescape(event.description) if event.description_is_html else event.description
        if marker in body.casefold():
            return Verdict(Reason.OPT_OUT, f"the description contains {marker!r}")

    excluded_by = rules.excluded_by(event.title)
    if excluded_by is not None:
        return Verdict(
            Reason.TITLE_EXCLUDED,
            f"the title {event.title!r} matches the exclude pattern {excluded_by!r}",
        )
    if not rules.included(event.title):
        return Verdict(
            Reason.TITLE_NOT_INCLUDED,
            f"the title {event.title!r} matches none of the include patterns",
        )

    groups = sorted(
        address
        for attendee in event.attendees
        if (address := canonical(attendee.email, rules))
        and (attendee.is_group or rules.is_group(address))
    )
    if groups:
        return Verdict(Reason.GROUP_INVITED, f"a group is invited: {', '.join(groups)}")

    people, anonymous = _people(event, rules)
    count = len(people) + anonymous
    if count > 2:
        return Verdict(Reason.TOO_MANY, f"{count} people: {_listing(people, anonymous)}")
    if count < 2 or anonymous:
        if count == 0:
            detail = "no people, only rooms or resources"
        elif count == 1:
            detail = f"only one person: {_listing(people, anonymous)}"
        else:
            detail = f"two people, but one has no address: {_listing(people, anonymous)}"
        return Verdict(Reason.TOO_FEW, detail)

    first, second = sorted(people)
    outside = _outside(first, second, rules)
    if outside is not None:
        return Verdict(Reason.OUTSIDE_ORG, outside)

    declined = sorted(
        address
        for attendee in event.attendees
        if attendee.response is Response.DECLINED
        and not (attendee.is_resource or attendee.is_group)
        and (address := canonical(attendee.email, rules)) in people
    )
    if declined:
        return Verdict(Reason.DECLINED, f"{' and '.join(declined)} declined")
    return Verdict(Reason.ONE_ON_ONE, f"1:1 between {first} and {second}", (first, second))


def _people(event: Event, rules: Rules) -> tuple[frozenset[str], int]:
    """The canonical addresses of the people at an event, and how many have none."""
    people: set[str] = set()
    flagged: set[str] = set()
    anonymous = 0
    for attendee in event.attendees:
        address = canonical(attendee.email, rules)
        if attendee.is_resource or attendee.is_group:
            flagged.add(address)
        elif not address:
            anonymous += 1
        elif not (rules.is_resource(address) or rules.is_group(address)):
            people.add(address)
    organizer = canonical(event.organizer, rules)
    # The organizer field has no flags of its own; an attendee entry for the
    # same address is the only place a provider says it is a room or a group.
    if (
        organizer
        and not (rules.is_resource(organizer) or rules.is_group(organizer))
        and (organizer in people or organizer not in flagged)
    ):
        people.add(organizer)
    return frozenset(people), anonymous


def _outside(first: str, second: str, rules: Rules) -> str | None:
    if not rules.org_domains:
        return None
    inside = [a for a in (first, second) if rules.in_org(a)]
    domains = ", ".join(rules.org_domains)
    if rules.domain_policy is DomainPolicy.BOTH and len(inside) < 2:
        strangers = " and ".join(a for a in (first, second) if a not in inside)
        verb = "is" if len(inside) == 1 else "are"
        return f"{strangers} {verb} outside {domains} (domain_policy 'both')"
    if rules.domain_policy is DomainPolicy.ANY and not inside:
        return f"neither {first} nor {second} is inside {domains} (domain_policy 'any')"
    return None


def _in_domains(address: str, domains: tuple[str, ...]) -> bool:
    _, at, domain = address.rpartition("@")
    if not at:
        return False
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _listing(people: frozenset[str], anonymous: int) -> str:
    names = sorted(people)
    names += ["(no address)"] * anonymous
    if len(names) <= _SHOWN:
        return ", ".join(names)
    return f"{', '.join(names[:_SHOWN])} and {len(names) - _SHOWN} more"
