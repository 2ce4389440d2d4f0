"""The battery `pytest --rnndsl-spec SPEC` runs (plugin.py), one test per property, each a
hypothesis search over cases of the spec (strategies.cases_for). A failure is shrunk to a
small case and printed with the `rnndsl gradcheck` command that repeats it.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, note, settings

from .assertions import (assert_float32_close, assert_gradients, assert_matches_interpreter,
                         assert_padding_invariant, assert_truncation_exact, near_a_kink)
from .plugin import profile_name
from .strategies import cases_for
from ..semantics.timegraph import analyse

_QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.differing_executors]
# one bug at a time: a dropped mask fails as an IndexError in one case and a wrong value in the next
settings.register_profile("rnndsl-ci", derandomize=True, max_examples=8, deadline=None, database=None,
                          suppress_health_check=_QUIET, report_multiple_bugs=False)
settings.register_profile("rnndsl-thorough", max_examples=100, deadline=None, suppress_health_check=_QUIET,
                          report_multiple_bugs=False)


def check_case(path, check, profile: str = "rnndsl-ci", truncation: bool = False) -> None:
    """Run `check(case)` on the cases of the spec file at `path` that hypothesis draws under
    `profile` (a registered hypothesis profile, used for this search alone)."""
    @settings(settings.get_profile(profile))
    @given(cases_for(str(path), truncation))
    def search(case):
        note(f"reproduce: {case.command()}")
        check(case)
    search()


@pytest.fixture
def profile(request) -> str:
    return profile_name(request.config)


def forward(case) -> None:
    model = case.model()
    params, inputs, _ = case.point(model)
    assert_matches_interpreter(model, params, inputs)


def gradients(case) -> None:
    model = case.model()
    params, inputs, rng = case.point(model)
    assert_gradients(model, params, inputs, rng=rng)


def truncation(case) -> None:
    model = case.model()
    params, inputs, rng = case.point(model)
    assert_truncation_exact(model, params, inputs, case.truncate, rng=rng)


def padding(case) -> None:
    model = case.model()
    params, inputs, _ = case.point(model)
    assert_padding_invariant(model, params, inputs, seed=case.seed)


def float32(case) -> None:
    model = case.model()
    params, inputs, _ = case.point(model)
    assume(not near_a_kink(model.spec, params, inputs))      # float32 rounding may cross it
    assert_float32_close(model, params, inputs)


def test_forward_matches_the_interpreter(rnndsl_spec, profile):
    check_case(rnndsl_spec, forward, profile)


def test_gradients_match_finite_differences(rnndsl_spec, profile):
    check_case(rnndsl_spec, gradients, profile)


def test_truncated_bptt_is_the_sum_of_window_gradients(rnndsl_spec, profile):
    from ..pipeline import load_spec
    if not analyse(load_spec(rnndsl_spec)).recurrences:
        pytest.skip("no recurrence: truncated BPTT has nothing to cut")
    check_case(rnndsl_spec, truncation, profile, truncation=True)


def test_padding_changes_nothing(rnndsl_spec, profile):
    check_case(rnndsl_spec, padding, profile)


def test_float32_agrees_with_float64(rnndsl_spec, profile):
    check_case(rnndsl_spec, float32, profile)
