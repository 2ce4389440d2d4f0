"""`rnndsl gradcheck SPEC --search N`: hypothesis draws N cases of a spec (dims, steps, batch,
lengths, seed, truncation window; rnndsl.testing.strategies.cases_for) and gradchecks each;
the first failure is shrunk to a minimal case, returned with the command that repeats it.
"""
from __future__ import annotations

from ..core.errors import SpecError
from .gradcheck import gradcheck


def search(path: str, examples: int, tol: float, dims: dict | None = None):
    """The minimal failing Case, or None if all `examples` cases pass; `dims` (--set) are
    held, the others drawn."""
    try:
        from hypothesis import HealthCheck, given, settings
        from ..testing.strategies import cases_for
    except ImportError:
        raise SpecError.at(None, "--search needs hypothesis", "pip install 'rnndsl[testing]'") from None
    failures = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(cases_for(path, dims=dims))
    def case_passes(case):
        try:
            ok = gradcheck(case.model(), case.steps, case.batch, case.seed, lengths=dict(case.lengths),
                           truncate=case.truncate).ok(tol)
        except Exception:                     # a crash (an index past an array) fails the case too
            ok = False
        if not ok:
            failures.append(case)             # the last one hypothesis tries is the shrunk one
            raise AssertionError(case.command())
    try:
        case_passes()
    except AssertionError:
        return failures[-1]
    return None


def parse_lengths(items: list, axes: tuple, batch: int) -> dict | None:
    """--lengths 3,1 (a model with one axis) or --lengths s=3,1 --lengths t=2,2 -> {axis: ints}."""
    if not items:
        return None
    out = {}
    for item in items:
        axis, sep, numbers = item.rpartition("=")
        axis = axis.strip() if sep else (axes[0] if len(axes) == 1 else "")
        if axis not in axes:
            raise SpecError.at(None, f"--lengths {item}: name an axis of the spec ({', '.join(axes)})",
                               "for example --lengths t=3,1")
        try:
            out[axis] = [int(n) for n in numbers.split(",")]
        except ValueError:
            raise SpecError.at(None, f"--lengths {item}: expected whole numbers separated by commas",
                               "for example --lengths 3,1") from None
        if len(out[axis]) != batch:
            raise SpecError.at(None, f"--lengths {item}: {len(out[axis])} lengths for a batch of {batch}",
                               "give one length per sequence (--batch)")
    missing = set(axes) - set(out)
    if missing:
        raise SpecError.at(None, f"--lengths misses axis {', '.join(sorted(missing))}", "give every axis")
    return out
