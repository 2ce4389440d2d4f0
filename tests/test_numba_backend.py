"""The numba backend (backends/numba/): the NumPy backend's program with each kernel one
compiled loop. Its numbers must be the NumPy backend's (float64: to 1e-10; float32: to float32
rounding of a few ops) and the interpreter's, on every shipped spec and on generated ones."""
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnndsl
from rnndsl import backends
from rnndsl.semantics.inputs import random_batch

from conftest import ROOT, SPECS
from test_backend import assert_forward_matches, random_specs, setup

pytest.importorskip("numba")


def assert_backends_agree(spec, dtype: str, seed: int = 0) -> None:
    plain = rnndsl.compile(spec, backend="numpy", dtype=dtype)
    fast = rnndsl.compile(spec, backend="numba", dtype=dtype)
    params = plain.init_params(seed)
    inputs = random_batch(plain.spec, 6, 3, seed)                 # ragged lengths: masks too
    loss, grads = plain.loss_and_grad(params, inputs)
    fast_loss, fast_grads = fast.loss_and_grad(params, inputs)
    tol = 1e-10 if dtype == "float64" else 2e-4
    assert fast_loss == pytest.approx(loss, rel=tol, abs=tol)
    for name, g in grads.items():
        scale = max(float(np.abs(g).max()), 1e-3)
        np.testing.assert_allclose(fast_grads[name], g, rtol=0, atol=tol * scale, err_msg=name)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_shipped_specs_agree_with_numpy(path):
    assert_backends_agree(path, "float64")
    assert_backends_agree(path, "float32")


@settings(max_examples=10)
@given(random_specs())
def test_generated_specs_agree_with_numpy_and_the_interpreter(text):
    assert_backends_agree(text, "float64", seed=1)
    spec, model, params, inputs = setup(text, 5, 2, 3)
    fast = rnndsl.compile(spec, backend="numba")
    assert_forward_matches(spec, fast, params, inputs)


def test_an_lstm_step_calls_one_compiled_kernel():
    """float32: one GEMM and one kernel a step (float64 runs its NumPy calls: numba's float64
    tanh and exp are libm calls, NumPy's are vectorised)."""
    source = rnndsl.compile(SPECS[0].parent / "lstm.yaml", backend="numba").source
    loop = source.split("def forward(")[1].split("for _t in _range(_T_t):", 1)[1].splitlines()
    lines = [line.strip() for line in loop if line.strip() and not line.strip().startswith("#")]
    calls = lines[:lines.index("else:")]
    assert calls[0].startswith("_xp.matmul(") and calls[1] == "if _single:" and re.match(r"_k\d+_f32\(", calls[2])
    assert len(calls) == 3


def test_the_module_needs_only_numpy_and_numba(tmp_path):
    model = rnndsl.compile(SPECS[0].parent / "lstm.yaml", backend="numba", dtype="float32")
    (tmp_path / "m.py").write_text(model.source)
    params, inputs = model.init_params(0), random_batch(model.spec, 4, 2, 0)
    np.savez(tmp_path / "data.npz", **{f"p_{k}": v for k, v in params.items()},
             **{f"i_{k}": v for k, v in inputs.items() if k != "lengths"}, lengths=_lengths(inputs))
    script = ("import numpy as np, m; d = np.load('data.npz'); "
              "p = {k[2:]: d[k] for k in d.files if k.startswith('p_')}; "
              "i = {k[2:]: d[k] for k in d.files if k.startswith('i_')}; "
              "print(m.loss_and_grad(p, i, {'t': d['lengths']}, np.float32)[0])")
    out = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, '.'); " + script],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == pytest.approx(model.loss_and_grad(params, inputs)[0], rel=1e-6)


def _lengths(inputs):
    lengths = inputs.get("lengths")
    return np.asarray(lengths["t"] if isinstance(lengths, dict) else lengths)


def test_default_is_the_fastest_installed(monkeypatch):
    monkeypatch.delenv("RNNDSL_BACKEND")
    assert backends.default() == "numba"
    monkeypatch.setattr(backends, "available", lambda name: name == "numpy")
    with pytest.warns(RuntimeWarning, match=r"numba is not installed.*pip install 'rnndsl\[fast\]'"):
        assert backends.default() == "numpy"
    with pytest.raises(ValueError, match="the numba backend needs numba"):
        backends.get("numba")
    assert backends.runnable("numba") == "numpy"


