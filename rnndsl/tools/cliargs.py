"""Argument types of the command line: each refuses a value outside its documented range
(limits.py) with one line saying what it expected, before any work starts.

    whole(lo, hi)   --steps, --batch, --repeat, --threads, --length, --index
    seed            --seed: 0 up to 2^63 - 1 (NumPy's generators take no negative seed)
    workers         --workers: 1 up to the machine's cores (at most MAX_WORKERS)
    tolerance       gradcheck --tol: a relative error from 0 to 1 (never NaN)
    temperature     sample --temperature: 0 (greedy) or from MIN_TEMPERATURE up, finite
    alpha           sample and eval --length-norm: from 0 to 10
"""
from __future__ import annotations

import argparse
import os

from ..core import limits


def whole(lo: int, hi: int):
    """An argparse type: a whole number from `lo` to `hi`."""
    def parse(text: str) -> int:
        value = _int(text)
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected a whole number from {lo:,} to {hi:,}, got {text!r}")
        return value
    parse.__name__ = "whole number"
    return parse


def _int(text: str) -> int | None:
    text = text.strip()
    if not text.lstrip("+-").isdigit() or len(text) > 30:      # int() of 5,000 digits is an error
        return None
    return int(text)


seed = whole(0, limits.MAX_SEED)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def workers(text: str) -> int:
    top = min(limits.MAX_WORKERS, cores())
    value = _int(text)
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more, got {text!r}")
    if value > top:
        raise argparse.ArgumentTypeError(f"{value} workers, but this machine has {cores()} cores and each "
                                         f"worker needs one: use {top} or fewer")
    return value


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def tolerance(text: str) -> float:
    value = _float(text)
    if value is None or not 0 <= value <= 1:         # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"expected a relative error from 0 to 1, such as 1e-6, got {text!r}")
    return value


def temperature(text: str) -> float:
    value = _float(text)
    problem = limits.temperature_problem(value) if value is not None else "is not a number"
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} {problem}")
    return value


def alpha(text: str) -> float:
    """--length-norm: a finite number, 0 (rank by log-probability) or more."""
    value = _float(text)
    if value is None or not 0 <= value <= 10:          # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"expected a length-normalisation exponent from 0 to 10, such as 0.6, "
                                         f"got {text!r}")
    return value
