"""Random valid specs, as text: hypothesis strategies (`specs()`) that draw expression trees
over the op table, reads at offsets in both directions, windows, concat, static values, state
inits and losses. Every drawn spec checks; the project's own tests compile thousands of them.
"""
from __future__ import annotations

import dataclasses
import re

from hypothesis import strategies as st


# ---- random specs -------------------------------------------------------------------------------
#
# Variables v0..vn-1 each get a direction d (-1 forward, +1 backward, 0 none). A run of
# consecutive variables with the same d != 0 is a cluster: inside it a variable reads itself
# and later members only at offsets of sign d (a delay of at least one step) and earlier
# members at offsets of sign d or 0, so every cycle runs one way with a nonzero delay. Outside
# its cluster a variable reads only earlier variables, at any offset. Static values reduce a
# variable over time; a variable reads (or starts from) only statics of variables before its
# cluster. Recurrent variables end in a bounded op (or are an LSTM-like gated cell), so values
# stay moderate for any T; exp, log and / only see arguments kept away from trouble.

UNARY = ["tanh", "sigmoid", "relu", "softplus", "abs", "neg", "exp", "log", "softmax",
         "log_softmax", "clip", "min", "max", "scale", "one_minus", "halve",
         "sqrt", "pow", "layer_norm", "sum", "mean", "max_of", "min_of", "slice"]
BINARY = ["add", "sub", "mul", "div_tanh", "div_softplus"]
PRODUCTS = ["param_left", "param_right", "param_param", "dot_scale"]
BOUNDED_TOPS = ["tanh", "sigmoid", "softmax", "gated", "clip", "split_gated"]


@dataclasses.dataclass
class SpecBuilder:
    """What a drawn spec needs besides its equations: params, inputs, states, statics."""
    dims: dict
    directions: list
    inits: list                                                 # state init kind per variable
    biases: int = 0                                             # bare parameters in this equation
    params: list = dataclasses.field(default_factory=list)      # (name, shape text)
    inputs: dict = dataclasses.field(default_factory=dict)      # name -> declaration
    states: list = dataclasses.field(default_factory=list)      # YAML lines
    statics: dict = dataclasses.field(default_factory=dict)     # var index -> static name
    equations: list = dataclasses.field(default_factory=list)

    def param(self, shape: str) -> str:
        name = f"P{len(self.params)}"
        self.params.append((name, shape))
        return name

    def use(self, name: str, declaration: str) -> str:
        self.inputs[name] = declaration
        return name

    def cluster_start(self, i: int) -> int:
        d = self.directions[i]
        start = i
        while d and start > 0 and self.directions[start - 1] == d:
            start -= 1
        return start

    def cluster_end(self, i: int) -> int:
        d = self.directions[i]
        end = i
        while d and end + 1 < len(self.directions) and self.directions[end + 1] == d:
            end += 1
        return end

    def text(self, loss: str) -> str:
        dims = ", ".join(f"{k}: {v}" for k, v in self.dims.items())
        lines = [f"name: random", f"dims: {{{dims}}}", "inputs:"]
        lines += [f"  {name}: {decl}" for name, decl in self.inputs.items()]
        lines += ["params:"] + [f"  {n}: {{shape: [{s}], init: normal(0.5)}}" for n, s in self.params]
        lines += ["state:", *self.states] if self.states else []
        lines += ["equations: |"] + [f"  {e}" for e in self.equations]
        return "\n".join(lines + [f"loss: {loss}"]) + "\n"


def _at(offset: int) -> str:
    return f"t{offset:+d}" if offset else "t"


@st.composite
def _offset(draw, sign: int | None, lo: int = 0) -> int:
    """An offset in -3..3, or of the given sign (lo: the least delay)."""
    if sign is None:
        return draw(st.integers(-3, 3))
    return sign * draw(st.integers(lo, 3 if lo else 2))


