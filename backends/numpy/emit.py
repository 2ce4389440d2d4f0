"""Program -> Python source: the forward and backward passes as one readable module.

The module imports only NumPy. It holds a fixed docstring, the spec's name and file name as
repr literals, the kernels the passes call (copied from rnndsl/core/kernels.py and
backends/numpy/helpers.py, so the op table stays the single definition), their _-aliases, the passes
(backends/numpy/passes.py) and loss_and_grad. Arrays are time-major: sequence buffers (T, B, ...),
static ones (B, ...), parameters as declared.
"""
from __future__ import annotations

import ast
import inspect

from ...core import kernels
from ...compiler.program import Program
from . import helpers
from .passes import Passes


def emit_module(prog: Program, spec_name: str, spec_file: str, dtype: str = "float64") -> str:
    """The source text of a standalone module for `prog`; `dtype` is its default precision.
    The spec's name and file name are untrusted text: they appear only as repr literals."""
    return module_source(Passes(prog, dtype), spec_name, spec_file)


def module_source(e: Passes, spec_name: str, spec_file: str) -> str:
    """The module around the passes `e` writes (a kernel backend's subclass adds its imports
    and the kernels it defines: `e.imports`, `e.definitions()` after the passes are written)."""
    passes = [e.forward(), e.backward()]
    used = {n[1:] for n in _names("\n\n".join(passes)) if n.startswith("_")}
    kernels = _closure(used)
    parts = [_DOC, "\n".join(["import numpy as np", *e.imports]) + "\n\nxp = np",
             f"SPEC_NAME = {str(spec_name)!r}\nSPEC_FILE = {str(spec_file)!r}",
             _kernel_sources(kernels), _aliases(kernels, used), *e.definitions(), *passes, _DRIVER]
    return "\n\n".join(p.rstrip() for p in parts) + "\n"


_DOC = '''"""A recurrent model compiled by rnndsl: forward(), backward() and loss_and_grad(); do not edit.

In forward() and backward() the spec's own names are used as written and the adjoint of v is
d_v; every other name there begins with _ (the checker refuses spec names that begin with _ or
d_), so no spec name can shadow the code's. Comments quote the spec through repr."""'''

# Builtins the passes may call, under their reserved names
BUILTINS = ("range", "len", "dict", "float", "bool")


def _kernel_sources(kernels: list) -> str:
    """The source of every kernel and helper the program calls, in dependency order."""
    sources = ["# ---- kernels (rnndsl/core/kernels.py) and helpers (backends/numpy/helpers.py) ----"]
    sources += [_source(f, n) for n, f in kernels]
    return "\n\n".join(s.rstrip() for s in sources)


def _aliases(kernels: list, used: set) -> str:
    """The globals the passes use (`used`), each under a reserved name (`_` + its name)."""
    names = ["np", "xp", *[b for b in BUILTINS if b in used]]
    names += [n for n, f in kernels if inspect.isfunction(f) and not n.startswith("_") and n in used]
    taken = {f"_{n}" for n in names} & {n for n, _ in kernels}
    assert not taken, f"kernels.py or helpers.py defines {taken}, the alias of a global the passes call"
    return "\n".join(["# ---- the names forward() and backward() use: spec names never begin with _ ----"]
                     + [f"_{n} = {n}" for n in names])


def _closure(names: set, modules: tuple = (kernels, helpers)) -> list:
    """Functions named in `names`, plus the module functions they call, in source order (a
    later module's function replaces an earlier one's of the same name: a backend's own)."""
    pool = {n: f for mod in modules for n, f in vars(mod).items()
            if (inspect.isfunction(f) and f.__module__ == mod.__name__) or n.isupper() and n.startswith("_")}
    wanted, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in wanted or name not in pool:
            continue
        wanted.add(name)
        if inspect.isfunction(pool[name]):
            todo += [n for n in _names(inspect.getsource(pool[name])) if n in pool]
    order = {n: i for i, n in enumerate(pool)}
    return [(n, pool[n]) for n in sorted(wanted, key=order.get)]


def _names(source: str) -> set:
    """The names a piece of code reads (not attributes: `xp.matmul` does not need the kernel
    `matmul`), from its syntax tree."""
    tree = ast.parse(inspect.cleandoc(source) if source[:1].isspace() else source)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _source(obj, name: str) -> str:
    if not inspect.isfunction(obj):
        return f"{name} = {obj!r}\n"
    return getattr(obj, "__source__", None) or inspect.getsource(obj)   # rendered from a template: its kept source


_DRIVER = '''
def loss_and_grad(params, inputs, lengths=None, dtype=None, truncate=None, buffers=None):
    """Mean loss over the batch and the gradient of every parameter; `buffers`: a dict of yours
    that backward() keeps its adjoint buffers in between calls (faster), None for fresh ones."""
    tape = forward(params, inputs, lengths, *([dtype] if dtype else []))
    return tape["_total_loss"], backward(params, tape, truncate, buffers)
'''
