"""Every op in the table checked against definitions that share no code with it (issue 9,
item 3). The reference interpreter runs the op table's own formulas, so a wrong formula would
agree with itself; here each forward formula meets a scalar definition written with Python
floats and `math` (loops for conv2d and pooling, brute force over alignments for CTC) and,
where torch is installed, torch's own op. Each VJP rule is evaluated on numbers (every
`v.apply` runs that op's formula) and compared with central differences of the scalar
definition and with torch.autograd; the backward ops are checked through the rules that use
them. Hypothesis draws batch axes, spec ranks, attributes and values, including extreme ones
(softmax, log_softmax, softplus, sigmoid far out). The cases live in op_cases.py, the
definitions in op_definitions.py. The elementwise ops' scalar templates are checked the same
way in their other renderings: C (compiled by gcc) and Python for numba."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings, strategies as st

from rnndsl.core.ops import TABLE, Op, elementwise, result_rank
from rnndsl.frontend.noise import NOISE

import op_definitions as defs
from op_cases import CASES, Case
from test_scalar import c_library, c_names, numba_loop, run_c

# backward ops (no forward oracle of their own): the forward op whose VJP rule applies them
BY_RULE = {Op.TANH_VJP: Op.TANH, Op.SIGMOID_VJP: Op.SIGMOID, Op.RELU_VJP: Op.RELU, Op.ABS_VJP: Op.ABS,
           Op.CLIP_VJP: Op.CLIP, Op.MIN_VJP: Op.MIN, Op.MAX_VJP: Op.MAX, Op.SOFTMAX_VJP: Op.SOFTMAX,
           Op.LOG_SOFTMAX_VJP: Op.LOG_SOFTMAX, Op.CROSS_ENTROPY_VJP: Op.CROSS_ENTROPY, Op.MSE_VJP: Op.MSE,
           Op.CTC_VJP: Op.CTC, Op.MATMUL_VJP: Op.MATMUL, Op.EMBED_VJP: Op.EMBED, Op.RESHAPE_LIKE: Op.FLATTEN,
           Op.CONV2D_VJP_X: Op.CONV2D, Op.CONV2D_VJP_W: Op.CONV2D, Op.MAXPOOL2D_VJP: Op.MAXPOOL2D,
           Op.REDUCE_SUM_VJP: Op.REDUCE_SUM, Op.REDUCE_MEAN_VJP: Op.REDUCE_MEAN,
           Op.REDUCE_EXTREME_VJP: Op.REDUCE_MAX, Op.GATHER_VJP: Op.GATHER, Op.SQRT_VJP: Op.SQRT, Op.POW_VJP: Op.POW,
           Op.SUM_VJP: Op.SUM, Op.MEAN_VJP: Op.MEAN, Op.EXTREME_OF_VJP: Op.MAX_OF,
           Op.LAYER_NORM_VJP: Op.LAYER_NORM, Op.SLICE_VJP: Op.SLICE, Op.SOFTMAX_OVER_VJP: Op.SOFTMAX_OVER}
SAMPLED = {Op.SAMPLE,          # random: checked by its distribution (test_sample_...)
           *NOISE}             # the checker makes them products with masks (test_dropout.py)
NO_ADJOINT = {Op.ONEHOT}       # class indices: the rule gives no adjoint (test_every_op_...)
DIFFERENTIABLE = sorted((op for op in CASES if TABLE[op].vjp is not None and op not in NO_ADJOINT),
                        key=lambda o: o.name)
FORWARD = sorted(CASES, key=lambda o: o.name)


def run(op: Op, args: list, ranks: tuple, attrs: dict, context: dict):
    """The op's formula called as the interpreter and emitted code call it; where the emitted
    code may instead call the NumPy ufunc or the out= form, those must agree with it."""
    d = TABLE[op]
    kw = {**{k: v for k, v in d.attrs if v is not None}, **attrs}
    if elementwise(op):                      # lower-rank arguments aligned, as the emitter does
        top = max(ranks, default=0)
        args = [a[(...,) + (None,) * (top - r)] if isinstance(a, np.ndarray) and r < top else a
                for a, r in zip(args, ranks)]
    extra = {"ranks": tuple(ranks)} if d.ranked else {}
    extra.update(context if d.context else {})
    value = d.forward(np, *args, **kw, **extra)
    if d.ufunc:
        np.testing.assert_array_equal(getattr(np, d.ufunc)(*args, *[kw[k] for k, _ in d.attrs]), value)
    if d.out:
        out = np.full(np.shape(value), np.nan)            # in place: another order of rounding
        np.testing.assert_allclose(d.forward(np, *args, **kw, **extra, out=out), value, rtol=1e-14)
        np.testing.assert_allclose(out, value, rtol=1e-14)
    return value


def forward(op: Op, case: Case):
    return run(op, case.args, case.ranks, case.attrs, case.context)


class _Val:
    """A value a VJP rule sees: an array and its spec rank."""

    def __init__(self, array, rank: int):
        self.array, self.rank = array, rank


class NumericVJP:
    """What a VJP rule sees (autodiff.VJPContext), holding numbers: each v.apply runs the op."""

    def __init__(self, op: Op, case: Case, y, dy):
        self.case, self.applied = case, set()
        self.x = [_Val(a, r) if isinstance(a, np.ndarray) else a for a, r in zip(case.args, case.ranks)]
        rank = result_rank(op, case.ranks, case.attrs)
        self.y, self.dy = _Val(y, rank), _Val(dy, rank)
        self.attrs, self.ranks = dict(case.attrs), tuple(case.ranks)
        self.dims = [a.shape[a.ndim - r:] if isinstance(a, np.ndarray) else () for a, r in zip(case.args, case.ranks)]

    def apply(self, op: Op, *args, **attrs) -> _Val:
        self.applied.add(op)
        ranks = tuple(a.rank if isinstance(a, _Val) else 0 for a in args)
        arrays = [a.array if isinstance(a, _Val) else a for a in args]
        return _Val(run(op, arrays, ranks, attrs, self.case.context), result_rank(op, ranks, attrs))

    def is_param(self, i: int) -> bool:
        return i in self.case.params

    def param_sum(self, i: int, node):
        return node                          # rule_grads sums what a parameter's adjoint has extra

    def classes(self, i: int) -> int:
        return self.case.classes


def rule_grads(op: Op, case: Case, dy) -> tuple:
    """The op's VJP rule on numbers: {argument: adjoint, each of the argument's shape}, and
    the ops the rule applied."""
    v = NumericVJP(op, case, forward(op, case), dy)
    grads = {}
    for i, g in enumerate(TABLE[op].vjp(v)):
        if g is not None and i in case.diff:
            grads[i] = _sum_to(g, np.shape(case.args[i]), case.ranks[i])
    return grads, v.applied


def _sum_to(g: _Val, shape: tuple, rank: int):
    """An adjoint with the argument's shape, summed as the emitter sums it: over the spec axes
    a scalar was broadcast along, and the batch axes a parameter lacks."""
    g = np.asarray(g.array, dtype=np.float64).sum(axis=tuple(range(-(g.rank - rank), 0)) if g.rank > rank else ())
    g = g.reshape((-1,) + g.shape[g.ndim - len(shape):]).sum(axis=0) if g.ndim > len(shape) else g
    assert g.shape == tuple(shape)
    return g


def _tolerance(case: Case) -> float:
    arrays = [np.abs(a).max(initial=0) for a in case.args if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    return 1e-10 * max([1.0] + arrays) ** 2


def _dy(op: Op, case: Case, seed: int):
    return np.random.default_rng(seed).normal(size=np.shape(forward(op, case)))


# ---- forward -----------------------------------------------------------------------------------

@pytest.mark.parametrize("op", FORWARD, ids=lambda o: o.name)
@given(data=st.data())
def test_forward_equals_the_scalar_definition(op, data):
    case = data.draw(CASES[op]("any"))
    got, want = forward(op, case), defs.SCALAR[op](case)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=_tolerance(case))


@pytest.mark.parametrize("op", sorted(defs.TORCH, key=lambda o: o.name), ids=lambda o: o.name)
@given(data=st.data())
def test_forward_equals_torch(op, data):
    torch = pytest.importorskip("torch")
    case = data.draw(CASES[op]("any"))
    want = defs.TORCH[op](torch, [_tensor(torch, a) for a in case.args], case).detach().numpy()
    np.testing.assert_allclose(forward(op, case), want, rtol=1e-9, atol=_tolerance(case))


def _tensor(torch, a, grad: bool = False):
    if not isinstance(a, np.ndarray):
        return a
    return torch.tensor(a, requires_grad=grad and a.dtype.kind == "f")


# ---- VJP ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", DIFFERENTIABLE, ids=lambda o: o.name)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_vjp_equals_central_differences_of_the_scalar_definition(op, data, seed):
    """<rule's adjoints, u> = d/ds sum(dy * f(x + s u)) at s = 0, from the scalar definition
    alone; values are generic (no ties) and kept off each op's kinks."""
    case = data.draw(CASES[op]("smooth"))
    dy = _dy(op, case, seed)
    grads, _ = rule_grads(op, case, dy)
    rng = np.random.default_rng(seed + 1)
    steps = {i: rng.normal(size=np.shape(case.args[i])) * 1e-6 * max(1.0, np.abs(case.args[i]).max())
             for i in case.diff}

    def loss(s):
        args = [a + s * steps[i] if i in steps else a for i, a in enumerate(case.args)]
        return math.fsum((dy * defs.SCALAR[op](case.with_args(args))).ravel())
    numeric = (loss(1.0) - loss(-1.0)) / 2
    analytic = sum(float((grads[i] * steps[i]).sum()) for i in grads)
    scale = sum(float(np.abs(grads[i] * steps[i]).sum()) for i in grads)
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-7 * scale + 1e-13)


