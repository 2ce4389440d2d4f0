"""Shared fixtures and hypothesis profiles: `ci` is derandomized (set HYPOTHESIS_PROFILE=ci,
as .ci/run does); the default `dev` profile draws more examples."""
import os

pytest_plugins = ["pytester"]          # tests/test_testing.py runs the rnndsl plugin
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
SHARED_DATA = ROOT.parent / "shared" / "data"

settings.register_profile("ci", derandomize=True, max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# The suite compiles thousands of specs: on the NumPy backend, which needs no JIT. The numba
# backend is checked against it in tests/test_numba_backend.py (and by name where a test says so).
os.environ.setdefault("RNNDSL_BACKEND", "numpy")


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip: the suite must pass on a fresh clone without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
