"""Data parallelism over the batch (rnndsl.runtime.parallel): sharing a batch out to worker processes
gives the loss, per-sequence losses, gradients and final states of one pass over the whole
batch; a worker that fails or dies is reported, and the next call starts afresh."""
import io
import os
import signal

import numpy as np
import pytest

import rnndsl
from rnndsl.runtime import parallel, worker
from rnndsl.training import train
from rnndsl.semantics.inputs import random_batch

from conftest import ROOT
from test_train import assert_same_params, cli, params_of, write_reviews

# one of each kind: two axes and a static value, a backward chain, CTC, a static image input
SPECS = ["seq2seq", "birnn", "rnn_acoustic_ctc", "captioning", "lstm"]


@pytest.fixture
def models():
    made = []

    def make(name, workers):
        model = rnndsl.compile(str(ROOT / "specs" / f"{name}.yaml"), dtype="float64").use_workers(workers)
        made.append(model)
        return model
    yield make
    for model in made:
        model.close()


@pytest.mark.parametrize("name", SPECS)
def test_shared_batches_give_the_whole_batch_result(models, name):
    here, shared = models(name, 1), models(name, 3)
    params = here.init_params(1)
    batch = random_batch(here.spec, 6, 5, seed=3)              # ragged lengths: shares trimmed apart
    whole, parts = here.step(params, batch), shared.step(params, batch)
    assert len(shared.workers.procs) == 2
    assert parts.loss == pytest.approx(whole.loss, rel=1e-12)
    np.testing.assert_allclose(parts.losses, whole.losses, rtol=1e-12)
    assert sorted(parts.grads) == sorted(whole.grads)
    for k in whole.grads:
        np.testing.assert_allclose(parts.grads[k], whole.grads[k], rtol=1e-10, atol=1e-14, err_msg=k)
    for k in whole.final:
        np.testing.assert_allclose(parts.final[k], whole.final[k], rtol=1e-12, err_msg=k)


def test_carry_truncation_and_forward_only_steps_are_shared_too(models):
    here, shared = models("rnn_lm", 1), models("rnn_lm", 2)
    params = here.init_params(0)
    batch = random_batch(here.spec, 7, 4, seed=1, ragged=False)
    carry = here.step(params, batch, grad=False).final
    whole = here.step(params, batch, carry=carry, truncate=3)
    parts = shared.step(params, batch, carry=carry, truncate=3)
    for k in whole.grads:
        np.testing.assert_allclose(parts.grads[k], whole.grads[k], rtol=1e-10, atol=1e-14, err_msg=k)
    ahead = shared.step(params, batch, carry=carry, grad=False)
    assert ahead.grads == {} and ahead.loss == pytest.approx(here.step(params, batch, carry=carry).loss)


def test_a_batch_smaller_than_the_workers_starts_only_what_it_needs(models):
    model = models("elman", 4)
    params = model.init_params(0)
    model.step(params, random_batch(model.spec, 5, 1, seed=0))
    assert model.workers.procs == []                            # one sequence: run here
    model.step(params, random_batch(model.spec, 5, 2, seed=0))
    assert len(model.workers.procs) == 1


def test_a_worker_that_dies_is_reported_and_the_next_call_starts_afresh(models):
    model = models("elman", 2)
    params, batch = model.init_params(0), random_batch(model.spec, 5, 4, seed=0)
    expected = model.step(params, batch).loss
    os.kill(model.workers.procs[0].pid, signal.SIGKILL)
    model.workers.procs[0].wait()
    with pytest.raises(parallel.WorkerError, match="stopped answering.*--workers 1"):
        model.step(params, batch)
    assert model.workers.procs == []
    assert model.step(params, batch).loss == expected


def test_an_error_in_a_worker_comes_back_with_its_traceback(models):
    model = models("elman", 2)
    model.workers._start(1)
    worker.send(model.workers.procs[0].stdin, {"op": "run", "dtype": "float64", "truncate": None, "grad": True})
    with pytest.raises(parallel.WorkerError, match="KeyError.*\n.*Traceback"):
        model.workers._answer(model.workers.procs[0])
    assert model.workers.procs == []


def test_messages_carry_numbers_and_nothing_else():
    stream = io.BytesIO()
    arrays = {"p:W": np.arange(6.0).reshape(2, 3).T, "l:t": np.array([3, 1]), "e": np.zeros((0, 4), np.float32)}
    worker.send(stream, {"op": "run", "x": 1}, arrays)
    stream.seek(0)
    header, got = worker.recv(stream)
    assert header == {"op": "run", "x": 1}
    for k, a in arrays.items():
        assert got[k].dtype == a.dtype and np.array_equal(got[k], a)
    stream = io.BytesIO()
    worker.send(stream, {"op": "run"}, {"o": np.array([object()], dtype=object)[:0].astype("U1")})
    stream.seek(0)
    with pytest.raises(ValueError, match="only numbers travel"):
        worker.recv(stream)
    with pytest.raises(EOFError):
        worker.recv(io.BytesIO(b"\x10\x00"))