@pytest.mark.parametrize("op", sorted(set(defs.TORCH) & set(DIFFERENTIABLE), key=lambda o: o.name),
                         ids=lambda o: o.name)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_vjp_equals_torch_autograd(op, data, seed):
    torch = pytest.importorskip("torch")
    case = data.draw(CASES[op]("generic"))
    dy = _dy(op, case, seed)
    grads, _ = rule_grads(op, case, dy)
    inputs = [_tensor(torch, a, i in case.diff) for i, a in enumerate(case.args)]
    out = (defs.TORCH[op](torch, inputs, case) * torch.tensor(dy)).sum()
    wanted = torch.autograd.grad(out, [inputs[i] for i in case.diff], allow_unused=True)
    for i, want in zip(case.diff, wanted):
        want = np.zeros(np.shape(case.args[i])) if want is None else want.numpy()
        np.testing.assert_allclose(grads[i], want, rtol=1e-8, atol=_tolerance(case), err_msg=f"argument {i}")


# ---- sample: a random op, checked by its distribution -----------------------------------------

@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(y=st.lists(st.floats(-4, 4), min_size=2, max_size=4), temperature=st.sampled_from([0.5, 1.0, 2.0]))
def test_sample_draws_classes_with_the_softmax_probabilities(y, temperature):
    n = 20000
    scores = np.tile(np.array(y), (n, 1))
    drawn = TABLE[Op.SAMPLE].forward(np, scores, rng=np.random.default_rng(0), temperature=temperature)
    want = defs.softmax_row([v / temperature for v in y])
    for k, p in enumerate(want):
        assert abs((drawn == k).mean() - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-9, (k, p)


@given(y=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=5))
def test_sample_at_temperature_zero_is_the_first_best_class(y):
    got = TABLE[Op.SAMPLE].forward(np, np.array([y, y[::-1]]), temperature=0)
    assert list(got) == [y.index(max(y)), y[::-1].index(max(y))]


