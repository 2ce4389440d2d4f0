"""rnndsl: a compiler for recurrent neural networks written as YAML specs.

    spec = rnndsl.load_spec("specs/elman.yaml", dims={"H": 32})
    graph = rnndsl.unroll(spec, 5)
    result = rnndsl.interpret(spec, rnndsl.init_params(spec), inputs)
"""
from .core.errors import DataError, SourcePos, SpecError
from .semantics.interpret import interpret
from .runtime.params import init_params
from .pipeline import compile, load_spec, loads_spec
from .semantics.unroll import NodeId, unroll

__all__ = ["DataError", "NodeId", "SourcePos", "SpecError", "compile", "init_params", "interpret",
           "load_spec", "loads_spec", "unroll"]
__version__ = "0.1.0"
