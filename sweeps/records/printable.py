"""Strings from MLflow made safe to print on a terminal.

Run names, tags and error messages come from an MLflow server that every sweep account
writes to; printed raw, an escape sequence in one could rewrite the terminal (move the
cursor, hide lines, set the window title). :func:`printable` shows every control character
as a visible ``\\xNN`` / ``\\uNNNN`` escape instead.
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable"]


def printable(text: str) -> str:
    """``text`` with control and format characters (ESC, CR, BEL, C1 controls, bidi marks)
    escaped; everything else unchanged."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)
