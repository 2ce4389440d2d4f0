"""The NumPy backend's helpers against their plain definitions."""
import numpy as np
import pytest

from rnndsl.backends.numpy import helpers
from rnndsl.core import kernels


@pytest.mark.parametrize("T", [1, 2, 5])
@pytest.mark.parametrize("k", [-1, -2, -6])
@pytest.mark.parametrize("fill", ["none", "rows", "param"])
def test_outer_sum_shifted_is_the_gradient_through_a_shifted_copy(T, k, fill):
    rng = np.random.default_rng(T * 10 - k)
    B, m, n = 3, 4, 5
    dy, x = rng.normal(size=(T, B, m)), rng.normal(size=(T, B, n))
    f = {"none": None, "rows": rng.normal(size=(B, n)), "param": rng.normal(size=n)}[fill]
    shifted = helpers.shift(np, x, k, f)
    want = kernels.matmul_vjp(np, dy, shifted, side=0, ra=2, rb=1, summed=1)
    np.testing.assert_allclose(helpers.outer_sum_shifted(np, dy, x, k, f), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("T", [1, 2, 5])
@pytest.mark.parametrize("k", [1, 2, 6])
@pytest.mark.parametrize("ragged", [False, True])
def test_outer_sum_shifted_ahead_is_the_gradient_through_a_masked_shifted_copy(T, k, ragged):
    """x[t + k]: zeros after the end, and past each sequence's own end when lengths differ."""
    rng = np.random.default_rng(T * 10 + k)
    B, m, n = 3, 4, 5
    dy, x = rng.normal(size=(T, B, m)), rng.normal(size=(T, B, n))
    lengths = np.array([T, max(T - 1, 1), 1]) if ragged else np.full(B, T)
    valid = np.arange(T)[:, None] < lengths[None, :]
    shifted = helpers.shift(np, x, k, None, valid)
    want = kernels.matmul_vjp(np, dy, shifted, side=0, ra=2, rb=1, summed=1)
    np.testing.assert_allclose(helpers.outer_sum_shifted(np, dy, x, k, None, valid), want, rtol=1e-12, atol=1e-12)
