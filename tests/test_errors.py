"""Broken specs: every mistake is a compiler error at the right line and column, with a hint.

Each case is a small valid spec with one mistake, written inline. The checks are exact: the
message, the 1-based line and column of the offending token in the YAML file (inside block
scalars too), and the hint where it matters.
"""
import pytest
from hypothesis import given, strategies as st

import rnndsl
from rnndsl.tools.cli import main
from rnndsl.core.errors import Diagnostic, Source, SourcePos

ELMAN = """\
name: elman
dims: {V: 4, H: 16, E: 8}
inputs:
  x:      {onehot: V, axis: t}
  target: {index: V, axis: t}
params:
  W_xh: {shape: [H, V], init: normal(0.1)}
  W_hh: {shape: [H, H], init: orthogonal}
  b_h:  {shape: [H], init: zeros}
  W_hy: {shape: [V, H]}
  b_y:  {shape: [V]}
state:
  h: {init: zeros}
equations: |
  h[t] = tanh(W_xh @ x[t] + W_hh @ h[t-1] + b_h)
  y[t] = W_hy @ h[t] + b_y
loss: mean_t cross_entropy(y[t], target[t])
outputs: [y]
generate: {feed: {x: y}, max_len: 50}
train: {optimizer: adagrad, lr: 0.1, clip: 5.0, bptt: 25, batch: 16, epochs: 100}
"""

SEQ2SEQ = """\
name: seq2seq
dims: {V: 30, W: 14, H: 64}
inputs:
  src:     {onehot: V, axis: s}
  tgt_in:  {onehot: W, axis: t}
  tgt_out: {index: W, axis: t}
params:
  E_s: {shape: [H, V]}
  U_s: {shape: [H, H]}
  E_t: {shape: [H, W]}
  U_t: {shape: [H, H]}
  V_o: {shape: [W, H]}
  b_o: {shape: [W]}
state:
  enc: {init: zeros}
  dec:
    init: enc[end]
equations: |
  enc[s] = tanh(E_s @ src[s] + U_s @ enc[s-1])
  dec[t] = tanh(E_t @ tgt_in[t] + U_t @ dec[t-1])
  y[t] = V_o @ dec[t] + b_o
loss: mean_t cross_entropy(y[t], tgt_out[t])
"""

EQUATIONS = ("  h[t] = tanh(W_xh @ x[t] + W_hh @ h[t-1] + b_h)\n"
             "  y[t] = W_hy @ h[t] + b_y\n")


def edit(base: str, *pairs) -> str:
    """`base` with each (old, new) replaced; `old` must occur exactly once."""
    for old, new in pairs:
        assert base.count(old) == 1, f"{old!r} occurs {base.count(old)} times"
        base = base.replace(old, new)
    return base


def spec_error(text: str, dims=None) -> rnndsl.SpecError:
    with pytest.raises(rnndsl.SpecError) as info:
        rnndsl.loads_spec(text, path="bad.yaml", dims=dims)
    return info.value


class Contains(str):
    """An expected message that is only part of the real one (it has variable detail)."""


def case(id, pairs, message, line, col, hint=None, base=ELMAN):
    return pytest.param(base, pairs, message, line, col, hint, id=id)


