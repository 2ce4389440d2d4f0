"""The compiler's stages, one line each: a table of contents for the code.

    load_spec: YAML text -> located tree (spec) -> typed IR (check) -> time analysis (timegraph)
"""
from __future__ import annotations

from pathlib import Path

from . import check, ir, spec, timegraph
from .errors import Source


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
