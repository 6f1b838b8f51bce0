"""The managed block as a person sees it in their invite.

What matters to people: their own text and formatting in the description never
change, there is always exactly one block, it reads well, and nothing anyone
types into a talking point can run as markup or fake the block's frame.
"""

from __future__ import annotations

import datetime
import html
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.block import (
    BEGIN_MARKER,
    END_MARKER,
    ActionItem,
    BlockView,
    TalkingPoint,
    apply,
    extract,
    parse,
    remove,
    render,
)

BODIES = Path(__file__).resolve().parent.parent / "fixtures" / "bodies"
OLD_URL = "https://agenda.example.org/m/Old7tokenQx"

VIEW = BlockView(
    url="https://agenda.example.org/m/3vQx9TqLw2",
    talking_points=(
        TalkingPoint("Q3 goals", "Ana"),
        TalkingPoint("Hiring plan", "Bo"),
        TalkingPoint("Last week's retro", "Ana", done=True),
    ),
    action_items=(
        ActionItem("draft the mentoring plan", "Ana", datetime.date(2024, 11, 12)),
        ActionItem("intro to the data team", "Bo", datetime.date(2024, 11, 5)),
    ),
)
TEXT = render(VIEW)

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read(name: str) -> str:
    """Fixture bytes exactly as stored: CRLF must survive, so no newline translation."""
    return (BODIES / name).read_bytes().decode("utf-8")


def markup(text: str) -> str:
    """The HTML form of a block, as apply() writes it into an empty body."""
    return apply("", text, html=True)


def block_count(body: str) -> int:
    return body.count("1:1 agenda") + body.count("rewritten by syncd")


def squeeze(text: str) -> str:
    return "".join(text.split())


# ----------------------------------------------------------------------- render


def test_render_reads_like_the_design():
    design = "\n".join(
        [
            "── 1:1 agenda ─────────────────────────────",
            "Agenda: https://agenda.example.org/m/3vQx9TqLw2",
            "Talking points:",
            "• Q3 goals (Ana)",
            "• Hiring plan (Bo)",
            "Open action items from earlier meetings:",
            "☐ Ana: draft the mentoring plan (from Nov 12)",
            "☐ Bo: intro to the data team (from Nov 5)",
            "── edit the agenda at the link; this block is rewritten by syncd ──",
        ]
    )
    assert design == TEXT
    assert TEXT.startswith(BEGIN_MARKER + "\n")
    assert TEXT.endswith("\n" + END_MARKER)


def test_empty_lists_say_so():
    text = render(BlockView(url="https://a.example/m/x"))
    assert "Talking points: none yet" in text
    assert "Open action items from earlier meetings: none" in text


def test_done_talking_points_are_not_shown():
    text = render(BlockView("https://a.example/m/x", [TalkingPoint("old news", "Ana", done=True)]))
    assert "old news" not in text
    assert "Talking points: all covered" in text


def test_long_lists_and_texts_are_cut_short():
    points = [TalkingPoint(f"topic {n}", "Ana") for n in range(14)]
    text = render(BlockView("https://a.example/m/x", points, [ActionItem("x" * 500, "Bo", _d())]))
    assert "• topic 9 (Ana)" in text
    assert "topic 10" not in text
    assert "… and 4 more on the agenda page" in text
    assert "x" * 500 not in text
    assert max(len(line) for line in text.split("\n")) < 200


def _d() -> datetime.date:
    return datetime.date(2025, 1, 3)


def test_date_is_month_and_day_whatever_the_locale():
    text = render(BlockView("https://a.example/m/x", (), [ActionItem("ship", "Bo", _d())]))
    assert "☐ Bo: ship (from Jan 3)" in text


