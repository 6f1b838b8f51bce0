"""The managed block: what syncd writes into an invite, and how it finds it again.

A calendar description belongs to people; syncd owns only the block between its
two marker lines. Everything here serves one promise: text outside the block is
never changed, however often the block is rewritten and whatever Google or
Outlook did to the body in between.

Markers
    ``BEGIN_MARKER`` (``── 1:1 agenda ───…``) and ``END_MARKER``
    (``── edit the agenda at the link; this block is rewritten by syncd ──``).
    Runs of U+2500 box-drawing dashes around a fixed phrase are something nobody
    types by accident, they survive both providers' HTML rewriting, and they read
    as a visual frame. They are recognised by text content only (never by byte
    offset, id or class, which Outlook rewrites): any run of two or more dashes,
    flexible whitespace, case-insensitive, also when tags split the text.
    People's text can never forge one, because rendering turns every U+2500 in it
    into an ASCII hyphen.

Layout
    One talking point per line: the inline ``• a • b`` form gets unreadable past
    three points and wraps badly on phones. Done talking points are left out,
    long lists end in an "… and N more" line, long texts are shortened: the full
    agenda is one click away. Every rendered line is already in the normal form
    that :func:`extract` produces (single spaces, no indentation, no blank
    lines), so a body rewritten by a provider still compares equal.

Damage repair (a person editing the invite can delete anything)
    * Markers pair up in document order: a begin marker and the next end marker
      form a block, and whatever lies between them is the block's (the block
      says it is rewritten, so text typed inside it is not kept).
    * A begin marker without its end marker covers its own line plus the
      following lines that still have the shape of block lines, in block order
      (``Agenda:``, ``Talking points:``, ``• …``, ``Open action items…:``,
      ``☐ …``, ``… and N more …``). The first line of any other shape ends it,
      so text a person wrote after the damaged block is never taken; the
      trade-off is that a block line a person edited, and what follows it,
      stays behind as their text.
    * An end marker without a begin marker is removed alone (its line, when the
      line holds nothing else); it is never a place for the new block.
    * With several blocks (whole or begin-only), the new block goes where the
      first one was and every other piece is removed. With none, it is appended.
      After :func:`apply` there is exactly one block.

Placement
    Plain text: an appended block follows the person's text after a blank line
    (two line ends are added whatever the text ends with, so that remove() can
    give the text back byte for byte); a replaced block takes the place of the
    old one, in the old block's line-end style (CRLF stays CRLF). HTML: the
    block is one ``<div>`` with ``<br>`` between lines, placed before
    ``</body>`` when there is one; as a block-level element it starts on its
    own line, and its marker line is the visual separator, so no spacer markup
    is added that remove() would have to recognise.

Extent in HTML
    The body is read as source text plus a lenient tree that keeps every
    offset. A block's extent runs from its begin marker to its end marker, grown
    outwards over elements (and blank text) that hold nothing of a person's:
    our wrapper, a provider's per-line ``<div>`` or ``<p>``, a moved wrapper
    that now holds only the block. Growth stops at an element that also holds
    text, an image and the like, and never takes ``body``, ``html`` or table
    parts. Cutting works like a DOM range: tags of elements that reach outside
    the extent stay, so the markup around the block stays byte for byte and
    well formed.

Only the standard library is used so that this module stays importable by
every part of the project.
"""

from __future__ import annotations

import bisect
import datetime
import html
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from providers.body import looks_html

__all__ = [
    "BEGIN_MARKER",
    "END_MARKER",
    "ActionItem",
    "BlockView",
    "TalkingPoint",
    "Listed",
    "apply",
    "extract",
    "parse",
    "remove",
    "render",
]

BEGIN_MARKER = "── 1:1 agenda " + "─" * 29
END_MARKER = "── edit the agenda at the link; this block is rewritten by syncd ──"


@dataclass(frozen=True, slots=True)
class TalkingPoint:
    """A talking point as the block shows it; ``origin``: the date of the earlier
    meeting it was carried over from."""

    text: str
    author: str
    done: bool = False
    origin: datetime.date | None = None


@dataclass(frozen=True, slots=True)
class ActionItem:
    """An open action item; ``origin`` is the date of the meeting that agreed it."""

    text: str
    owner: str
    origin: datetime.date


@dataclass(frozen=True, slots=True)
class BlockView:
    """Everything the block shows; a pure value so that rendering is repeatable."""

    url: str
    talking_points: Sequence[TalkingPoint] = ()
    #: open items of the pair's meetings that ended: what was agreed and is still owed
    action_items: Sequence[ActionItem] = ()
    #: open items raised for this very meeting: counted, not listed (they are new)
    own_items: int = 0


# --------------------------------------------------------------------------- text

