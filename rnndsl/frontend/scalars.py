"""Plain YAML scalars read by YAML 1.2's core schema, not pyyaml's YAML 1.1.

pyyaml reads `1:30` as 90 (base 60), `017` as 15, `1_000` as 1000, `yes` and `on` as true and
`2024-01-01` as a date, yet `1e-3` as text. A spec reads numbers, booleans and null as YAML 1.2
does (so `yes` and dates stay text); a YAML 1.1 number form that YAML 1.2 reads otherwise is
refused with a hint: it means one number to one reader and another number, or text, to the
next. `--set NAME=VALUE` values are read the same way.
"""
from __future__ import annotations

import re

import yaml

MAX_DIGITS = 100            # no spec number needs more; Python's int() refuses over 4,300
_NULL = ("", "~", "null", "Null", "NULL")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)\Z")
_NAN = re.compile(r"\.(nan|NaN|NAN)\Z")
_YAML11 = re.compile(r"[-+]?([0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?"      # base 60: 1:30
                     r"|0[bBoOxX][0-9a-fA-F_]+|0[0-9]+"                    # 0x1F, 0o17, 0b101, 017
                     r"|[0-9][0-9_]*_[0-9_]*(\.[0-9_]*)?|[0-9]*\.[0-9_]*_[0-9_]*)\Z")   # 1_000, 0.000_1


def _readings(text: str) -> tuple:
    """(YAML 1.1's value, YAML 1.2's value) of a plain scalar that _YAML11 matches."""
    try:
        old = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):
        old = text
    body = text.lstrip("+-")
    new = int(text, 0) if re.match(r"0[xo][0-9a-fA-F]+\Z", body) else int(text) if body.isdigit() else text
    return old, new


def resolve_plain(text: str):
    """The value of a plain scalar: None, a bool, an int, a float or the text itself.
    Raises ValueError(message, hint) for a YAML 1.1 number form or an overlong integer."""
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    digits = len(text.lstrip("+-"))
    if (_INT.match(text) or _YAML11.match(text)) and digits > MAX_DIGITS:
        raise ValueError(f"a number of {digits:,} digits", f"a spec's numbers have at most {MAX_DIGITS} digits")
    if _YAML11.match(text):
        old, new = _readings(text)
        if old != new or isinstance(new, str):
            raise ValueError(f"ambiguous number {text}: YAML 1.1 reads it as {old!r}, YAML 1.2 as {new!r}",
                             "write the number in plain decimal, or put it in quotes if it is text")
        return new
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if _INF.match(text):
        return float("-inf") if text.startswith("-") else float("inf")
    return float("nan") if _NAN.match(text) else text