CASES = [
    # ---- YAML ----------------------------------------------------------------------------------
    case("yaml-tab-indent", [("  x:      {onehot", "\tx:      {onehot")],
         "invalid YAML: found character '\\t' that cannot start any token (while scanning for the next token)",
         4, 1, "YAML does not allow tabs for indentation; use spaces"),
    case("yaml-bad-indent", [("  W_hh:", "    W_hh:")],
         "invalid YAML: expected <block end>, but found '<block mapping start>' (while parsing a block mapping)",
         8, 5, "check the indentation"),
    case("yaml-flow-index-unquoted", [("  dec:\n    init: enc[end]", "  dec: {init: enc[end]}")],
         "invalid YAML: expected ',' or '}', but got '[' (while parsing a flow mapping)", 16, 18,
         "inside a {...} flow mapping, [ ] { } and , are YAML syntax: write an expression such as "
         "enc[end] or normal(0, 1) in quotes", base=SEQ2SEQ),
    case("yaml-flow-comma-in-init", [("init: normal(0.1)}", "init: normal(0, 0.1)}")],
         "invalid YAML: inside {...}, the comma in normal(0, 0.1) ends the value", 7, 31,
         'write it in quotes, as "normal(0, 0.1)"'),
    case("yaml-duplicate-key", [("  b_y:  {shape: [V]}\n", "  b_y:  {shape: [V]}\n  b_y: {shape: [H]}\n")],
         "duplicate key 'b_y'", 12, 3, "'b_y' is already given on line 11"),
    case("yaml-unknown-section", [("outputs: [y]", "output: [y]")],
         "unknown section 'output'", 18, 1, "did you mean outputs?"),
    case("yaml-unclosed-list", [("outputs: [y]", "outputs: [y")],
         "invalid YAML: this '[' is never closed", 18, 10, "add the missing ']'"),
    case("yaml-unclosed-quote", [("loss: mean_t", "loss: 'mean_t")],
         "invalid YAML: this quoted text is never closed", 17, 7, "add the closing quote"),
    case("yaml-two-documents", [("outputs: [y]\n", "outputs: [y]\n---\nname: other\n")],
         "invalid YAML: a spec is a single YAML document", 19, 1, "remove the `---` line"),
    case("yaml-python-tag", [("name: elman", "name: !!python/object/apply:os.system [ls]")],
         "unsupported YAML tag tag:yaml.org,2002:python/object/apply:os.system", 1, 7,
         "a spec holds plain numbers and strings"),
    case("yaml-control-character", [("name: elman", "name: el\x00man")],
         "invalid YAML: the character #x0000 is not allowed in a spec", 1, 9),
    case("yaml-not-a-mapping", [(ELMAN, "- just\n- a list\n")],
         "a spec must be a YAML mapping (name:, dims:, equations:, ...)", 1, 1),
    case("yaml-deep-nesting", [("outputs: [y]", "outputs: " + "[" * 40 + "y" + "]" * 40)],
         "YAML nests deeper than 32 levels", 18, 41, "a spec is a few levels deep"),
    case("yaml-alias-contains-itself", [("outputs: [y]", "outputs: &o [y, *o]")],
         "YAML nests deeper than 32 levels", 18, 10, "an alias that contains itself"),
    case("yaml-empty", [(ELMAN, "# nothing here\n")],
         "the spec is empty", 1, 1, "a spec is a YAML mapping with at least equations: and loss:"),

    # ---- grammar -------------------------------------------------------------------------------
    case("grammar-missing-operand", [("h[t-1] + b_h", "h[t-1] + + b_h")],
         "syntax error: unexpected '+'", 15, 45, "expected '(', '-', a name, a number"),
    case("grammar-unclosed-paren", [("tanh(W_xh", "tanh((W_xh")],
         "syntax error: '(' is never closed", 15, 14, "add the missing ')'"),
    case("grammar-extra-paren", [("+ b_h)", "+ b_h))")],
         "syntax error: unexpected ')'", 15, 49, "there is no opening bracket for this ')'"),
    case("grammar-double-equals", [("y[t] = W_hy", "y[t] == W_hy")],
         "syntax error: unexpected '='", 16, 9, "comparisons are not expressions"),
    case("grammar-stray-character", [("+ b_y\n", "+ b_y $\n")],
         "syntax error: unexpected character '$'", 16, 28, "expressions are made of names, numbers"),
    case("grammar-missing-equals", [("y[t] = W_hy", "y[t] W_hy")],
         "syntax error: unexpected 'W_hy'", 16, 8, "an equation reads `h[t] = expression`"),
    case("grammar-error-in-loss", [("loss: mean_t cross_entropy(y[t], target[t])",
                                    "loss: mean_t cross_entropy(y[t] target[t])")],
         "syntax error: unexpected 'target'", 17, 33, "expected"),
    case("grammar-in-folded-block", [("equations: |\n" + EQUATIONS,
                                      "equations: >\n" + EQUATIONS.replace("b_y", "b_y *"))],
         "syntax error: unexpected end of the expression", 16, 29),

    # ---- names and ops ------------------------------------------------------------------------------
    case("name-unknown", [("W_hh @ h[t-1]", "W_hx @ h[t-1]")],
         "unknown name 'W_hx'", 15, 29, "did you mean W_xh?"),
    case("name-unknown-in-loss-block", [("loss: mean_t cross_entropy(y[t], target[t])",
                                         "loss: |\n  mean_t cross_entropy(y[t],\n                targt[t])")],
         "unknown name 'targt'", 19, 17, "did you mean target?"),
    case("op-unknown", [("tanh(W_xh", "tahn(W_xh")],
         "unknown function 'tahn'", 15, 10, "did you mean tanh?"),
    case("op-variable-called", [("W_hh @ h[t-1]", "W_hh @ h(t-1)")],
         "h is a variable, not a function", 15, 36, "read a step with square brackets: h[t-1]"),
    case("op-wrong-arity", [("tanh(W_xh @ x[t] + W_hh @ h[t-1] + b_h)", "tanh(W_xh @ x[t], W_hh @ h[t-1])")],
         "tanh takes tanh(x), got 2 arguments", 15, 10),
    case("op-missing-constant", [("W_hy @ h[t] + b_y", "W_hy @ clip(h[t], 0) + b_y")],
         "clip needs hi: clip(x, lo, hi)", 16, 17),
    case("op-unknown-keyword", [("W_hy @ h[t] + b_y", "W_hy @ clip(h[t], 0, 1, high=2) + b_y")],
         "clip has no argument 'high'", 16, 34, "clip takes clip(x, lo, hi)"),
    case("op-sample-in-equation", [("W_hy @ h[t] + b_y", "W_hy @ h[t] + sample(b_y)")],
         "sample() is only used while generating", 16, 24, "the generate: section's feed:"),
    case("name-reserved-op", [("  W_hy: {shape: [V, H]}", "  tanh: {shape: [V, H]}")],
         "'tanh' is the name of an op", 10, 3, "choose another name"),
    case("name-defined-twice", [("  y[t] = W_hy @ h[t] + b_y\n", "  y[t] = W_hy @ h[t] + b_y\n  y[t] = b_y\n")],
         "y is already defined as a variable on line 16", 17, 3, "rename one of them"),
    case("output-unknown", [("outputs: [y]", "outputs: [yy]")],
         "unknown output 'yy'", 18, 11, "did you mean y?"),

    # ---- shapes --------------------------------------------------------------------------------
    case("shape-matmul", [("  target:", "  e:      {float: [E], axis: t}\n  target:"),
                          ("W_hh @ h[t-1]", "W_hh @ e[t]")],
         "shape mismatch in W_hh @ e[t]: [H=16, H=16] @ [E=8]", 16, 29, "the inner sizes differ: H=16 vs E=8"),
    case("shape-add", [("h[t-1] + b_h)", "h[t-1] + b_y)")],
         "shape mismatch in W_xh @ x[t] + W_hh @ h[t-1] + b_y: [H=16] + [V=4]", 15, 15,
         "elementwise operands need the same shape"),
    case("shape-classes", [("cross_entropy(y[t], target[t])", "cross_entropy(h[t], target[t])")],
         "cross_entropy: H=16 scores but the target has V=4 classes", 17, 14),
    case("shape-index-times-matrix", [("W_hy @ h[t] + b_y", "target[t] @ W_hy + b_y")],
         "a class index cannot be multiplied", 16, 10, "an embedding is written W @ x: the matrix first"),
    case("shape-embedding-columns", [("W_hy @ h[t] + b_y", "W_hy @ target[t] + b_y")],
         "shape mismatch in W_hy @ target[t]: [V=4, H=16] @ a class of V=4", 16, 10,
         "the matrix needs one column per class: V=4"),
    case("shape-entries-of-a-number", [("W_hy @ h[t] + b_y", "W_hy @ h[t] + sum(sum(b_y))")],
         "sum(sum(b_y)) reduces the entries of a vector, got a scalar", 16, 24),
    case("shape-slice-outside", [("W_hy @ h[t] + b_y", "W_hy @ slice(h[t], 2, H+1) + b_y")],
         "slice(h[t], 2, H+1) is not a part of [H=16]", 16, 17, "whole numbers with 0 <= start < stop <= 16"),
    case("split-uneven", [("  y[t] = W_hy", "  a, b, c = split(h[t], 3)\n  y[t] = W_hy")],
         "split: H=16 entries do not divide into 3 equal parts", 16, 13,
         "the vector's size must be a multiple of 3, the number of names on the left"),
    case("split-count", [("  y[t] = W_hy", "  a, b = split(h[t], 4)\n  y[t] = W_hy")],
         "split into 2 parts for the 2 names on the left, not 4", 16, 22, "write split(..., 2)"),
    case("split-not-split", [("  y[t] = W_hy", "  a, b = tanh(h[t])\n  y[t] = W_hy")],
         "several names on the left of = take split(vector, count) on the right", 16, 10),
    case("split-in-an-expression", [("W_hy @ h[t] + b_y", "W_hy @ split(h[t], 2) + b_y")],
         "split gives several values: name them on the left of the equation", 16, 17,
         "for example i, f, o, g = split(z[t], 4)"),
    case("shape-loss-not-scalar", [("loss: mean_t cross_entropy(y[t], target[t])", "loss: mean_t y[t]")],
         "the loss must be a single number per sequence, but it is [V=4]", 17, 7),

    # ---- dims ----------------------------------------------------------------------------------
    case("dim-unknown", [("W_hh: {shape: [H, H]", "W_hh: {shape: [H, HH]")],
         "unknown dim 'HH'", 8, 21, "did you mean H?"),
    case("dim-zero", [("H: 16,", "H: 0,")],
         "size 0 is out of range", 2, 17, "sizes run from 1 to 16,777,216"),
    case("dim-huge", [("H: 16,", "H: 1000000000000,")],
         "size 1,000,000,000,000 is out of range", 2, 17),
    case("dim-fraction", [("E: 8}", "E: V/3}")],
         "V/3 is not a whole number", 2, 24),
    case("dim-float", [("E: 8}", "E: 8.5}")],
         "a size must be a whole number or a dim expression, got 8.5", 2, 24),
    case("dim-mapping", [("shape: [V, H]}", "shape: {V: H}}")],
         "a size must be a whole number or a dim expression, got a mapping", 10, 17),

    # ---- time offsets ----------------------------------------------------------------------------
    case("offset-fraction", [("h[t-1]", "h[t-1.5]")],
         "a time offset must be a whole number, got 1.5", 15, 40),
    case("offset-scaled", [("x[t]", "x[t*2]")],
         "cannot read the time index t*2", 15, 24, "a time index is t, t-k, t+k, end"),
    case("offset-on-param", [("+ b_h)", "+ b_h[t])")],
         "b_h is a parameter; it has no time index", 15, 45, "write b_h without [...]"),
    case("offset-past-end", [("W_hy @ h[t]", "W_hy @ h[end+1]")],
         "h[end+1] lies outside the sequence", 16, 17),
    case("offset-too-far", [("x[t]", "x[t+20000]")],
         "time offset 20000 is larger than 10000", 15, 24),

    # ---- cycles ----------------------------------------------------------------------------------
    case("cycle-zero-delay-self", [("h[t-1]", "h[t]")],
         "cycle h -> h is a cycle of zero total delay: h[t] reads h[t]", 15, 3,
         "the cycle runs through:\n  line 15: h[t] = tanh(W_xh @ x[t] + W_hh @ h[t] + b_h)"),
    case("cycle-zero-delay-two", [(EQUATIONS, "  h[t] = tanh(W_xh @ x[t] + W_hh @ g[t] + b_h)\n"
                                              "  g[t] = tanh(W_hh @ h[t])\n  y[t] = W_hy @ h[t] + b_y\n")],
         "cycle h -> g -> h is a cycle of zero total delay: g[t] reads h[t], h[t] reads g[t]", 15, 3,
         "line 15: h[t] = tanh(W_xh @ x[t] + W_hh @ g[t] + b_h)\n  line 16: g[t] = tanh(W_hh @ h[t])"),
    case("cycle-mixed-directions", [(EQUATIONS, "  h[t] = tanh(W_xh @ x[t] + W_hh @ g[t-1] + b_h)\n"
                                                "  g[t] = tanh(W_hh @ h[t+1])\n  y[t] = W_hy @ h[t] + b_y\n")],
         "cycle h -> g -> h mixes directions (it reads both earlier and later steps): "
         "g[t] reads h[t+1], h[t] reads g[t-1]", 15, 3,
         "line 15: h[t] = tanh(W_xh @ x[t] + W_hh @ g[t-1] + b_h)\n  line 16: g[t] = tanh(W_hh @ h[t+1])"),
    case("cycle-through-static", [(EQUATIONS, "  h[t] = tanh(W_xh @ x[t] + W_hh @ h[t-1] + b_h + m)\n"
                                              "  m = mean_t h[t]\n  y[t] = W_hy @ h[t] + b_y\n")],
         "cycle h -> m -> h depends on itself through a static value: "
         "m reads h as a whole sequence, h[t] reads m", 15, 3, "line 16: m = mean_t h[t]"),

    # ---- state ---------------------------------------------------------------------------------
    case("state-ill-shaped-init", [("h: {init: zeros}", "h:\n    init: b_y")],
         "ill-shaped state init: h is [H=16] but b_y is [V=4]", 14, 11, "the init must have h's shape"),
    case("state-unknown-var", [("h: {init: zeros}", "hh: {init: zeros}")],
         "state hh: no recurrent variable hh", 13, 3, "did you mean h?"),
    case("state-unknown-init", [("h: {init: zeros}", "h: {init: ones}")],
         "state h: unknown init 'ones'", 13, 13, "a state init is zeros, learned or an expression"),
    case("state-of-static-value", [("h: {init: zeros}", "h: {init: zeros}\n  m: {init: zeros}"),
                                   ("  y[t] = W_hy", "  m = mean_t h[t]\n  y[t] = W_hy")],
         "state m: m is static; only sequences have states", 14, 3),

    # ---- axes ----------------------------------------------------------------------------------
    case("axis-other-axis-read", [("U_t @ dec[t-1]", "U_t @ enc[s]")],
         "enc is a sequence over s; it cannot be read at a step of t", 20, 41, "enc[end] or mean_s enc[s]", base=SEQ2SEQ),
    case("axis-undeclared", [("y[t] = W_hy", "y[u] = W_hy")],
         "y[u]: there is no axis u", 16, 3, "this spec has t"),
    case("axis-loss-not-reduced", [("loss: mean_t cross_entropy", "loss: cross_entropy")],
         "y[t] reads one step, but this value is static", 17, 21, "reduce over t (mean_t y[t]"),
    case("axis-sequence-without-index", [("cross_entropy(y[t]", "cross_entropy(y")],
         "y is a sequence over t; read it at a step", 17, 28, "write y[t] for the current step"),
    case("axis-unknown-reduction", [("loss: mean_t", "loss: mean_s")],
         "mean_s: there is no axis s", 17, 7, "this spec has t"),

    # ---- params --------------------------------------------------------------------------------
    case("init-unknown", [("init: normal(0.1)", "init: normall(0.1)")],
         "param W_xh: unknown initialiser 'normall'", 7, 31, "did you mean normal?"),
    case("init-missing-argument", [("W_hy: {shape: [V, H]}", "W_hy: {shape: [V, H], init: constant}")],
         "param W_hy: constant takes 1 argument, got 0", 10, 31),
    case("init-orthogonal-vector", [("b_h:  {shape: [H], init: zeros}", "b_h:  {shape: [H], init: orthogonal}")],
         "param b_h: orthogonal needs a matrix, got 1 axes", 9, 28),
    case("init-a-number", [("b_y:  {shape: [V]}", "b_y:  {shape: [V], init: 3}")],
         "param b_y: init 3 is a number, not an initialiser", 11, 28, "did you mean constant(3)?"),
    case("param-without-shape", [("W_hy: {shape: [V, H]}", "W_hy: {init: zeros}")],
         "param W_hy needs a shape", 10, 9, "for example {shape: [H, V]}"),

    # ---- inputs --------------------------------------------------------------------------------
    case("input-two-kinds", [("{onehot: V, axis: t}", "{onehot: V, float: [V], axis: t}")],
         "input x needs exactly one of float: [shape], onehot: V, index: V", 4, 11),
    case("input-onehot-two-sizes", [("{onehot: V, axis: t}", "{onehot: [V, H], axis: t}")],
         "input x: onehot takes one size, the number of classes", 4, 20),
    case("input-misspelt-field", [("{onehot: V, axis: t}", "{onehot: V, axs: t}")],
         "input x: unknown field 'axs'", 4, 23, "did you mean axis?"),
    case("input-not-a-mapping", [("{onehot: V, axis: t}", "onehot")],
         "input x: expected a mapping such as {onehot: V, axis: t}", 4, 11),
    case("input-axis-is-a-dim", [("{onehot: V, axis: t}", "{onehot: V, axis: H}")],
         "input x: axis 'H' is already the name of a dim", 4, 29),

    # ---- generate and train --------------------------------------------------------------------
    case("train-not-a-number", [("lr: 0.1", "lr: fast")],
         "train: lr must be a number above 0, got 'fast'", 20, 33),
    case("train-misspelt-field", [("epochs: 100", "epoch: 100")],
         "train: unknown field 'epoch'", 20, 70, "did you mean epochs?"),
    case("train-fraction", [("bptt: 25", "bptt: 2.5")],
         "train: bptt must be a whole number above 0, got 2.5", 20, 55),
    case("generate-max-len", [("max_len: 50", "max_len: 0")],
         "generate: max_len must be a whole number from 1 to 100,000", 19, 35),
    case("generate-feed-unknown", [("feed: {x: y}", "feed: {x: yy}")],
         "generate: feed: yy is not a sequence variable", 19, 22, "did you mean y?"),
    case("generate-feed-wrong-size", [("feed: {x: y}", "feed: {x: h}")],
         "generate: feed: h is [H=16], but x takes V=4 classes", 19, 22),

    # ---- size limits -----------------------------------------------------------------------------
    case("limit-2mb-spec", [(ELMAN, ELMAN + "# " + "x" * 2_000_000 + "\n")],
         Contains("characters; the limit is 1,000,000"), 1, 1),
    case("limit-deep-nesting", [("W_hy @ h[t] + b_y", "W_hy @ " + "tanh(" * 40 + "h[t]" + ")" * 40)],
         "expression nests deeper than 32 levels", 16, 181, "name the inner parts as variables"),
    case("limit-many-operators", [("W_hy @ h[t] + b_y", "W_hy @ h[t]" + " + b_y" * 150)],
         "expression has more than 100 operators", 16, 616, "split it into several equations"),
    case("limit-long-equation", [("W_hy @ h[t] + b_y", "W_hy @ h[t] + b_y" + " " * 30_000)],
         Contains("characters; the limit is 20,000"), 16, 3, "split it into several equations"),
    case("limit-huge-number", [("W_hy @ h[t] + b_y", "W_hy @ h[t] + b_y * 1e400")],
         "the number 1e400 is too large", 16, 30),
    case("limit-division-by-zero", [("W_hy @ h[t] + b_y", "W_hy @ h[t] + b_y / (2 - 2)")],
         "division by zero in b_y / (2 - 2)", 16, 31),
]


