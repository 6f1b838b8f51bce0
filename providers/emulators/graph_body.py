"""Event bodies as Exchange stores them: always HTML, rewritten on the way in.

Graph returns an event body as HTML whatever was written, so a client that
writes text and reads it back must cope with markup it never sent. What the
emulator does, from bodies the real service returns:

* Written through the API as ``html``: a fragment is wrapped in a minimal
  document (``<html><head>`` with the UTF-8 ``meta`` line, ``<body>``, CRLF
  line ends); a whole document keeps its markup, and only gains the ``meta``
  line in its head when it has none.
* Written through the API as ``text``: HTML-escaped, lines joined with
  ``<br>``, in the same document with the extra ``charset=us-ascii`` meta line
  Exchange's text converter adds.
* Typed by a person in Outlook on the web (the world API): OWA's markup, a
  ``<style>`` block and one ``<div class="elementToProof">`` per paragraph.

Everything between the wrapper's tags is kept exactly as written, so text a
client put there comes back byte for byte. ``bodyPreview`` is the first 255
characters of the body's text with whitespace collapsed.
"""

from __future__ import annotations

import html
import re

from providers.body import readable

__all__ = ["from_api", "from_person", "preview", "to_text"]

_META = '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
_ASCII_META = '<meta content="text/html; charset=us-ascii">'
_OWA_STYLE = (
    '<style type="text/css" style="display:none">\r\n<!--\r\np\r\n\t{margin-top:0;\r\n'
    "\tmargin-bottom:0}\r\n-->\r\n</style>"
)
_OWA_DIV = (
    '<div class="elementToProof" style="font-family: Aptos, Aptos_EmbeddedFont, '
    'Aptos_MSFontService, Calibri, Helvetica, sans-serif; font-size: 12pt; color: rgb(0, 0, 0);">'
)
_DOCUMENT = re.compile(r"^\s*(<!doctype[^>]*>\s*)?<html[\s>]", re.IGNORECASE)
_HEAD_OPEN = re.compile(r"<head(\s[^>]*)?>", re.IGNORECASE)
_HAS_CHARSET = re.compile(r"<meta[^>]*charset", re.IGNORECASE)
_PREVIEW_LENGTH = 255


def _document(inner: str, *, head: str = _META, body_tag: str = "<body>") -> str:
    return (
        f"<html>\r\n<head>\r\n{head}\r\n</head>\r\n{body_tag}\r\n{inner}\r\n</body>\r\n</html>\r\n"
    )


def from_api(content: str, content_type: str) -> str:
    """The HTML Exchange keeps for a body written through Graph (``contentType`` text or html)."""
    if content == "":
        return ""
    if content_type == "text":
        lines = html.escape(content, quote=False).replace("\r\n", "\n").split("\n")
        return _document("<br>\r\n".join(lines), head=f"{_META}\r\n{_ASCII_META}")
    if not _DOCUMENT.match(content):
        return _document(content)
    if _HAS_CHARSET.search(content):
        return content
    head = _HEAD_OPEN.search(content)
    if head is None:
        opening = re.search(r"<html[^>]*>", content, re.IGNORECASE)
        assert opening is not None  # _DOCUMENT matched
        cut = opening.end()
        return f"{content[:cut]}<head>\r\n{_META}\r\n</head>{content[cut:]}"
    cut = head.end()
    return f"{content[:cut]}\r\n{_META}{content[cut:]}"


def from_person(text: str, *, is_html: bool) -> str:
    """What Outlook on the web saves when a person types ``text`` (or pastes HTML) as a body."""
    if text == "":
        return ""
    if is_html:
        inner = text
    else:
        paragraphs = text.replace("\r\n", "\n").split("\n")
        inner = "\r\n".join(
            f"{_OWA_DIV}{html.escape(line, quote=False) or '<br>'}</div>" for line in paragraphs
        )
    return (
        f"<html><head>\r\n{_META}\r\n{_OWA_STYLE}\r\n</head>\r\n"
        f'<body dir="ltr">\r\n{inner}\r\n</body>\r\n</html>\r\n'
    )


def to_text(body: str) -> str:
    """The body as ``Prefer: outlook.body-content-type="text"`` returns it (CRLF lines)."""
    return "\r\n".join(readable(body, True).split("\n"))


def preview(body: str) -> str:
    return " ".join(to_text(body).split())[:_PREVIEW_LENGTH]