@st.composite
def _var_read(draw, b: SpecBuilder, i: int):
    """(text, variable index or None for a static value) of a read of size H that variable i
    may make, or None if there is none."""
    start, end, d = b.cluster_start(i), b.cluster_end(i), b.directions[i]
    choices = [("other", j) for j in range(start)] + [("low", j) for j in range(start, i)]
    choices += [("self", i)] if d else []
    choices += [("high", j) for j in range(i + 1, end + 1)]
    choices += [("static", j) for j in b.statics if j < start]
    if not choices:
        return None
    kind, j = draw(st.sampled_from(choices))
    if kind == "static":
        return b.statics[j], None
    sign, lo = {"other": (None, 0), "low": (d, 0), "self": (d, 1), "high": (d, 1)}[kind]
    return f"v{j}[{_at(draw(_offset(sign, lo)))}]", j


@st.composite
def _var_window(draw, b: SpecBuilder, i: int):
    """(read text, size text) of a context window over an earlier variable or, in a
    recurrence, over the variable's own past (future), or None if there is none."""
    d, choices = b.directions[i], list(range(b.cluster_start(i)))
    if d and draw(st.booleans()) or not choices:
        if not d:
            return None
        lo, hi = sorted(d * draw(st.integers(1, 2)) for _ in range(2))
        return f"v{i}[{_at(lo)}:{_at(hi)}]", f"H*{hi - lo + 1}"
    lo = draw(st.integers(-2, 2))
    hi = draw(st.integers(lo, 2))
    return f"v{draw(st.sampled_from(choices))}[{_at(lo)}:{_at(hi)}]", f"H*{hi - lo + 1}"


@st.composite
def _input_read(draw, b: SpecBuilder, embedded: bool = True):
    """(read text, size text) of an input: a frame, a context window, or a onehot (used as
    a vector unless `embedded`, a parameter's column gather)."""
    kind = draw(st.sampled_from(["frame", "window", "onehot"] + ["index"] * embedded))
    if kind == "window":
        lo = draw(st.integers(-2, 2))
        hi = draw(st.integers(lo, 2))
        return f"{b.use('x', '{float: [F], axis: t}')}[{_at(lo)}:{_at(hi)}]", f"F*{hi - lo + 1}"
    if kind == "onehot":
        offset = draw(_offset(None))
        return f"{b.use('c', '{onehot: V, axis: t}')}[{_at(offset)}]", "V"
    if kind == "index":                                   # an embedding: W @ w[t], w class indices
        return f"{b.use('w', '{index: V, axis: t}')}[{_at(draw(_offset(None)))}]", "V"
    return f"{b.use('x', '{float: [F], axis: t}')}[{_at(draw(_offset(None)))}]", "F"


@st.composite
def _leaf(draw, b: SpecBuilder, i: int) -> str:
    kind = draw(st.sampled_from(["bias", "project", "project", "read", "concat", "window"]))
    var, j = draw(_var_read(b, i)) or (None, None)
    if kind == "read" and var:
        return var
    if kind == "bias":
        b.biases += 1
        return b.param("H")
    if kind == "concat":
        joinable = var is not None
        parts = [(var, "H") if joinable and draw(st.booleans()) else draw(_input_read(b, embedded=False))
                 for _ in range(2)]
        return f"({b.param('H, ' + '+'.join(s for _, s in parts))} @ concat({parts[0][0]}, {parts[1][0]}))"
    window = draw(_var_window(b, i)) if kind == "window" else None
    read, size = window or ((var, "H") if var and draw(st.booleans()) else draw(_input_read(b)))
    return f"({b.param(f'H, {size}')} @ {read})"