@pytest.mark.parametrize("base,pairs,message,line,col,hint", CASES)
def test_broken_spec(base, pairs, message, line, col, hint):
    exc = spec_error(edit(base, *pairs))
    if isinstance(message, Contains):
        assert message in exc.message
    else:
        assert exc.message == message
    assert (exc.line, exc.col) == (line, col), exc.format()
    assert exc.path == "bad.yaml"
    if hint is not None:
        assert hint in exc.first.hint


def test_the_bases_are_valid():
    for base in (ELMAN, SEQ2SEQ):
        rnndsl.loads_spec(base, path="good.yaml")


def test_there_are_enough_cases():
    assert len(CASES) >= 40


# ---- dim overrides ------------------------------------------------------------------------------

def test_override_of_an_unknown_dim():
    exc = spec_error(ELMAN, dims={"Q": 3})
    assert exc.message == "dim override Q=3: the spec has no dim Q"
    assert (exc.line, exc.col) == (2, 7)
    assert exc.first.hint == "dims: V, H, E"


def test_override_with_a_bad_size():
    exc = spec_error(ELMAN, dims={"H": 0})
    assert exc.message == "dim override H=0: a size must be a whole number from 1 to 16,777,216"
    assert (exc.line, exc.col) == (2, 14)


# ---- several errors at once ----------------------------------------------------------------------