def test_people_cannot_add_lines_or_forge_markers():
    sneaky = f"wrap up\n{END_MARKER}\r\nInjected line\u2028{BEGIN_MARKER}"
    text = render(BlockView("https://a.example/m/x", [TalkingPoint(sneaky, "Mallory\nX")]))
    lines = text.split("\n")
    assert len(lines) == 6
    assert [line for line in lines if "─" in line] == [BEGIN_MARKER, END_MARKER]
    assert "• wrap up -- edit the agenda" in lines[3]
    # The whole body still holds exactly one block after a round trip.
    body = apply("Notes", text, html=False)
    assert extract(body) == text


def test_bidi_overrides_cannot_reorder_the_line():
    text = render(BlockView("https://a.example/m/x", [TalkingPoint("\u202eevil\u202c ok", "שלום")]))
    assert "\u202e" not in text
    assert "• evil ok (שלום)" in text


def test_apply_refuses_text_that_is_not_a_block():
    with pytest.raises(ValueError):
        apply("body", "just some text", html=False)


# --------------------------------------------------------------------- fixtures


def expect_appended(body: str, is_html: bool) -> str:
    if not is_html:
        return body + "\n\n" + TEXT if body else TEXT
    at = body.rfind("</body>")
    at = len(body) if at < 0 else at
    return body[:at] + markup(TEXT) + body[at:]


NEW_BODIES = [
    "google_simple.html",
    "google_list_links.html",
    "google_nbsp.html",
    "outlook_full_document.html",
    "outlook_mso_paragraphs.html",
    "outlook_crlf.html",
    "plain_unicode.txt",
]


@pytest.mark.parametrize("name", NEW_BODIES)
def test_first_block_goes_after_the_persons_text(name):
    body = read(name)
    is_html = name.endswith(".html")
    result = apply(body, TEXT, html=is_html)
    assert result == expect_appended(body, is_html)
    assert extract(result) == TEXT
    assert block_count(result) == 2
    assert apply(result, TEXT, html=is_html) == result
    assert remove(result, html=is_html) == body


def test_outlook_block_lands_inside_body_before_the_closing_tag():
    result = apply(read("outlook_full_document.html"), TEXT, html=True)
    assert result.endswith("rewritten by syncd ──</div></body>\r\n</html>\r\n")
    assert result.count("<style") == 1


def region(body: str, first: str, last: str) -> tuple[str, str]:
    """The body before ``first`` and after ``last`` (both included in the region)."""
    start = body.index(first)
    end = body.index(last, start) + len(last)
    return body[:start], body[end:]


def test_outlook_rewritten_block_is_replaced_in_place():
    body = read("outlook_with_existing_block.html")
    before, after = region(body, '<div id="x_syncd-agenda"', END_MARKER + "</div>\r\n</div>")
    result = apply(body, TEXT, html=True)
    assert result == before + markup(TEXT) + after
    assert "Before the block: notes from Ana." in before
    assert "After the block: parking lot" in after
    assert extract(body) is not None and extract(body) != TEXT
    assert extract(result) == TEXT
    assert OLD_URL not in result


def written_by_0_1(text: str) -> str:
    """A block as syncd 0.1 wrote it: the same lines, the items' heading without its scope."""
    return text.replace("Open action items from earlier meetings:", "Open action items:")


def test_block_with_markers_split_by_spans_is_recognised():
    body = read("outlook_block_split_by_spans.html")
    assert extract(body) == written_by_0_1(render(BlockView(OLD_URL)))
    first = '<div class="elementToProof" style="font-family: Aptos, Aptos_EmbeddedFont, '
    start = body.index(first, body.index("Quarterly check-in prep."))
    end = body.index("</div>", body.index("rewritten by syncd")) + len("</div>")
    result = apply(body, TEXT, html=True)
    assert result == body[:start] + markup(TEXT) + body[end:]
    assert block_count(result) == 2


def test_block_whose_end_marker_was_deleted_is_repaired_without_losing_notes():
    body = read("google_block_damaged_end_missing.html")
    result = apply(body, TEXT, html=True)
    before = body[: body.index(BEGIN_MARKER)]
    after = body[body.index("My own note") :]
    assert result == before + markup(TEXT) + after
    assert "Standing agenda: wins, blockers.<br><br>" in result
    assert result.endswith("My own note typed under the block<br><b>Do not lose this</b>")
    assert remove(body, html=True) == before + after


