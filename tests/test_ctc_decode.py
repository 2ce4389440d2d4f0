"""CTC decoding against an exhaustive oracle: on tiny random posteriors every alignment is
enumerated, collapsed and summed per label sequence; a prefix beam wide enough to keep every
prefix must find the likeliest labelling with its exact probability, and any narrower beam
must never claim more probability than a labelling has."""
import itertools

import numpy as np
from hypothesis import given, strategies as st

from rnndsl.training import ctcdecode


def posteriors(seed: int, T: int, K: int, sharp: float = 3.0) -> np.ndarray:
    y = np.random.default_rng(seed).normal(0, sharp, (T, K))
    return y - np.logaddexp.reduce(y, axis=-1, keepdims=True)


def exhaustive(logp: np.ndarray, blank: int) -> dict:
    """Every label sequence's log-probability: the sum over all K^T alignments that yield it."""
    out: dict = {}
    T, K = logp.shape
    for path in itertools.product(range(K), repeat=T):
        labels = ctcdecode.collapse(path, blank)
        out[labels] = np.logaddexp(out.get(labels, -np.inf), logp[np.arange(T), path].sum())
    return out


tiny = st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 5), st.integers(2, 3))


@given(tiny, st.integers(0, 1))
def test_a_beam_that_keeps_every_prefix_finds_the_likeliest_labelling(case, blank):
    seed, T, K = case
    logp = posteriors(seed, T, K)
    truth = exhaustive(logp, blank)
    found = ctcdecode.prefix_beam(logp, K ** T, blank)
    best = max(truth.values())
    assert np.isclose(found[0][1], best, rtol=0, atol=1e-9)
    assert np.isclose(truth[found[0][0]], best, rtol=0, atol=1e-9)
    for labels, score in found:                       # every prefix kept has its exact probability
        assert np.isclose(score, truth[labels], rtol=0, atol=1e-9)


@given(tiny, st.integers(1, 3))
def test_a_narrow_beam_never_overstates_a_labelling(case, width):
    seed, T, K = case
    logp = posteriors(seed, T, K)
    truth = exhaustive(logp, 0)
    found = ctcdecode.prefix_beam(logp, width, 0)
    assert 1 <= len(found) <= width
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    for labels, score in found:
        assert score <= truth[labels] + 1e-9


@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.integers(2, 6), st.integers(0, 1))
def test_beam_one_without_merging_is_greedy(seed, T, K, blank):
    logp = posteriors(seed, T, K)
    [(labels, score)] = ctcdecode.path_beam(logp, 1, blank)
    assert labels == ctcdecode.greedy(logp, blank)
    assert np.isclose(score, logp.max(axis=-1).sum())


@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.integers(2, 3))
def test_a_path_beam_wide_enough_finds_the_best_alignment(seed, T, K):
    logp = posteriors(seed, T, K)
    best = max(logp[np.arange(T), p].sum() for p in itertools.product(range(K), repeat=T))
    assert np.isclose(ctcdecode.path_beam(logp, K ** T, 0)[0][1], best)


def test_merging_finds_a_labelling_that_no_single_alignment_wins():
    q = np.log(np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]))
    assert ctcdecode.greedy(q, 0) == ()                 # the best alignment (-, -): 0.25
    # P((1,)) = (1, -) + (-, 1) + (1, 1) = 0.15 + 0.15 + 0.09 = 0.39
    labels, score = ctcdecode.prefix_beam(q, 2, 0)[0]
    assert labels == (1,) and np.isclose(np.exp(score), 0.39)


def test_an_empty_utterance_decodes_to_nothing():
    empty = np.zeros((0, 3))
    assert ctcdecode.greedy(empty) == () and ctcdecode.prefix_beam(empty, 2) == [((), 0.0)]
