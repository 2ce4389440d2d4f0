"""rnndsl: a compiler for recurrent neural networks written as YAML specs.

    spec = rnndsl.load_spec("specs/elman.yaml", dims={"H": 32})
    graph = rnndsl.unroll(spec, 5)
    result = rnndsl.interpret(spec, rnndsl.init_params(spec), inputs)
    run = rnndsl.train("specs/char_rnn.yaml", data="input.txt", out="runs/lm", epochs=5)
    run = rnndsl.load_run("runs/lm"); run.sample("ROMEO:"); run.evaluate(); run.export("lm.safetensors")

train, load_run, load_params and Run are imported when first used (training brings tqdm and
matplotlib; compiling a spec does not need them).
"""
from .core.errors import DataError, SourcePos, SpecError
from .semantics.interpret import interpret
from .runtime.params import init_params
from .pipeline import compile, load_spec, loads_spec
from .semantics.unroll import NodeId, unroll

__all__ = ["DataError", "NodeId", "Run", "SourcePos", "SpecError", "compile", "init_params", "interpret",
           "load_params", "load_run", "load_spec", "loads_spec", "train", "unroll"]
_LAZY = {"train": "runs", "load_run": "runs", "Run": "runs", "load_params": "weights"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".tools.{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'rnndsl' has no attribute {name!r}")
__version__ = "0.1.0"