_HSPACE = r"[^\S\r\n]"
_BEGIN_PATTERN = rf"─{{2,}}{_HSPACE}*1:1{_HSPACE}*agenda{_HSPACE}*─{{2,}}"
_END_PATTERN = (
    rf"─{{2,}}{_HSPACE}*"
    + f"{_HSPACE}+".join(re.escape(word) for word in END_MARKER.strip("─ ").split())
    + rf"{_HSPACE}*─{{2,}}"
)
# One alternation, so that a begin and an end marker never claim the same dashes.
_MARKER_RE = re.compile(rf"(?P<begin>{_BEGIN_PATTERN})|(?P<end>{_END_PATTERN})", re.IGNORECASE)

_MAX_LISTED = 10
_MAX_TEXT = 160
_MAX_NAME = 60
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_BIDI_CONTROLS = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))

# Shapes of the lines between the markers, with their order in the block. Used to
# decide how far a block whose end marker was deleted reaches.
_AGENDA, _POINTS, _POINT, _ITEMS, _ITEM, _OWN = 1, 2, 3, 4, 5, 6
#: Blocks written before 0.2 say "Open action items:" with the same meaning.
_ITEMS_HEADING = "Open action items from earlier meetings:"
_LINE_SHAPES = (
    (re.compile(r"Agenda:(?: .*)?"), _AGENDA),
    (re.compile(r"Talking points:(?: .*)?"), _POINTS),
    (re.compile(r"• .+"), _POINT),
    (re.compile(r"Open action items(?: from earlier meetings)?:(?: .*)?"), _ITEMS),
    (re.compile(r"☐ .+"), _ITEM),
    (re.compile(r"Action items of this meeting: \d+, on the agenda page"), _OWN),
)
_MORE_RE = re.compile(r"… and \d+ more on the agenda page")


def _people_text(text: str, limit: int | None) -> str:
    """Make a person's text safe to place on one block line.

    Line breaks would let it add lines of its own, U+2500 would let it forge a
    marker, bidi overrides would let it reorder the rest of the line, control
    characters and lone surrogates break the providers' APIs.
    """
    kept: list[str] = []
    for char in text:
        if char == "─":
            kept.append("-")
        elif char.isspace():
            kept.append(" ")
        elif ord(char) in _BIDI_CONTROLS:
            continue
        else:
            category = unicodedata.category(char)
            if category == "Cc":
                continue
            kept.append("\ufffd" if category == "Cs" else char)
    cleaned = " ".join("".join(kept).split())
    if limit is not None and len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    return cleaned


def _short_date(day: datetime.date) -> str:
    """English month names whatever the process locale, so output is repeatable."""
    return f"{_MONTHS[day.month - 1]} {day.day}"


def render(view: BlockView) -> str:
    """The block's text, markers included, lines joined by ``\\n``."""
    url = _people_text(view.url, None) or "(no link yet)"
    lines = [BEGIN_MARKER, f"Agenda: {url}"]

    open_points = [point for point in view.talking_points if not point.done]
    if open_points:
        lines.append("Talking points:")
        for point in open_points[:_MAX_LISTED]:
            text = _people_text(point.text, _MAX_TEXT) or "(no text)"
            author = _people_text(point.author, _MAX_NAME)
            said = [author] if author else []
            if point.origin is not None:
                said.append(f"from {_short_date(point.origin)}")
            lines.append(f"• {text} ({', '.join(said)})" if said else f"• {text}")
        if len(open_points) > _MAX_LISTED:
            lines.append(f"… and {len(open_points) - _MAX_LISTED} more on the agenda page")
    elif view.talking_points:
        lines.append("Talking points: all covered")
    else:
        lines.append("Talking points: none yet")

    if view.action_items:
        lines.append(_ITEMS_HEADING)
        for item in view.action_items[:_MAX_LISTED]:
            text = _people_text(item.text, _MAX_TEXT) or "(no text)"
            owner = _people_text(item.owner, _MAX_NAME)
            who = f"{owner}: " if owner else ""
            lines.append(f"☐ {who}{text} (from {_short_date(item.origin)})")
        if len(view.action_items) > _MAX_LISTED:
            lines.append(f"… and {len(view.action_items) - _MAX_LISTED} more on the agenda page")
    else:
        lines.append(f"{_ITEMS_HEADING} none")
    if view.own_items:
        lines.append(f"Action items of this meeting: {view.own_items}, on the agenda page")

    lines.append(END_MARKER)
    return "\n".join(lines)


def _next_shape(line: str, rank: int) -> int | None:
    """Rank of ``line`` if it may follow a line of rank ``rank`` in a block."""
    if _MORE_RE.fullmatch(line):
        if rank in (_POINTS, _POINT):
            return _POINT
        if rank in (_ITEMS, _ITEM):
            return _ITEM
        return None
    for pattern, shape in _LINE_SHAPES:
        if pattern.fullmatch(line):
            if shape == _POINT:
                return shape if rank in (_POINTS, _POINT) else None
            if shape == _ITEM:
                return shape if rank in (_ITEMS, _ITEM) else None
            return shape if shape > rank else None
    return None