def test_the_cache_never_replaces_a_file_it_did_not_write(tmp_path, monkeypatch):
    from rnndsl.backends.numba import runtime
    monkeypatch.setenv("RNNDSL_CACHE", str(tmp_path))
    monkeypatch.setattr(runtime, "_CACHE", {})
    model = rnndsl.compile(SPECS[0].parent / "elman.yaml", backend="numba")
    written = list((tmp_path / "numba").glob("rnndsl_*.py"))
    assert len(written) == 1 and written[0].read_text() == model.source
    written[0].write_text("# someone else's\n")              # same name, other text
    monkeypatch.setattr(runtime, "_CACHE", {})
    again = rnndsl.compile(SPECS[0].parent / "elman.yaml", backend="numba")
    assert written[0].read_text() == "# someone else's\n"     # left alone; the model still runs
    params, inputs = again.init_params(0), random_batch(again.spec, 4, 2, 0)
    assert np.isfinite(again.loss_and_grad(params, inputs)[0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["lstm", "birnn", "rnn_lm"])
def test_truncated_windows_with_carried_state_agree_with_numpy(name, dtype):
    """Training's path: a stream cut into windows, each starting from the last one's final
    state, gradients cut at truncation windows, ragged lengths (float32: the compiled kernels
    with their rational tanh; float64: the kernels without exp/log/tanh)."""
    plain = rnndsl.compile(SPECS[0].parent / f"{name}.yaml", backend="numpy", dtype=dtype)
    fast = rnndsl.compile(SPECS[0].parent / f"{name}.yaml", backend="numba", dtype=dtype)
    params = plain.init_params(0)
    tol = 1e-9 if dtype == "float64" else 2e-4
    carry_a = carry_b = None
    for window in range(3):
        inputs = random_batch(plain.spec, 7, 3, window)
        a = plain.step(params, inputs, carry=carry_a, truncate=3)
        b = fast.step(params, inputs, carry=carry_b, truncate=3)
        assert b.loss == pytest.approx(a.loss, rel=tol)
        for k in a.grads:
            scale = max(float(np.abs(a.grads[k]).max()), 1e-3)
            np.testing.assert_allclose(b.grads[k], a.grads[k], rtol=0, atol=tol * scale, err_msg=k)
        carry_a, carry_b = a.final, b.final


# Found by 120 generated specs run by hand: views of buffers without a time axis (a per-sequence
# value fused with another, one made of parameters only) read inside a step's kernel.
STATIC_VIEWS = 'name: random\ndims: {F: 3, H: 3, V: 2}\ninputs:\n  x: {float: [F], axis: t}\n  lab: {index: H}\n  k: {index: H, axis: t}\nparams:\n  P0: {shape: [H, H], init: normal(0.5)}\n  P1: {shape: [H, H], init: normal(0.5)}\n  P2: {shape: [H, H], init: normal(0.5)}\n  P3: {shape: [H, H], init: normal(0.5)}\n  P4: {shape: [H], init: normal(0.5)}\n  P5: {shape: [H, H], init: normal(0.5)}\n  P6: {shape: [H, H], init: normal(0.5)}\nstate:\n  v0:\n    shape: [H]\n    init: learned\n  v1:\n    shape: [H]\n  v2:\n    shape: [H]\nequations: |\n  v0[t] = sigmoid((P0 @ v1[t+2]) + P1 @ v0[t+2])\n  v1[t] = sigmoid((P2 @ v1[t+2]) + P3 @ v1[t+1])\n  v2[t] = sigmoid((P6 @ s1)) * v2[t-1] + (1 - sigmoid((P6 @ s1))) * tanh(P4)\n  s1 = max_t v1[t]\n  s2 = v2[end]\nloss: cross_entropy(v2[0], lab) + mean_t cross_entropy(v2[t], k[t])\n'


def test_views_of_per_sequence_and_parameter_values_inside_a_step_kernel():
    assert_backends_agree(STATIC_VIEWS, "float64", seed=1)
    assert_backends_agree(STATIC_VIEWS, "float32", seed=2)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 7), st.integers(1, 4), st.integers(0, 4), st.integers(0, 2**31 - 1))
