"""Spec text never runs and spec names never meet the generated code's names (issue 8, items 1
and 10). Spec names become identifiers in the emitted module, whose own names all begin with _
(or are d_ + a name): a hypothesis test renames a spec's entities to identifiers drawn from the
emitted module itself and checks that the result is a clear SpecError or the same numbers. Every
string a spec or its file name carries is fed hostile text; the module must compile, keep the
text only as data and run nothing of it."""
import ast
import builtins
import io
import keyword
import re
import tokenize

import numpy as np
import pytest
from hypothesis import given, strategies as st

import rnndsl
from rnndsl import backends
from rnndsl.backends.numpy.passes import _comment
from rnndsl.core.ops import BY_SPELLING

# Every role a name can take: inputs, params, a learned init, a forward and a backward
# recurrence, a window read, a variable; ragged lengths and a carried stream exercise the masks.
TEMPLATE = """
name: {name}
dims: {{V: 4, H: 3}}
inputs:
  {x}: {{onehot: V, axis: t}}
  {y}: {{index: V, axis: t}}
params:
  {W}: {{shape: [H, V]}}
  {U}: {{shape: [H, H]}}
  {Q}: {{shape: [H, H*3]}}
  {b}: {{shape: [H]}}
  {O}: {{shape: [V, H]}}
state:
  {h}: {{init: learned}}
  {g}: {{init: zeros}}
equations: |
  {h}[t] = tanh({W} @ {x}[t] + {U} @ {h}[t-1] + {b})
  {g}[t] = sigmoid({Q} @ {h}[t-1:t+1] + {U} @ {g}[t+1])
  {z}[t] = {O} @ ({h}[t] * {g}[t])
loss: mean_t cross_entropy({z}[t], {y}[t])
"""
ROLES = ("x", "y", "W", "U", "Q", "b", "O", "h", "g", "z")
BASE = {r: f"n{r}{r}" for r in ROLES}          # names no code generator would think of
NOT_NAMES = {"V", "H", "t", "end"}              # the template's dims and axis, and `end`
_REDUCTION = re.compile(r"(sum|mean|max|min)_[A-Za-z]")


def _spec(names: dict, name: str = "namespaces") -> str:
    return TEMPLATE.format(name=name, **names)


def _identifiers(source: str) -> set:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.string for tok in tokens if tok.type == tokenize.NAME}


BASE_MODEL = rnndsl.compile(_spec(BASE))
ISSUE_NAMES = {"full_t", "carry", "gemm", "shift", "scratch", "embed", "loss", "final", "total_loss",
               "B", "xp", "np", "tape", "params", "inputs", "lengths", "dtype", "truncate", "range",
               "len", "dict", "float", "locals", "bool", "forward", "backward", "SPEC_NAME", "nh_init"}
POOL = sorted(_identifiers(BASE_MODEL.source) | ISSUE_NAMES | set(dir(builtins)))


def _fresh(names: dict) -> bool:
    """Whether every name is one a spec may use: the compile must then succeed."""
    taken = list(names.values()) + [names["h"] + "_init"]
    return len(set(taken)) == len(taken) and not any(
        keyword.iskeyword(n) or n.startswith(("_", "d_")) or n in BY_SPELLING or n in NOT_NAMES
        or _REDUCTION.match(n) or not n.isidentifier() for n in names.values()) \
        and names["x"] != "lengths" and names["y"] != "lengths" and not {names["h"], names["g"], names["z"]} & {"loss", "losses"}


def _inputs(names: dict, rng) -> dict:
    ids = rng.integers(0, 4, (7, 3))
    return {names["x"]: ids[:-1], names["y"]: ids[1:], "lengths": np.array([6, 4, 1])}


def _results(model, names: dict, params: dict) -> tuple:
    """Loss, gradients, every variable and the carried state, keyed by role."""
    inputs = _inputs(names, np.random.default_rng(1))
    mine = {names[r] if r in names else names["h"] + "_init": v for r, v in params.items()}
    step = model.step(mine, inputs, carry={names["h"]: np.full((3, 3), 0.25)})
    outs = model.forward(mine, inputs)
    by_role = {v: k for k, v in names.items()}
    grads = {by_role.get(k, "h_init"): v for k, v in step.grads.items()}
    return step.loss, grads, {r: outs[names[r]] for r in ("h", "g", "z")}, step.final[names["h"]]


def _base_params() -> dict:
    params = BASE_MODEL.init_params(seed=3)
    roles = {v: k for k, v in BASE.items()}
    return {roles.get(k, "h_init"): v + 0.1 for k, v in params.items()}


BASE_RESULTS = _results(BASE_MODEL, BASE, _base_params())


@given(st.dictionaries(st.sampled_from(ROLES), st.sampled_from(POOL), min_size=1, max_size=4))
def test_spec_names_drawn_from_the_emitted_code_are_refused_or_change_nothing(renames):
    _check_renamed(renames)


@pytest.mark.parametrize("name", sorted(ISSUE_NAMES - {"nh_init"}))
def test_the_issues_names_compile_as_any_other(name):
    """Each name the issue found breaking the code (full_t changed the loss, carry dropped the
    state, gemm crashed, ...) gives exactly the numbers of a neutral name, in every role."""
    for role in ROLES:
        _check_renamed({role: name})


