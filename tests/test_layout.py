"""The package layout shows the pipeline: each subpackage imports only those before it in
LAYERS (and itself), so the order in README.md's Layout is the order the code depends in."""
import ast

from conftest import ROOT

LAYERS = ["core", "frontend", "semantics", "compiler", "backends", "runtime", "pipeline", "training", "tools"]


def _layer(path) -> str:
    """The layer of a source file: rnndsl/<layer>/..., backends/..., or rnndsl/pipeline.py."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return "backends" if parts[0] == "backends" else parts[1] if len(parts) > 2 else parts[1]


def _imported_layers(path) -> set:
    """The layers a module imports from (relative imports resolved against its package)."""
    package = list(path.relative_to(ROOT).parent.parts)
    if package[0] == "backends":
        package = ["rnndsl"] + package
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1] + (node.module or "").split(".")
            names = [base + [a.name] for a in node.names] if not node.module else [base]
            for parts in names:
                parts = [p for p in parts if p]
                if len(parts) > 1 and parts[0] == "rnndsl" and parts[1] in LAYERS:
                    found.add(parts[1])
    return found


def test_each_layer_imports_only_earlier_layers():
    files = list((ROOT / "rnndsl").rglob("*.py")) + list((ROOT / "backends").rglob("*.py"))
    wrong = []
    for path in files:
        layer = _layer(path)
        if layer not in LAYERS:
            continue
        for used in _imported_layers(path):
            if LAYERS.index(used) > LAYERS.index(layer):
                wrong.append(f"{path.relative_to(ROOT)} ({layer}) imports {used}")
    assert not wrong, "\n".join(wrong)


def test_every_module_is_in_a_layer():
    loose = [p.name for p in (ROOT / "rnndsl").glob("*.py") if p.stem not in ("__init__", "__main__", "pipeline")]
    assert not loose, f"modules outside the layered subpackages: {loose}"


def test_backends_are_found_by_name():
    import pytest

    import rnndsl
    from rnndsl import backends
    assert "numpy" in backends.names()
    assert callable(backends.get("numpy").emit_module) and callable(backends.get("numpy").load)
    with pytest.raises(ValueError, match="available: numba, numpy"):
        rnndsl.compile(ROOT / "specs" / "elman.yaml", backend="fortran")