def test_independent_errors_are_all_reported_in_source_order():
    text = edit(ELMAN, ("W_hh: {shape: [H, H]", "W_hh: {shape: [H, Q]"),
                ("+ b_y\n", "+ b_yy\n"), ("lr: 0.1", "lr: -1"), ("epochs: 100", "epoch: 100"))
    exc = spec_error(text)
    found = [(d.pos.line, d.pos.col, d.message) for d in exc.diagnostics]
    assert found == [(8, 21, "unknown dim 'Q'"),          # W_hh and h are poisoned, y is not
                     (16, 24, "unknown name 'b_yy'"),
                     (20, 33, "train: lr must be a number above 0, got -1"),
                     (20, 69, "train: unknown field 'epoch'")]


def test_a_syntax_error_hides_no_other_equation():
    text = edit(ELMAN, ("h[t-1] + b_h)", "h[t-1] + + b_h)"), ("W_hy @ h[t] + b_y", "W_hy @ h[t] + b_y)"))
    exc = spec_error(text)
    assert [(d.pos.line, d.message) for d in exc.diagnostics] == [
        (15, "syntax error: unexpected '+'"), (16, "syntax error: unexpected ')'")]


def test_a_broken_entry_does_not_cascade():
    """A wrong dim, input or equation is reported once, not again where it is used."""
    text = edit(ELMAN, ("H: 16,", "H: 0,"), ("{onehot: V, axis: t}", "{onehot: V, axs: t}"),
                ("y[t] = W_hy", "y[t] = = W_hy"))
    exc = spec_error(text)
    assert [d.message for d in exc.diagnostics] == [
        "size 0 is out of range", "input x: unknown field 'axs'", "syntax error: unexpected '='"]