def test_shares_are_even_and_never_empty():
    assert parallel._shares(5, 2) == [(0, 2), (2, 5)]
    assert parallel._shares(2, 4) == [(0, 1), (1, 2)]
    assert parallel._shares(7, 1) == [(0, 7)]


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-9)])
def test_training_with_workers_gives_the_same_run(tmp_path, capsys, dtype, tol):
    """The same run up to rounding: float32 (train's default) sums a batch's shares in another order."""
    reviews = write_reviews(tmp_path / "reviews.npz")
    sets = ["--set", "V=6", "--set", "E=4", "--set", "H=5", "--set", "K=2", "--set", "batch=4",
            "--set", "epochs=2", "--dtype", dtype]
    for name, workers in (("one", "1"), ("two", "2")):
        code, out, err = cli(capsys, "train", ROOT / "specs/sentiment.yaml", "--data", reviews, "--out",
                             tmp_path / name, "--quiet", "--workers", workers, *sets)
        assert code == 0, err
    one, two = params_of(tmp_path / "one"), params_of(tmp_path / "two")
    assert sorted(one) == sorted(two) and {p.dtype for p in two.values()} == {np.dtype(dtype)}
    for k in one:
        np.testing.assert_allclose(two[k], one[k], rtol=tol, atol=tol * 1e-3, err_msg=k)


def test_workers_must_be_a_positive_count(capsys):
    with pytest.raises(SystemExit):
        cli(capsys, "train", ROOT / "specs/char_rnn.yaml", "--workers", "0")
    assert "1 or more" in capsys.readouterr().err


def test_ctrl_c_while_workers_compute_resumes_to_the_same_parameters(tmp_path, monkeypatch, capsys):
    reviews = write_reviews(tmp_path / "reviews.npz")
    sets = {"V": 6, "E": 4, "H": 5, "K": 2, "batch": 4, "epochs": 2}
    train.train(str(ROOT / "specs/sentiment.yaml"), reviews, tmp_path / "A", sets, quiet=True, workers=2)
    share, calls = parallel._run_here, [0]

    def interrupted(*args):
        calls[0] += 1
        if calls[0] == 5:                  # this process's share of the fifth batch, workers busy
            raise KeyboardInterrupt
        return share(*args)
    with monkeypatch.context() as m:
        m.setattr(parallel, "_run_here", interrupted)
        with pytest.raises(train.Interrupted):
            train.train(str(ROOT / "specs/sentiment.yaml"), reviews, tmp_path / "B", sets, quiet=True, workers=2)
    code, out, err = cli(capsys, "train", "--resume", tmp_path / "B", "--quiet", "--workers", "2")
    assert code == 0, err
    assert_same_params(params_of(tmp_path / "A"), params_of(tmp_path / "B"))


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-12)])
def test_workers_run_a_numba_backend_module(dtype, tol):
    """A worker executes the source it is sent, here with its kernels compiled by numba in the
    worker (no patching: what runs is what the source says): one process's results."""
    pytest.importorskip("numba")
    path = str(ROOT / "specs" / "lstm.yaml")
    here = rnndsl.compile(path, backend="numba", dtype=dtype)
    pool = rnndsl.compile(path, backend="numba", dtype=dtype).use_workers(2)
    try:
        params = here.init_params(1)
        batch = random_batch(here.spec, 6, 4, seed=2)
        whole, parts = here.step(params, batch), pool.step(params, batch)
        assert len(pool.workers.procs) == 1
    finally:
        pool.close()
    assert "numba.njit(" in pool.source and parts.loss == pytest.approx(whole.loss, rel=tol)
    for k in whole.grads:
        scale = max(float(np.abs(whole.grads[k]).max()), 1e-3)
        np.testing.assert_allclose(parts.grads[k], whole.grads[k], rtol=0, atol=10 * tol * scale, err_msg=k)


@pytest.mark.parametrize("shared", [True, False], ids=["shared memory", "pipes"])
def test_parameters_and_gradients_travel_by_shared_memory_or_by_pipe(models, monkeypatch, shared):
    if not shared:
        monkeypatch.delattr(os, "memfd_create", raising=False)
    elif not hasattr(os, "memfd_create"):
        pytest.skip("no memfd here")
    here, pool = models("lstm", 1), models("lstm", 2)
    params = here.init_params(0)
    for seed in (1, 2):                                   # a second step with other data reuses the regions
        batch = random_batch(here.spec, 5, 4, seed=seed)
        whole, parts = here.step(params, batch), pool.step(params, batch)
        for k in whole.grads:
            np.testing.assert_allclose(parts.grads[k], whole.grads[k], rtol=1e-10, atol=1e-14, err_msg=k)
        params = {k: v - 0.1 * whole.grads[k] for k, v in params.items()}
    assert (pool.workers.params is not None) == shared