def _well_formed(text: str) -> bool:
    """Whether ``text`` is a whole block in normal form, as render() makes them."""
    lines = text.split("\n")
    if len(lines) < 2:
        return False
    first, last = _MARKER_RE.fullmatch(lines[0]), _MARKER_RE.fullmatch(lines[-1])
    if not (first and first.lastgroup == "begin" and last and last.lastgroup == "end"):
        return False
    rank = 0
    for line in lines[1:-1]:
        shape = _next_shape(line, rank)
        if shape is None:
            return False
        rank = shape
    return True


# --------------------------------------------------------------------- lines/pieces


@dataclass(slots=True)
class _Line:
    """One line of text content, normalised, with each character's source span.

    The spans are what lets a marker found in the text be located in the
    markup. ``start``/``end`` bound the physical line (plain text only).
    """

    text: str
    starts: list[int]
    ends: list[int]
    start: int = 0
    end: int = 0


_WORD_RE = re.compile(r"\S+")


def _normalised_line(
    raw: str, starts: Sequence[int], ends: Sequence[int], start: int = 0, end: int = 0
) -> _Line:
    parts: list[str] = []
    out_starts: list[int] = []
    out_ends: list[int] = []
    previous = -1
    for word in _WORD_RE.finditer(raw):
        if previous >= 0:
            parts.append(" ")
            out_starts.append(starts[previous])
            out_ends.append(ends[previous])
        parts.append(word.group())
        out_starts.extend(starts[word.start() : word.end()])
        out_ends.extend(ends[word.start() : word.end()])
        previous = word.end()
    return _Line("".join(parts), out_starts, out_ends, start, end)


@dataclass(frozen=True, slots=True)
class _Piece:
    """A block or a damaged piece of one, in line/column terms of the text content."""

    kind: Literal["block", "begin", "end"]
    first_line: int
    first_col: int
    last_line: int
    last_col: int
    text: str


def _piece(
    lines: Sequence[_Line],
    kind: Literal["block", "begin", "end"],
    first: tuple[int, int],
    last: tuple[int, int],
) -> _Piece:
    (first_line, first_col), (last_line, last_col) = first, last
    if first_line == last_line:
        parts = [lines[first_line].text[first_col:last_col]]
    else:
        parts = [lines[first_line].text[first_col:]]
        parts.extend(lines[i].text for i in range(first_line + 1, last_line))
        parts.append(lines[last_line].text[:last_col])
    text = "\n".join(part for part in parts if part)
    return _Piece(kind, first_line, first_col, last_line, last_col, text)


def _damaged_reach(lines: Sequence[_Line], line: int, col: int, stop: int) -> tuple[int, int]:
    """How far a begin marker without its end marker reaches (see module doc)."""
    if lines[line].text[col:].strip() or stop == line:
        return line, col
    reach = (line, col)
    rank = 0
    for index in range(line + 1, stop):
        text = lines[index].text
        if not text:
            continue
        shape = _next_shape(text, rank)
        if shape is None:
            break
        rank = shape
        reach = (index, len(text))
    return reach


def _find_pieces(lines: Sequence[_Line]) -> list[_Piece]:
    marks = [
        (index, match.start(), match.end(), match.lastgroup == "begin")
        for index, line in enumerate(lines)
        for match in _MARKER_RE.finditer(line.text)
    ]
    pieces: list[_Piece] = []
    k = 0
    while k < len(marks):
        line, start, end, is_begin = marks[k]
        following = marks[k + 1] if k + 1 < len(marks) else None
        if is_begin and following is not None and not following[3]:
            pieces.append(_piece(lines, "block", (line, start), (following[0], following[2])))
            k += 2
            continue
        if is_begin:
            stop = following[0] if following is not None else len(lines)
            reach = _damaged_reach(lines, line, end, stop)
            pieces.append(_piece(lines, "begin", (line, start), reach))
        else:
            pieces.append(_piece(lines, "end", (line, start), (line, end)))
        k += 1
    return pieces


def _source_span(lines: Sequence[_Line], piece: _Piece) -> tuple[int, int]:
    return (
        lines[piece.first_line].starts[piece.first_col],
        lines[piece.last_line].ends[piece.last_col - 1],
    )


def _is_clean(pieces: Sequence[_Piece]) -> bool:
    return len(pieces) == 1 and pieces[0].kind == "block" and _well_formed(pieces[0].text)


def _joined(pieces: Sequence[_Piece]) -> str | None:
    return "\n".join(piece.text for piece in pieces) if pieces else None


def _kept(pieces: Sequence[_Piece]) -> _Piece | None:
    """The piece whose place the new block takes: the first block, whole or not.

    A stray end marker is no place for a block; it is only removed.
    """
    return next((piece for piece in pieces if piece.kind != "end"), None)


def _check_block_text(block_text: str) -> None:
    if not _well_formed(block_text) or any(
        line != " ".join(line.split()) for line in block_text.split("\n")
    ):
        raise ValueError("block_text must be a block as render() makes it")


