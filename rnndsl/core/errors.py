"""Source positions and compiler errors.

Every mistake in a spec or in data becomes a `SpecError` holding one or more
`Diagnostic`s, each printed like a compiler error:

    specs/x.yaml:12:17: error: shape mismatch in W_hh @ h[t-1]: [H=16, H=16] @ [E=8]
       12 |   h[t] = tanh(W_xh @ x[t] + W_hh @ h[t-1] + b)
          |                             ^~~~~~~~~~~~~
    hint: did you mean W_xh?
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class Source:
    """A spec file's path and text, so errors can quote the offending line."""
    path: str
    text: str

    def line(self, number: int) -> str:
        lines = self._lines
        return lines[number - 1].rstrip("\r") if 1 <= number <= len(lines) else ""

    @cached_property
    def _lines(self) -> list:
        """Split once, not per quoted line."""
        return self.text.split("\n")        # as YAML counts lines (spec.parse_yaml normalises breaks)


@dataclass(frozen=True)
class SourcePos:
    """A span in a spec file; lines and columns count from 1, `end_*` is exclusive."""
    source: Source = field(compare=False, repr=False)
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    @property
    def path(self) -> str:
        return self.source.path

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    pos: SourcePos | None
    message: str
    hint: str = ""
    severity: str = "error"          # or "warning": printed, not raised (rnndsl check)

    def format(self) -> str:
        """The error as printed: paths, messages and hints carry text from specs, file names
        and data, so their control characters are escaped (an ANSI escape from a spec never
        reaches the terminal raw)."""
        where = f"{printable(self.pos)}: " if self.pos else ""
        out = [f"{where}{self.severity}: {printable(self.message)}"]
        if self.pos:
            out += _quote(self.pos)
        if self.hint:
            out.append("hint: " + "\n".join(printable(line) for line in self.hint.split("\n")))   # a listing may take lines
        return "\n".join(out)


def printable(text) -> str:
    """`text` safe to print: each non-printable character (control characters, line breaks,
    ANSI escapes, lone surrogates) written as its Python escape, as repr writes it."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


QUOTE_WIDTH = 100       # longer lines are quoted around the caret


def _quote(pos: SourcePos) -> list[str]:
    """The source line and a caret under the span (a single caret if it spans lines)."""
    text = "".join(c if c.isprintable() else " " for c in pos.source.line(pos.line))  # a column each
    if not text.strip():
        return []
    width = pos.end_col - pos.col if pos.end_line == pos.line and pos.end_col > pos.col else 1
    text, col = _window(text, pos.col)
    width = max(1, min(width, len(text) - col + 1))
    gutter = f"{pos.line:>5} | "
    caret = " " * (col - 1) + "^" + "~" * (width - 1)
    return [gutter + text, " " * (len(gutter) - 2) + "| " + caret]


def _window(text: str, col: int) -> tuple[str, int]:
    """At most QUOTE_WIDTH characters of a long line around column `col`, and its column there."""
    if len(text) <= QUOTE_WIDTH:
        return text, col
    start = max(0, min(col - 1 - QUOTE_WIDTH // 3, len(text) - QUOTE_WIDTH))
    head = "..." if start else ""
    tail = "..." if start + QUOTE_WIDTH < len(text) else ""
    return head + text[start:start + QUOTE_WIDTH] + tail, col - start + len(head)


class SpecError(Exception):
    """A user error in a spec or its data: one or more located diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__(self.format())

    @classmethod
    def at(cls, pos: SourcePos | None, message: str, hint: str = "") -> "SpecError":
        return cls(Diagnostic(pos, message, hint))

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]

    @property
    def message(self) -> str:
        return self.first.message

    @property
    def path(self) -> str | None:
        return self.first.pos.path if self.first.pos else None

    @property
    def line(self) -> int | None:
        return self.first.pos.line if self.first.pos else None

    @property
    def col(self) -> int | None:
        return self.first.pos.col if self.first.pos else None

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)


class Diagnostics:
    """Collects independent errors so one run reports them all (miniwdl's multi_context)."""

    def __init__(self):
        self.items: list[Diagnostic] = []

    def add(self, pos: SourcePos | None, message: str, hint: str = "") -> None:
        self.items.append(Diagnostic(pos, message, hint))

    def extend(self, error: SpecError) -> None:
        self.items.extend(error.diagnostics)

    def check(self) -> None:
        """Raise everything collected so far, in source order."""
        if self.items:
            key = lambda d: (d.pos.line, d.pos.col) if d.pos else (0, 0)
            raise SpecError(sorted(_once(self.items), key=key))


def _once(items: list) -> list:
    """Each diagnostic once: the equations `i, f = split(...)` makes share a mistake."""
    seen, out = set(), []
    for d in items:
        key = (d.pos.line, d.pos.col, d.pos.end_line, d.pos.end_col) if d.pos else None, d.message, d.hint
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def did_you_mean(name: str, candidates) -> str:
    """A hint naming the closest candidate, or '' when nothing is close."""
    close = difflib.get_close_matches(name, sorted(c for c in candidates if c != name), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else ""


class DataError(SpecError):
    """A mistake in data fed to a model (a missing input, a wrong shape, a bad class index)."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(Diagnostic(None, message, hint))
