"""Per-model state (issue 9, item 10): models compiled from the same spec share one emitted
module (cached by its source), but what backward() keeps between calls, its adjoint buffers,
belongs to the caller: each model and each thread has its own, and worker processes theirs.
Two models (and one model) used from two threads at once give exactly their single-threaded
results."""
import sys
import threading

import numpy as np
import pytest

import rnndsl
from rnndsl.semantics.inputs import random_batch

from conftest import ROOT

ROUNDS = 25


def _model(name: str = "lstm", **dims):
    return rnndsl.compile(str(ROOT / "specs" / f"{name}.yaml"), dims=dims or None)


def _run(model, params, batch) -> tuple:
    step = model.step(params, batch, truncate=4)
    return step.loss, step.losses, step.grads, step.final


def _same(got: tuple, want: tuple, what: str) -> None:
    assert got[0] == pytest.approx(want[0], rel=1e-12), what
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, err_msg=what)
    assert sorted(got[2]) == sorted(want[2])
    for k in want[2]:
        np.testing.assert_allclose(got[2][k], want[2][k], rtol=1e-10, atol=1e-14, err_msg=f"{what}: d{k}")
    for k in want[3]:
        np.testing.assert_allclose(got[3][k], want[3][k], rtol=1e-12, err_msg=f"{what}: final {k}")


def _concurrently(jobs: list) -> None:
    """Run each (model, params, batch, expected) job ROUNDS times in its own thread, all
    starting together; every round's result must equal the expected one."""
    start, errors = threading.Barrier(len(jobs)), []

    def work(i, model, params, batch, want):
        try:
            start.wait()
            for r in range(ROUNDS):
                _same(_run(model, params, batch), want, f"thread {i}, round {r}")
        except BaseException as e:          # reported by the main thread
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i, *job)) for i, job in enumerate(jobs)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)                 # switch threads often: inside every backward()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    if errors:
        raise errors[0]


def _jobs(models: list, batches: list) -> list:
    """Different parameters and batches per job, and their single-threaded results."""
    jobs = []
    for i, (model, batch) in enumerate(zip(models, batches)):
        params = {k: v + 0.05 * i for k, v in model.init_params(seed=i).items()}
        jobs.append((model, params, batch, _run(model, params, batch)))
    return jobs


@pytest.mark.parametrize("name", ["lstm", "birnn", "seq2seq"])
def test_two_models_of_one_spec_in_two_threads_give_their_own_results(name):
    a, b = _model(name, H=8), _model(name, H=8)
    assert a.module is b.module                  # the premise: one module for both
    batches = [random_batch(a.spec, 9, 4, seed=1), random_batch(a.spec, 9, 4, seed=2)]
    _concurrently(_jobs([a, b], batches))


def test_one_model_in_two_threads_keeps_a_buffer_set_per_thread():
    model = _model(H=8)
    same_shape = [random_batch(model.spec, 7, 3, seed=s) for s in (3, 4)]
    other_shape = random_batch(model.spec, 11, 5, seed=5)          # buffers of another size
    _concurrently(_jobs([model, model, model], same_shape + [other_shape]))


def test_buffers_are_reused_from_call_to_call_and_fresh_without_a_dict():
    """The speed scratch exists for: a model's second step writes into the same arrays; and
    backward() without a dict (the standalone module's default) gives the same numbers."""
    model = _model(H=8)
    params, batch = model.init_params(seed=0), random_batch(model.spec, 6, 3, seed=0)
    first = _run(model, params, batch)
    kept = dict(model.buffers())
    assert kept
    _same(_run(model, params, batch), first, "second call")
    assert all(model.buffers()[k] is v for k, v in kept.items())
    from rnndsl.semantics.inputs import prepare
    prepared = prepare(model.spec, batch)
    tape = model.module.forward(params, prepared.arrays, prepared.lengths, model.dtype)
    fresh = model.module.backward(params, tape, 4)
    for k in first[2]:
        np.testing.assert_allclose(fresh[k], first[2][k], rtol=1e-12, err_msg=k)
    assert not set(vars(model.module)) & {"_SCRATCH", "SCRATCH"}     # no module-level buffers