def _check_renamed(renames: dict) -> None:
    names = {**BASE, **renames}
    try:
        model = rnndsl.compile(_spec(names))
    except rnndsl.SpecError as exc:
        assert not _fresh(names), f"{renames} refused: {exc.format()}"
        return
    assert _fresh(names), f"{renames} compiled"
    loss, grads, values, final = _results(model, names, _base_params())
    base_loss, base_grads, base_values, base_final = BASE_RESULTS
    assert loss == pytest.approx(base_loss, rel=1e-12)
    for role in base_grads:
        np.testing.assert_allclose(grads[role], base_grads[role], rtol=1e-10, atol=1e-14, err_msg=role)
    for role in base_values:
        np.testing.assert_allclose(values[role], base_values[role], rtol=1e-12, atol=1e-14, err_msg=role)
    np.testing.assert_allclose(final, base_final, rtol=1e-12)


COMPILED_LOOP = """
name: loops
dims: {{V: 4, H: 3}}
inputs:
  x: {{onehot: V, axis: t}}
  y: {{index: V, axis: t}}
params:
  W: {{shape: [H, V]}}
  U: {{shape: [H, H]}}
  O: {{shape: [V, H]}}
state:
  {h}: {{init: zeros}}
equations: |
  {h}[t] = tanh(W @ x[t] + U @ {h}[t-1])
  z[t] = O @ {h}[t]
loss: mean_t cross_entropy(z[t], y[t])
"""


@pytest.mark.skipif(not backends.available("numba"), reason="numba is not installed")
@pytest.mark.parametrize("name", ["range", "len", "float", "bool", "dict", "numba", "np", "tanh_f32", "Loop"])
def test_names_from_the_numba_module_change_nothing_there(name):
    """The numba module in float32 runs a few rows' loops compiled whole (backends/numba/
    loops.py), a function of its own: a recurrent variable named range broke its
    `for _t in range(...)` until it used the module's _range."""
    def run(h):
        model = rnndsl.compile(COMPILED_LOOP.format(h=h), backend="numba", dtype="float32")
        assert "_loop1(" in model.source
        ids = np.random.default_rng(0).integers(0, 4, (6, 2))
        params = rnndsl.compile(COMPILED_LOOP.format(h="nhh"), backend="numpy").init_params(seed=1)
        return model.loss_and_grad(params, {"x": ids[:-1], "y": ids[1:], "lengths": np.array([5, 3])})
    (loss, grads), (want, want_grads) = run(name), run("nhh")
    assert loss == want
    for k in want_grads:
        np.testing.assert_array_equal(grads[k], want_grads[k])


# ---- hostile text in every string a spec carries ---------------------------------------------

MARK = "rnndsl_pwned"
PAYLOADS = [
    f'x"""; import builtins; builtins.{MARK} = 1; """',
    f"x'''; import builtins; builtins.{MARK} = 1; '''",
    f'x"; import builtins; builtins.{MARK} = 1; "',
    f"C:\\Users\\me\\model\\",
    f"a\nimport builtins; builtins.{MARK} = 1\n",
    f"a\rimport builtins; builtins.{MARK} = 1",
    f"a\x0bb\x0cc\x1b[31mred\x1b[0m\x85d\u2028import builtins; builtins.{MARK} = 1\u2029",
    f"\\N{{x}}\\u12 \\x \\",
    "# -*- coding: rot13 -*-",
    "é∂ ☃ \U0001F600",
]
_hostile = st.one_of(st.sampled_from(PAYLOADS),
                     st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                             max_size=40))


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar holding exactly `text`."""
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\U{ord(c):08x}" for c in text)
    return f'"{escaped}"'


def _check_module(source: str, name: str) -> None:
    tree = ast.parse(source)                          # a SyntaxError would be a bug
    consts = {n.targets[0].id: n.value.value for n in tree.body
              if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)}
    assert consts["SPEC_NAME"] == name                # the text survives, as data
    assert not hasattr(builtins, MARK)


@given(name=_hostile, doc=_hostile)
def test_hostile_text_in_a_spec_is_data_not_code(name, doc):
    text = _spec(BASE, _quoted(name)).replace("equations: |\n", f"doc: {_quoted(doc)}\nequations: |\n")
    model = rnndsl.compile(rnndsl.loads_spec(text, path="hostile.yaml"))
    _check_module(model.source, name)
    loss, grads = model.loss_and_grad(model.init_params(0), _inputs(BASE, np.random.default_rng(0)))
    assert np.isfinite(loss)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_file_names_are_data_not_code(tmp_path, payload):
    stem = payload.replace("/", "_").replace("\x00", "")
    path = tmp_path / f"{stem}.yaml"
    try:
        path.write_text(_spec(BASE))
    except (OSError, ValueError):
        pytest.skip("the file system refuses this name")
    model = rnndsl.compile(path)
    _check_module(model.source, "namespaces")
    consts = {n.targets[0].id: n.value.value for n in ast.parse(model.source).body
              if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)}
    assert consts["SPEC_FILE"] == path.name


@given(_hostile)
def test_a_comment_quoting_the_spec_is_one_line_whatever_the_text(text):
    """Comments quote spec lines through repr: no line break or control character of any kind
    (\\r, \\x0c, \\x85, \\u2028, ...) can end one early, and linecache sees one line."""
    comment = _comment(text)
    assert len(comment.splitlines()) == 1 and comment.isprintable()
    tree = ast.parse(f"a = 1\n{comment}\nb = 2\n")
    assert [n.targets[0].id for n in tree.body] == ["a", "b"]

