"""Kernels (compiler/group.py): elementwise chains grouped in program order, with the results
read elsewhere as outputs. The values are checked by every forward and gradient test (the
NumPy backend runs a kernel's members in order); here, the grouping itself."""
from hypothesis import given

import rnndsl
from rnndsl.compiler.group import fusable
from rnndsl.compiler.program import Loop, instructions, kernels

from conftest import ROOT, SPECS
from rnndsl.testing.specgen import specs as random_specs


def test_an_lstm_step_is_a_gemm_and_one_kernel():
    prog = rnndsl.compile(ROOT / "specs" / "lstm.yaml").program
    loop = next(i for i in prog.forward if isinstance(i, Loop))
    assert [type(i).__name__ for i in loop.body] == ["Instr", "Kernel"]
    assert set(loop.body[1].outputs) >= {"c", "h"}           # the state is written to memory


def assert_grouped(spec, ungrouped) -> None:
    prog = rnndsl.compile(spec).program
    for k in kernels(prog.forward) + kernels(prog.backward):
        assert k.body and all(fusable(i) and i.mode is k.mode for i in k.body)
    plain = ungrouped(spec)             # grouping keeps every instruction, in order
    assert instructions(prog.forward) == instructions(plain.forward)
    assert instructions(prog.backward) == instructions(plain.backward)


def _ungrouped(monkeypatch):
    from rnndsl.compiler import lower, schedule
    from rnndsl.semantics import timegraph

    def compile_plain(spec):
        with monkeypatch.context() as m:
            m.setattr(schedule, "group", lambda forward, backward, keep: (forward, backward))
            model = rnndsl.load_spec(spec)
            return schedule.schedule(model, lower.lower(model, timegraph.analyse(model)), kernels=False)
    return compile_plain


def test_shipped_specs_group(monkeypatch):
    for path in SPECS:
        assert_grouped(path, _ungrouped(monkeypatch))


@given(random_specs())
def test_generated_specs_group(text):
    import pytest
    with pytest.MonkeyPatch.context() as m:
        assert_grouped(text, _ungrouped(m))
