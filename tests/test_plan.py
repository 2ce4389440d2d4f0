"""The planned tape (rnndsl/compiler/plan.py): forward() keeps exactly what backward() and the
caller read, and a buffer that lives within one step holds one step (compiler/verify.py's
verify_plan checks that in every compile; tests/test_verify.py breaks it). Gradients computed
from that tape are checked everywhere else (test_backend, test_specs); here, the tape itself."""
from hypothesis import given

import rnndsl
from rnndsl import backends
from rnndsl.compiler.plan import nbytes
from rnndsl.compiler.program import instructions
from rnndsl.semantics.inputs import prepare, random_batch

from conftest import ROOT, SPECS
from rnndsl.testing.specgen import specs as random_specs

CONTEXT = ("_B", "_dtype", "_T_", "_len_", "_valid_", "_full_", "_fill_", "_carried_")


def assert_planned(model) -> None:
    prog = model.program
    batch = prepare(model.spec, random_batch(model.spec, 5, 2))
    tape = model.module.forward(model.init_params(), batch.arrays, batch.lengths)
    own = {n for n in tape if not n.startswith(CONTEXT)}
    assert own == set(prog.tape) | set(prog.outputs) | {prog.loss.name, "_final", "_total_loss"}
    assert not set(prog.scratch) & (set(prog.tape) | set(prog.outputs))


def test_every_shipped_spec_is_planned():
    for path in SPECS:
        assert_planned(rnndsl.compile(path))


@given(random_specs())
def test_generated_specs_are_planned(text):
    assert_planned(rnndsl.compile(text))


def test_the_lstm_tape_shrinks():
    """Per-step gate sums and products are not kept: the tape is under half of every array."""
    prog = rnndsl.compile(ROOT / "specs" / "lstm.yaml").program
    bufs = {b.name: b for b in prog.values}
    forward = [i.out.name for i in instructions(prog.forward) if i.out.view is None]
    planned = nbytes(bufs, set(prog.tape) | set(prog.outputs), 100, 32, 4, prog.scratch)
    assert len(prog.scratch) >= 3
    assert planned < 0.5 * nbytes(bufs, forward, 100, 32, 4)


def test_the_lstm_gate_adjoints_hold_one_step():
    """d_i, d_f, d_o and d_g live within one backward step (only the gates' adjoint, read by
    the weight-gradient GEMMs after the loop, holds every step)."""
    model = rnndsl.compile(ROOT / "specs" / "lstm.yaml")
    prog = model.program
    grads = {g.name: g for g in prog.grads}
    one_step = {n for n in prog.scratch if n in grads}
    labels = {g.of for n in one_step for g in prog.grads if (g.view[0] if g.view else g.name) == n}
    assert {"g", "i", "f", "o"} <= labels
    assert "d_h" not in one_step and "d_c" not in one_step
    assert "(_B,) + (" in model.source.split("def backward")[1].split("d_g = ")[1].split("\n")[0]


def test_explain_reports_the_tape():
    out = rnndsl.compile(ROOT / "specs" / "lstm.yaml")
    from rnndsl.compiler.explain import explain
    text = explain(out)
    assert "tape (what backward() and the caller read)" in text and "hold one step only" in text


def free_names(source: str, function: str) -> set:
    """Names a module's function reads that neither it nor the module defines: each would be a
    NameError when it runs (a buffer the tape does not carry, for backward())."""
    import ast
    import builtins
    tree = ast.parse(source)
    module = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
              if isinstance(t, ast.Name)}
    module |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    module |= {(a.asname or a.name).split('.')[0] for node in tree.body
               if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    fn = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function)
    local = {a.arg for a in fn.args.args} | {n.id for n in ast.walk(fn)
                                            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    read = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return read - local - module - set(dir(builtins))


@given(random_specs())
def test_every_backend_reads_only_what_the_tape_carries(text):
    """Every name backward() reads is on the tape or made there, for each backend's source
    (emitted only: no JIT). The numba backend reads a view through its base, so the base must
    be carried too (found by hypothesis: a NameError in backward)."""
    spec = rnndsl.loads_spec(text)
    for name in backends.names():
        if backends.available(name):
            source = rnndsl.compile(spec, backend=name).source if name == "numpy" else _emit(spec, name)
            assert not free_names(source, "backward"), name
            assert not free_names(source, "forward"), name


def _emit(spec, name: str) -> str:
    from rnndsl.compiler import lower, schedule
    from rnndsl.semantics import timegraph
    program = schedule.schedule(spec, lower.lower(spec, timegraph.analyse(spec)), backends.runs_kernels(name))
    return backends.get(name).emit_module(program, spec.name, "spec.yaml", "float32")


def test_the_first_whole_contribution_to_an_adjoint_writes_it():
    """compiler/adjoints.py: d_h's first share (the output layer's, all steps at once, before
    the reverse loop adds its own) writes the buffer, which then needs no zeros."""
    model = rnndsl.compile(ROOT / "specs" / "lstm.yaml", backend="numpy")
    assert "d_h" not in model.program.zeroed
    backward = model.source.split("def backward(")[1]
    assert "d_h[...] = _gemm(" in backward and "d_h += _gemm(" not in backward