def test_two_blocks_become_one_at_the_first_place():
    body = read("two_blocks.html")
    result = apply(body, TEXT, html=True)
    assert result == "Copied from last week's invite:<br>" + markup(TEXT) + (
        "Keep this line.<br>And this one."
    )
    assert extract(result) == TEXT
    assert (
        remove(body, html=True)
        == "Copied from last week's invite:<br>Keep this line.<br>And this one."
    )


def test_stray_end_marker_is_removed_and_block_appended():
    body = read("google_orphan_end_marker.html")
    assert extract(body) == END_MARKER
    result = apply(body, TEXT, html=True)
    assert result == "Notes for Bo<br>Second line stays." + markup(TEXT)


def test_word_paragraphs_with_wrapped_lines_and_char_refs_are_one_block():
    body = read("outlook_word_wrapped_block.html")
    assert extract(body) == "\n".join(
        [
            BEGIN_MARKER,
            f"Agenda: {OLD_URL}",
            "Talking points:",
            "• Q3 goals (Ana)",
            "Open action items: none",  # as syncd 0.1 wrote it
            END_MARKER,
        ]
    )
    start = body.index("<p class=MsoNormal>&#9472;")
    end = body.index("<o:p></o:p></p>", body.index("rewritten by syncd")) + len("<o:p></o:p></p>")
    result = apply(body, TEXT, html=True)
    assert result == body[:start] + markup(TEXT) + body[end:]
    assert "Hallo Ana, bitte die Zahlen mitbringen." in result
    assert result.endswith(
        "<p class=MsoNormal>Gr&uuml;&szlig;e, Bo<o:p></o:p></p>\r\n</div>\r\n</body>\r\n</html>\r\n"
    )


@pytest.mark.parametrize(
    "name",
    [
        "outlook_with_existing_block.html",
        "outlook_block_split_by_spans.html",
        "outlook_word_wrapped_block.html",
        "google_block_damaged_end_missing.html",
        "two_blocks.html",
        "plain_crlf.txt",
    ],
)
def test_existing_blocks_can_be_rewritten_and_removed(name):
    body = read(name)
    is_html = name.endswith(".html")
    first = apply(body, TEXT, html=is_html)
    other = render(BlockView("https://agenda.example.org/m/other"))
    second = apply(first, other, html=is_html)
    assert extract(second) == other
    assert remove(second, html=is_html) == remove(first, html=is_html) == remove(body, html=is_html)
    assert extract(remove(body, html=is_html)) is None


def test_plain_crlf_block_is_replaced_in_place_with_crlf():
    body = read("plain_crlf.txt")
    before, after = region(body, BEGIN_MARKER, END_MARKER)
    assert before == "Weekly sync.\r\nDial-in: +1 555 0100  \r\n\r\n"
    result = apply(body, TEXT, html=False)
    assert result == before + TEXT.replace("\n", "\r\n") + after
    assert after == "\r\nPS: bring the laptop.\r\n"
    assert extract(result) == TEXT
    assert "\n" not in result.replace("\r\n", "")


def test_plain_crlf_body_gets_a_crlf_block():
    body = "Line one\r\nLine two"
    result = apply(body, TEXT, html=False)
    assert result == body + "\r\n\r\n" + TEXT.replace("\n", "\r\n")
    assert extract(result) == TEXT
    assert remove(result, html=False) == body


# ------------------------------------------------------------ HTML specifics