# ---- every op has an oracle --------------------------------------------------------------------

def test_every_op_in_the_table_has_an_oracle():
    """A new op fails here until it gets a scalar definition (op_definitions.py) or, for a
    backward op, a forward op whose checked VJP rule applies it."""
    covered = set(CASES) | SAMPLED | set(BY_RULE)
    assert set(TABLE) <= covered, f"ops without an oracle: {sorted(o.name for o in set(TABLE) - covered)}"
    assert set(CASES) <= set(defs.SCALAR)
    for op in set(TABLE) - set(BY_RULE):
        assert TABLE[op].vjp is None or op in DIFFERENTIABLE or op in NO_ADJOINT, op
    for op in NO_ADJOINT:
        case = find(CASES[op]("generic"), lambda c: True, settings=settings(database=None))
        assert TABLE[op].vjp(NumericVJP(op, case, forward(op, case), 0.0)) == [None]


@pytest.mark.parametrize("backward_op", sorted(BY_RULE, key=lambda o: o.name), ids=lambda o: o.name)
def test_each_backward_op_is_reached_by_the_rule_that_checks_it(backward_op):
    op = BY_RULE[backward_op]
    case = find(CASES[op]("generic"), lambda c: True, settings=settings(database=None, max_examples=50))
    _, applied = rule_grads(op, case, _dy(op, case, 0))
    assert backward_op in applied, f"{op.name}'s rule no longer applies {backward_op.name}: move its oracle"