@st.composite
def _expr(draw, b: SpecBuilder, i: int, depth: int) -> str:
    """A random expression of shape [H] for variable i."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(_leaf(b, i))
    kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "product"]))
    sub = lambda: draw(_expr(b, i, depth - 1))
    arg = lambda: _varying(b, sub())
    if kind == "unary":
        return _unary(draw, b, draw(st.sampled_from(UNARY)), arg())
    if kind == "binary":
        op, first = draw(st.sampled_from(BINARY)), sub()
        return _binary(op, first, arg() if op.startswith("div") or _params_only(first) else sub())
    op = draw(st.sampled_from(PRODUCTS))
    if op == "param_left":
        return f"({b.param('H, H')} @ {arg()})"
    if op == "param_right":
        return f"({arg()} @ {b.param('H, H')})"
    if op == "param_param":
        return f"({b.param('H, H')} @ {b.param('H, H')} @ {sub()})"
    return f"(({sub()} @ {arg()}) * {sub()})"               # a dot product scales a vector


def _params_only(e: str) -> bool:
    return "[" not in e and not re.search(r"\bs\d", e)


def _varying(b: SpecBuilder, e: str) -> str:
    """`e` (values of parameters alone included)."""
    return e


def _call(b: SpecBuilder, op: str, e: str) -> str:
    return f"{op}({e})"


def _unary(draw, b: SpecBuilder, op: str, e: str) -> str:
    if op == "neg":
        return f"(-{e})"
    if op == "exp":
        return f"exp(tanh({e}))"                               # bounded input
    if op == "log":
        return draw(st.sampled_from([f"log(2 + tanh({e}))", f"log(1 + softplus({e}))"]))
    if op == "clip":
        return f"clip({e}, {draw(st.sampled_from([-1, -0.5, 0]))}, {draw(st.sampled_from([0.5, 1, 2]))})"
    if op in ("min", "max"):
        return f"{op}({e}, {draw(st.sampled_from([-0.5, 0, 0.5]))})"
    if op == "scale":
        return f"(0.5 * {e})"
    if op == "one_minus":
        return f"(1 - {e})"
    if op == "halve":
        return f"({e} / 2)"
    return _entries(draw, b, op, e)


def _entries(draw, b: SpecBuilder, op: str, e: str) -> str:
    """The ops over a vector's entries and the powers, kept to [H] and away from trouble."""
    if op == "sqrt":
        return f"sqrt(1 + softplus({e}))"
    if op == "pow":
        return f"pow(1 + softplus({e}), {draw(st.sampled_from([2, 3, 0.5, -1]))})"
    if op == "layer_norm":
        return draw(st.sampled_from([f"layer_norm({e})", f"layer_norm({e}, eps=0.5)"]))
    if op in ("sum", "mean", "max_of", "min_of"):                # a number per example, broadcast
        return f"({op.removesuffix('_of')}({e}) + {b.param('H')})"
    if op == "slice":
        return f"slice(concat({b.param('H')}, {e}, {b.param('H')}), H, 2*H)"
    return _call(b, op, e)


def _binary(op: str, a: str, c: str) -> str:
    return {"add": f"({a} + {c})", "sub": f"({a} - {c})", "mul": f"({a} * {c})",
            "div_tanh": f"({a} / (2 + tanh({c})))",          # denominators at least 1
            "div_softplus": f"({a} / (1 + softplus({c})))"}[op]


