"""The optional float32 kernels (rnndsl.runtime.accel, numba): as accurate as float32 allows, NaN and
infinities handled, float64 untouched, and a whole model's float32 results unchanged within
float32 rounding."""
import numpy as np
import pytest

import rnndsl
from rnndsl.runtime import accel
from rnndsl.core import kernels
from rnndsl.semantics.inputs import random_batch

from conftest import ROOT

pytest.importorskip("numba")


@pytest.fixture(scope="module")
def ufuncs():
    return accel.compiled()


def grid() -> np.ndarray:
    dense = np.linspace(-12, 12, 200001)
    tails = np.array([-1e30, -100, -20, -9, -1e-3, -1e-20, 0.0, 1e-20, 1e-3, 9, 20, 100, 1e30])
    return np.concatenate([dense, tails]).astype(np.float32)


def test_tanh_and_sigmoid_are_within_float32_resolution(ufuncs):
    x = grid()
    exact = np.tanh(x.astype(np.float64))
    assert np.abs(ufuncs["tanh"](x) - exact).max() < 3e-7
    small = np.abs(x) < 1e-3
    np.testing.assert_allclose(ufuncs["tanh"](x[small]), exact[small], rtol=1e-6)     # odd, exact near 0
    with np.errstate(over="ignore"):
        sig = 1 / (1 + np.exp(-x.astype(np.float64)))
    assert np.abs(ufuncs["sigmoid"](x) - sig).max() < 2e-7


def test_nan_stays_nan_and_infinities_go_to_the_limits(ufuncs):
    x = np.array([np.nan, np.inf, -np.inf], np.float32)
    for name, limits in (("tanh", [1, -1]), ("sigmoid", [1, 0])):
        y = ufuncs[name](x)
        assert np.isnan(y[0]) and np.allclose(y[1:], limits, atol=1e-7), name


def test_the_vjps_match_numpy(ufuncs):
    rng = np.random.default_rng(0)
    y, dy = rng.uniform(-1, 1, (2, 50, 70)).astype(np.float32)
    for name in ("tanh_vjp", "sigmoid_vjp"):
        np.testing.assert_allclose(ufuncs[name](y, dy), getattr(kernels, name)(np, y, dy), rtol=1e-6, atol=1e-7)


def test_out_writes_into_strided_views(ufuncs):
    a = np.random.default_rng(1).standard_normal((16, 1024)).astype(np.float32)
    out = np.zeros((16, 1024), np.float32)
    ufuncs["tanh"](a[:, :768], out=out[:, 256:])
    np.testing.assert_allclose(out[:, 256:], np.tanh(a[:, :768]), atol=3e-7)
    assert not out[:, :256].any()


def test_the_kernels_are_the_templates_rendered_for_float32(ufuncs):
    """Each compiled kernel computes its op's template as scalar.py renders it for float32
    numba (the rational tanh included): evaluated here by Python itself over float32 scalars."""
    from rnndsl.core import scalar
    from rnndsl.core.templates import TEMPLATES
    rng = np.random.default_rng(3)
    args = [np.concatenate([rng.uniform(-12, 12, 60), [0, 9, -9, 1e-20, np.inf, -np.inf]]).astype(np.float32),
            rng.uniform(-1, 1, 66).astype(np.float32)]
    for name in accel.KERNELS:
        t = TEMPLATES[name]
        fn = eval(f"lambda {', '.join(t.args)}: {scalar.py_expr(t, {}, np.float32)}", {"np": np, **scalar.PY_HELPERS})
        with np.errstate(all="ignore"):
            want = [fn(*[a[i] for a in args[:len(t.args)]]) for i in range(66)]
        np.testing.assert_allclose(ufuncs[name](*args[:len(t.args)]), want, rtol=3e-7, atol=1.2e-7,   # FMA
                                   err_msg=name)


def test_each_float32_formula_is_written_once():
    """The rational tanh's coefficients appear in one file of the package (scalar.py)."""
    files = [p for p in (ROOT / "rnndsl").rglob("*.py") if "2.76076847742355e-16" in p.read_text()]
    assert [p.name for p in files] == ["scalar.py"]


def installed(path: str, dtype: str):
    """(accelerated model, a plain copy of its module) for one spec."""
    model = rnndsl.compile(path, dtype=dtype)
    assert type(model.module.xp).__name__ == "ArrayModule"
    plain: dict = {}
    exec(compile(model.source, "<plain>", "exec"), plain)
    return model, plain