def test_script_in_a_talking_point_is_shown_as_text():
    view = BlockView(
        "https://a.example/m/x",
        [TalkingPoint("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')],
        [ActionItem("<b>bold?</b> & more", "<i>Eve</i>", _d())],
    )
    result = apply("<p>Hi</p>", render(view), html=True)
    assert "<script" not in result
    assert "<img" not in result
    assert "<b>" not in result and "<i>" not in result
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in result
    assert extract(result) == render(view)


def test_javascript_url_is_not_a_link():
    for url in ("javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<script>x</script>"):
        result = apply("", render(BlockView(url)), html=True)
        assert "<a " not in result
        assert "<script" not in result
    result = apply("", render(BlockView('https://x.example/"><script>1</script>')), html=True)
    assert "<a " not in result and "<script" not in result


def test_agenda_url_is_a_link():
    result = apply("", TEXT, html=True)
    url = VIEW.url
    assert f'Agenda: <a href="{url}">{url}</a>' in result


def test_google_dropping_our_wrapper_still_finds_the_block():
    lines = TEXT.split("\n")
    body = "Hello<br>" + "<br>".join(html.escape(line) for line in lines) + "<br>World"
    assert extract(body) == TEXT
    new = render(BlockView("https://a.example/m/new"))
    result = apply(body, new, html=True)
    assert result == "Hello<br>" + markup(new) + "World"
    assert remove(body, html=True) == "Hello<br>World"


def test_outlook_moving_the_wrapper_keeps_user_markup():
    lines = [html.escape(line) for line in TEXT.split("\n")]
    moved = '<div id="x_syncd-agenda"></div>' + "".join(f"<p>{line}</p>" for line in lines)
    body = f"<body><p>Mine</p>{moved}<p>Also mine</p></body>"
    result = apply(body, TEXT, html=True)
    assert result == (
        '<body><p>Mine</p><div id="x_syncd-agenda"></div>'
        + markup(TEXT)
        + "<p>Also mine</p></body>"
    )
    assert apply(result, TEXT, html=True) == result


def test_block_inside_a_persons_paragraph_leaves_the_paragraph():
    body = "<div>Before<br>" + markup(TEXT) + "After</div>"
    new = render(BlockView("https://a.example/m/new"))
    assert apply(body, new, html=True) == "<div>Before<br>" + markup(new) + "After</div>"


def test_unclosed_comment_does_not_swallow_the_block():
    body = "<p>Notes</p><!-- draft"
    result = apply(body, TEXT, html=True)
    assert extract(result) == TEXT
    assert result.endswith("<!-- draft")
    assert apply(result, TEXT, html=True) == result


def test_no_block_means_none():
    assert extract("") is None
    assert extract("<p>just a meeting &amp; notes</p>") is None
    assert extract("a ── dash") is None


# ------------------------------------------------------- plain text specifics


def test_plain_begin_without_end_takes_only_block_lines():
    lines = TEXT.split("\n")[:-1]
    body = "Intro\n" + "\n".join(lines) + "\nMy own line\n• my own bullet"
    result = apply(body, TEXT, html=False)
    assert result == "Intro\n" + TEXT + "\nMy own line\n• my own bullet"


def test_plain_end_without_begin_removes_only_that_line():
    body = f"Keep\n{END_MARKER}\nAlso keep"
    assert remove(body, html=False) == "Keep\nAlso keep"
    assert apply(body, TEXT, html=False) == "Keep\nAlso keep\n\n" + TEXT


def test_plain_markers_with_odd_spacing_are_found():
    text = TEXT.replace(BEGIN_MARKER, "  ───  1:1   Agenda ──").replace(
        END_MARKER, "──edit the agenda at the link;  this block is rewritten by syncd───  "
    )
    body = "Hi\n" + text + "\nBye"
    assert apply(body, TEXT, html=False) == "Hi\n" + TEXT + "\nBye"


def test_empty_body_gets_just_the_block():
    assert apply("", TEXT, html=False) == TEXT
    assert extract(TEXT) == TEXT


# ---------------------------------------------------------------- properties

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(document.cookie)",
    "مرحبا بالعالم",
    "שלום עולם",
    "\u202eevil\u202c",
    "👩‍💻🎉",
    BEGIN_MARKER,
    END_MARKER,
    "── 1:1 agenda ──",
    "line one\nline two\r\nline three",
    "&amp; &nbsp; &#9472;&#9472; &boxh;",
    "   ",
    "",
    "• fake bullet",
    "☐ fake item",
    "Agenda: https://evil.example",
    "\x00\x07\x1b[31m",
]
people = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=30),
    st.tuples(st.sampled_from(HOSTILE), st.text(max_size=8)).map("".join),
)
urls = st.one_of(
    st.sampled_from(
        [
            "https://agenda.example.org/m/3vQx9TqLw2",
            "http://a.example/m/x?y=1&z=2",
            "javascript:alert(1)",
            'https://x.example/"><script>alert(1)</script>',
            "ftp://files.example",
        ]
    ),
    people,
)
views = st.builds(
    BlockView,
    url=urls,
    talking_points=st.lists(st.builds(TalkingPoint, people, people, st.booleans()), max_size=12),
    action_items=st.lists(st.builds(ActionItem, people, people, st.dates()), max_size=12),
)

