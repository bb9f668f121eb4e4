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
    Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]
    """A name: 1-200 characters, no control characters (newlines, tabs, escape codes)."""
    return Name

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_text(text: str, keep_newlines: bool = True) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``), so that user text on a
    terminal prints as what it is; newlines stay when ``keep_newlines`` (our own line breaks)."""
    out = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return out if keep_newlines else out.replace("\n", "\\n")
