"""Names in specs, and user text on a terminal.

A name (of a factory, station, product, calendar, worker pool, scenario) is what people read
in tables and reports: printable text without control characters, so a name cannot forge a
line of output or move the cursor. Anything else a user typed that reaches a terminal
(an unknown key, a value in a message) goes through :func:`safe_text`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

MAX_NAME = 200

if TYPE_CHECKING:  # what the lazy attribute below is, for type checkers
    Name = Annotated[str, ...]


def __getattr__(attr: str) -> Any:
    # ``Name`` is built on first use (PEP 562): the command line's parser prints safe text before
    # anything loads pydantic (tests/test_imports.py)
    if attr != "Name":
        raise AttributeError(f"module 'twin.names' has no attribute {attr!r}")
    from pydantic import StringConstraints

    global Name
    Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]
    """A name: 1-200 characters, no control characters (newlines, tabs, escape codes), no
    bidirectional or invisible format characters."""
    return Name


# Characters that change how the text around them is shown without being seen themselves:
# bidirectional embeddings, overrides and isolates (U+202E turns "abc" into "cba" on screen,
# a "Trojan source" trick), marks, zero-width spaces, line and paragraph separators, the
# byte-order mark. The joiners U+200C/U+200D stay: scripts and emoji need them.
_INVISIBLE = r"\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u2069\ufeff"
_NOT_IN_NAME = rf"\x00-\x1f\x7f-\x9f{_INVISIBLE}"  # a character class's body
NAME_PATTERN = rf"^[^{_NOT_IN_NAME}]+$"
"""What a name matches (the regular expression the spec's JSON Schema states too)."""
_CONTROL = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE}]")  # tab and newline kept: our own layout
_BAD_IN_NAME = re.compile(rf"[{_NOT_IN_NAME}]")


def name_problem(text: str) -> str:
    """Why ``text`` is no name (the first character a name may not hold, by its code point)."""
    m = _BAD_IN_NAME.search(text)
    if m is None:
        return "a name is 1-200 characters"
    return (f"a name is printable text without control, bidirectional or invisible format characters; "
            f"found U+{ord(m.group()):04X} at position {m.start() + 1}")


def safe_text(text: str, keep_newlines: bool = True) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``), so that user text on a
    terminal prints as what it is; newlines stay when ``keep_newlines`` (our own line breaks)."""
    out = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)
    return out if keep_newlines else out.replace("\n", "\\n")
