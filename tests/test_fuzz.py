"""No spec, however broken, raises anything but rnndsl.SpecError from loads_spec.

Four sources of broken specs: random text, random mutations of the shipped specs
(characters changed, spans deleted or inserted, lines shuffled), random YAML structures
built from the spec language's own keys and expression fragments, and grammatical but
random equations over a small spec's names. Hypothesis settings come from the profile in
conftest.py.
"""
import re
from pathlib import Path

import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

import rnndsl

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))
TEXTS = [p.read_text() for p in SPECS]

# Pieces of spec syntax that a mutation inserts, so that mutants stay near the language.
FRAGMENTS = ["[", "]", "{", "}", "(", ")", ",", ":", ": ", "-", "- ", "|", ">", "#", "'", '"',
             "\t", "\n", "  ", "@", "*", "/", "+", "=", "==", "t", "t-1", "t+1", "s", "end",
             "0", "1", "-1", "1.5", "1e400", "99999999999999", "H", "V", "x[t]", "h[t-1]",
             "mean_t ", "sum_s ", "tanh(", "clip(", "concat(", "ctc(", "sample(", "W @ ",
             "&a ", "*a", "!!binary ", "!!python/object:os.system ", "<<: ", "? ", "---\n",
             "%YAML 1.2\n", "\\", "\x00", "\u2028", "é", "init: ", "shape: ", "axis: ",
             "onehot: ", "float: ", "index: ", "learned", "zeros", "orthogonal", "normal(0, 1)"]


def loads_only_spec_errors(text: str, dims: dict | None = None) -> None:
    """Load `text`; any exception but SpecError fails the test. A SpecError must format, and
    every diagnostic must point into the file (or just past its end)."""
    try:
        rnndsl.loads_spec(text, path="fuzz.yaml", dims=dims)
    except rnndsl.SpecError as exc:
        assert exc.diagnostics and exc.message
        assert "fuzz.yaml:" in exc.format() and "error:" in exc.format()
        lines = len(LINE_BREAK.split(text))
        for d in exc.diagnostics:
            assert d.pos is not None and 1 <= d.pos.line <= lines + 1 and d.pos.col >= 1, d.format()


LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")      # as YAML counts lines


# ---- (a) random text ----------------------------------------------------------------------

SPEC_ALPHABET = st.sampled_from(list("abcdehstxyHVW_019 \n\t:[]{}(),-+*/@=#|>'\"&!?.%"))


@given(st.text(max_size=300))
def test_random_text(text):
    loads_only_spec_errors(text)


@given(st.text(SPEC_ALPHABET, max_size=300))
def test_random_text_from_spec_characters(text):
    loads_only_spec_errors(text)


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join))
def test_random_fragments(text):
    loads_only_spec_errors(text)


# ---- (b) mutations of valid specs ------------------------------------------------------------

@st.composite
def mutated_spec(draw):
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        text = draw(st.sampled_from([_replace, _delete, _insert, _swap_lines, _drop_line,
                                     _duplicate_line, _truncate]))(draw, text)
    return text


def _where(draw, text: str) -> int:
    return draw(st.integers(0, max(0, len(text) - 1)))


def _replace(draw, text):
    i = _where(draw, text)
    return text[:i] + draw(st.characters(codec="utf-8")) + text[i + 1:]


def _delete(draw, text):
    i = _where(draw, text)
    return text[:i] + text[i + draw(st.integers(1, 20)):]


def _insert(draw, text):
    i = _where(draw, text)
    return text[:i] + draw(st.sampled_from(FRAGMENTS)) + text[i:]


def _swap_lines(draw, text):
    lines = text.split("\n")
    i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def _drop_line(draw, text):
    lines = text.split("\n")
    del lines[draw(st.integers(0, len(lines) - 1))]
    return "\n".join(lines)


def _duplicate_line(draw, text):
    lines = text.split("\n")
    i = draw(st.integers(0, len(lines) - 1))
    return "\n".join(lines[:i + 1] + lines[i:])


def _truncate(draw, text):
    return text[:_where(draw, text)]


@given(mutated_spec())
def test_mutated_specs(text):
    loads_only_spec_errors(text)


@given(st.sampled_from(TEXTS), st.randoms(use_true_random=False))
def test_shuffled_lines(text, rng):
    lines = text.split("\n")
    rng.shuffle(lines)
    loads_only_spec_errors("\n".join(lines))


@given(st.sampled_from(TEXTS),
       st.dictionaries(st.sampled_from(["H", "V", "F", "K", "C", "E", "Q", ""]),
                       st.one_of(st.integers(-5, 1 << 40), st.floats(allow_nan=True), st.text(max_size=5),
                                 st.booleans(), st.none()), max_size=3))
def test_dim_overrides(text, dims):
    loads_only_spec_errors(text, dims)


