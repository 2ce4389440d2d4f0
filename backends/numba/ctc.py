"""CTC's alpha and beta recursions as loops over (sequence, frame, label) for numba.

The NumPy forms in rnndsl/core/kernels.py run about fifteen calls per frame on (B, 2U+1)
arrays, so at a speech model's sizes (T=200, B=16) the recursions are Python call overhead.
Compiled, each is one pass over the lattice. Same arguments, same results to rounding, so
a module swaps them in by name.
"""
import numpy as np


def _lse3(a, b, c):
    """log(e^a + e^b + e^c) with the largest term factored out: two exps and a log1p."""
    if a < b:
        a, b = b, a
    if a < c:
        a, c = c, a
    if a == -np.inf:
        return -np.inf
    return a + np.log1p(np.exp(b - a) + np.exp(c - a))


def _ctc_alpha_loops(lp, skip):
    T, B, S = lp.shape
    alpha = np.full(lp.shape, -np.inf)
    for b in range(B):
        for s in range(min(S, 2)):
            alpha[0, b, s] = lp[0, b, s]
        for t in range(1, T):
            for s in range(S):
                one = alpha[t - 1, b, s - 1] if s >= 1 else -np.inf
                two = alpha[t - 1, b, s - 2] if s >= 2 and skip[b, s] else -np.inf
                alpha[t, b, s] = _lse3(alpha[t - 1, b, s], one, two) + lp[t, b, s]
    return alpha


def _ctc_beta_loops(lp, skip, t_end, s_end):
    T, B, S = lp.shape
    beta = np.full(lp.shape, -np.inf)
    for b in range(B):
        if t_end[b] < 0:
            continue
        last, end = t_end[b], s_end[b]
        beta[last, b, end] = lp[last, b, end]
        if end >= 1:
            beta[last, b, end - 1] = lp[last, b, end - 1]
        for t in range(last - 1, -1, -1):
            for s in range(S):
                one = beta[t + 1, b, s + 1] if s + 1 < S else -np.inf
                two = beta[t + 1, b, s + 2] if s + 2 < S and skip[b, s + 2] else -np.inf
                beta[t, b, s] = _lse3(beta[t + 1, b, s], one, two) + lp[t, b, s]
    return beta


LOOPS = {"_lse3": _lse3, "_ctc_alpha": _ctc_alpha_loops, "_ctc_beta": _ctc_beta_loops}
