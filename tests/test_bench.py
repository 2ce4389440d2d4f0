"""rnndsl.tools.bench: FLOP counts against a hand count, and a tiny benchmark that runs. The
PyTorch parts are skipped where torch is not installed (CI has none)."""
import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import rnndsl
from rnndsl.tools import bench

ROOT = Path(__file__).resolve().parent.parent

TINY = """
name: tiny
dims: {I: 3, H: 4, K: 2}
inputs:
  x:      {float: [I], axis: t}
  target: {index: K, axis: t}
params:
  W_xh: {shape: [H, I]}
  W_hh: {shape: [H, H]}
  b_h:  {shape: [H], init: zeros}
  W_hy: {shape: [K, H]}
  b_y:  {shape: [K], init: zeros}
state:
  h: {init: zeros}
equations: |
  h[t] = tanh(W_xh @ x[t] + W_hh @ h[t-1] + b_h)
  y[t] = W_hy @ h[t] + b_y
loss: mean_t cross_entropy(y[t], target[t])
"""


def test_flops_match_a_hand_count():
    spec = rnndsl.loads_spec(TINY)
    T, B = 5, 2
    # per step and sequence, forward: W_xh @ x 2*4*3, W_hh @ h 2*4*4, two adds of 4, tanh 4;
    # W_hy @ h 2*2*4, + b_y 2; cross_entropy 2 (its largest operand), mean_t 1
    fwd = 24 + 32 + 4 + 4 + 4 + 16 + 2 + 2 + 1
    # backward: W_xh @ x once (x is an input: dW only), the other matmuls twice (dW and dv),
    # every other op twice its forward
    bwd = 24 + 2 * 32 + 2 * (4 + 4 + 4) + 2 * 16 + 2 * (2 + 2 + 1)
    f = bench.flops(spec, T, B)
    assert f.forward == fwd * T * B
    assert f.train == (fwd + bwd) * T * B
    assert f.backward == bwd * T * B


def test_flops_of_a_onehot_input_skip_the_gather():
    spec = rnndsl.load_spec(ROOT / "specs" / "elman.yaml", dims={"V": 4, "H": 16})
    f = bench.flops(spec, {"t": 3}, 1)
    # W_xh @ onehot x is a gather: only W_hh @ h (2*16*16) and W_hy @ h (2*4*16) are GEMMs
    assert f.forward == 3 * (512 + 128 + 16 + 16 + 16 + 4 + 4 + 1)


def test_gemms_fuse_the_gates_and_hoist_the_input():
    spec = rnndsl.load_spec(ROOT / "benchmarks" / "specs" / "lstm.yaml", dims={"I": 8, "H": 16, "K": 4})
    g = {(x.phase, x.count, x.m, x.n, x.k) for x in bench.gemms(spec, 10, 3)}
    assert ("forward", 1, 30, 64, 8) in g          # W @ x[t] for all steps, four gates in one
    assert ("forward", 10, 3, 64, 16) in g         # U @ h[t-1] per step, four gates in one
    assert ("backward", 10, 3, 16, 64) in g        # dh[t-1] per step
    assert not any(p == "backward" and (m, n) == (30, 8) for p, _, m, n, _ in g)   # no dx


def test_bench_runs_on_a_tiny_shape():
    r = bench.bench(TINY, T=4, B=2, repeat=2, warmup=1)
    assert r.forward.median > 0 and r.train.median > 0
    assert r.forward_gflops > 0 and r.train_gflops > 0
    assert r.flops.train > r.flops.forward > 0
    assert "tiny" in bench.report([r])


def test_bench_feeds_training_masks_to_a_spec_with_dropout():
    prepared = bench.prepare(ROOT / "specs/lstm_dropout.yaml", 5, 3, {"V": 7, "E": 4, "H": 6})
    masks = {k: a for k, a in prepared["arrays"].items() if k.startswith("_drop")}
    assert masks and all(a.dtype == np.float32 for a in masks.values())
    assert set(np.unique(np.concatenate([a.ravel() for a in masks.values()]))) <= {0.0, np.float32(1 / 0.75)}
    prepared["train"]()                                     # was a KeyError on the first mask


