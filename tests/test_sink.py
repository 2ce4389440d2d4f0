"""Sinking (compiler/sink.py): elementwise work only one loop reads goes back into the loop for
a kernel backend. Checked on the NumPy backend with sinking forced on (no JIT): the forward
equals the interpreter and the gradients equal the unsunk program's."""
import numpy as np
import pytest
from hypothesis import given

import rnndsl
from rnndsl import backends
from rnndsl.compiler.program import Loop, SinkNote, instructions

from conftest import ROOT, SPECS
from test_backend import assert_forward_matches, random_specs, setup


@pytest.fixture
def sinking(monkeypatch):
    monkeypatch.setattr(backends, "runs_kernels", lambda name: True)


def test_the_lstm_bias_add_moves_into_its_step(sinking):
    prog = rnndsl.compile(ROOT / "specs" / "lstm.yaml").program
    loop = next(i for i in prog.forward if isinstance(i, Loop))
    notes = [n for n in prog.notes if isinstance(n, SinkNote)]
    assert notes and notes[0].loop == loop.members
    moved = set(notes[0].values)
    top = instructions([i for i in prog.forward if not isinstance(i, Loop)])
    assert not [i for i in top if i.out.name in moved]
    assert moved <= set(prog.scratch)                           # one step of it is kept


def test_each_direction_of_a_bidirectional_layer_takes_its_own_bias_add(sinking):
    """The two directions' bias adds are not grouped into one call over both halves (which
    two loops would read): each sinks into its own loop."""
    prog = rnndsl.compile(ROOT / "specs" / "birnn.yaml").program
    loops = [i.members for i in prog.forward if isinstance(i, Loop)]
    notes = [n for n in prog.notes if isinstance(n, SinkNote)]
    assert len(loops) == 2 and sorted(n.loop for n in notes) == sorted(loops)


def test_not_for_numpy():
    prog = rnndsl.compile(ROOT / "specs" / "lstm.yaml", backend="numpy").program
    assert not [n for n in prog.notes if isinstance(n, SinkNote)]


def assert_sunk_agrees(text, T, B, seed, monkeypatch) -> None:
    spec, plain, params, inputs = setup(text, T, B, seed)
    with monkeypatch.context() as m:
        m.setattr(backends, "runs_kernels", lambda name: True)
        sunk = rnndsl.compile(spec)
    assert_forward_matches(spec, sunk, params, inputs)
    _, want = plain.loss_and_grad(params, inputs)
    _, got = sunk.loss_and_grad(params, inputs)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_shipped_specs(path, monkeypatch):
    assert_sunk_agrees(path.read_text(), 5, 2, 0, monkeypatch)


@given(random_specs())
def test_generated_specs(text):
    with pytest.MonkeyPatch.context() as m:
        assert_sunk_agrees(text, 4, 2, 1, m)
