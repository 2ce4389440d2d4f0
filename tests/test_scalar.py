"""Scalar templates (rnndsl/core/scalar.py) rendered three ways and checked against plain NumPy:
the NumPy function (with and without out=), the C expression compiled by gcc over arrays, and
the Python expression compiled by numba and evaluated as plain Python over NumPy scalars, in
float64 and float32, on random values, infinities, NaN and the values at the kinks."""
import ctypes
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnndsl.core import scalar as S
from rnndsl.core import scalar_numpy as N
from rnndsl.core.scalar import Arg, Attr, Const, Call, clip, exp, log, logaddexp, maximum, minimum
from rnndsl.core.scalar import sigmoid, sign, tanh, template, where

from conftest import ROOT

INF, NAN = np.inf, np.nan
LO, HI, C = -1.0, 2.0, 0.5                   # attributes, also among the values: kinks are hit
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -2.0, 3.0, 1e-300, -1e-300, 20.0, -20.0, 88.5, -88.5,
           700.0, -700.0, 1e30, -1e30, INF, -INF, NAN]

# plain NumPy for every primitive: the reference the renderings are checked against
REFERENCE = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "neg": np.negative,
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "tanh": np.tanh, "abs": np.abs, "sign": np.sign,
    "maximum": np.maximum, "minimum": np.minimum, "clip": np.clip, "logaddexp": np.logaddexp,
    "gt": np.greater, "ge": np.greater_equal, "lt": np.less, "le": np.less_equal, "and": np.logical_and,
    "where": np.where, "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "sqrt": np.sqrt, "power": np.power,
}

# the elementwise ops of the op table, with today's kernels' formulas written in NumPy
OPS = {
    "add": (template("a b", "", lambda a, b: a + b), lambda a, b: a + b),
    "sub": (template("a b", "", lambda a, b: a - b), lambda a, b: a - b),
    "mul": (template("a b", "", lambda a, b: a * b), lambda a, b: a * b),
    "div": (template("a b", "", lambda a, b: a / b), lambda a, b: a / b),
    "neg": (template("x", "", lambda x: -x), lambda x: -x),
    "tanh": (template("x", "", tanh), np.tanh),
    "sigmoid": (template("x", "", sigmoid), lambda x: 1 / (1 + np.exp(-x))),
    "relu": (template("x", "", lambda x: maximum(x, 0)), lambda x: np.maximum(x, 0)),
    "exp": (template("x", "", exp), np.exp),
    "log": (template("x", "", log), np.log),
    "softplus": (template("x", "", lambda x: logaddexp(0, x)), lambda x: np.logaddexp(0, x)),
    "abs": (template("x", "", abs), np.abs),
    "clip": (template("x", "lo hi", clip), np.clip),
    "min": (template("x", "c", minimum), np.minimum),
    "max": (template("x", "c", maximum), np.maximum),
    "tanh_vjp": (template("y dy", "", lambda y, dy: dy * (1 - y * y)), lambda y, dy: dy * (1 - y * y)),
    "sigmoid_vjp": (template("y dy", "", lambda y, dy: dy * (y * (1 - y))), lambda y, dy: dy * (y * (1 - y))),
    "relu_vjp": (template("y dy", "", lambda y, dy: dy * (y > 0)), lambda y, dy: dy * (y > 0)),
    "abs_vjp": (template("x dy", "", lambda x, dy: dy * sign(x)), lambda x, dy: dy * np.sign(x)),
    "clip_vjp": (template("x dy", "lo hi", lambda x, dy, lo, hi: dy * ((x > lo) & (x < hi))),
                 lambda x, dy, lo, hi: dy * ((x > lo) & (x < hi))),
    "min_vjp": (template("x dy", "c", lambda x, dy, c: dy * (x < c)), lambda x, dy, c: dy * (x < c)),
    "max_vjp": (template("x dy", "c", lambda x, dy, c: dy * (x > c)), lambda x, dy, c: dy * (x > c)),
    "choose": (template("x dy", "lo", lambda x, dy, lo: where(x > lo, dy * x, exp(-x))),
               lambda x, dy, lo: np.where(x > lo, dy * x, np.exp(-x))),
}
ATTRS = {"lo": LO, "hi": HI, "c": C, "k": C}
DTYPES = [np.float64, np.float32]


