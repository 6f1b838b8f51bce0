"""One rule for "is this description HTML", and what a person reads in one."""

from __future__ import annotations

import pytest

from providers.body import looks_html, readable


@pytest.mark.parametrize(
    "text",
    [
        "Agenda<br>wins",  # what Google's web UI writes for a line break
        "<b>Roadmap</b> first",
        '<a href="https://example.org/doc">doc</a>',
        "<ul><li>one</li></ul>",
        "<html><head><meta charset=utf-8></head><body>Hi</body></html>",  # Exchange's document
        "<!-- converted -->notes",
        "Q&amp;A",
        "caf&#233;",
    ],
)
def test_what_the_calendar_systems_write_as_html_is_html(text: str) -> None:
    assert looks_html(text)


@pytest.mark.parametrize(
    "text",
    [
        "Ask Ana <ana@example.org> about it",
        "I <3 these 1:1s",
        "if a < b and c > d",
        "<Ana> and <Bo> meet",  # not HTML elements
        "Q&A",
        "plain\nlines\n",
    ],
)
def test_text_that_merely_has_angle_brackets_stays_text(text: str) -> None:
    assert not looks_html(text)


def test_a_reader_sees_the_text_a_line_per_block_without_the_document_around_it() -> None:
    body = (
        "<html><head><style>p{color:red}</style><title>x</title></head><body>"
        "<p>Bring the <b>roadmap</b>.</p><div>Then   hiring</div>one<br>two"
        "<ul><li>a &amp; b</li></ul></body></html>"
    )
    assert readable(body, True) == "Bring the roadmap.\nThen hiring\none\ntwo\na & b"


def test_text_is_read_as_it_is() -> None:
    assert readable("  <b> stays\n", False) == "  <b> stays\n"