def test_a_recurrence_with_a_shape_error_is_reported():
    """h reads itself, so its own failed type must not silence the error in its equation."""
    exc = spec_error(edit(ELMAN, ("W_hh @ h[t-1] + b_h", "W_hh @ h[t-1] + b_y")))
    assert len(exc.diagnostics) == 1 and exc.message.startswith("shape mismatch")


# ---- the printed form ----------------------------------------------------------------------------

def test_formatted_error_quotes_the_line_and_puts_a_caret_under_the_span():
    exc = spec_error(edit(ELMAN, ("W_hh @ h[t-1]", "W_hx @ h[t-1]")))
    assert exc.format().split("\n") == [
        "bad.yaml:15:29: error: unknown name 'W_hx'",
        "   15 |   h[t] = tanh(W_xh @ x[t] + W_hx @ h[t-1] + b_h)",
        "      |                             ^~~~",
        "hint: did you mean W_xh?",
    ]
    assert str(exc) == exc.format()


def test_formatted_shape_error_underlines_the_whole_product():
    exc = spec_error(edit(ELMAN, ("  target:", "  e:      {float: [E], axis: t}\n  target:"),
                          ("W_hh @ h[t-1]", "W_hh @ e[t]")))
    lines = exc.format().split("\n")
    assert lines[0] == "bad.yaml:16:29: error: shape mismatch in W_hh @ e[t]: [H=16, H=16] @ [E=8]"
    assert lines[2] == "      |                             ^~~~~~~~~~~"


