"""What an event's description is: HTML or text, and what a person reads in it.

Calendar systems disagree about bodies. Graph says (``contentType``) but
Exchange turns every body into HTML; Google says nothing, and its web UI
writes a little HTML (``<br>``, ``<b>``, links, lists) into what is
otherwise text; CalDAV's DESCRIPTION is text, with HTML, if any, in an
``X-ALT-DESC``. So one rule decides, used by every provider, by the block
code that edits bodies and by the emulators: a body is HTML when it holds a
tag of a real HTML element, a comment or doctype, or an HTML character
reference. ``Ana <ana@example.org>``, ``<3`` and ``a < b`` stay text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["looks_html", "readable"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_ELEMENTS = _words(
    # text-level
    "a abbr b bdi bdo br cite code data del dfn em font i img ins kbd mark q s samp small "
    "span strike strong sub sup time tt u var wbr "
    # grouping, sections, tables, forms, documents
    "address article aside blockquote body caption center col colgroup dd details dialog "
    "dir div dl dt fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 head header "
    "hgroup hr html legend li main menu meta nav ol p pre section summary table tbody td "
    "tfoot th thead title tr ul style script link base button input label select option "
    "textarea iframe object embed video audio source picture svg"
)
_LOOKS_HTML = re.compile(
    r"<(?:!--|!doctype\b|/?(?:"
    + "|".join(sorted(_ELEMENTS, key=len, reverse=True))
    + r")(?:\s[^<>]*)?/?>)"
    r"|&(?:nbsp|amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);",
    re.IGNORECASE,
)
_BLOCKS = _words(
    "address article aside blockquote br caption dd div dl dt figcaption figure footer h1 h2 "
    "h3 h4 h5 h6 header hr li main nav ol p pre section table td th tr ul"
)
_HIDDEN = frozenset({"head", "script", "style", "title", "template"})
#: Marks the edge of a block element while reading (not a character of any body).
_EDGE = "\x00"


def looks_html(text: str) -> bool:
    return _LOOKS_HTML.search(text) is not None


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append(_EDGE)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS and tag != "br":
            self.parts.append(_EDGE)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(re.sub(r"\s+", " ", data))


def readable(text: str, html: bool) -> str:
    """The body as a reader sees it: the text itself, or the HTML's text, a line per block.

    Hidden parts (head, scripts, styles) are left out, whitespace runs read
    as one space, and empty lines at either end are dropped.
    """
    if not html:
        return text
    reader = _Reader()
    reader.feed(text)
    reader.close()
    # Where blocks meet, one line ends, however many block edges are there.
    joined = re.sub(f"[ {_EDGE}]*{_EDGE}[ {_EDGE}]*", "\n", "".join(reader.parts))
    lines = [line.strip() for line in joined.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)