EXPR_TOKENS = ["x", "h", "y", "W", "b", "H", "t", "s", "end", "[", "]", "(", ")", ",", ":", "=",
               "+", "-", "*", "/", "@", "0", "1", "2.5", "1e400", "mean_t", "sum_s", "tanh",
               "clip", "concat", "cross_entropy", "ctc", "sample", "max", "blank", "\n"]


@given(st.lists(st.sampled_from(EXPR_TOKENS), min_size=1, max_size=40))
def test_random_equations(tokens):
    """Random token strings as equations and loss of an otherwise valid spec: they reach the
    grammar, the name and shape checks and the time analysis."""
    body = " ".join(tokens)
    text = f"""dims: {{H: 3}}
inputs:
  x: {{float: [H], axis: t}}
params:
  W: {{shape: [H, H]}}
  b: {{shape: [H]}}
equations: |
  h[t] = tanh(W @ x[t] + W @ h[t-1] + b)
  y[t] = {body}
loss: |
  {body}
"""
    loads_only_spec_errors(text)


# ---- (c) random YAML structures ----------------------------------------------------------------

KEYS = ["name", "doc", "dims", "inputs", "params", "state", "equations", "loss", "outputs",
        "generate", "train", "x", "h", "y", "W", "H", "V", "t", "shape", "init", "axis", "float",
        "onehot", "index", "feed", "max_len", "lr", "optimizer", "bptt", "end", "tanh"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 1 << 40), st.floats(allow_nan=True),
    st.sampled_from(["h[t] = tanh(W @ x[t] + W @ h[t-1] + b)", "y[t] = W @ h[t]", "mean_t mse(y[t], x[t])",
                     "enc[end]", "zeros", "learned", "normal(0.1)", "orthogonal", "[H, H]", "H*2",
                     "t", "s", "x[t", "", "H", "V", "adam", "h[t] = h[t]"]),
    st.text(SPEC_ALPHABET, max_size=20))
TREES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)), max_leaves=25)


@given(st.dictionaries(st.sampled_from(KEYS[:11]), TREES, max_size=8), st.booleans())
def test_random_yaml_structures(tree, flow):
    try:
        text = yaml.safe_dump(tree, default_flow_style=flow, allow_unicode=True)
    except (yaml.YAMLError, ValueError, OverflowError):
        assume(False)
    loads_only_spec_errors(text)


# ---- (d) well-formed but random expressions ------------------------------------------------------

LEAVES = ["x[t]", "x[t-1]", "x[t+2]", "x[t-H:t+1]", "x[end]", "x[0]", "x", "h[t]", "h[t-1]", "h[t+1]",
          "h[end-1]", "y[t]", "y[t-1]", "z", "W", "b", "H", "2", "0.5", "0", "c[t]", "c[s]", "e[s]",
          "e[end]", "lab", "lab[t]", "t", "end", "mean_t h[t]", "sum_s e[s]", "max_t y[t]"]
FUNCTIONS = ["tanh", "sigmoid", "relu", "exp", "log", "softplus", "abs", "softmax", "log_softmax",
             "flatten", "concat", "clip", "min", "max", "cross_entropy", "mse", "ctc", "conv2d",
             "maxpool2d", "sample", "nope"]


def _call(fn_args):
    fn, args, kw = fn_args
    return f"{fn}({', '.join(args + kw)})"


EXPRS = st.recursive(
    st.sampled_from(LEAVES),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "@"]), inner).map(" ".join),
        inner.map(lambda e: f"-({e})"),
        st.tuples(st.sampled_from(["mean_t", "sum_t", "max_s", "min_t"]), inner).map(" ".join),
        st.tuples(st.sampled_from(FUNCTIONS), st.lists(inner, max_size=3),
                  st.lists(st.sampled_from(["blank=0", "stride=0", "pad=1", "size=2", "lo=0", "hi=h[t]"]),
                           max_size=2)).map(_call)),
    max_leaves=8)


@given(EXPRS, EXPRS, EXPRS, st.sampled_from(["zeros", "learned", "h[end]", "W @ z", "e[end]", "b"]))
def test_random_expressions(h_expr, y_expr, loss, init):
    """Grammatical equations made of the spec's own names: they reach the type checker's
    shape rules, time indices and axes, and the time analysis's cycle checks."""
    text = f"""dims: {{H: 3}}
inputs:
  x: {{float: [H], axis: t}}
  c: {{onehot: H, axis: t}}
  lab: {{index: H, axis: t}}
  e: {{float: [H], axis: s}}
params:
  W: {{shape: [H, H]}}
  b: {{shape: [H]}}
state:
  h:
    init: {init}
equations: |
  h[t] = {h_expr}
  y[t] = {y_expr}
  z = mean_t y[t]
loss: |
  {loss}
"""
    loads_only_spec_errors(text)
