"""Render a report document to Markdown (images beside it) or one self-contained HTML page.

A document is a list of blocks (:class:`Heading`, :class:`Text`, :class:`Bullets`,
:class:`~sweeps.report.tables.Table`, :class:`~sweeps.report.figures.Figure`); each output
format is a registry of one function per block type.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sweeps.report.figures import Figure
from sweeps.report.tables import Entry, Table

__all__ = ["FORMATS", "Bullets", "Heading", "Text", "to_html", "to_markdown"]


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


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_entry(entry: Entry) -> str:
    return "".join(
        f"**{_md_escape(s.text)}**" if s.bold and s.text.strip() else _md_escape(s.text)
        for s in entry
    )


def _md_table(t: Table) -> str:
    lines = [f"### {t.title}", ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in t.header) + " |")
    lines.append("|" + "|".join("---" for _ in t.header) + "|")
    lines += ["| " + " | ".join(_md_entry(e) for e in row) + " |" for row in t.rows]
    if t.caption:
        lines += ["", f"*{t.caption}*"]
    return "\n".join(lines)


_MARKDOWN: dict[type, Callable] = {
    Heading: lambda b: f"{'#' * b.level} {b.text}",
    Text: lambda b: b.text,
    Bullets: lambda b: "\n".join(f"- {item}" for item in b.items),
    Table: _md_table,
    Figure: lambda b: f"![{b.caption}]({b.name})\n\n*{b.caption}*",
}


def to_markdown(blocks: Sequence[Block]) -> str:
    """Markdown; figures are referenced by file name (written beside the .md file)."""
    return "\n\n".join(_MARKDOWN[type(b)](b) for b in blocks) + "\n"


def _h(text: str) -> str:
    return html.escape(text, quote=True)


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