# ---------------------------------------------------------------------- plain text


class _PlainBody:
    def __init__(self, body: str) -> None:
        self.body = body
        self.lines: list[_Line] = []
        position = 0
        while True:
            newline = body.find("\n", position)
            end = len(body) if newline < 0 else newline
            raw = body[position:end]
            offsets = range(position, end)
            self.lines.append(
                _normalised_line(raw, offsets, range(position + 1, end + 1), position, end)
            )
            if newline < 0:
                break
            position = newline + 1
        self.pieces = _find_pieces(self.lines)

    def extent(self, piece: _Piece) -> tuple[int, int, str]:
        """Source range of a piece and the line end it swallowed (to put back).

        Blank space before a piece on its line and after it up to the line end is
        the piece's, so that replacing it leaves no stray indentation and
        removing it takes the whole line.
        """
        body = self.body
        first, last = self.lines[piece.first_line], self.lines[piece.last_line]
        start, end = _source_span(self.lines, piece)
        if not body[first.start : start].strip():
            start = first.start
        line_end = ""
        if not body[end : last.end].strip():
            if last.end < len(body):
                line_end = "\r\n" if body[end : last.end].endswith("\r") else "\n"
                end = last.end + 1
            else:
                end = last.end
        return start, end, line_end

    def newline(self, piece: _Piece | None) -> str:
        """Line-end style for the block: the existing block's, else the body's."""
        if piece is not None:
            start, end = _source_span(self.lines, piece)
            inside = self.body[start:end]
            if "\n" in inside:
                return "\r\n" if "\r\n" in inside else "\n"
        return "\r\n" if "\r\n" in self.body else "\n"


def _splice_plain(body: str, edits: Sequence[tuple[int, int, str]]) -> str:
    out: list[str] = []
    position = 0
    for start, end, replacement in sorted(edits):
        out.append(body[position:start])
        if not replacement and end == len(body):
            # The blank line that apply() put before an appended block goes with it.
            before = "".join(out)
            if before.endswith("\r\n\r\n"):
                before = before[:-4]
            elif before.endswith("\n\n"):
                before = before[:-2]
            out = [before]
        out.append(replacement)
        position = end
    out.append(body[position:])
    return "".join(out)


def _apply_plain_once(body: str, block_text: str) -> str:
    doc = _PlainBody(body)
    keep = _kept(doc.pieces)
    if keep is None:
        if doc.pieces:
            return _apply_plain_once(_remove_plain(body), block_text)
        if not body:
            return block_text
        newline = doc.newline(None)
        return body + newline * 2 + block_text.replace("\n", newline)
    newline = doc.newline(keep)
    edits = []
    for piece in doc.pieces:
        start, end, line_end = doc.extent(piece)
        replacement = block_text.replace("\n", newline) + line_end if piece is keep else ""
        edits.append((start, end, replacement))
    return _splice_plain(body, edits)


def _apply_plain(body: str, block_text: str) -> tuple[str, bool]:
    result = _apply_plain_once(body, block_text)
    settled = _apply_plain_once(result, block_text) == result and extract(result) == block_text
    return result, settled


def _remove_plain(body: str) -> str:
    doc = _PlainBody(body)
    return _splice_plain(body, [(*doc.extent(piece)[:2], "") for piece in doc.pieces])


# ---------------------------------------------------------------------------- HTML


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


_VOID = _names(
    "area base basefont bgsound br col embed frame hr img input keygen link meta param "
    "source track wbr"
)
_RAW_TEXT = _names("script style textarea title xmp iframe noembed noframes")
_HIDDEN = _names("head script style title template iframe noembed noframes textarea")
_BLOCK_LEVEL = _names(
    "address article aside blockquote body caption center dd details dialog dir div dl dt "
    "fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr html legend "
    "li main menu nav ol p pre section summary table tbody td tfoot th thead tr ul"
)
# Elements that show something without text: a wrapper holding one is not "only block".
_CONTENT = _names(
    "img hr input iframe object embed video audio canvas svg math textarea select button picture"
)
# Never grown into: removing one would change the document or table structure.
_STRUCTURAL = _names(
    "html head body table thead tbody tfoot tr td th caption colgroup col template"
)
_ENTITY_RE = re.compile(r"&(?:#[xX][0-9A-Fa-f]+;?|#[0-9]+;?|[A-Za-z][A-Za-z0-9]*;?)")
_TAG_NAME_RE = re.compile(r"[A-Za-z][^\t\n\f\r />]*")
_TAG_STOP_RE = re.compile(r"[>=]")
_URL_RE = re.compile(r"https?://[^\s\"'<>`\\]+", re.IGNORECASE)


