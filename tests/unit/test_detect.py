"""1:1 detection: a table of realistic events, then properties of the rules."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.model import Attendee, Event, EventType, Response
from syncd import config
from syncd.config import DomainPolicy
from syncd.detect import Reason, Rules, Verdict, canonical, classify

START = datetime(2024, 11, 12, 9, 30, tzinfo=UTC)
ANA = "ana@example.org"
BO = "bo@example.org"
CY = "cy@example.org"
ROOM = "c_1882a7c1@resource.calendar.google.com"

ORG = Rules(org_domains=("example.org",))
ORG_ANY = Rules(org_domains=("example.org",), domain_policy=DomainPolicy.ANY)
TITLED = Rules(title_include=(r"1:1", r"one[- ]on[- ]one"), title_exclude=(r"\binterview\b",))
ALIASED = Rules(aliases={"ana.lopez@example.org": ANA, "ALOPEZ@example.org": ANA})
GROUPS = Rules(group_addresses=("Team-Leads@example.org",))


def event(
    organizer: str = ANA,
    *attendees: Attendee,
    title: str = "Ana / Bo 1:1",
    **fields: Any,
) -> Event:
    values: dict[str, Any] = {
        "id": "evt1",
        "calendar_id": organizer,
        "ical_uid": "uid-1@google.com",
        "title": title,
        "start": START,
        "end": START + timedelta(minutes=30),
        "organizer": organizer,
        "attendees": attendees,
        "is_organizer_copy": True,
    }
    values.update(fields)
    return Event(**values)


def person(email: str, response: Response = Response.ACCEPTED, **flags: Any) -> Attendee:
    return Attendee(email=email, response=response, **flags)


def organizer(email: str = ANA) -> Attendee:
    return Attendee(email=email, is_organizer=True, response=Response.ACCEPTED)


def room(email: str = ROOM) -> Attendee:
    return Attendee(email=email, name="Room 4B", is_resource=True, response=Response.ACCEPTED)


# (id, event, rules, expected reason)
CASES: list[tuple[str, Event, Rules, Reason]] = [
    (
        "weekly 1:1 series master",
        event(ANA, organizer(), person(BO), recurring=True),
        Rules(),
        Reason.ONE_ON_ONE,
    ),
    (
        "occurrence of a weekly 1:1",
        event(ANA, organizer(), person(BO), series_id="evt1", original_start=START),
        Rules(),
        Reason.ONE_ON_ONE,
    ),
    (
        "ad-hoc 1:1, organizer not listed",
        event(ANA, person(BO), title="Quick sync"),
        Rules(),
        Reason.ONE_ON_ONE,
    ),
    (
        "three-person meeting",
        event(ANA, organizer(), person(BO), person(CY), title="Project review"),
        Rules(),
        Reason.TOO_MANY,
    ),
    (
        "organizer + attendee + room (flagged)",
        event(ANA, organizer(), person(BO), room()),
        Rules(),
        Reason.ONE_ON_ONE,
    ),
    (
        "organizer + attendee + room (by domain only)",
        event(ANA, person(BO), person(ROOM)),
        Rules(),
        Reason.ONE_ON_ONE,
    ),
    (
        "Graph room in the org's own domain",
        event(ANA, person(BO), room("room-4b@example.org")),
        ORG,
        Reason.ONE_ON_ONE,
    ),
    (
        "organizer listed as attendee too, in another case",
        event(ANA, person("Ana@Example.org"), person(BO)),
        Rules(),
        Reason.ONE_ON_ONE,
    ),
    (
        "two aliases of the organizer",
        event(ANA, person("ana.lopez@example.org"), person(BO), person("alopez@EXAMPLE.org")),
        ALIASED,
        Reason.ONE_ON_ONE,
    ),
    (
        "two aliases without the alias rule are two people",
        event(ANA, person("ana.lopez@example.org"), person(BO)),
        Rules(),
        Reason.TOO_MANY,
    ),
    (
        "group address flagged by the provider",
        event(ANA, person(BO), person("eng@example.org", is_group=True)),
        Rules(),
        Reason.GROUP_INVITED,
    ),
    (
        "group address from config",
        event(ANA, person(BO), person("team-leads@example.org")),
        GROUPS,
        Reason.GROUP_INVITED,
    ),
    (
        "only a group invited",
        event(ANA, person("eng@example.org", is_group=True)),
        Rules(),
        Reason.GROUP_INVITED,
    ),
    ("organizer alone", event(ANA, organizer()), Rules(), Reason.TOO_FEW),
    ("organizer and a room", event(ANA, room()), Rules(), Reason.TOO_FEW),
    (
        "attendee without an address",
        event(ANA, person(BO), Attendee(email="", name="Dial-in guest")),
        Rules(),
        Reason.TOO_MANY,
    ),
    (
        "second person without an address",
        event(ANA, Attendee(email="", name="Guest")),
        Rules(),
        Reason.TOO_FEW,
    ),
    (
        "all-day",
        event(ANA, person(BO), all_day=True, end=START + timedelta(days=1)),
        Rules(),
        Reason.ALL_DAY,
    ),
    ("cancelled", event(ANA, person(BO), cancelled=True), Rules(), Reason.CANCELLED),
    (
        "cancelled beats everything else",
        event(ANA, person(BO), person(CY), cancelled=True, all_day=True),
        Rules(),
        Reason.CANCELLED,
    ),
    (
        "out of office",
        event(ANA, title="Vacation", event_type=EventType.OUT_OF_OFFICE),
        Rules(),
        Reason.OUT_OF_OFFICE,
    ),
    (
        "focus time",
        event(ANA, title="Focus", event_type=EventType.FOCUS_TIME),
        Rules(),
        Reason.FOCUS_TIME,
    ),
    (
        "working location, all-day",
        event(ANA, title="Home", event_type=EventType.WORKING_LOCATION, all_day=True),
        Rules(),
        Reason.WORKING_LOCATION,
    ),
    (
        "other event type with two people",
        event(ANA, person(BO), event_type=EventType.OTHER),
        Rules(),
        Reason.OTHER_TYPE,
    ),
    (
        "the other person declined",
        event(ANA, organizer(), person(BO, Response.DECLINED)),
        Rules(),
        Reason.DECLINED,
    ),
    (
        "the organizer declined their own copy",
        event(ANA, person(ANA, Response.DECLINED), person(BO)),
        Rules(),
        Reason.DECLINED,
    ),
    (
        "tentative is not declined",
        event(ANA, person(BO, Response.TENTATIVE)),
        Rules(),
        Reason.ONE_ON_ONE,
    ),
    (
        "the room declined",
        event(ANA, person(BO), Attendee(ROOM, is_resource=True, response=Response.DECLINED)),
        Rules(),
        Reason.ONE_ON_ONE,
    ),
    (
        "opt-out in title, any case",
        event(ANA, person(BO), title="Ana / Bo 1:1 #NoAgenda"),
        Rules(),
        Reason.OPT_OUT,
    ),
    (
        "opt-out in HTML description",
        event(
            ANA,
            person(BO),
            description='<html><body><p>Please: <b>#noAGENDA</b></p><div class="x"></div>',
            description_is_html=True,
        ),
        Rules(),
        Reason.OPT_OUT,
    ),
    (
        "opt-out as an HTML entity",
        event(ANA, person(BO), description="<p>&#35;noagenda</p>", description_is_html=True),
        Rules(),
        Reason.OPT_OUT,
    ),
    (
        "opt-out before the people count",
        event(ANA, person(BO), person(CY), title="Sync #noagenda"),
        Rules(),
        Reason.OPT_OUT,
    ),
    (
        "opt-out disabled",
        event(ANA, person(BO), title="1:1 #noagenda"),
        Rules(opt_out_marker=""),
        Reason.ONE_ON_ONE,
    ),
    (
        "title excluded",
        event(ANA, person(BO), title="1:1 Interview: backend candidate"),
        TITLED,
        Reason.TITLE_EXCLUDED,
    ),
    (
        "title not included",
        event(ANA, person(BO), title="Coffee"),
        TITLED,
        Reason.TITLE_NOT_INCLUDED,
    ),
    (
        "title included",
        event(ANA, person(BO), title="Ana <> Bo ONE-ON-ONE"),
        TITLED,
        Reason.ONE_ON_ONE,
    ),
    ("org both: both inside", event(ANA, person(BO)), ORG, Reason.ONE_ON_ONE),
    (
        "org both: subdomain is inside",
        event(ANA, person("bo@eu.example.org")),
        ORG,
        Reason.ONE_ON_ONE,
    ),
    ("org both: one outside", event(ANA, person("bo@gmail.com")), ORG, Reason.OUTSIDE_ORG),
    ("org any: one outside", event(ANA, person("bo@gmail.com")), ORG_ANY, Reason.ONE_ON_ONE),
    (
        "org any: both outside",
        event("ana@gmail.com", person("bo@outlook.com")),
        ORG_ANY,
        Reason.OUTSIDE_ORG,
    ),
    (
        "outside org is reported before a decline",
        event(ANA, person("bo@gmail.com", Response.DECLINED)),
        ORG,
        Reason.OUTSIDE_ORG,
    ),
    (
        "uppercase addresses and mailto:",
        event(
            "mailto:ANA@EXAMPLE.ORG", person("MAILTO:Bo@Example.Org"), person(" ana@example.org ")
        ),
        ORG,
        Reason.ONE_ON_ONE,
    ),
]


@pytest.mark.parametrize(("name", "ev", "rules", "reason"), CASES, ids=[c[0] for c in CASES])
def test_realistic_events(name: str, ev: Event, rules: Rules, reason: Reason) -> None:
    verdict = classify(ev, rules)
    assert verdict.reason is reason, verdict.detail
    assert verdict.detail and "\n" not in verdict.detail
    assert verdict.is_one_on_one == (reason is Reason.ONE_ON_ONE)
    if verdict.is_one_on_one:
        assert verdict.people is not None
        assert list(verdict.people) == sorted(verdict.people)
    else:
        assert verdict.people is None


def test_pair_is_canonical_and_sorted_whoever_organizes() -> None:
    by_bo = classify(event("BO@example.org", person("ana.lopez@example.org")), ALIASED)
    by_ana = classify(event(ANA, person(BO)), ALIASED)
    assert by_bo.people == by_ana.people == (ANA, BO)


def test_details_name_the_people() -> None:
    many = classify(event(ANA, person(BO), person(CY)), Rules())
    assert many.detail == f"3 people: {ANA}, {BO}, {CY}"
    declined = classify(event(ANA, person(BO, Response.DECLINED)), Rules())
    assert BO in declined.detail
    huge = classify(event(ANA, *(person(f"p{i}@example.org") for i in range(40))), Rules())
    assert huge.detail.startswith("41 people: ") and huge.detail.endswith("and 36 more")


def test_canonical() -> None:
    assert canonical(" MailTo:Ana.Lopez@Example.ORG ", ALIASED) == ANA
    assert canonical("Bo@Example.org", ALIASED) == BO


def test_rules_from_settings() -> None:
    settings = config.parse(
        """
        [detect]
        org_domains = ["Example.org"]
        domain_policy = "any"
        title_exclude = ["lunch"]
        opt_out_marker = "#NoSync"
        group_addresses = ["eng@example.org"]
        [people]
        aliases = { "ana.lopez@example.org" = "a@example.org", "a@example.org" = "ana@example.org" }
        """,
        Path("test.toml"),
    )
    rules = Rules.from_settings(settings)
    assert rules.org_domains == ("example.org",)
    assert rules.domain_policy is DomainPolicy.ANY
    assert canonical("ana.lopez@example.org", rules) == ANA
    assert classify(event(ANA, person(BO), title="Team lunch"), rules).reason is (
        Reason.TITLE_EXCLUDED
    )
    assert classify(event(ANA, person(BO), title="x #nosync"), rules).reason is Reason.OPT_OUT
    assert (
        classify(event(ANA, person(BO), person("eng@example.org")), rules).reason
        is Reason.GROUP_INVITED
    )
    assert Rules.from_settings(config.Settings.default()) == Rules()


# --------------------------------------------------------------------------- properties

NAMES = st.sampled_from(["ana", "bo", "cy", "dee", "eli", "fay"])
DOMAINS = st.sampled_from(["example.org", "eu.example.org", "gmail.com", "partner.io"])
RESPONSES = st.sampled_from(list(Response))
NOT_DECLINED = st.sampled_from([r for r in Response if r is not Response.DECLINED])


@st.composite
def addresses(draw: st.DrawFn) -> str:
    return f"{draw(NAMES)}@{draw(DOMAINS)}"


@st.composite
def spellings(draw: st.DrawFn, address: str) -> str:
    """Another way a provider might write the same address."""
    local, _, domain = address.partition("@")
    text = draw(
        st.sampled_from(
            [address, address.upper(), f"{local.title()}@{domain.upper()}", f"mailto:{address}"]
        )
    )
    return draw(st.sampled_from(["", " "])) + text + draw(st.sampled_from(["", " ", "\t"]))


@st.composite
def rule_sets(draw: st.DrawFn) -> Rules:
    return Rules(
        org_domains=tuple(
            draw(st.lists(st.sampled_from(["example.org", "gmail.com"]), max_size=2))
        ),
        domain_policy=draw(st.sampled_from(list(DomainPolicy))),
        group_addresses=("eng@example.org",),
        aliases={"alias.ana@example.org": "ana@example.org", "alias.bo@gmail.com": "bo@gmail.com"},
    )


@st.composite
def one_on_ones(draw: st.DrawFn) -> tuple[Event, str, str]:
    """A plain two-person event, plus the organizer and the other person."""
    first = draw(addresses())
    second = draw(addresses().filter(lambda a: a != first))
    attendees = [Attendee(second, response=draw(RESPONSES))]
    if draw(st.booleans()):
        attendees.append(Attendee(first, is_organizer=True, response=draw(RESPONSES)))
    ev = event(first, *draw(st.permutations(attendees)), recurring=draw(st.booleans()))
    return ev, first, second


@st.composite
def noise(draw: st.DrawFn, people: tuple[str, ...]) -> Attendee:
    """An attendee that must not change the verdict: a room, or someone already present."""
    kind = draw(st.sampled_from(["flagged-room", "room-domain", "duplicate", "alias"]))
    if kind == "flagged-room":
        return Attendee(f"room-{draw(NAMES)}@rooms.example.org", is_resource=True)
    if kind == "room-domain":
        response = draw(RESPONSES)
        return Attendee(f"{draw(NAMES)}@resource.calendar.google.com", response=response)
    who = draw(st.sampled_from(people))
    if kind == "alias" and who in ("ana@example.org", "bo@gmail.com"):
        local, _, domain = who.partition("@")
        who = f"alias.{local}@{domain}"
    return Attendee(draw(spellings(who)), response=draw(NOT_DECLINED))


@given(one_on_ones(), rule_sets(), st.data())
def test_rooms_and_duplicates_never_change_the_verdict(
    base: tuple[Event, str, str], rules: Rules, data: st.DataObject
) -> None:
    ev, first, second = base
    before = classify(ev, rules)
    extra = data.draw(st.lists(noise((first, second)), max_size=8))
    attendees = data.draw(st.permutations([*ev.attendees, *extra]))
    after = classify(dataclasses.replace(ev, attendees=tuple(attendees)), rules)
    assert after == before


@st.composite
def any_attendee(draw: st.DrawFn) -> Attendee:
    return Attendee(
        email=draw(st.one_of(addresses(), addresses().flatmap(spellings), st.just(""))),
        is_resource=draw(st.booleans()),
        is_group=draw(st.booleans()),
        response=draw(RESPONSES),
    )


@given(st.lists(any_attendee(), max_size=6), addresses(), rule_sets(), st.data())
def test_classify_is_deterministic_and_ignores_attendee_order(
    attendees: list[Attendee], organizer_address: str, rules: Rules, data: st.DataObject
) -> None:
    ev = event(organizer_address, *attendees)
    verdict = classify(ev, rules)
    assert classify(ev, rules) == verdict
    shuffled = tuple(data.draw(st.permutations(attendees)))
    assert classify(dataclasses.replace(ev, attendees=shuffled), rules) == verdict
    assert isinstance(verdict, Verdict)
    assert (verdict.people is not None) == verdict.is_one_on_one