# ---- scalar templates: the C and numba renderings of every elementwise op ------------------------

TEMPLATED = sorted((op for op in TABLE if TABLE[op].scalar is not None), key=lambda o: o.name)
OF_OUTPUT = {Op.TANH_VJP, Op.SIGMOID_VJP, Op.RELU_VJP, Op.SQRT_VJP}       # backward ops taking y, not x


@pytest.fixture(scope="module")
def renderings(tmp_path_factory):
    """The float64 C library and numba loop of every elementwise op's template."""
    templates = [TABLE[op].scalar for op in TEMPLATED]
    return (c_library(tmp_path_factory.mktemp("c"), [scalar_c(t) for t in templates], np.float64),
            numba_loop(templates, np.float64) if _has_numba() else None)


def scalar_c(t):
    from rnndsl.core import scalar
    return scalar.c_expr(t, c_names(t), np.float64)


def _has_numba() -> bool:
    import importlib.util
    return importlib.util.find_spec("numba") is not None


def _elementwise_case(op: Op, data):
    """(arguments broadcast to one shape, attrs, the wanted values): a forward op's drawn case
    against its scalar definition; a backward op's (y or x, dy) from the case of the forward
    op whose rule applies it, against its NumPy form (checked through that rule above)."""
    if op in CASES:
        case = data.draw(CASES[op]("any"))
        args = np.broadcast_arrays(*run_aligned(op, case))
        return args, case.attrs, defs.SCALAR[op](case), case
    case = data.draw(CASES[BY_RULE[op]]("any"))
    first = forward(BY_RULE[op], case) if op in OF_OUTPUT else case.args[0]
    dy = np.random.default_rng(data.draw(st.integers(0, 99))).normal(size=np.shape(first))
    return [first, dy], case.attrs, run(op, [first, dy], (case.ranks[0],) * 2, case.attrs, {}), case


def run_aligned(op: Op, case: Case) -> list:
    top = max(case.ranks, default=0)
    return [np.asarray(a, np.float64)[(...,) + (None,) * (top - r)] for a, r in zip(case.args, case.ranks)]


@pytest.mark.parametrize("op", TEMPLATED, ids=lambda o: o.name)
@given(data=st.data())
def test_the_c_and_numba_renderings_of_each_template_agree(renderings, op, data):
    lib, loop = renderings
    args, attrs, want, case = _elementwise_case(op, data)
    shape = np.shape(want)
    flat = [np.ascontiguousarray(np.broadcast_to(a, shape), np.float64).ravel() for a in args] or [np.zeros(1)]
    ks = [float(attrs[k]) for k in TABLE[op].scalar.attrs]
    j = TEMPLATED.index(op)
    tol = {"rtol": 1e-9, "atol": _tolerance(case)}
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(run_c(lib, j, flat, ks, np.float64).reshape(shape), want, **tol, err_msg="C")
        if loop is not None:
            out = np.empty((len(TEMPLATED), flat[0].size))
            padded = flat + [np.zeros_like(flat[0])] * (3 - len(flat))
            loop(*padded, *(ks + [0.0] * (2 - len(ks))), out)
            np.testing.assert_allclose(out[j].reshape(shape), want, **tol, err_msg="numba")
