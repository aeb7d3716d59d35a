"""Text the CLI shows a person: quoted user input, and a filter on every line printed.

Two layers, because only the first knows where a value starts and ends:

* :func:`quote` -- every message that quotes user input (a parameter value, a name, a path)
  goes through it: ``repr``-like (control characters and newlines *inside* the value escaped
  as ``\\x1b``, ``\\n``), and cut to its first characters with the full length said, so a
  100 MB value is never echoed.
* :func:`escape_controls` -- applied to every line the CLI prints (:func:`out`, :func:`err`,
  :class:`EscapingWriter`): C0 and C1 control characters (ESC, CSI, CR, backspace, DEL...)
  and the invisible bidirectional-text and line-separator characters become ``\\x..`` /
  ``\\u....``, so nothing from a parameter, a path or an AWS message can move the cursor,
  recolour the terminal or paint a fake "run succeeded". Newline and tab are kept: the CLI
  itself separates lines with them.
"""

from __future__ import annotations

import re
import reprlib
import sys
from typing import TextIO

__all__ = [
    "QUOTE_LIMIT",
    "EscapingWriter",
    "clip",
    "err",
    "escape_controls",
    "out",
    "quote",
]

QUOTE_LIMIT = 60
"""Characters of a quoted value shown in a message."""

CLIP_LIMIT = 600
"""Characters of a library's message (e.g. a YAML syntax error) shown in a message."""

# C0 but newline and tab; DEL and C1; ALM; LRM, RLM; line and paragraph separators;
# bidirectional embeddings, overrides and isolates ("Trojan Source").
_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character but newline and tab written as an escape."""
    return _CONTROLS.sub(_escape, text)


_SHORT = reprlib.Repr()
_SHORT.maxlevel = 2
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxfrozenset = 6
_SHORT.maxdict = 4
_SHORT.maxstring = QUOTE_LIMIT
_SHORT.maxother = QUOTE_LIMIT


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``value`` for a message: ``repr``-like, at most ``limit`` characters of it.

    >>> quote("CHG-1")
    "'CHG-1'"
    >>> quote("x" * 100, limit=3)
    "'xxx'… (100 characters)"
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return escape_controls(repr(value))
        return escape_controls(f"{value[:limit]!r}… ({len(value)} characters)")
    text = _SHORT.repr(value)  # bounded however large the list or mapping
    if len(text) > 2 * limit:
        text = f"{text[: 2 * limit]}…"
    return escape_controls(text)


def clip(text: str, limit: int = CLIP_LIMIT) -> str:
    """Another library's message (which may quote the input): escaped, at most ``limit``
    characters. Its own newlines are kept."""
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text)} characters)"
    return escape_controls(text)


def out(line: str = "", *, flush: bool = False) -> None:
    """Print one line (or several, newline-separated) to stdout, control characters escaped."""
    print(escape_controls(line), flush=flush)


def err(line: str) -> None:
    """Print to stderr, control characters escaped."""
    print(escape_controls(line), file=sys.stderr, flush=True)


class EscapingWriter:
    """A text stream that escapes control characters on the way to ``target``: for code the
    CLI calls that prints by itself (``contextlib.redirect_stdout``)."""

    def __init__(self, target: TextIO) -> None:
        self._target = target

    def write(self, text: str) -> int:
        self._target.write(escape_controls(text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()
