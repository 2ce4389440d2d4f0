"""Beam search for generation: width 1 is greedy sampling; a beam wide enough to keep every
sequence finds exactly what enumerating every sequence (each scored by one forward pass over
the whole of it) finds; all rows go through one forward pass per step."""
import functools
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rnndsl
from rnndsl.core import kernels
from rnndsl.core.errors import DataError
from rnndsl.training import beam, generate

from conftest import ROOT


@functools.lru_cache(maxsize=None)
def model_of(name: str):
    return rnndsl.compile(str(ROOT / "specs" / f"{name}.yaml"), dtype="float64")


def sharp_params(model, seed: int) -> dict:
    params = model.init_params(seed)
    return {k: v * 4.0 for k, v in params.items()}          # a sharper distribution than the init's


def source(model, seed: int, steps: int) -> dict:
    """An unbatched context for the inputs off the generated axis (a source sentence, an image)."""
    rng = np.random.default_rng(seed)
    out = {}
    feed = model.spec.generate.feed[0][0]
    axis = next(i.axis for i in model.spec.inputs if i.name == feed)
    for inp in model.spec.inputs:
        if inp.axis == axis:
            continue
        if inp.type.kind.name == "FLOAT":
            out[inp.name] = rng.normal(size=((steps,) if inp.axis else ()) + inp.type.dims)
        else:
            out[inp.name] = rng.integers(0, inp.type.classes.value, (steps,) if inp.axis else ())
    return out


@pytest.mark.parametrize("name", ["char_rnn", "lstm", "ffnn_lm", "captioning", "seq2seq"])
@given(seed=st.integers(0, 2**16), stop=st.integers(0, 3), steps=st.integers(1, 5))
def test_beam_one_is_greedy(name, seed, stop, steps):
    model = model_of(name)
    params = sharp_params(model, seed)
    context = source(model, seed, steps)
    greedy = generate.generate(model, params, [1, 2], 10, temperature=0, context=context, stop=stop)
    [[best]] = beam.search(model, params, [[1, 2]], 1, 10, stop, context=generate.batch_of_one(model.spec, context))
    assert list(best.ids) == greedy
    assert best.finished == (greedy[-1] == stop)


def whole_logp(model, params, prime: list, ids: tuple, context: dict) -> float:
    """log p(ids | prime) from one forward pass over prime + ids, not the beam's steps."""
    seq = list(prime) + list(ids)
    inputs = generate._batch_of_one(model.spec, model.spec.generate.feed[0][0], seq[:-1], context)
    tape = model.forward(params, inputs)
    logp = kernels.log_softmax(np, np.asarray(tape[model.spec.generate.feed[0][1]])[:, 0])
    return float(sum(logp[len(prime) - 1 + i, c] for i, c in enumerate(ids)))


def every_sequence(classes: int, stop: int, length: int):
    """Every continuation: ending at `stop`, or `length` long without it."""
    others = [c for c in range(classes) if c != stop]
    for n in range(length):
        yield from (p + (stop,) for p in itertools.product(others, repeat=n))
    yield from itertools.product(others, repeat=length)


@pytest.mark.parametrize("name, dims", [("char_rnn", {}), ("seq2seq", {"V": 5, "W": 4, "H": 6})])
@settings(max_examples=8)                     # each enumerates 67 sequences
@given(seed=st.integers(0, 2**16), alpha=st.sampled_from([0.0, 0.7, 1.0]))
def test_a_beam_that_keeps_everything_ranks_like_enumeration(name, dims, seed, alpha):
    model = rnndsl.compile(str(ROOT / "specs" / f"{name}.yaml"), dtype="float64", dims=dims) if dims else model_of(name)
    params = sharp_params(model, seed)
    context, stop, length, prime = source(model, seed, 3), 3, 3, [0]
    truth = {ids: whole_logp(model, params, prime, ids, context) for ids in every_sequence(4, stop, length)}
    found = beam.search(model, params, [prime], 1000, length, stop, alpha,
                        context=generate.batch_of_one(model.spec, context))[0]
    assert {h.ids for h in found} == set(truth)
    for h in found:
        assert h.logp == pytest.approx(truth[h.ids], abs=1e-9)
    scores = [h.score(alpha) for h in found]
    assert scores == sorted(scores, reverse=True)
    assert found[0].score(alpha) == pytest.approx(max(v / len(k) ** alpha for k, v in truth.items()), abs=1e-9)


def test_every_hypothesis_of_a_step_goes_through_one_forward_pass(monkeypatch):
    model = model_of("lstm")
    params = sharp_params(model, 0)
    calls = []
    forward = model.module.forward
    monkeypatch.setattr(model.module, "forward", lambda *a: calls.append(a[1]["x"].shape) or forward(*a))
    found = beam.search(model, params, [[1, 2, 3]], 5, 6)[0]
    assert len(found) == 5 and all(len(h.ids) == 6 for h in found)
    assert calls == [(3, 1)] + [(1, 5)] * 5          # the prime once, then one step for all 5 rows


def test_a_batch_of_examples_decodes_as_each_alone():
    model = model_of("seq2seq")
    params = sharp_params(model, 4)
    rng = np.random.default_rng(0)
    sources = [rng.integers(0, 30, n) for n in (2, 5, 3)]
    padded = np.zeros((5, 3), np.int64)
    for b, s in enumerate(sources):
        padded[:len(s), b] = s
    context = {"src": padded, "lengths": {"s": np.array([2, 5, 3])}}
    together = beam.search(model, params, [[0]] * 3, 3, 8, stop=1, context=context)
    for b, s in enumerate(sources):
        alone = beam.search(model, params, [[0]], 3, 8, stop=1, context=generate.batch_of_one(model.spec, {"src": s}))
        assert [h.ids for h in together[b]] == [h.ids for h in alone[0]]
        assert [h.logp for h in together[b]] == pytest.approx([h.logp for h in alone[0]], abs=1e-10)


def test_length_normalisation_prefers_longer_finished_sequences():
    found = [beam.Hypothesis((1, 3), -2.0, True), beam.Hypothesis((1, 1, 1, 3), -3.0, True)]
    assert max(found, key=lambda h: h.score(0.0)).ids == (1, 3)
    assert max(found, key=lambda h: h.score(1.0)).ids == (1, 1, 1, 3)      # -0.75 beats -1.0


def test_misuse_is_a_clear_error():
    model = rnndsl.compile(str(ROOT / "specs" / "birnn.yaml"), dtype="float64")
    with pytest.raises(DataError, match="no generate: section"):
        beam.search(model, model.init_params(0), [[1]], 3, 5)
    lm = model_of("char_rnn")
    with pytest.raises(DataError, match="non-empty prime"):
        beam.search(lm, lm.init_params(0), [[]], 3, 5)
