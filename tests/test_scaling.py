"""The compiler's passes grow linearly with the spec and the unrolled graph with its size.

Work is measured by the lines of rnndsl a call executes (deterministic, unlike a clock): four
times the equations or the steps must cost about four times the lines, where a quadratic
pass costs sixteen. A generous clock bound on the sizes issue 8 reported (300 equations took
20 s to compile; 1000 did not finish) backs that up, and the passes made linear are checked
against the simple forms they replace. Specs come from benchmarks/compile_scaling.py.
"""
import contextlib
import importlib.util
import io
import json
import sys
import time
import tracemalloc
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given

import rnndsl
from rnndsl import pipeline
from rnndsl.compiler import adjoints, autodiff, fuse, lower
from rnndsl.tools import cli, graphviz
from rnndsl.semantics import timegraph
from rnndsl.compiler.program import instructions
from rnndsl.semantics.unroll import unroll

from conftest import ROOT
from test_unroll import random_specs, spec_text

_spec = importlib.util.spec_from_file_location("compile_scaling", ROOT / "benchmarks" / "compile_scaling.py")
scaling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scaling)

PACKAGE = (str(Path(rnndsl.__file__).parent), str(Path(rnndsl.backends.__file__).parent))
LINEAR = 4.6          # lines(4n) / lines(n): 4 for a linear pass, 16 for a quadratic one


def executed_lines(fn) -> int:
    """How many lines of rnndsl (and its backends) `fn()` runs."""
    count = 0

    def local(frame, event, arg):
        nonlocal count
        count += event == "line"
        return local

    def enter(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(PACKAGE) else None

    previous = sys.gettrace()
    sys.settrace(enter)
    try:
        fn()
    finally:
        sys.settrace(previous)
    return count


def growth(run, small: int, large: int) -> float:
    return executed_lines(lambda: run(large)) / executed_lines(lambda: run(small))


@pytest.mark.parametrize("shape", scaling.SHAPES)
def test_compile_work_grows_linearly_with_the_equations(shape):
    # Elementwise fusion fuses one run per phase per round (that order fixes the generated
    # names), and a stack of LSTM layers takes a round per layer, each looking once more at
    # every hoisted instruction: a small quadratic term (4.6 here; 10.9 before it was cut).
    bound = 5.5 if shape == "lstm" else LINEAR
    assert growth(lambda n: pipeline.compile(scaling.spec(shape, n)), 20, 80) < bound


@pytest.mark.parametrize("spec", ["specs/deepspeech.yaml", "specs/tdnn.yaml", "wide"])
@pytest.mark.parametrize("fmt", ["text", "dot", "json"])
def test_graph_work_grows_linearly_with_the_steps(spec, fmt, tmp_path):
    if spec == "wide":
        spec = tmp_path / "wide.yaml"
        spec.write_text(scaling.wide(9))

    def graph(steps):
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["graph", str(ROOT / spec), "--unroll", str(steps), "--format", fmt]) == 0
    assert growth(graph, 50, 200) < LINEAR


def test_graph_work_grows_linearly_with_the_equations(tmp_path):
    def graph(n):
        spec = tmp_path / f"wide{n}.yaml"
        spec.write_text(scaling.wide(n))
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["graph", str(spec), "--unroll", "20"]) == 0
    assert growth(graph, 20, 80) < LINEAR


def test_interpreter_work_grows_linearly_with_steps_and_equations():
    def run(text, steps):
        model = rnndsl.loads_spec(text)
        rng = np.random.default_rng(0)
        inputs = {"x": rng.normal(size=(steps, 1, 3)), "y": rng.normal(size=(steps, 1, 2))}
        rnndsl.interpret(model, rnndsl.init_params(model, seed=0), inputs)
    assert growth(lambda steps: run(scaling.wide(9), steps), 10, 40) < LINEAR
    assert growth(lambda n: run(scaling.wide(n), 5), 10, 40) < LINEAR


def test_a_300_equation_spec_compiles_in_seconds():
    start = time.perf_counter()
    pipeline.compile(scaling.chain(300))
    assert time.perf_counter() - start < 15          # 20 s before the passes were linear; ~1.5 s now


def test_graph_of_1000_steps_with_windows_is_fast_and_its_memory_follows_its_size():
    model = rnndsl.load_spec(ROOT / "specs/deepspeech.yaml")
    start = time.perf_counter()
    g = unroll(model, 1000)
    assert time.perf_counter() - start < 10          # ~0.3 s
    C = model.dim["C"].value
    window = 2 * C + 1                               # every h1[t] reads x[t-C..t+C], less at the ends
    assert sum(1 for u, v in g.edges if u.var == "x") == 1000 * window - C * (C + 1)
    tracemalloc.start()
    try:
        size = unroll(model, 400)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1500 * (size.number_of_nodes() + size.number_of_edges())     # ~500 bytes each


def test_the_scaling_benchmark_measures_every_stage():
    times = scaling._compile_stages(scaling.wide(5))
    assert set(times) == {"check", "analyse", "lower", "schedule", "emit", "load"}


# ---- the linear passes agree with the simple ones they replace ---------------------------------

def alias_one_at_a_time(backward: list) -> list:
    """The pass as first written (quadratic): rename the first pass-through copy, repeat."""
    while True:
        counts, viewed = adjoints._contributions(backward), adjoints._viewed(backward)
        pairs = (adjoints._alias_pair(i, counts, viewed) for i in instructions(backward))
        pair = next((p for p in pairs if p), None)
        if pair is None:
            return backward
        copy, (old, new) = pair
        backward = adjoints._rewrite(backward, {id(copy)}, {old: new})


def backward_program(model) -> list:
    forward, _, _ = fuse.fuse(list(lower.lower(model, timegraph.analyse(model)).items))
    return autodiff.differentiate(forward)


@given(random_specs())
def test_alias_renames_as_one_copy_at_a_time_did(case):
    backward = backward_program(rnndsl.loads_spec(spec_text(*case)))
    assert adjoints.alias(backward) == alias_one_at_a_time(backward)


@pytest.mark.parametrize("text", [scaling.spec(shape, 6) for shape in scaling.SHAPES]
                         + [p.read_text() for p in sorted((ROOT / "specs").glob("*.yaml"))])
def test_alias_agrees_on_the_shipped_and_generated_specs(text):
    backward = backward_program(rnndsl.loads_spec(text))
    assert adjoints.alias(backward) == alias_one_at_a_time(backward)


@pytest.mark.parametrize("spec", ["specs/deepspeech.yaml", "specs/seq2seq.yaml", "specs/tdnn.yaml"])
def test_graph_json_is_networkx_node_link_data_of_the_named_graph(spec):
    model = rnndsl.load_spec(ROOT / spec)
    g = unroll(model, 4)
    named = nx.relabel_nodes(g, {n: str(n) for n in g.nodes})
    for node in g.nodes:
        named.nodes[str(node)].update(var=node.var, t=node.t)
    assert graphviz.graph_json(model, g) == json.dumps(nx.node_link_data(named), indent=1)
