"""The compiler's stages, one line each: a table of contents for the code.

    load_spec: YAML text -> located tree (spec) -> typed IR (check) -> time analysis (timegraph)
    compile:   typed IR -> forward program (lower) -> fused, differentiated, planned program
               (schedule, autodiff) -> source (backends.emit) -> loaded module (runtime)
"""
from __future__ import annotations

from pathlib import Path

from .frontend import check, ir, spec
from .compiler import lower, schedule
from .semantics import timegraph
from . import backends
from .core.errors import Source
from .runtime.model import CompiledModel

BACKENDS = backends.names()


def load_spec(path_or_text: str | Path | ir.Model, dims: dict | None = None) -> ir.Model:
    """Parse and check a spec file (or a YAML string containing a newline); raises SpecError."""
    if isinstance(path_or_text, ir.Model):
        return path_or_text
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return loads_spec(path_or_text, dims=dims)
    source = spec.read_text(path_or_text)
    return _check(source, dims, Path(path_or_text).stem)


def loads_spec(text: str, path: str = "<spec>", dims: dict | None = None) -> ir.Model:
    """Parse and check a spec given as text; `path` names it in error messages."""
    return _check(Source(path, text), dims, Path(path).stem)


def _check(source: Source, dims: dict | None, name: str) -> ir.Model:
    tree = spec.parse_yaml(source)
    model = check.check(tree, dims, name)
    timegraph.analyse(model)          # cycles of zero delay or mixed direction are spec errors
    return model


def compile(spec_or_path, backend: str | None = None, dtype: str = "float64",
            dims: dict | None = None) -> CompiledModel:
    """Compile a spec (a path, YAML text or a checked model) to a loaded model; `backend`:
    one of BACKENDS, None for the fastest installed (backends.default())."""
    backend = backend or backends.default()
    emitter = backends.get(backend)              # before the work: an unknown or missing one
    model, program, source = emit(spec_or_path, backend, dtype, dims)
    module = emitter.load(source, model.name)
    return CompiledModel(model, program, source, module, dtype, backend)


def emit(spec_or_path, backend: str, dtype: str = "float64", dims: dict | None = None) -> tuple:
    """(checked model, program, the module's source): every stage but loading, which is all
    that needs the backend's own module (emitting CuPy code needs neither CuPy nor a GPU)."""
    emitter = backends.emitter(backend)
    model = load_spec(spec_or_path, dims=dims)
    analysis = timegraph.analyse(model)
    program = schedule.schedule(model, lower.lower(model, analysis), backends.runs_kernels(backend))
    return model, program, emitter.emit_module(program, model.name, Path(model.path).name, dtype)