# People's own text: anything but the box-drawing dash the markers are made of.
plain_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="─")
plain_text = st.text(plain_chars, max_size=60)
# Lines that cannot be mistaken for block lines, for the damage tests.
calm_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="─•☐…"),
    min_size=1,
    max_size=20,
).filter(lambda t: t.strip() != "")

html_text = st.text(plain_chars, max_size=25).map(html.escape)
fragment = st.one_of(
    html_text.map(lambda t: f'<div class="elementToProof">{t}</div>'),
    html_text.map(lambda t: f'<p class="MsoNormal">{t}<o:p></o:p></p>'),
    html_text.map(lambda t: f"{t}<br>"),
    html_text.map(lambda t: f'<a href="https://x.example/?q={t}">{t}</a>'),
    html_text.map(lambda t: f"<ul><li>{t}</li><li><b>{t}</b></li></ul>"),
    html_text.map(lambda t: f'<span style="color:red">{t}</span>&nbsp;'),
    st.sampled_from(["<br>", "&nbsp;", "\r\n", "<!-- note -->", "<p><br></p>", "\u00a0"]),
)
user_html = st.lists(fragment, max_size=5).map("".join)


@st.composite
def html_bodies(draw):
    inner = draw(user_html)
    if draw(st.booleans()):
        return (
            '<html><head>\r\n<meta charset="utf-8">\r\n<style> P {margin:0;} </style>\r\n'
            f'</head>\r\n<body dir="ltr">\r\n{inner}\r\n</body>\r\n</html>\r\n'
        )
    return inner


@PROPERTY
@given(views)
def test_rendered_block_is_normal_and_has_only_its_own_markers(view):
    text = render(view)
    lines = text.split("\n")
    assert lines[0] == BEGIN_MARKER and lines[-1] == END_MARKER
    assert all(line and line == " ".join(line.split()) for line in lines)
    assert not any("─" in line for line in lines[1:-1])
    assert not any("\u202e" in line or "\x00" in line for line in lines)


@PROPERTY
@given(views, plain_text)
def test_plain_round_trip(view, body):
    text = render(view)
    result = apply(body, text, html=False)
    assert extract(result) == text
    assert result.startswith(body)
    assert apply(result, text, html=False) == result
    assert remove(result, html=False) == body


@PROPERTY
@given(views, html_bodies())
def test_html_round_trip(view, body):
    text = render(view)
    result = apply(body, text, html=True)
    assert extract(result) == text
    assert apply(result, text, html=True) == result
    assert remove(result, html=True) == body
    assert "<script" not in result.replace(body, "")
    assert "<img" not in result.replace(body, "")
    assert 'href="javascript' not in result.lower()


