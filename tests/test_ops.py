"""The op table: every op has every rule, and forward formulas are batch-polymorphic
(a batch of examples gives the stack of the examples' results)."""
import numpy as np
import pytest

from rnndsl.core import kernels, scalar, scalar_numpy
from rnndsl.frontend.noise import NOISE
from rnndsl.core.ops import KINKS, SPEC_OPS, TABLE, Category, Dim, Kind, Op, ShapeError, Type, elementwise, floats

F = lambda *dims: floats(*(Dim(d) for d in dims))


def test_every_op_is_in_the_table_with_every_rule_it_needs():
    assert set(TABLE) == set(Op)
    for op, d in TABLE.items():
        assert d.op is op and callable(d.forward)
    for op in SPEC_OPS:                     # what a spec can write has a shape rule and a VJP
        assert callable(TABLE[op].shape)
        assert callable(TABLE[op].vjp) or op is Op.SAMPLE or op in NOISE, op    # noise: a product by then


ELEMENTWISE = {Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.NEG, Op.TANH, Op.SIGMOID, Op.RELU, Op.EXP, Op.LOG,
               Op.SOFTPLUS, Op.ABS, Op.CLIP, Op.MIN, Op.MAX, Op.TANH_VJP, Op.SIGMOID_VJP, Op.RELU_VJP,
               Op.ABS_VJP, Op.CLIP_VJP, Op.MIN_VJP, Op.MAX_VJP, Op.SQRT, Op.POW, Op.SQRT_VJP, Op.POW_VJP}


def test_every_op_has_a_category_and_exactly_the_elementwise_ones_a_template():
    assert {op for op in Op if elementwise(op)} == ELEMENTWISE
    for op, d in TABLE.items():
        assert isinstance(d.category, Category), op
        assert (d.scalar is not None) == (op in ELEMENTWISE) == (d.category is Category.ELEMENTWISE), op
        assert (d.rank is None) == (op in ELEMENTWISE), f"{op}: only elementwise ops take the largest rank"
        if d.scalar is not None:          # the template fixes the arguments, attributes and forward
            assert d.arity == len(d.scalar.args) and [k for k, _ in d.attrs] == list(d.scalar.attrs), op
            assert d.out and d.forward.__source__ == scalar_numpy.numpy_source(d.forward.__name__, d.scalar), op


def test_an_elementwise_op_is_one_ufunc_call_exactly_when_its_template_is_one_primitive():
    assert {op.name for op in ELEMENTWISE if TABLE[op].ufunc} == {
        "ADD", "SUB", "MUL", "DIV", "NEG", "TANH", "EXP", "LOG", "ABS", "CLIP", "MIN", "MAX", "SQRT", "POW"}
    x = np.linspace(-3, 3, 13)
    for op in ELEMENTWISE:
        d = TABLE[op]
        if d.ufunc:
            args = [x] * d.arity + [{"lo": -1.0, "hi": 2.0, "c": 0.5, "p": 3.0}[k] for k, _ in d.attrs]
            with np.errstate(all="ignore"):
                np.testing.assert_array_equal(getattr(np, d.ufunc)(*args), d.forward(np, *args))


def test_kinks_are_in_the_entries():
    assert set(KINKS) == set(Op) and all(KINKS[op] is TABLE[op].kinks for op in Op)
    assert {op for op in Op if KINKS[op]} == {Op.RELU, Op.ABS, Op.CLIP, Op.MIN, Op.MAX, Op.MAXPOOL2D,
                                               Op.REDUCE_MAX, Op.REDUCE_MIN, Op.MAX_OF, Op.MIN_OF}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_elementwise_op_renders_on_every_backend(dtype):
    """NumPy source, C (float and double) and numba Python (float32 and float64) from each template."""
    for op in ELEMENTWISE:
        t = TABLE[op].scalar
        names = {n: f"a_{n}" for n in t.args + t.attrs}
        assert all(f"a_{n}" in scalar.c_expr(t, names, dtype) for n in t.args), op
        assert all(f"a_{n}" in scalar.py_expr(t, names, dtype) for n in t.args), op
        compile(scalar.py_source("f", t, dtype), "<py>", "exec")
        compile(scalar_numpy.numpy_source("f", t), "<numpy>", "exec")