@st.composite
def _equation(draw, b: SpecBuilder, i: int) -> str:
    d, b.biases = b.directions[i], 0
    tree = draw(_expr(b, i, draw(st.integers(0, 3))))
    if not d:
        top = draw(st.sampled_from(["none", "tanh", "sigmoid", "relu", "softmax", "log_softmax"]))
        return f"v{i}[t] = " + (tree if top == "none" else _call(b, top, tree))
    me = f"v{i}[{_at(d * draw(st.integers(1, 2)))}]"             # the recurrence itself
    recur = f"{b.param('H, H')} @ {me}" if draw(st.booleans()) else me
    top = draw(st.sampled_from(BOUNDED_TOPS))
    if top == "gated":                                              # an LSTM-like cell
        gate = f"sigmoid({_varying(b, draw(_expr(b, i, 1)))})"
        return f"v{i}[t] = {gate} * {me} + (1 - {gate}) * tanh({_varying(b, tree)})"
    if top == "clip":
        return f"v{i}[t] = clip({tree} + {recur}, -2, 2)"
    if top == "split_gated":                                        # a fused gate weight's split
        both = f"concat({draw(_expr(b, i, 1))}, {tree} + {recur})"
        return (f"g{i}, u{i} = split({b.param('2*H, 2*H')} @ {both}, 2)\n"
                f"  v{i}[t] = sigmoid(g{i}[t]) * {me} + (1 - sigmoid(g{i}[t])) * tanh(u{i}[t])")
    return f"v{i}[t] = {_call(b, top, f'{tree} + {recur}')}"


@st.composite
def _static(draw, i: int) -> str:
    v = f"v{i}"
    return draw(st.sampled_from([f"mean_t {v}[t]", f"sum_t tanh({v}[t])", f"{v}[end]", f"{v}[0]",
                                 f"{v}[end-1]", f"mean_t ({v}[t] * {v}[t])", f"max_t {v}[t]", f"min_t {v}[t]"]))


@st.composite
def _state(draw, b: SpecBuilder, i: int) -> list:
    kind = b.inits[i]
    statics = [b.statics[j] for j in b.statics if j < b.cluster_start(i)]
    head = [f"  v{i}:", "    shape: [H]"]             # stated: the ops may not determine it
    if kind in ("zeros", "learned"):
        return head + [f"    init: {kind}"]
    if kind == "expr":
        return head + [f"    init: tanh({b.param('H, H')} @ {b.use('z', '{float: [H]}')})"]
    if kind == "static" and statics:
        return head + [f"    init: {draw(st.sampled_from(statics))}"]
    return head


@st.composite
def _loss(draw, b: SpecBuilder, n: int) -> str:
    y, k = "{float: [H], axis: t}", "{index: H, axis: t}"
    ys, lab = "{float: [H]}", "{index: H}"

    def term(j):
        v, s = f"v{j}", b.statics.get(j)
        options = [f"mean_t mse({v}[t], y[t])", f"sum_t mse({v}[t], y[t])",
                   f"mean_t cross_entropy({v}[t], k[t])", f"mse({v}[end], ys)", f"cross_entropy({v}[0], lab)"]
        options += [f"mse({s}, ys)", f"cross_entropy({s}, lab)"] if s else []
        chosen = draw(st.sampled_from(options))
        for name, decl in [("y", y), ("k", k), ("ys", ys), ("lab", lab)]:
            if f"{name}[t]" in chosen or f", {name})" in chosen:
                b.use(name, decl)
        return chosen
    others = draw(st.lists(st.integers(0, n - 1), max_size=2))
    return " + ".join(term(j) for j in [n - 1] + others)


@st.composite
def specs(draw) -> str:
    """The text of a random valid spec."""
    n = draw(st.integers(1, 4))
    dims = {"F": draw(st.integers(1, 3)), "H": draw(st.integers(1, 4)), "V": draw(st.integers(2, 4))}
    b = SpecBuilder(dims, [draw(st.sampled_from([-1, 0, 1])) for _ in range(n)],
                    [draw(st.sampled_from(["default", "zeros", "learned", "expr", "static"])) for _ in range(n)])
    b.use("x", "{float: [F], axis: t}")                       # the axis exists even if x is unread
    for i in range(n):
        b.equations.append(draw(_equation(b, i)))
        b.states += draw(_state(b, i))
        if draw(st.booleans()) and b.cluster_end(i) == i or draw(st.integers(0, 3)) == 0:
            b.statics[i] = f"s{i}"
    for i, name in b.statics.items():
        b.equations.append(f"{name} = {draw(_static(i))}")
    return b.text(draw(_loss(b, n)))
