"""rnndsl.tools.bench: FLOP counts against a hand count, and a tiny benchmark that runs. The
PyTorch parts are skipped where torch is not installed (CI has none)."""
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


@pytest.mark.parametrize("kind, bidirectional", [("lstm", False), ("rnn", False), ("lstm", True)])
def test_torch_reference_is_the_same_network(kind, bidirectional):
    pytest.importorskip("torch")
    run = _run_module()
    spec = {"rnn": "elman.yaml", "lstm": "bilstm.yaml" if bidirectional else "lstm.yaml"}[kind]
    shape = run.Shape("tiny", spec, kind, T=5, B=3, I=6, H=7, K=4, bidirectional=bidirectional)
    result = run.run_shape(shape, repeat=1, warmup=0, use_torch=True, dtype="float32", details_wanted=False)
    assert result.extra["loss_rnndsl"] == pytest.approx(result.extra["loss_torch"], rel=1e-5)
    assert result.extra["torch_train"].median > 0


def test_torch_reference_is_none_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)        # import torch raises ImportError
    assert bench.torch_reference("lstm", 2, 1, 3, 4) is None
    np.testing.assert_equal(bench._torch(), None)