class _Node:
    """An element, text run or other leaf, with its source offsets.

    ``inner_start``/``inner_end`` bound the content; for an element closed only
    implicitly (``closed`` false) ``end`` is where its parent or the input ended.
    """

    __slots__ = ("tag", "start", "inner_start", "inner_end", "end", "closed", "parent", "children")

    def __init__(self, tag: str, start: int, inner_start: int, parent: _Node | None) -> None:
        self.tag = tag
        self.start = start
        self.inner_start = inner_start
        self.inner_end = inner_start
        self.end = inner_start
        self.closed = False
        self.parent = parent
        self.children: list[_Node] = []


def _tag_end(src: str, position: int) -> int:
    """Index after the ``>`` closing a tag whose attributes start at ``position``; -1 if none.

    Quotes count only as attribute-value delimiters, as in a browser, so a ``>``
    inside a quoted value does not end the tag.
    """
    length = len(src)
    while True:
        stop = _TAG_STOP_RE.search(src, position)
        if stop is None:
            return -1
        if stop.group() == ">":
            return stop.end()
        position = stop.end()
        while position < length and src[position] in " \t\n\r\f":
            position += 1
        if position < length and src[position] in "\"'":
            close = src.find(src[position], position + 1)
            if close < 0:
                return -1
            position = close + 1