@PROPERTY
@given(views, views, plain_text, plain_text, st.booleans())
def test_plain_block_is_replaced_in_place(old, new, before, after, crlf):
    newline = "\r\n" if crlf else "\n"
    before = before.replace("\r", "").replace("\n", newline)
    after = after.replace("\r", "").replace("\n", newline)
    before = before + newline if before else ""
    after = newline + after if after else ""
    body = before + render(old).replace("\n", newline) + after
    result = apply(body, render(new), html=False)
    assert result == before + render(new).replace("\n", newline) + after
    assert apply(result, render(new), html=False) == result


@PROPERTY
@given(views, plain_text, plain_text)
def test_plain_text_around_a_block_survives(view, before, after):
    body = before + render(view) + after
    result = apply(body, TEXT, html=False)
    assert extract(result) == TEXT
    assert apply(result, TEXT, html=False) == result
    kept = result.replace(TEXT, "", 1)
    assert squeeze(kept) == squeeze(before + after)


@PROPERTY
@given(views, views, user_html, user_html)
def test_html_block_is_replaced_in_place(old, new, before, after):
    body = before + markup(render(old)) + after
    result = apply(body, render(new), html=True)
    assert result == before + markup(render(new)) + after
    assert remove(result, html=True) == before + after


@PROPERTY
@given(views, user_html, user_html, user_html)
def test_html_two_blocks_with_text_between(view, before, middle, after):
    old = markup(render(view))
    body = before + old + "<p>between</p>" + middle + old + after
    result = apply(body, TEXT, html=True)
    assert result == before + markup(TEXT) + "<p>between</p>" + middle + after


def _plain_damage(lines: list[str], kind: str) -> list[str]:
    if kind == "no end":
        return lines[:-1]
    if kind == "no begin":
        return lines[1:]
    if kind == "only end":
        return [lines[-1]]
    if kind == "only begin":
        return [lines[0]]
    if kind == "indented":
        return ["   " + line + " \t" for line in lines]
    return lines


DAMAGE = ["intact", "no end", "no begin", "only end", "only begin", "indented", "split"]


@PROPERTY
@given(
    views,
    st.lists(st.sampled_from(DAMAGE), min_size=1, max_size=4),
    st.lists(calm_text, max_size=3),
    st.lists(calm_text, max_size=3),
)
def test_damaged_plain_blocks_are_repaired_to_one(view, kinds, before, after):
    old = render(view).split("\n")
    lines = [line for kind in kinds for line in _plain_damage(old, kind)]
    head = "".join(line + "\n" for line in before)
    tail = "".join("\n" + line for line in after)
    body = head + "\n".join(lines) + tail
    result = apply(body, TEXT, html=False)
    assert extract(result) == TEXT
    assert apply(result, TEXT, html=False) == result
    assert result.startswith(head)
    if any(kind not in ("no begin", "only end") for kind in kinds):
        assert squeeze(result).endswith(squeeze(tail))
    else:  # only stray end markers: they go, and the block is appended
        assert squeeze(result).endswith(squeeze(tail) + squeeze(TEXT))


def _split_markers(block: str) -> str:
    return block.replace(
        "── 1:1 agenda ", '── 1:1 <span style="color:#333">agenda</span> '
    ).replace("── edit the agenda", "<b>── edit</b> the <span>agenda</span>")


def _html_damage(text: str, kind: str) -> str:
    lines = [html.escape(line) for line in text.split("\n")]
    if kind == "no end":
        return "<div>" + "<br>".join(lines[:-1]) + "</div>"
    if kind == "no begin":
        return "<div>" + "<br>".join(lines[1:]) + "</div>"
    if kind == "only end":
        return f"<div>{lines[-1]}</div>"
    if kind == "only begin":
        return f'<p class="MsoNormal">{lines[0]}<o:p></o:p></p>'
    if kind == "indented":  # Outlook: one div per line, wrapper id renamed
        per_line = "".join(f'<div class="elementToProof">{line}</div>\r\n' for line in lines)
        return f'<div id="x_syncd-agenda">\r\n{per_line}</div>'
    if kind == "split":
        return _split_markers(markup(text))
    return markup(text)


