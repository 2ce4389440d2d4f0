"""The program verifier (rnndsl/compiler/verify.py) runs after every pass of every compile; here, each
invariant it holds is broken on purpose and must be named."""
import pytest

import rnndsl
from rnndsl.core.ops import Op
from rnndsl.compiler.program import Buf, Instr, Loop, Mode, Ref, Role
from rnndsl.compiler.verify import ProgramError, verify

from conftest import SPECS

X = Buf("x", (3,), "t", Role.INPUT)
W = Buf("W", (3, 3), None, Role.PARAM)
H = Buf("h", (3,), "t", Role.VALUE)
Z = Buf("_z1", (6,), "t", Role.VALUE)


def test_a_read_before_any_write():
    items = [Instr(H, Op.TANH, (Ref(Buf("a", (3,), "t", Role.VALUE)),), Mode.SEQ)]
    with pytest.raises(ProgramError, match="after lower: h = tanh.*reads a before anything writes it"):
        verify(items, {"x", "W"}, "lower")


def test_a_read_at_the_current_step_before_the_loop_writes_it():
    a = Buf("a", (3,), "t", Role.VALUE)
    body = (Instr(H, Op.TANH, (Ref(a),), Mode.STEP), Instr(a, Op.TANH, (Ref(X),), Mode.STEP))
    with pytest.raises(ProgramError, match="reads a before"):
        verify([Loop("t", False, body)], {"x", "W"}, "fuse")
    earlier = (Instr(a, Op.TANH, (Ref(X),), Mode.STEP), Instr(H, Op.TANH, (Ref(H, -1),), Mode.STEP))
    verify([Loop("t", False, earlier)], {"x", "W"}, "fuse")       # h[t-1]: the step before


def test_a_view_outside_its_base():
    wide = Buf("g", (4,), "t", Role.VALUE, view=("_z1", 4, 8))
    items = [Instr(Z, Op.TANH, (Ref(Buf("y", (6,), "t", Role.INPUT)),), Mode.SEQ),
             Instr(H, Op.TANH, (Ref(wide),), Mode.SEQ)]
    with pytest.raises(ProgramError, match="runs past _z1's 6"):
        verify(items, {"y"}, "fuse")


def test_two_writers_of_one_buffer():
    items = [Instr(H, Op.TANH, (Ref(X),), Mode.SEQ), Instr(H, Op.SIGMOID, (Ref(X),), Mode.SEQ)]
    with pytest.raises(ProgramError, match="writes h, which an earlier instruction wrote"):
        verify(items, {"x"}, "lower")
    verify(items, {"x"}, "autodiff", single_writer=False)


def test_a_rank_the_op_table_does_not_give():
    items = [Instr(Buf("m", (3, 3), "t", Role.VALUE), Op.MATMUL, (Ref(W), Ref(X)), Mode.SEQ)]
    with pytest.raises(ProgramError, match=r"matmul of ranks \(2, 1\) has rank 1, but m has rank 2"):
        verify(items, {"x", "W"}, "lower")


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_shipped_spec_passes_every_stage(path):
    rnndsl.compile(path)             # schedule() verifies after lower, fuse, autodiff and adjoints


def test_a_one_step_buffer_read_at_another_step():
    from rnndsl.compiler.verify import verify_plan
    a = Buf("a", (3,), "t", Role.VALUE)
    body = (Instr(a, Op.TANH, (Ref(X),), Mode.STEP), Instr(H, Op.TANH, (Ref(a, -1),), Mode.STEP))
    with pytest.raises(ProgramError, match=r"after plan: h = tanh.*reads a\[t-1\], which holds one step only"):
        verify_plan([Loop("t", False, body)], [], {"a"}, set())
    verify_plan([Loop("t", False, body)], [], set(), set())


def test_a_one_step_buffer_read_after_its_loop_or_by_backward():
    from rnndsl.compiler.verify import verify_plan
    a = Buf("a", (3,), "t", Role.VALUE)
    loop = Loop("t", False, (Instr(a, Op.TANH, (Ref(X),), Mode.STEP),))
    after = Instr(H, Op.TANH, (Ref(a),), Mode.SEQ)
    with pytest.raises(ProgramError, match=r"reads a\[t\], which holds one step only"):
        verify_plan([loop, after], [], {"a"}, set())
    with pytest.raises(ProgramError, match="in the backward pass"):
        verify_plan([loop], [Instr(Buf("d_x", (3,), "t", Role.GRAD), Op.TANH, (Ref(a),), Mode.SEQ)], {"a"}, set())
    with pytest.raises(ProgramError, match="a outlive the forward pass"):
        verify_plan([loop], [], {"a"}, {"a"})


