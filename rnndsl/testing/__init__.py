"""Property-based tests of a spec's gradients, for users' own specs (docs/testing.md).

    from rnndsl.testing import cases_for, assert_gradients, ...

Needs hypothesis (pip install 'rnndsl[testing]'); names load on first use, so the pytest
plugin (plugin.py), which every pytest run in this environment imports, stays cheap.
"""
from importlib import import_module

_HOMES = {"specs": "strategies", "dims_for": "strategies", "inputs_for": "strategies", "params_for": "strategies",
          "cases_for": "strategies", "lengths_for": "strategies", "Case": "case",
          "assert_matches_interpreter": "assertions", "assert_gradients": "assertions",
          "assert_truncation_exact": "assertions", "assert_padding_invariant": "assertions",
          "assert_float32_close": "assertions", "near_a_kink": "assertions", "check_case": "battery"}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'rnndsl.testing' has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