def test_compiled_ctc_recursions_equal_the_numpy_forms(T, B, U, seed):
    """backends/numba/ctc.py against rnndsl/core/kernels.py on random lattices: ragged frame and
    label counts, repeated labels (no skip), sequences too short for their labels (-inf)."""
    import inspect
    import numba
    from rnndsl.backends.numba import ctc
    from rnndsl.core import kernels
    compiled = {"np": np}                   # as a module holds them: the sources, then njit by name
    for name, f in ctc.LOOPS.items():
        exec(inspect.getsource(f), compiled)
        compiled[name] = numba.njit(compiled[f.__name__])
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 3, size=(U, B))                      # few classes: repeats happen
    y_len, label_len = rng.integers(0, T + 1, size=B), rng.integers(0, U + 1, size=B)
    y = rng.normal(size=(T, B, 3))
    _, _, lp, skip = kernels._ctc_lattice(np, y, labels, 0, y_len, label_len)
    np.testing.assert_allclose(compiled["_ctc_alpha"](lp, skip), kernels._ctc_alpha(lp, skip), rtol=1e-12)
    t_end, s_end = y_len - 1, 2 * label_len
    np.testing.assert_allclose(compiled["_ctc_beta"](lp, skip, t_end, s_end),
                               kernels._ctc_beta(lp, skip, t_end, s_end), rtol=1e-12)


def test_an_lstm_step_is_one_column_loop_each_way_with_the_gate_values_in_registers():
    """Tiles (backends/numba/tiles.py): the 4H-wide gate sum, the 3H-wide sigmoid and the H-wide
    cell update share one loop over H columns, so the summed pre-activations forward and the
    gates' adjoints backward never reach memory (they are not even passed)."""
    source = rnndsl.compile(ROOT / "specs" / "lstm.yaml", backend="numba").source
    calls = sorted(set(re.findall(r"\n {8,}\(?(_k\d+)_f32\b", source)))
    assert len(calls) == 2                                   # one kernel per step, each way
    for name in calls:
        body = source.split(f"def {name}_f32(")[1].split("\n\n")[0]
        assert body.count("for _j in range(") == 1, body
    backward = source.split("def backward(")[1]
    step_call = next(line for line in backward.split("\n") if "_f32 if _single" in line and "[_t]" in line)
    assert "d_g" not in step_call and "d_i" not in step_call


def test_a_few_rows_run_the_whole_loop_compiled_and_agree():
    """backends/numba/loops.py: at B=1 each LSTM loop runs as one @njit function (products as
    plain loops), and gives the float32 NumPy backend's loss and gradients; a float64 call
    keeps the Python loop."""
    fast = rnndsl.compile(ROOT / "specs" / "lstm.yaml", backend="numba", dtype="float32")
    plain = rnndsl.compile(ROOT / "specs" / "lstm.yaml", backend="numpy", dtype="float32")
    from rnndsl.compiler.explain import explain
    said = explain(fast, batch=1)
    assert "loops compiled whole" in said and "running backward over t: for B <= 64" in said
    assert "compiled whole" not in explain(plain)
    module, calls = fast.module, []
    for name in ("_loop1", "_loop2"):
        compiled = getattr(module, name)
        setattr(module, name, lambda *a, _f=compiled, _n=name: (calls.append(_n), _f(*a))[1])
    params = plain.init_params(0)
    inputs = random_batch(plain.spec, 7, 1, 0)
    loss, grads = fast.loss_and_grad(params, inputs)
    assert calls == ["_loop1", "_loop2"]
    want, want_grads = plain.loss_and_grad(params, inputs)
    assert loss == pytest.approx(want, rel=1e-5)
    for name, g in want_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=0, atol=2e-4 * max(float(np.abs(g).max()), 1e-3))
    calls.clear()
    from rnndsl.semantics.inputs import prepare
    batch = prepare(fast.spec, inputs)
    module.backward(params, module.forward(params, batch.arrays, batch.lengths, np.float64))
    assert calls == []