def test_long_lines_are_quoted_around_the_caret():
    exc = spec_error(edit(ELMAN, ("W_hy @ h[t] + b_y", "W_hy @ h[t]" + " + b_y" * 40 + " + b_q")))
    quoted, caret = exc.format().split("\n")[1:3]
    assert len(quoted) < 120 and quoted.endswith("+ b_q")
    assert quoted[caret.index("^"):].startswith("b_q")


def test_every_diagnostic_of_a_multi_error_is_printed():
    exc = spec_error(edit(ELMAN, ("+ b_h)", "+ b_hh)"), ("+ b_y\n", "+ b_yy\n")))
    text = exc.format()
    assert "bad.yaml:15:45: error: unknown name 'b_hh'" in text
    assert "bad.yaml:16:24: error: unknown name 'b_yy'" in text


# ---- the command line ------------------------------------------------------------------------------

def test_cli_check_prints_errors_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(edit(ELMAN, ("h[t-1]", "h[t]")))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:15:3: error: cycle h -> h is a cycle of zero total delay" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("text", ["", "\x00", "a: [", "equations: 5", ELMAN.replace("V: 4", "V: 1e400")],
                         ids=["empty", "nul", "yaml", "equations-number", "huge-dim"])
def test_cli_check_never_shows_a_traceback(tmp_path, capsys, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["lambda", "_hidden", "d_h", "__import__", "d_loss"])
def test_names_the_generated_code_uses_are_reserved(name):
    text = f"""dims: {{H: 2}}
inputs:
  x: {{float: [H], axis: t}}
equations: |
  {name}[t] = x[t]
loss: mean_t mse({name}[t], x[t])
"""
    with pytest.raises(rnndsl.SpecError) as info:
        rnndsl.loads_spec(text, path="bad.yaml")
    assert info.value.message == f"'{name}' is reserved for the generated code"
    assert (info.value.line, info.value.col) == (5, 3)
    assert len(info.value.diagnostics) == 1            # its uses are not reported again