@PROPERTY
@given(
    views,
    st.lists(st.sampled_from(DAMAGE), min_size=1, max_size=4),
    st.sampled_from(["", "\r\n", "<br>"]),
    user_html,
    user_html,
)
def test_damaged_html_blocks_are_repaired_to_one(view, kinds, separator, before, after):
    text = render(view)
    body = before + separator.join(_html_damage(text, kind) for kind in kinds) + after
    result = apply(body, TEXT, html=True)
    assert extract(result) == TEXT
    assert apply(result, TEXT, html=True) == result
    assert result.startswith(before)
    if any(kind not in ("no begin", "only end") for kind in kinds):
        assert result.endswith(after)
    else:  # only stray end markers: they go, and the block is appended
        assert result.endswith(after + markup(TEXT))
    assert len(re.findall("── 1:1", result)) == len(re.findall("── edit", result)) == 1


@PROPERTY
@given(views, st.booleans())
def test_extract_apply_with_hostile_views(view, is_html):
    text = render(view)
    body = "<p>x</p>" if is_html else "x"
    assert extract(apply(body, text, html=is_html)) == text


# -- the invite as a replica: parse() reads back what render() wrote -----------------

_words = st.lists(
    st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=1, max_size=8),
    min_size=1,
    max_size=6,
).map(" ".join)
_named = st.sampled_from(["ana", "bo", ""])


@given(
    st.lists(st.tuples(_words, _named), max_size=14),
    st.lists(st.tuples(_words, _named, st.dates()), max_size=14),
)
def test_parse_reads_back_the_listed_points_and_items(points, items):
    view = BlockView(
        url="https://agenda.example.org/m/TOKEN",
        talking_points=[TalkingPoint(text, who) for text, who in points],
        action_items=[ActionItem(text, who, day) for text, who, day in items],
    )
    listed = parse(render(view), ["ana", "bo"])
    assert listed.url == "https://agenda.example.org/m/TOKEN"
    assert list(listed.talking_points) == points[:10]
    assert list(listed.action_items) == [(t, o, (d.month, d.day)) for t, o, d in items[:10]]
    assert listed.more == max(0, len(points) - 10) + max(0, len(items) - 10)


def test_parse_keeps_parentheses_that_name_nobody():
    text = render(
        BlockView(
            url="https://x/m/T",
            talking_points=[TalkingPoint("Budget (draft)", ""), TalkingPoint("Q3 (v2)", "bo")],
            action_items=[ActionItem("ship: it", "ana", datetime.date(2026, 11, 5))],
        )
    )
    listed = parse(text, ["ana", "bo"])
    assert list(listed.talking_points) == [("Budget (draft)", ""), ("Q3 (v2)", "bo")]
    assert list(listed.action_items) == [("ship: it", "ana", (11, 5))]


def test_the_items_heading_says_they_come_from_earlier_meetings_and_counts_this_ones() -> None:
    """ "Open action items: none" read as "nothing is open" while the meeting had its own."""
    text = render(BlockView("https://a.example/m/x", own_items=2))
    assert "Open action items from earlier meetings: none" in text.splitlines()
    assert "Action items of this meeting: 2, on the agenda page" in text.splitlines()
    assert "this meeting" not in render(BlockView("https://a.example/m/x"))
    assert extract(apply("Notes", text, html=False)) == text


def test_a_block_written_by_0_1_is_still_found_whole_when_its_end_marker_is_gone() -> None:
    old = written_by_0_1(render(BlockView("https://a.example/m/x", action_items=[
        ActionItem("Send the notes", "bo", datetime.date(2026, 11, 24))
    ])))  # fmt: skip
    damaged = "My notes\n\n" + "\n".join(old.splitlines()[:-1]) + "\nMy own line"
    result = apply(damaged, render(BlockView("https://a.example/m/x")), html=False)
    assert result.count("Send the notes") == 0 and result.endswith("My own line")