def tolerance(dtype) -> dict:
    return {"rtol": 1e-12, "atol": 0} if dtype == np.float64 else {"rtol": 2e-6, "atol": 1e-30}


def values(n_args: int, dtype, seed: int = 0, signed_zero: bool = True) -> list:
    """Arrays of the special values and random ones; later arguments are rotations of the first
    with some positions equal to it (ties at comparisons and at the kinks). Without -0.0 for
    random trees: which zero a tie of -0.0 and 0.0 gives is not specified (NumPy's clip gives
    one with array bounds, the other with scalar ones), and 1 / zero shows the difference."""
    rng = np.random.default_rng(seed)
    special = SPECIAL if signed_zero else [v for v in SPECIAL if not (v == 0 and np.signbit(v))]
    x = np.concatenate([special, rng.normal(0, 3, 40), rng.uniform(-1, 1, 20)])
    out = [x]
    for j in range(1, n_args):
        y = np.roll(x, 7 * j)
        y[::5] = x[::5]
        out.append(y)
    return [a.astype(dtype) for a in out]


def attrs_of(t, dtype) -> list:
    return [dtype(ATTRS[a]) for a in t.attrs]


def close(got, want, dtype, atol=None):
    tol = tolerance(dtype) if atol is None else {"rtol": 2e-6, "atol": atol}
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), equal_nan=True, **tol)


# ---- NumPy ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPS))
def test_numpy_function_matches_numpy(name, dtype):
    t, ref = OPS[name]
    fn = N.numpy_function(name, t)
    args = values(len(t.args), dtype)
    with np.errstate(all="ignore"):
        want = ref(*args, *attrs_of(t, dtype))
        got = fn(np, *args, *attrs_of(t, dtype))
        out = np.full(args[0].shape, 7.0, dtype)
        assert fn(np, *args, *attrs_of(t, dtype), out=out) is out
    assert got.dtype == dtype and out.dtype == dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("name", sorted(OPS))
def test_numpy_function_broadcasts_a_batch_against_a_vector(name):
    """An argument without the batch axis (a parameter) against a batch, with and without out=."""
    t, ref = OPS[name]
    fn = N.numpy_function(name, t)
    rng = np.random.default_rng(1)
    args = [rng.normal(size=(5, 3)) if j else rng.normal(size=3) for j in range(len(t.args))]
    with np.errstate(all="ignore"):
        want = ref(*args, *attrs_of(t, np.float64))
        out = np.empty(np.broadcast_shapes(*[a.shape for a in args]))
        fn(np, *args, *attrs_of(t, np.float64), out=out)
        np.testing.assert_array_equal(fn(np, *args, *attrs_of(t, np.float64)), want)
    np.testing.assert_array_equal(out, want)


def test_into_out_each_intermediate_reuses_out():
    source = N.numpy_source("tanh_vjp", OPS["tanh_vjp"][0])
    chain = source.split("if out is None:")[1].splitlines()[2:]
    assert [line.strip() for line in chain] == [
        "xp.multiply(y, y, out=out)", "xp.subtract(1.0, out, out=out)", "xp.multiply(dy, out, out=out)",
        "return out"]


def test_a_single_primitive_is_one_call():
    assert N.numpy_source("tanh", OPS["tanh"][0]).splitlines()[2:] == ["    return xp.tanh(x, out=out)"]
    assert "return xp.clip(x, lo, hi, out=out)" in N.numpy_source("clip", OPS["clip"][0])


def test_only_sigmoid_silences_overflow_and_only_that():
    assert 'with np.errstate(over="ignore"):' in N.numpy_source("sigmoid", OPS["sigmoid"][0])
    assert "errstate" not in N.numpy_source("exp", OPS["exp"][0])
    with pytest.warns(RuntimeWarning):
        N.numpy_function("exp", OPS["exp"][0])(np, np.array([1000.0]))
    with pytest.warns(RuntimeWarning):       # a 0 * inf is still reported
        N.numpy_function("sigmoid_vjp", OPS["sigmoid_vjp"][0])(np, np.array([0.0]), np.array([INF]))


