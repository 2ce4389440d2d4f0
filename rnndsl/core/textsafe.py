"""Text from a spec or from data, made safe to print on a terminal.

A spec's name, a path or a sampled character can hold terminal control sequences (ESC [ 2 J
clears the screen, OSC 52 writes the clipboard) or bidirectional overrides that make text read
otherwise than it runs. `printable` shows each such character as a Python escape (\\x1b,
\\u202e), as errors.printable does for error messages, but can keep some (sampled text keeps
its newlines and tabs).
"""
from __future__ import annotations

import re

from .errors import printable as _escaped


def printable(text, keep: str = "") -> str:
    """`text` with every character that is not printable escaped, except those in `keep`."""
    text = str(text)
    if text.isprintable() or not keep:
        return _escaped(text)
    parts = re.split(f"([{re.escape(keep)}])", text)
    return "".join(part if part and part in keep else _escaped(part) for part in parts)