@pytest.mark.parametrize("name", ["lstm", "birnn", "captioning"])
def test_a_float32_model_gives_the_same_results_within_rounding(name):
    model, plain = installed(str(ROOT / "specs" / f"{name}.yaml"), "float32")
    params = model.init_params(2)
    batch = random_batch(model.spec, 6, 3, seed=4)
    from rnndsl.semantics.inputs import prepare
    b = prepare(model.spec, batch)
    fast = model.module.forward(params, b.arrays, b.lengths, np.float32)
    slow = plain["forward"](params, b.arrays, b.lengths, np.float32)
    assert fast["_total_loss"] == pytest.approx(slow["_total_loss"], rel=1e-5)
    gf, gs = model.module.backward(params, fast), plain["backward"](params, slow)
    for k in gs:
        scale = max(np.abs(gs[k]).max(), 1e-3)
        np.testing.assert_allclose(gf[k], gs[k], atol=2e-5 * scale, err_msg=k)


def test_float64_is_untouched():
    model, plain = installed(str(ROOT / "specs" / "lstm.yaml"), "float64")
    params = model.init_params(0)
    from rnndsl.semantics.inputs import prepare
    b = prepare(model.spec, random_batch(model.spec, 5, 2, seed=0))
    fast = model.module.forward(params, b.arrays, b.lengths, np.float64)
    slow = plain["forward"](params, b.arrays, b.lengths, np.float64)
    assert fast["_total_loss"] == slow["_total_loss"]
    gf, gs = model.module.backward(params, fast), plain["backward"](params, slow)
    assert all(np.array_equal(gf[k], gs[k]) for k in gs)


def test_accel_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("RNNDSL_ACCEL", "0")
    space = {"xp": np, "sigmoid": kernels.sigmoid}
    assert accel.install(space) is False and space == {"xp": np, "sigmoid": kernels.sigmoid}


@pytest.mark.filterwarnings("error")          # a kernel that fell back to NumPy warns
def test_workers_load_the_kernels_by_path_and_agree():
    from rnndsl.runtime import worker
    by_path = worker._accel()                          # as a worker, which imports no rnndsl package
    space = {"xp": np, "tanh_vjp": kernels.tanh_vjp}
    assert by_path.install(space) and type(space["xp"]).__name__ == "ArrayModule"
    y = np.linspace(-1, 1, 9, dtype=np.float32)
    np.testing.assert_allclose(space["tanh_vjp"](space["xp"], y, y), kernels.tanh_vjp(np, y, y), rtol=1e-6)
    model = rnndsl.compile(str(ROOT / "specs" / "lstm.yaml"), dtype="float32")
    params = model.init_params(1)
    batch = random_batch(model.spec, 6, 4, seed=2)
    here = model.step(params, batch)
    try:
        shared = model.use_workers(2).step(params, batch)
    finally:
        model.close()
    assert shared.loss == pytest.approx(here.loss, rel=1e-6)
    for k in here.grads:
        np.testing.assert_allclose(shared.grads[k], here.grads[k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_a_numba_that_fails_warns_once_and_numpy_does_the_work(monkeypatch):
    def broken():
        raise RuntimeError("no LLVM here")
    monkeypatch.setattr(accel, "_COMPILED", {})
    monkeypatch.setattr(accel, "_compile", broken)
    space = {"xp": np, "sigmoid": kernels.sigmoid}
    assert accel.install(space)
    x = np.linspace(-5, 5, 11, dtype=np.float32)
    with pytest.warns(RuntimeWarning, match="no LLVM here"):
        y = space["xp"].tanh(x)
    assert np.array_equal(y, np.tanh(x))
    np.testing.assert_array_equal(space["sigmoid"](space["xp"], x), kernels.sigmoid(np, x))


def test_scalars_and_other_dtypes_go_to_numpy():
    space = {"xp": np}
    accel.install(space)
    xp = space["xp"]
    assert xp.tanh(0.5) == np.tanh(0.5)
    half = np.array([0.5], np.float16)
    assert xp.tanh(half).dtype == np.float16
    assert xp.tanh(np.array([0.5], np.float32), out=np.empty(1, np.float64)).dtype == np.float64