class _HtmlBody:
    """A lenient parse that keeps every offset, because edits must be byte-exact."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.root = _Node("#root", 0, 0, None)
        self.root.end = self.root.inner_end = len(src)
        # (start, end, kind, tag) in source order, for "is there content here?".
        self.tokens: list[tuple[int, int, str, str]] = []
        self._parse()
        self.token_starts = [token[0] for token in self.tokens]
        self.lines = self._text_lines()
        self.pieces = _find_pieces(self.lines)

    # -- parsing ---------------------------------------------------------------

    def _leaf(self, kind: str, start: int, end: int, parent: _Node) -> None:
        if start >= end:
            return
        node = _Node(kind, start, start, parent)
        node.inner_end = node.end = end
        node.closed = True
        parent.children.append(node)
        self.tokens.append((start, end, kind, ""))

    def _parse(self) -> None:
        src, length = self.src, len(self.src)
        stack = [self.root]
        text_from = position = 0
        while position < length:
            lt = src.find("<", position)
            if lt < 0:
                break
            scanned = self._scan(lt)
            if scanned is None:
                position = lt + 1
                continue
            kind, end, name, self_closing = scanned
            self._leaf("#text", text_from, lt, stack[-1])
            if kind == "start":
                element = _Node(name, lt, end, stack[-1])
                stack[-1].children.append(element)
                self.tokens.append((lt, end, "start", name))
                if name in _VOID or (self_closing and ":" in name):
                    element.closed = True
                elif name in _RAW_TEXT:
                    stack.append(element)
                    closing = re.compile(rf"</{re.escape(name)}(?=[\t\n\f\r />]|$)", re.I)
                    found = closing.search(src, end)
                    raw_end = found.start() if found else length
                    self._leaf("#raw", end, raw_end, element)
                    end = raw_end
                else:
                    stack.append(element)
            elif kind == "end":
                self._close(name, lt, end, stack)
            else:
                self._leaf("#other", lt, end, stack[-1])
            position = text_from = end
        self._leaf("#text", text_from, length, stack[-1])
        for element in stack[1:]:
            element.inner_end = element.end = length

    def _scan(self, lt: int) -> tuple[str, int, str, bool] | None:
        """What starts at a ``<``: (kind, end, tag name, self-closing), None if text."""
        src, length = self.src, len(self.src)
        if src.startswith("<!--", lt):
            for empty in ("<!-->", "<!--->"):
                if src.startswith(empty, lt):
                    return "other", lt + len(empty), "", False
            close = src.find("-->", lt + 4)
            return "other", length if close < 0 else close + 3, "", False
        if src.startswith("<![CDATA[", lt):
            close = src.find("]]>", lt)
            return "other", length if close < 0 else close + 3, "", False
        if src.startswith(("<!", "<?"), lt):
            close = src.find(">", lt)
            return "other", length if close < 0 else close + 1, "", False
        closing = src.startswith("</", lt)
        name_match = _TAG_NAME_RE.match(src, lt + (2 if closing else 1))
        if name_match is None:
            return None
        end = _tag_end(src, name_match.end())
        if end < 0:
            return "other", length, "", False  # a tag cut off by the end of input shows nothing
        self_closing = src[end - 2] == "/" and end - 2 >= name_match.end()
        return "end" if closing else "start", end, name_match.group().lower(), self_closing

    def _close(self, name: str, start: int, end: int, stack: list[_Node]) -> None:
        for depth in range(len(stack) - 1, 0, -1):
            if stack[depth].tag == name:
                break
        else:
            self._leaf("#stray", start, end, stack[-1])
            return
        for element in stack[depth + 1 :]:
            element.inner_end = element.end = start
        element = stack[depth]
        element.inner_end, element.end, element.closed = start, end, True
        self.tokens.append((start, end, "end", name))
        del stack[depth:]

    # -- text content ------------------------------------------------------------

    def _text_lines(self) -> list[_Line]:
        lines: list[_Line] = []
        chars: list[str] = []
        starts: list[int] = []
        ends: list[int] = []

        def line_break() -> None:
            if chars:
                line = _normalised_line("".join(chars), starts, ends)
                if line.text:
                    lines.append(line)
                chars.clear()
                starts.clear()
                ends.clear()

        work: list[tuple[_Node, bool]] = [(self.root, False)]
        while work:
            node, leaving = work.pop()
            if leaving:
                line_break()
                continue
            tag = node.tag
            if tag == "#text":
                self._decode(node.start, node.end, chars, starts, ends)
            elif tag == "br":
                line_break()
            elif tag == "#root" or not (tag.startswith("#") or tag in _HIDDEN):
                if tag in _BLOCK_LEVEL:
                    line_break()
                    work.append((node, True))
                work.extend((child, False) for child in reversed(node.children))
        line_break()
        return lines

    def _decode(
        self, start: int, end: int, chars: list[str], starts: list[int], ends: list[int]
    ) -> None:
        src = self.src
        position = start
        for entity in _ENTITY_RE.finditer(src, start, end):
            for offset in range(position, entity.start()):
                chars.append(src[offset])
                starts.append(offset)
                ends.append(offset + 1)
            for char in html.unescape(entity.group()):
                chars.append(char)
                starts.append(entity.start())
                ends.append(entity.end())
            position = entity.end()
        for offset in range(position, end):
            chars.append(src[offset])
            starts.append(offset)
            ends.append(offset + 1)

    # -- extent -------------------------------------------------------------------

    def _leaf_at(self, position: int) -> _Node:
        node = self.root
        while node.children:
            index = bisect.bisect_right([child.start for child in node.children], position) - 1
            if index < 0 or node.children[index].end <= position:
                return node
            node = node.children[index]
        return node

    def _tokens_from(self, position: int) -> Iterator[tuple[int, int, str, str]]:
        index = max(bisect.bisect_right(self.token_starts, position) - 1, 0)
        for token in self.tokens[index:]:
            if token[1] > position:
                yield token

    def _has_content(self, start: int, end: int) -> bool:
        """Whether [start, end) shows anything a person made: text or an image etc."""
        if start >= end:
            return False
        for token_start, token_end, kind, tag in self._tokens_from(start):
            if token_start >= end:
                break
            if kind in ("#text", "#raw"):
                segment = self.src[max(start, token_start) : min(end, token_end)]
                if html.unescape(segment).strip():
                    return True
            elif kind == "start" and tag in _CONTENT:
                return True
        return False

    def _growable(self, node: _Node) -> bool:
        if node.tag == "#text":
            return True
        return not node.tag.startswith("#") and node.closed and node.tag not in _STRUCTURAL

    def extent(self, piece: _Piece) -> tuple[int, int]:
        """Source range of a piece, grown to whole elements that hold nothing else.

        Growth stops at the first element that also holds a person's text, so the
        markup around the block is never part of the range; an element holding
        only the block (our wrapper, a provider's per-line ``<div>``) is.
        """
        start, end = _source_span(self.lines, piece)
        first, last = self._leaf_at(start), self._leaf_at(end - 1)
        last_chain: set[int] = set()
        node: _Node | None = last
        while node is not None:
            last_chain.add(id(node))
            node = node.parent
        common = first
        while id(common) not in last_chain:
            assert common.parent is not None
            common = common.parent
        node = first
        while node is not common and not self._has_content(node.inner_start, start):
            start = node.start
            assert node.parent is not None
            node = node.parent
        node = last
        while node is not common and not self._has_content(end, node.inner_end):
            end = node.end
            assert node.parent is not None
            node = node.parent
        node = common
        while (
            self._growable(node)
            and not self._has_content(node.inner_start, start)
            and not self._has_content(end, node.inner_end)
        ):
            start, end = node.start, node.end
            assert node.parent is not None
            node = node.parent
        return start, self._swallow_break(start, end)

    def _swallow_break(self, start: int, end: int) -> int:
        """Take the ``<br>`` ending a piece's line when the piece had the line to itself.

        Only for pieces that end in loose text (as when a provider dropped our
        wrapper): a piece that is a whole element already ends its own line.
        """
        before = self._neighbour(start, backwards=True)
        ending = next(self._tokens_from(end - 1), None)
        if ending is None or ending[2] != "#text":
            return end
        after = self._neighbour(end, backwards=False)
        if after is None or after[2] != "start" or after[3] != "br":
            return end
        if before is not None and not (
            before[3] == "br" or (before[2] in ("start", "end") and before[3] in _BLOCK_LEVEL)
        ):
            return end
        return after[1]

    def _neighbour(self, position: int, backwards: bool) -> tuple[int, int, str, str] | None:
        """The nearest token that is not blank text or a comment."""
        index = bisect.bisect_right(self.token_starts, position) - 1
        if not backwards:
            index = max(index, 0)
        while 0 <= index < len(self.tokens):
            token = self.tokens[index]
            index += -1 if backwards else 1
            token_start, token_end, kind, _ = token
            if backwards and token_start >= position:
                continue
            if not backwards and token_end <= position:
                continue
            if kind == "#other":
                continue
            if kind == "#text":
                low, high = (
                    (token_start, min(token_end, position))
                    if backwards
                    else (max(token_start, position), token_end)
                )
                if not html.unescape(self.src[low:high]).strip():
                    continue
            return token
        return None

    def deletions(self, start: int, end: int) -> list[tuple[int, int]]:
        """What to cut for [start, end): like a DOM range, tags of elements that
        reach outside the range stay, so the markup around it stays well formed."""
        cuts: list[tuple[int, int]] = []
        work = [self.root]
        while work:
            node = work.pop()
            for child in node.children:
                if child.end <= start or child.start >= end:
                    continue
                if start <= child.start and child.end <= end:
                    cuts.append((child.start, child.end))
                elif child.tag == "#text":
                    cuts.append((max(start, child.start), min(end, child.end)))
                elif not child.tag.startswith("#"):
                    work.append(child)
        return cuts

    def insertion_points(self) -> list[int]:
        """Where a new block may go, best first: before ``</body>``, at the end,
        and, for bodies whose end is inside a comment or cut-off tag, earlier."""
        points: list[int] = []
        body = next(self._elements("body"), None)
        if body is not None and body.closed:
            points.append(body.inner_end)
        points.append(len(self.src))
        if body is not None:
            points.append(body.inner_start)
        points.append(0)
        return list(dict.fromkeys(points))

    def _elements(self, tag: str) -> Iterator[_Node]:
        work = [self.root]
        while work:
            node = work.pop()
            if node.tag == tag:
                yield node
            work.extend(reversed(node.children))


def _block_markup(block_text: str) -> str:
    """The block as HTML: every line escaped, only an http(s) agenda url a link."""
    lines = block_text.split("\n")
    parts = []
    for index, line in enumerate(lines):
        url = line.removeprefix("Agenda: ")
        if index == 1 and url != line and _is_web_url(url):
            escaped = html.escape(url)
            parts.append(f'Agenda: <a href="{escaped}">{escaped}</a>')
        else:
            parts.append(html.escape(line))
    return '<div id="syncd-agenda">' + "<br>".join(parts) + "</div>"


def _is_web_url(url: str) -> bool:
    if not _URL_RE.fullmatch(url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _splice(
    src: str, cuts: Sequence[tuple[int, int]], at: int | None, insert: str
) -> tuple[str, int]:
    """``src`` without the cuts, with ``insert`` placed at ``at`` (a cut's start),
    and where ``insert`` ended up."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(cuts):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    out: list[str] = []
    size = 0
    placed_at = -1
    position = 0

    def keep(text: str) -> None:
        nonlocal size
        out.append(text)
        size += len(text)

    for start, end in merged:
        if placed_at < 0 and at is not None and at <= end:
            at_kept = min(max(at, position), start)
            keep(src[position:at_kept])
            placed_at = size
            keep(insert)
            keep(src[at_kept:start])
        else:
            keep(src[position:start])
        position = end
    if placed_at < 0 and at is not None:
        keep(src[position:at])
        placed_at = size
        keep(insert)
        position = at
    keep(src[position:])
    return "".join(out), placed_at


def _html_candidates(body: str, block_text: str) -> Iterator[tuple[str, int]]:
    markup = _block_markup(block_text)
    doc = _HtmlBody(body)
    if doc.pieces:
        ranges = [doc.extent(piece) for piece in doc.pieces]
        cuts = [cut for start, end in ranges for cut in doc.deletions(start, end)]
        keep = _kept(doc.pieces)
        if keep is not None:
            yield _splice(body, cuts, ranges[doc.pieces.index(keep)][0], markup)
        body = _splice(body, cuts, None, "")[0]
        doc = _HtmlBody(body)
    for point in doc.insertion_points():
        yield body[:point] + markup + body[point:], point


def _apply_html(body: str, block_text: str) -> tuple[str, bool]:
    # The first candidate is right for every body a provider produces. The
    # others only matter for broken markup (an unclosed comment or a cut-off tag
    # swallowing the block); checking that the block reads back as written and
    # that its extent is exactly what was inserted (so that the next apply
    # changes nothing) is simpler than modelling every such case.
    length = len(_block_markup(block_text))
    result = body
    for result, at in _html_candidates(body, block_text):
        doc = _HtmlBody(result)
        if (
            len(doc.pieces) == 1
            and doc.extent(doc.pieces[0]) == (at, at + length)
            and extract(result) == block_text
        ):
            return result, True
    return result, False


def _remove_html(body: str) -> str:
    doc = _HtmlBody(body)
    cuts = []
    for piece in doc.pieces:
        start, end = doc.extent(piece)
        cuts.extend(doc.deletions(start, end))
    return _splice(body, cuts, None, "")[0]


# ---------------------------------------------------------------------- public API


def extract(body: str) -> str | None:
    """The block's text as found in ``body``, normalised like render()'s output.

    Every block piece in the body is included (joined by ``\\n``), so the result
    equals render()'s output only when the body holds exactly one intact block:
    a duplicate or a stray marker makes it differ and so gets repaired. The body
    may be plain text or HTML; of the two readings, the one that finds a clean
    block wins, then the one that finds anything, then the body's looks.
    """
    if "─" not in body and "&" not in body:
        return None
    plain = _PlainBody(body)
    if "<" not in body and "&" not in body:
        return _joined(plain.pieces)
    markup = _HtmlBody(body)
    plain_clean, markup_clean = _is_clean(plain.pieces), _is_clean(markup.pieces)
    if plain_clean != markup_clean:
        return _joined(plain.pieces if plain_clean else markup.pieces)
    if bool(plain.pieces) != bool(markup.pieces):
        return _joined(plain.pieces or markup.pieces)
    if looks_html(body):
        return _joined(markup.pieces)
    return _joined(plain.pieces)


def apply(body: str, block_text: str, html: bool) -> str:
    """``body`` holding exactly one block, equal to ``block_text``.

    An existing block is replaced where it is; otherwise the block goes after the
    person's text (plain text: after one blank line; HTML: before ``</body>``).
    """
    _check_block_text(block_text)
    result = body
    # Removing a damaged piece can, in contrived bodies, join the text around it
    # into a new marker; another pass removes that too.
    for _ in range(4):
        result, settled = (_apply_html if html else _apply_plain)(result, block_text)
        if settled:
            break
    return result


@dataclass(frozen=True, slots=True)
class Listed:
    """What a rendered block lists, read back: the invite as a replica of the agenda.

    Names are as the block shows them (``display_name``), dates without a year;
    the caller maps them back. ``more`` counts what the "… and N more" lines
    say was left out, which no invite holds.
    """

    url: str | None
    talking_points: Sequence[tuple[str, str]] = ()  # (text, shown author or "")
    action_items: Sequence[tuple[str, str, tuple[int, int]]] = ()  # (text, owner, (month, day))
    more: int = 0
    #: points carried over from an earlier meeting: (text, shown author or "", (month, day))
    carried_points: Sequence[tuple[str, str, tuple[int, int]]] = ()


_POINT_LINE = re.compile(r"• (?P<text>.+?)(?: \((?P<who>[^()]+)\))?")
_CARRIED_LINE = re.compile(
    r"• (?P<text>.+?) \((?:(?P<who>[^()]+), )?from (?P<month>[A-Z][a-z]{2}) (?P<day>\d{1,2})\)"
)
_ITEM_LINE = re.compile(r"☐ (?P<rest>.+) \(from (?P<month>[A-Z][a-z]{2}) (?P<day>\d{1,2})\)")
_MORE_COUNT = re.compile(r"… and (\d+) more on the agenda page")


def parse(block_text: str, names: Sequence[str] = ()) -> Listed:
    """Read a block as render() writes it: its link, open talking points, open items.

    ``names`` are the names the block may show for authors and owners; a
    trailing ``(X)`` is an author only if X is one of them, so a point that
    ends in parentheses keeps them. Lines of other shapes are skipped.
    """
    url: str | None = None
    points: list[tuple[str, str]] = []
    items: list[tuple[str, str, tuple[int, int]]] = []
    carried: list[tuple[str, str, tuple[int, int]]] = []
    more = 0
    known = set(names)
    for line in block_text.split("\n"):
        if line.startswith("Agenda: ") and url is None:
            url = line.removeprefix("Agenda: ").strip() or None
        elif match := _MORE_COUNT.fullmatch(line):
            more += int(match[1])
        elif (
            (found := _CARRIED_LINE.fullmatch(line))
            and found["month"] in _MONTHS
            and (found["who"] is None or found["who"] in known)
        ):
            day = (_MONTHS.index(found["month"]) + 1, int(found["day"]))
            carried.append((found["text"], found["who"] or "", day))
        elif line.startswith("• "):
            text, who = line[2:], ""
            found = _POINT_LINE.fullmatch(line)
            if found and found["who"] in known:
                text, who = found["text"], found["who"]
            points.append((text, who))
        elif (found := _ITEM_LINE.fullmatch(line)) and found["month"] in _MONTHS:
            owner, _, text = found["rest"].partition(": ")
            if owner not in known or not text:
                owner, text = "", found["rest"]
            day = (_MONTHS.index(found["month"]) + 1, int(found["day"]))
            items.append((text, owner, day))
    return Listed(url, points, items, more, carried)


def remove(body: str, html: bool) -> str:
    """``body`` without any block or piece of one; inverse of apply() on a body
    that had no block."""
    if html:
        return _remove_html(body)
    return _remove_plain(body)
