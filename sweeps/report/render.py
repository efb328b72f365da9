"""Render a report document to Markdown (images beside it) or one self-contained HTML page.

A document is a list of blocks (:class:`Heading`, :class:`Text`, :class:`Bullets`,
:class:`~sweeps.report.tables.Table`, :class:`~sweeps.report.figures.Figure`); each output
format is a registry of one function per block type.

Every string is plain text, whatever its source: run params, tags and error messages come
from MLflow, where anyone who can log a run can write them. They reach the page only through
:func:`md_escape` (Markdown) and :func:`html_escape` (HTML), so ``<img onerror=...>`` or
``[a](javascript:...)`` in a param shows as those characters. The one markup a text may
carry is a ``code span`` in :class:`Text` and :class:`Bullets` (:func:`md_text`).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from sweeps.report.figures import Figure
from sweeps.report.tables import Entry, Table

__all__ = [
    "FORMATS",
    "Bullets",
    "Heading",
    "Text",
    "html_escape",
    "md_escape",
    "md_text",
    "to_html",
    "to_markdown",
]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]


Block = Heading | Text | Bullets | Table | Figure


# Characters Markdown (CommonMark with GitHub's tables) or inline HTML read as markup:
# backslash, code, emphasis, raw HTML and autolinks, entities, cell borders; "]" where it
# would close a link or image ("](", "][", "]:"; a "[...]" alone is text); "_" where it can
# delimit emphasis (not inside a word such as val_acc).
_MD_MARKUP = re.compile(r"[\\`*<>&|]|\](?=[(\[:])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# A block opened by a value's first characters: heading, bullet or numbered list item, and a
# "[" that could start a link reference definition.
_MD_LINE_START = re.compile(r"^(\s*|\s*\d{1,9})(#|[-+]|(?<=\d)[.)])(?=\s|#|$)|^(\s*)(\[)")


def md_escape(text: str) -> str:
    """``text`` as Markdown that renders as exactly that text: markup characters are
    backslash-escaped, and line breaks become spaces so no value can open a block."""
    flat = " ".join(str(text).splitlines())
    escaped = _MD_MARKUP.sub(lambda m: "\\" + m.group(0), flat)
    return _MD_LINE_START.sub(
        lambda m: (m.group(1) or m.group(3) or "") + "\\" + (m.group(2) or m.group(4)), escaped
    )


def md_text(text: str) -> str:
    """:func:`md_escape`, except that balanced backticks keep marking code spans (whose
    content Markdown never reads as markup)."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an odd number of backticks: no code, all text
        return md_escape(text)
    return "".join(
        md_escape(part) if i % 2 == 0 else "`" + " ".join(part.splitlines()) + "`"
        for i, part in enumerate(parts)
    )


def _md_entry(entry: Entry) -> str:
    return "".join(
        f"**{md_escape(s.text)}**" if s.bold and s.text.strip() else md_escape(s.text)
        for s in entry
    )


def _md_table(t: Table) -> str:
    lines = [f"### {md_escape(t.title)}", ""]
    lines.append("| " + " | ".join(md_escape(h) for h in t.header) + " |")
    lines.append("|" + "|".join("---" for _ in t.header) + "|")
    lines += ["| " + " | ".join(_md_entry(e) for e in row) + " |" for row in t.rows]
    if t.caption:
        lines += ["", f"*{md_escape(t.caption)}*"]
    return "\n".join(lines)


def _md_figure(f: Figure) -> str:
    caption = md_escape(f.caption)
    return f"![{caption}]({quote(f.name)})\n\n*{caption}*"


_MARKDOWN: dict[type, Callable] = {
    Heading: lambda b: f"{'#' * b.level} {md_escape(b.text)}",
    Text: lambda b: md_text(b.text),
    Bullets: lambda b: "\n".join(f"- {md_text(item)}" for item in b.items),
    Table: _md_table,
    Figure: _md_figure,
}


def to_markdown(blocks: Sequence[Block]) -> str:
    """Markdown; figures are referenced by file name (written beside the .md file)."""
    return "\n\n".join(_MARKDOWN[type(b)](b) for b in blocks) + "\n"


def html_escape(text: str) -> str:
    """``text`` as HTML text or attribute value (``&``, ``<``, ``>`` and quotes escaped)."""
    return html.escape(str(text), quote=True)


_h = html_escape


def _html_entry(entry: Entry) -> str:
    return "".join(f"<b>{_h(s.text)}</b>" if s.bold else _h(s.text) for s in entry)


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in t.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_html_entry(e)}</td>" for e in row) + "</tr>" for row in t.rows
    )
    caption = f"<p class='caption'>{_h(t.caption)}</p>" if t.caption else ""
    return (
        f"<h3>{_h(t.title)}</h3><div class='scroll'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>{caption}"
    )


def _html_figure(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    stem = f.name.rsplit(".", 1)[0]
    return (
        f"<figure id='{_h(stem)}'><img alt='{_h(f.caption)}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{_h(f.caption)}</figcaption></figure>"
    )


_HTML: dict[type, Callable] = {
    Heading: lambda b: f"<h{b.level}>{_h(b.text)}</h{b.level}>",
    Text: lambda b: f"<p>{_h(b.text)}</p>",
    Bullets: lambda b: "<ul>" + "".join(f"<li>{_h(i)}</li>" for i in b.items) + "</ul>",
    Table: _html_table,
    Figure: _html_figure,
}

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.scroll{overflow-x:auto}.caption,figcaption{color:#555;font-size:12px;font-style:italic}
figure{margin:1em 0}img{max-width:100%;height:auto}
"""


def to_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained HTML page: inline CSS, figures embedded as base64 PNG."""
    body = "\n".join(_HTML[type(b)](b) for b in blocks)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_h(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


FORMATS = ("md", "html", "json")