def test_the_function_holds_its_source_and_only_numpy():
    import inspect
    fn = N.numpy_function("sigmoid_vjp", OPS["sigmoid_vjp"][0])
    assert inspect.getsource(fn) == fn.__source__
    assert fn.__closure__ is None and set(fn.__globals__) - {"__builtins__", "__name__"} == {"np", "sigmoid_vjp"}
    space = {"np": np}
    exec(fn.__source__, space)
    x = np.linspace(-1, 1, 9)
    np.testing.assert_array_equal(space["sigmoid_vjp"](np, x, x), fn(np, x, x))


# ---- C (gcc) -------------------------------------------------------------------------------------

def c_library(tmp_path, exprs: list, dtype):
    """A shared library with k<j>(n, a0, a1, a2, k0, k1, out) computing exprs[j] over arrays."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    ty = "float" if dtype == np.float32 else "double"
    lines = ["#include <math.h>"]
    for j, e in enumerate(exprs):
        lines += [f"void k{j}(long n, const {ty} *a0, const {ty} *a1, const {ty} *a2, {ty} k0, {ty} k1, "
                  f"{ty} *out) {{", f"    for (long i = 0; i < n; i++) out[i] = ({ty})({e});", "}"]
    src, lib = tmp_path / f"k_{ty}.c", tmp_path / f"k_{ty}.so"
    src.write_text("\n".join(lines) + "\n")
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-O2", "-fPIC", "-shared", str(src), "-o", str(lib),
                    "-lm"], check=True, capture_output=True)
    return ctypes.CDLL(str(lib))


def c_names(t) -> dict:
    return {**{a: f"a{j}[i]" for j, a in enumerate(t.args)}, **{a: f"k{j}" for j, a in enumerate(t.attrs)}}


def run_c(lib, j: int, args: list, attrs: list, dtype):
    ptr = ctypes.POINTER(ctypes.c_float if dtype == np.float32 else ctypes.c_double)
    scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    arrays = [np.ascontiguousarray(a, dtype) for a in args] + [np.zeros_like(args[0], dtype)] * (3 - len(args))
    out = np.empty(args[0].shape, dtype)
    ks = [scalar(float(k)) for k in attrs] + [scalar(0.0)] * (2 - len(attrs))
    getattr(lib, f"k{j}")(ctypes.c_long(out.size), *[a.ctypes.data_as(ptr) for a in arrays], *ks,
                         out.ctypes.data_as(ptr))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_c_rendering_matches_numpy(tmp_path, dtype):
    names = sorted(OPS)
    lib = c_library(tmp_path, [S.c_expr(OPS[n][0], c_names(OPS[n][0]), dtype) for n in names], dtype)
    for j, name in enumerate(names):
        t, ref = OPS[name]
        args = values(len(t.args), dtype)
        with np.errstate(all="ignore"):
            want = ref(*args, *attrs_of(t, dtype))
        close(run_c(lib, j, args, attrs_of(t, dtype), dtype), want, dtype)


def test_c_rendering_is_also_cpp(tmp_path):
    """CUDA compiles C++: the same expressions must be valid C++ (g++ checks the syntax)."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    lines = ["#include <math.h>"]
    for ty, dtype in (("float", np.float32), ("double", np.float64)):
        for j, (t, _) in enumerate(OPS.values()):
            params = ", ".join(f"{ty} {n}" for n in t.args + t.attrs)
            lines.append(f"{ty} {ty}_{j}({params}) {{ return ({ty})({S.c_expr(t, {}, dtype)}); }}")
    (tmp_path / "k.cpp").write_text("\n".join(lines) + "\n")
    subprocess.run(["g++", "-std=c++14", "-Wall", "-Werror", "-fsyntax-only", str(tmp_path / "k.cpp")],
                   check=True, capture_output=True)


def test_float32_c_stays_float():
    text = S.c_expr(template("x", "", lambda x: sigmoid(x) + tanh(x) * 0.5), {}, np.float32)
    assert "expf(" in text and "tanhf(" in text and "0.5f" in text and "1.0f" in text
    assert "exp(" not in text.replace("expf(", "")