# op -> (argument types, attrs, sample arrays for one example)
SAMPLES = {
    Op.ADD: ([F(3), F(3)], {}), Op.SUB: ([F(3), F(3)], {}), Op.MUL: ([F(3), F(3)], {}),
    Op.DIV: ([F(3), F(3)], {}), Op.NEG: ([F(3)], {}), Op.TANH: ([F(3)], {}),
    Op.SIGMOID: ([F(3)], {}), Op.RELU: ([F(3)], {}), Op.EXP: ([F(3)], {}), Op.LOG: ([F(3)], {}),
    Op.SOFTPLUS: ([F(3)], {}), Op.ABS: ([F(3)], {}), Op.CLIP: ([F(3)], {"lo": -0.5, "hi": 0.5}),
    Op.MIN: ([F(3)], {"c": 0.1}), Op.MAX: ([F(3)], {"c": 0.1}), Op.SOFTMAX: ([F(4)], {}),
    Op.LOG_SOFTMAX: ([F(4)], {}), Op.CONCAT: ([F(2), F(3)], {}), Op.FLATTEN: ([F(2, 3)], {}),
    Op.MATMUL: ([F(2, 3), F(3)], {}),
    Op.CONV2D: ([F(2, 5, 5), F(3, 2, 3, 3)], {"stride": 1, "pad": 1}),
    Op.MAXPOOL2D: ([F(2, 4, 4)], {"size": 2, "stride": 2}),
    Op.CROSS_ENTROPY: ([F(4), Type(Kind.INDEX, (), Dim(4))], {}),
    Op.MSE: ([F(3), F(3)], {}),
    Op.SQRT: ([F(3)], {}), Op.POW: ([F(3)], {"p": 1.5}), Op.SUM: ([F(2, 3)], {}), Op.MEAN: ([F(3)], {}),
    Op.MAX_OF: ([F(2, 3)], {}), Op.MIN_OF: ([F(3)], {}), Op.LAYER_NORM: ([F(4)], {"eps": 1e-5}),
    Op.SLICE: ([F(5)], {"start": 1, "stop": 4}),
}


def sample(t: Type, rng, lead=()):
    if t.kind is Kind.INDEX:
        return rng.integers(0, t.classes.value, size=lead)
    return rng.uniform(0.1, 2.0, size=lead + t.dims)


@pytest.mark.parametrize("op", list(SAMPLES), ids=lambda o: o.name.lower())
def test_forward_is_batch_polymorphic(op):
    types, attrs = SAMPLES[op]
    d = TABLE[op]
    result = d.shape(types, attrs)
    if d.ranked:
        attrs = {**attrs, "ranks": tuple(t.rank for t in types)}
    rng = np.random.default_rng(0)
    batched = [sample(t, rng, (2, 3)) for t in types]
    out = d.forward(np, *batched, **attrs)
    assert out.shape == (2, 3) + result.dims
    for i in range(2):
        for j in range(3):
            one = d.forward(np, *[a[i, j] for a in batched], **attrs)
            np.testing.assert_allclose(out[i, j], one, rtol=1e-12)


def test_matmul_forms():
    rng = np.random.default_rng(1)
    W, x, M = rng.normal(size=(2, 3)), rng.normal(size=3), rng.normal(size=(3, 4))
    np.testing.assert_allclose(kernels.matmul(np, W, x, ranks=(2, 1)), W @ x)
    np.testing.assert_allclose(kernels.matmul(np, x, M, ranks=(1, 2)), x @ M)
    np.testing.assert_allclose(kernels.matmul(np, W, M, ranks=(2, 2)), W @ M)
    np.testing.assert_allclose(kernels.matmul(np, x, x, ranks=(1, 1)), x @ x)


def test_conv2d_matches_a_direct_loop():
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(2, 5, 6)), rng.normal(size=(3, 2, 3, 2))
    out = kernels.conv2d(np, x, w, stride=2, pad=1)
    xp = np.pad(x, [(0, 0), (1, 1), (1, 1)])
    assert out.shape == TABLE[Op.CONV2D].shape([F(2, 5, 6), F(3, 2, 3, 2)], {"stride": 2, "pad": 1}).dims
    for o in range(3):
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                patch = xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 2]
                assert out[o, i, j] == pytest.approx((patch * w[o]).sum())


def test_shape_rules_name_the_dims():
    H, E = Dim(16, "H"), Dim(8, "E")
    with pytest.raises(ShapeError) as info:
        TABLE[Op.MATMUL].shape([floats(H, H), floats(E)], {})
    assert info.value.message == "shape mismatch in {expr}: [H=16, H=16] @ [E=8]"
    with pytest.raises(ShapeError):
        TABLE[Op.ADD].shape([floats(H), floats(E)], {})
    assert TABLE[Op.ADD].shape([floats(), floats(H)], {}) == floats(H)   # constants broadcast


def test_sample_is_greedy_at_temperature_zero_and_seeded_otherwise():
    y = np.array([[0.1, 3.0, 0.2], [2.0, 0.0, 0.1]])
    assert list(kernels.sample(np, y, temperature=0)) == [1, 0]
    a = kernels.sample(np, y, np.random.default_rng(7))
    b = kernels.sample(np, y, np.random.default_rng(7))
    assert (a == b).all() and ((0 <= a) & (a < 3)).all()
