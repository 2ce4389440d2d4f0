"""Scalar templates -> NumPy functions over arrays (the NumPy rendering of rnndsl/core/scalar.py).

`numpy_source(name, template)` is the source of `def name(xp, <args>, <attrs>, out=None)`: the
template in NumPy ufunc calls, each intermediate into `out` where the tree allows (so
`dy * (1 - y * y)` is three calls and no temporary), one call where the template is one
primitive; `numpy_function` compiles it, keeping its source for emitters to copy.
"""
from __future__ import annotations

import linecache
import zlib

import numpy as np

from .scalar import PRIMS, Arg, Call, Const, Expr, Template, call_nodes, calls, leaves, py_number, substitute


def numpy_source(fn_name: str, t: Template) -> str:
    """`def fn_name(xp, <args>, <attrs>, out=None)`: the template over arrays in NumPy ufunc
    calls. Into `out` (which must not overlap the arguments) each intermediate lives in the
    buffer of the subtree it came from, so `dy * (1 - y * y)` is three calls into out and a
    second array-reading subtree is the only thing that takes a temporary."""
    body = _lower(t.body)
    if not isinstance(body, Call):                      # an argument itself: a copy
        lines = [f"return xp.positive({body.name}, out=out)"]
    elif body.prim != "where" and calls(body) == 1:
        lines = [f"return {_nested(body, 'out')}"]
    else:
        chain = _Chain()
        chain.into(body, "out")
        lines = ["if out is None:", f"    return {_nested(body)}", *chain.lines, "return out"]
    quiet = sorted({PRIMS[c.prim].errstate for c in call_nodes(t.body)} - {""})
    if quiet:
        lines = [f"with np.errstate({', '.join(f'{w}={chr(34)}ignore{chr(34)}' for w in quiet)}):"] + \
                ["    " + line for line in lines]
    params = ", ".join(("xp",) + t.args + t.attrs + ("out=None",))
    return "\n".join([f"def {fn_name}({params}):", f'    """{t.body}: from a scalar template."""']
                     + ["    " + line for line in lines]) + "\n"


def numpy_function(fn_name: str, t: Template):
    """numpy_source compiled in a namespace holding only NumPy, the source kept on the function
    (`fn.__source__`) and registered with linecache, so inspect.getsource finds it too."""
    source = numpy_source(fn_name, t)
    filename = f"<rnndsl scalar template {fn_name} {zlib.crc32(source.encode()):08x}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    space = {"np": np, "__name__": __name__}
    exec(compile(source, filename, "exec"), space)
    fn = space[fn_name]
    fn.__source__ = source
    return fn


def _lower(e: Expr) -> Expr:
    """Primitives whose NumPy form is a composition, replaced by it."""
    if not isinstance(e, Call):
        return e
    e = Call(e.prim, tuple(_lower(a) for a in e.args))
    form = PRIMS[e.prim].numpy
    return _lower(substitute(form, e.args)) if isinstance(form, Expr) else e


def _np_leaf(e: Expr) -> str:
    return py_number(e.value, False) if isinstance(e, Const) else e.name


def _nested(e: Expr, out: str = "") -> str:
    """One expression of nested calls (each allocates its result)."""
    if not isinstance(e, Call):
        return _np_leaf(e)
    args = [_nested(a) if _reads_array(a) else _scalar(a) for a in e.args] + ([f"out={out}"] if out else [])
    call = f"xp.{PRIMS[e.prim].numpy}({', '.join(args)})"
    if e.prim == "where" and _reads_array(e) and not any(map(_reads_array, e.args[1:])):  # floats
        return f"{call}.astype({leaves(e, Arg)[0].name}.dtype)"
    return call


def _scalar(e: Expr) -> str:
    """A part reading no array, as a Python float (or bool): a NumPy float64 scalar would turn
    float32 arrays into float64 ones."""
    if not isinstance(e, Call):
        return _np_leaf(e)
    return f"{'bool' if e.kind == 'b' else 'float'}({_nested(e)})"


def _reads_array(e: Expr) -> bool:
    return isinstance(e, Call) and bool(leaves(e, Arg))


class _Chain:
    """Statements computing a tree into a destination buffer of numbers: the largest argument
    subtree that reads an array is computed in the destination itself, the others as values.
    A comparison may be computed there (as 0 and 1: a mask then multiplies at float speed), a
    logical and may not (NumPy's and of floats is slower than of booleans)."""

    def __init__(self):
        self.lines, self.temps = [], 0

    def into(self, e: Call, dst: str) -> None:
        if e.prim == "where":
            return self._where(e, dst)
        carried = [i for i, a in enumerate(e.args) if _reads_array(a) and a.prim != "and"]
        k = max(carried, key=lambda i: calls(e.args[i]), default=None)
        texts = []
        for i, a in enumerate(e.args):
            if i == k:
                self.into(a, dst)
            texts.append(dst if i == k else self.value(a))
        self.lines.append(f"xp.{PRIMS[e.prim].numpy}({', '.join(texts)}, out={dst})")

    def value(self, e: Expr) -> str:
        """A leaf, a call on leaves or constants, or booleans (bytes, cheap to allocate) inline;
        a longer chain of numbers in a temporary shaped like out."""
        if not _reads_array(e):
            return _scalar(e)
        if e.kind == "b" or (calls(e) == 1 and e.prim != "where"):
            return _nested(e)
        self.temps += 1
        name = f"_t{self.temps}"
        self.lines.append(f"{name} = xp.empty_like(out)")
        self.into(e, name)
        return name

    def _where(self, e: Call, dst: str) -> None:
        """out = b, then a copied in where the condition holds (np.where takes no out=)."""
        cond, a, b = e.args
        if _reads_array(b):
            self.into(b, dst)
        else:
            self.lines.append(f"xp.copyto({dst}, {_nested(b)})")
        self.lines.append(f"xp.copyto({dst}, {self.value(a)}, where={self.value(cond)})")