# ---- Python over scalars, and numba ------------------------------------------------------------

def py_eval(t, args: list, attrs: list, dtype) -> np.ndarray:
    """py_expr evaluated by Python itself, one element at a time, over NumPy scalars; the
    constants too (Python's 1.0 / 0.0 raises where numba's error_model="numpy" gives inf)."""
    consts = S.leaves(t.body, Const)
    body = numbered(t.body, iter(range(len(consts))))
    names = t.args + t.attrs + tuple(f"c{j}" for j in range(len(consts)))
    fn = eval(f"lambda {', '.join(names)}: {S.py_expr(S.Template(t.args, names[len(t.args):], body), {}, dtype)}",
              {"np": np, **S.PY_HELPERS})
    ks = list(attrs) + [dtype(c.value) for c in consts]
    with np.errstate(all="ignore"):
        return np.array([fn(*[dtype(a[i]) for a in args], *ks) for i in range(args[0].size)], np.float64)


def numbered(e, counter):
    """The tree with its constants replaced by attributes c0, c1, ... left to right."""
    if isinstance(e, Const):
        return Attr(f"c{next(counter)}")
    return Call(e.prim, tuple(numbered(a, counter) for a in e.args)) if isinstance(e, Call) else e


def approximated(t, dtype) -> bool:
    """float32 tanh and sigmoid go through the rational tanh: accurate absolutely, to 3e-7."""
    return dtype == np.float32 and any(c.prim in ("tanh", "sigmoid") for c in S.call_nodes(t.body))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPS))
def test_python_rendering_matches_numpy(name, dtype):
    t, ref = OPS[name]
    args = values(len(t.args), dtype)
    with np.errstate(all="ignore"):
        want = ref(*args, *attrs_of(t, dtype))
    close(py_eval(t, args, attrs_of(t, dtype), dtype), want, dtype, 1e-6 if approximated(t, dtype) else None)