@pytest.mark.parametrize("name, role", [("loss", "var"), ("losses", "var"), ("lengths", "input")])
def test_names_the_python_api_puts_beside_a_specs_are_reserved(name, role):
    """model.forward() returns 'loss' and 'losses' beside the variables; inputs['lengths'] holds
    the lengths beside the inputs: a spec name there would be silently replaced."""
    x = name if role == "input" else "x"
    text = f"""dims: {{H: 2}}
inputs:
  {x}: {{float: [H], axis: t}}
equations: |
  {name if role == "var" else "v"}[t] = {x}[t]
loss: mean_t mse({x}[t], {x}[t] * 2)
"""
    with pytest.raises(rnndsl.SpecError) as info:
        rnndsl.loads_spec(text, path="bad.yaml")
    assert info.value.message.startswith(f"'{name}' is reserved: ")
    assert info.value.line == (3 if role == "input" else 5)


@given(st.text(max_size=30), st.text(max_size=30), st.text(max_size=30))
def test_errors_print_no_control_character_raw(path, message, hint):
    """Paths, messages and hints carry text from specs, file names and data: an ANSI escape or a
    carriage return in them is shown escaped, never sent to the terminal."""
    pos = SourcePos(Source(path, "x: 1\n"), 1, 1, 1, 2)
    text = Diagnostic(pos, message, hint).format()
    assert all(line.isprintable() for line in text.split("\n"))
    assert len(text.split("\n")) == 3 + (hint.count("\n") + 1 if hint else 0)


def test_an_escape_sequence_in_a_spec_name_is_printed_escaped(tmp_path, capsys):
    path = tmp_path / "evil\x1b[2J.yaml"
    path.write_text("name: x\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b[2J" in err