def test_a_kernel_result_read_outside_but_not_an_output():
    from rnndsl.compiler.program import Kernel
    from rnndsl.compiler.verify import verify_kernels
    a = Buf("a", (3,), "t", Role.VALUE)
    k = Kernel("_k1", (Instr(a, Op.TANH, (Ref(X),), Mode.SEQ), Instr(H, Op.TANH, (Ref(a),), Mode.SEQ)), ("h",))
    later = Instr(Buf("y", (3,), "t", Role.VALUE), Op.TANH, (Ref(a),), Mode.SEQ)
    with pytest.raises(ProgramError, match="a is read outside kernel _k1"):
        verify_kernels([k, later], {"x"}, "group")
    verify_kernels([k], {"x"}, "group")
    odd = Kernel("_k2", (Instr(a, Op.MATMUL, (Ref(W), Ref(X)), Mode.SEQ),), ("a",))
    with pytest.raises(ProgramError, match="cannot be fused"):
        verify_kernels([odd], {"x"}, "group")


def test_a_one_step_adjoint_read_after_its_loop_or_written_at_another_step():
    from rnndsl.compiler.verify import verify_plan
    d_a = Buf("d_a", (3,), "t", Role.GRAD, of="a")
    d_h = Buf("d_h", (3,), "t", Role.GRAD, of="h")
    write = Instr(d_a, Op.TANH, (Ref(X),), Mode.STEP)
    loop = Loop("t", True, (write, Instr(d_h, Op.TANH, (Ref(d_a),), Mode.STEP)))
    verify_plan([], [loop], {"d_a"}, set())
    after = Instr(Buf("d_W", (3,), None, Role.GRAD, of="W"), Op.TANH, (Ref(d_a),), Mode.SEQ)
    with pytest.raises(ProgramError, match=r"reads d_a\[t\], which holds one step only"):
        verify_plan([], [loop, after], {"d_a"}, set())
    shifted = Instr(d_a, Op.TANH, (Ref(X),), Mode.STEP, accumulate=True, target=Ref(d_a, -1))
    with pytest.raises(ProgramError, match=r"d_a\[t-1\], which holds one step only"):
        verify_plan([], [Loop("t", True, (write, shifted))], {"d_a"}, set())


def test_an_adjoint_that_reaches_no_gradient():
    from rnndsl.compiler.verify import verify_live
    d_h, d_w = Buf("d_h", (3,), "t", Role.GRAD), Buf("d_W", (3, 3), None, Role.PARAM)
    dead = Buf("d__t1", (3,), "t", Role.GRAD)
    to_w = Instr(d_w, Op.MATMUL_VJP, (Ref(d_h), Ref(H)), Mode.SEQ, accumulate=True, target=Ref(d_w))
    items = [Instr(dead, Op.TANH_VJP, (Ref(H), Ref(d_h)), Mode.SEQ, accumulate=True, target=Ref(dead)), to_w]
    with pytest.raises(ProgramError, match="d__t1 = tanh_vjp.*reaches no parameter's gradient"):
        verify_live(items, {"d_W"}, "adjoints")
    verify_live(items[1:], {"d_W"}, "adjoints")
    fill = Buf("d_h0", (3,), None, Role.PARAM)       # before the start, h[t-1]'s adjoint goes to the fill
    into_fill = Instr(d_h, Op.COPY, (Ref(d_h),), Mode.STEP, accumulate=True, target=Ref(d_h, -1, fill))
    verify_live([Loop("t", True, (into_fill,))], {"d_h0"}, "adjoints")


SOURCE_ONLY = """name: windowed
dims: {F: 2, H: 3}
inputs:
  x: {float: [F], axis: t}
  y: {float: [H], axis: t}
params:
  W: {shape: [H, 3*F]}
  U: {shape: [H, H]}
equations: |
  m[t] = tanh(2 * x[t])
  h[t] = tanh(W @ m[t-1:t+1] + U @ h[t-1])
loss: mean_t mse(h[t], y[t])
"""


def test_values_made_from_inputs_alone_get_no_adjoint():
    """Activity analysis: m and its window depend on no parameter, so the backward program
    computes nothing for them (it used to compute W^T @ dy for the window)."""
    program = rnndsl.compile(rnndsl.loads_spec(SOURCE_ONLY), backend="numpy").program
    from rnndsl.compiler.program import instructions
    written = {(i.target.buf if i.target else i.out).of for i in instructions(program.backward)}
    window = {i.out.name for i in instructions(program.forward) if any(r.buf.name == "m" for r in i.refs)}
    assert {"h", "W", "U"} <= written and window and not ({"m"} | window) & written