def numba_loop(templates: list, dtype, **options):
    """run(a0, a1, a2, k0, k1, out): out[j, i] = templates[j] at element i, compiled by numba
    (all the templates in one loop: one compilation) with njit `options`."""
    numba = pytest.importorskip("numba")
    lines = ["def run(a0, a1, a2, k0, k1, out):", "    for i in range(a0.shape[0]):"]
    lines += [f"        out[{j}, i] = {S.py_expr(t, c_names(t), dtype)}" for j, t in enumerate(templates)]
    space = {"np": np, **{k: numba.njit(f, **options) for k, f in S.PY_HELPERS.items()}}
    exec("\n".join(lines), space)
    return numba.njit(error_model="numpy", **options)(space["run"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_numba_rendering_matches_numpy(dtype):
    names = sorted(OPS)
    run = numba_loop([OPS[n][0] for n in names], dtype)
    args = values(3, dtype)
    out = np.empty((len(names), args[0].size), dtype)
    run(*args, dtype(LO), dtype(HI), out)
    for j, name in enumerate(names):
        t, ref = OPS[name]
        ks = [dtype({"lo": LO, "c": LO, "hi": HI}[a]) for a in t.attrs]      # k0, k1 by position
        with np.errstate(all="ignore"):
            want = ref(*args[:len(t.args)], *ks)
        close(out[j], want, dtype, 1e-6 if approximated(t, dtype) else None)


def test_float32_tanh_and_sigmoid_are_within_float32_resolution():
    """numba's float32 tanh is the rational tanh, sigmoid goes through it: within 3e-7 and 2e-7
    of the exact values over a dense grid (float32 resolves 6e-8 near 1), odd and relatively
    accurate near 0, NaN kept, infinities at the limits; compiled as the numba backend's
    kernels are (only FMA contraction allowed)."""
    run = numba_loop([OPS["tanh"][0], OPS["sigmoid"][0]], np.float32, fastmath={"contract"})
    tails = [-1e30, -100, -20, -9, -1e-3, -1e-20, 0.0, 1e-20, 1e-3, 9, 20, 100, 1e30, INF, -INF, NAN]
    x = np.concatenate([np.linspace(-12, 12, 200001), tails]).astype(np.float32)
    out = np.empty((2, x.size), np.float32)
    run(x, x, x, np.float32(0), np.float32(0), out)
    exact = np.tanh(x.astype(np.float64))
    with np.errstate(over="ignore"):
        sigmoid = 1 / (1 + np.exp(-x.astype(np.float64)))
    finite = np.isfinite(x)
    assert np.abs(out[0] - exact)[finite].max() < 3e-7 and np.abs(out[1] - sigmoid)[finite].max() < 2e-7
    small = np.abs(x) < 1e-3
    np.testing.assert_allclose(out[0][small], exact[small], rtol=1e-6)
    np.testing.assert_array_equal(out[0][~finite], [1, -1, NAN])
    np.testing.assert_allclose(out[1][~finite], [1, 0, NAN], atol=1e-7)


def test_the_rational_tanh_is_written_once():
    """Its coefficients appear in one file of the package and the backends: scalar.py."""
    files = [p for folder in ("rnndsl", "backends") for p in (ROOT / folder).rglob("*.py")
             if "2.76076847742355e-16" in p.read_text()]
    assert [p.name for p in files] == ["scalar.py"]


def test_float32_python_stays_float32():
    text = S.py_expr(OPS["tanh_vjp"][0], {}, np.float32)
    assert text == "(dy * (np.float32(1.0) - (y * y)))"
    assert "tanh_f32(" in S.py_expr(OPS["sigmoid"][0], {}, np.float32)
    assert S.py_expr(OPS["sigmoid"][0], {}, np.float64) == "(1.0 / (1.0 + np.exp(-x)))"


# ---- the table and the tree ------------------------------------------------------------------

def test_every_primitive_has_every_target_and_a_reference():
    assert set(S.PRIMS) == set(REFERENCE)
    for p in S.PRIMS.values():
        assert all(isinstance(f, S.Expr) or f for f in (p.numpy, p.c, p.py)), p.name
        assert len(p.takes) >= 1 and p.gives in "fb", p.name


def test_trees_read_as_python():
    x, dy, lo = Arg("x"), Arg("dy"), Attr("lo")
    assert str(dy * (1 - x * x)) == "dy * (1 - x * x)"
    assert str(dy * ((x > lo) & (x < 2))) == "dy * ((x > lo) & (x < 2))"
    assert str(-(x - (dy - 1)) / 2) == "-(x - (dy - 1)) / 2"
    assert str(where(x > lo, dy, 0)) == "where(x > lo, dy, 0)"


def test_misuse_is_refused():
    x, dy = Arg("x"), Arg("dy")
    with pytest.raises(TypeError, match="no truth value"):
        (x > 0) and (x < 1)
    with pytest.raises(TypeError, match="where takes"):
        where(x, dy, 0)
    with pytest.raises(TypeError, match="add takes"):
        (x > 0) + dy                  # NumPy would or the booleans, C add them
    with pytest.raises(ValueError, match="read its arguments"):
        S.Template(("x",), (), x + dy)
    with pytest.raises(ValueError, match="distinct"):
        S.Template(("x", "out"), (), x + Arg("out"))


# ---- hypothesis: random trees over the primitives -----------------------------------------------

FLOAT_PRIMS = sorted(n for n, p in S.PRIMS.items() if p.gives == "f")
SCALARS = [Attr("k"), Const(0.0), Const(1.0), Const(-2.5), Const(INF)]
LEAVES = [Arg("a"), Arg("b"), Arg("d")] + SCALARS


@st.composite
def trees(draw, depth: int = 3, kind: str = "f"):
    if kind == "b":
        if depth > 0 and draw(st.integers(0, 3)) == 0:
            return Call("and", (draw(trees(depth - 1, "b")), draw(trees(depth - 1, "b"))))
        op = draw(st.sampled_from(["gt", "ge", "lt", "le"]))
        return Call(op, (draw(trees(max(depth - 1, 0))), draw(trees(max(depth - 1, 0)))))
    if depth == 0 or draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(LEAVES))
    prim = draw(st.sampled_from(FLOAT_PRIMS))
    if prim == "clip":             # bounds are attributes (NumPy's ties differ for array bounds)
        return Call(prim, (draw(trees(depth - 1)), *draw(st.lists(st.sampled_from(SCALARS), min_size=2, max_size=2))))
    kinds = S.PRIMS[prim].takes
    if prim == "mul" and draw(st.booleans()):
        kinds = "fb"                                        # a mask
    return Call(prim, tuple(draw(trees(depth - 1, k)) for k in kinds))


def as_template(body) -> S.Template:
    if not S.leaves(body, Arg):
        body = body * Arg("a")
    return S.Template(("a", "b", "d"), ("k",), body)


def reference(e, env: dict):
    """The tree evaluated primitive by primitive with plain NumPy; a part reading no array is a
    Python number (so it does not make float32 arrays float64), as numpy_source documents."""
    if isinstance(e, Const):
        return e.value
    if not isinstance(e, Call):
        return env[e.name]
    value = REFERENCE[e.prim](*[reference(a, env) for a in e.args])
    if e.prim == "where" and not any(S.leaves(a, Arg) for a in e.args[1:]):
        value = value.astype(env["a"].dtype)            # a choice of two floats: in the arrays' type
    return value if S.leaves(e, Arg) else (bool(value) if e.kind == "b" else float(value))


@given(trees(), st.sampled_from(DTYPES))
def test_random_trees_numpy_and_python_agree(body, dtype):
    t = as_template(body)
    args = values(3, dtype, seed=2, signed_zero=False)
    env = dict(zip(("a", "b", "d", "k"), args + [dtype(C)]))
    fn = N.numpy_function("f", t)
    with np.errstate(all="ignore"):
        want = np.broadcast_to(reference(t.body, env), args[0].shape).astype(dtype)
        out = np.full(args[0].shape, 3.0, dtype)
        fn(np, *args, dtype(C), out=out)
        got = np.asarray(fn(np, *args, dtype(C)), dtype)
    # float32: a mask times a Python float is float64 in NumPy, so without out= a part may be
    # rounded once where into out it is rounded twice; float32 rounding may meet a cancellation
    same = np.testing.assert_array_equal if dtype == np.float64 else lambda a, b: close_to_scale(a, b, 1e-5)
    same(got, want)
    same(out, want)
    if not approximated(t, dtype):       # 3e-7 absolute composed with a log can be anything
        exact = same if not powered(t) else lambda a, b: close_to_scale(a, b, 1e-12)
        exact(py_eval(t, args, [dtype(C)], dtype), want)


def powered(t) -> bool:
    """NumPy's array power takes fast paths (x ** -1 as 1 / x) that differ from the scalar pow()
    by an ulp."""
    return any(c.prim == "power" for c in S.call_nodes(t.body))


def close_to_scale(got, want, rtol: float):
    """Equal NaNs and infinities; finite values within rtol of the largest one."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    inf = np.isinf(want)
    np.testing.assert_array_equal(got[inf], want[inf])
    finite = np.isfinite(want)
    scale = np.abs(want[finite]).max(initial=0.0)
    np.testing.assert_allclose(got[finite], want[finite], rtol=rtol, atol=rtol * scale)


@settings(max_examples=25)
@given(st.lists(trees(), min_size=4, max_size=4))
def test_random_trees_c_agrees(tmp_path_factory, bodies):
    """float64 C against NumPy, four trees per compilation. NumPy's and libm's exp, log and tanh
    may differ in the last bit, and a later subtraction can cancel what is left: such points
    (where the tree is ill-conditioned) are compared against the result's own scale."""
    ts = [as_template(b) for b in bodies]
    lib = c_library(tmp_path_factory.mktemp("c"), [S.c_expr(t, c_names(t), np.float64) for t in ts], np.float64)
    args = values(3, np.float64, seed=3, signed_zero=False)
    for j, t in enumerate(ts):
        with np.errstate(all="ignore"):
            want = np.broadcast_to(reference(t.body, dict(zip("abdk", args + [C]))), args[0].shape)
        close_to_scale(run_c(lib, j, args, [C], np.float64), want, 1e-12)
