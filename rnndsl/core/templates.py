"""The scalar templates of the elementwise ops (the op table's `scalar` entries).

Keyed by the op's name in lower case (Op.ADD: "add"). Backward ops take the forward's output y
(or its input x) and the output's adjoint dy. Semantics at kinks and ties are those the tests
pin (tests/test_op_oracles.py): relu' and clip' are 0 at a bound, abs' is sign(x) (0 at 0).
rnndsl/core/kernels.py renders their NumPy functions, backends their numba and C forms.
"""
from .scalar import clip, exp, log, logaddexp, maximum, minimum, power, sigmoid, sign, sqrt, tanh
from .scalar import template as _t

TEMPLATES = {
    "add": _t("a b", "", lambda a, b: a + b),
    "sub": _t("a b", "", lambda a, b: a - b),
    "mul": _t("a b", "", lambda a, b: a * b),
    "div": _t("a b", "", lambda a, b: a / b),
    "neg": _t("x", "", lambda x: -x),
    "tanh": _t("x", "", tanh),
    "sigmoid": _t("x", "", sigmoid),             # a primitive: its forms differ per target
    "relu": _t("x", "", lambda x: maximum(x, 0)),
    "exp": _t("x", "", exp),
    "log": _t("x", "", log),
    "softplus": _t("x", "", lambda x: logaddexp(0, x)),
    "abs": _t("x", "", abs),
    "clip": _t("x", "lo hi", clip),
    "min": _t("x", "c", minimum),
    "max": _t("x", "c", maximum),
    "sqrt": _t("x", "", sqrt),
    "pow": _t("x", "p", power),
    "tanh_vjp": _t("y dy", "", lambda y, dy: dy * (1 - y * y)),
    "sigmoid_vjp": _t("y dy", "", lambda y, dy: dy * (y * (1 - y))),
    "relu_vjp": _t("y dy", "", lambda y, dy: dy * (y > 0)),
    "abs_vjp": _t("x dy", "", lambda x, dy: dy * sign(x)),
    "clip_vjp": _t("x dy", "lo hi", lambda x, dy, lo, hi: dy * ((x > lo) & (x < hi))),
    "min_vjp": _t("x dy", "c", lambda x, dy, c: dy * (x < c)),
    "max_vjp": _t("x dy", "c", lambda x, dy, c: dy * (x > c)),
    "sqrt_vjp": _t("y dy", "", lambda y, dy: dy / (2 * y)),
    "pow_vjp": _t("x dy", "p", lambda x, dy, p: dy * (p * power(x, p - 1))),
}