def test_timing_and_gemm_helpers():
    t = bench.interleave({"a": lambda: None, "b": lambda: sum(range(100))}, repeat=5, warmup=1)
    assert set(t) == {"a", "b"} and all(len(x.times) == 5 and x.spread >= 0 for x in t.values())
    assert bench.numpy_gemm_gflops(16, 16, 16, repeat=3) > 0
    seconds, rate, shapes = bench.gemm_bound([bench.Gemm(2, 8, 8, 8, "forward")])
    assert seconds > 0 and rate > 0 and (8, 8, 8) in shapes
    with bench.thread_cap(1):
        pass


def _run_module():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


def _tiny(run, case: str):
    """A benchmark case (run.SHAPES) at a tiny size: same spec and PyTorch network."""
    shape = {s.name: s for s in run.SHAPES}[case]
    T = 12 if shape.kind == "deepspeech" else 5          # CTC: 5 labels need 11 frames
    return dataclasses.replace(shape, name="tiny", T=T, B=3, I=6, H=7, K=4)


CASES = ["lstm", "lstm-b1", "gru", "bilstm", "deepspeech", "elman"]


@pytest.mark.parametrize("case", CASES)
def test_torch_reference_is_the_same_network(case):
    pytest.importorskip("torch")
    run = _run_module()
    result = run.run_shape(_tiny(run, case), repeat=1, warmup=0, use_torch=True, dtype="float32",
                           details_wanted=False)
    assert result.extra["loss_rnndsl"] == pytest.approx(result.extra["loss_torch"], rel=1e-5)
    assert result.extra["torch_train"].median > 0 and result.extra["compared"]
    row = bench.report([result]).splitlines()[-1]
    assert "torch % of GEMM" in bench.report([result]) and row.count("%") == 6   # 4 spreads, 2 shares


@pytest.mark.parametrize("case", ["lstm", "gru", "bilstm", "deepspeech", "elman"])
def test_torch_reference_agrees_on_loss_and_gradients_at_random_weights(case):
    """Random weights and biases (init leaves biases zero, which would hide a misplaced one,
    such as the GRU's b_hn), float64: the same loss and the same gradients."""
    pytest.importorskip("torch")
    run = _run_module()
    shape = _tiny(run, case)
    prepared = bench.prepare(ROOT / shape.spec, shape.T, shape.B, shape.dims, "float64")
    params, rng = prepared["params"], np.random.default_rng(1)
    params.update({k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()})
    ref = run.references.reference(shape, prepared)
    ours, theirs = run.same_loss(shape, prepared, ref)
    assert ours == pytest.approx(theirs, rel=1e-10)
    _, grads = prepared["model"].loss_and_grad(params, {**prepared["arrays"], "lengths": prepared["lengths"]})
    ref["train"]()
    theirs = {name: getattr(ref[name.split(".")[0]], name.split(".")[1]).grad.numpy()
              for name in run.references.weights(shape, params)}
    compared = run.references.weights(shape, grads)
    if shape.kind == "deepspeech":                 # one bias b4 is torch's two directions' bias_ih
        theirs["rnn.bias_ih_l0"] = theirs["rnn.bias_ih_l0"] + theirs.pop("rnn.bias_ih_l0_reverse")
        del compared["rnn.bias_ih_l0_reverse"]
    compared = {k: v for k, v in compared.items() if "bias_hh" not in k}   # torch's, held at zero
    assert len(compared) >= 4
    for name, value in compared.items():
        np.testing.assert_allclose(theirs[name], value, rtol=1e-8, atol=1e-10, err_msg=name)


def test_cases_and_default_set(capsys):
    run = _run_module()
    names = [s.name for s in run.SHAPES]
    assert run.DEFAULT == ["lstm", "lstm-big", "lstm-b1", "gru", "bilstm", "deepspeech"]
    assert set(run.DEFAULT) < set(names) and len(set(names)) == len(names)
    for shape in run.SHAPES:
        assert (ROOT / shape.spec).is_file() and shape.kind in run.references.COMPARED
    with pytest.raises(SystemExit):
        run.main(["--shapes", "lstm,nope"])
    err = capsys.readouterr().err
    assert "nope" in err and all(name in err for name in names)


def test_torch_reference_is_none_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)        # import torch raises ImportError
    assert bench.torch_reference("lstm", 2, 1, 3, 4) is None
    np.testing.assert_equal(bench._torch(), None)
