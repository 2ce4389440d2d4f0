"""How the compiler's time and memory grow with the size of a spec and of an unrolled graph.

    python benchmarks/compile_scaling.py                  # N = 100, 300, 1000; T = 100, 400, 1000
    python benchmarks/compile_scaling.py --quick          # N = 30, 100; T = 100, 400
    python benchmarks/compile_scaling.py --sizes 300 --unroll 1000 --shapes chain,wide

Specs are generated (`spec(shape, n)`), n equations each:
    chain   h_i[t] = tanh(W_i @ h_{i-1}[t] + U_i @ h_i[t-1] + b_i): n stacked recurrences
    ring    the same, but h_1 reads h_n[t-1]: one recurrence through all n equations
    shared  every equation reads x[t] and h_1[t-1]: matmuls sharing operands, for fusion
    wide    independent equations each reading a window x[t-2:t+2], summed pairwise in a tree
    reversed  n time-parallel layers written last first (types are inferred against spec order)
    lstm    n/6 stacked LSTM layers: every layer's gates fuse (GEMMs and elementwise runs)
Each case runs in its own process, so its peak memory (max RSS) is its own. Compile time is
split by stage (check, time analysis, lower, schedule = fusion + autodiff + plan, emit,
load = Python compiling the module). `graph` times `rnndsl graph --unroll T` for each
output format on specs with context windows; its graph has T*(2C+1) edges per window read,
so time and memory follow the edge count printed next to them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ("chain", "ring", "shared", "wide", "reversed", "lstm")
GRAPH_SPECS = ("specs/deepspeech.yaml", "specs/tdnn.yaml", "wide:40")


def _header(name: str, params: list, equations: list, loss: str) -> str:
    return "\n".join([f"name: {name}", "dims: {F: 3, H: 2}", "inputs:", "  x: {float: [F], axis: t}",
                      "  y: {float: [H], axis: t}", "params:", *params, "equations: |", *equations,
                      f"loss: {loss}"])


def _recurrent_params(n: int, first_in: str = "F") -> list:
    return ([f"  W1: {{shape: [H, {first_in}]}}"] + [f"  W{i}: {{shape: [H, H]}}" for i in range(2, n + 1)]
            + [f"  U{i}: {{shape: [H, H]}}\n  b{i}: {{shape: [H]}}" for i in range(1, n + 1)])


def chain(n: int) -> str:
    eqs = ["  h1[t] = tanh(W1 @ x[t] + U1 @ h1[t-1] + b1)"]
    eqs += [f"  h{i}[t] = tanh(W{i} @ h{i - 1}[t] + U{i} @ h{i}[t-1] + b{i})" for i in range(2, n + 1)]
    return _header(f"chain{n}", _recurrent_params(n), eqs, f"mean_t mse(h{n}[t], y[t])")


def ring(n: int) -> str:
    eqs = [f"  h1[t] = tanh(W1 @ x[t] + U1 @ h{n}[t-1] + b1)"]
    eqs += [f"  h{i}[t] = tanh(W{i} @ h{i - 1}[t] + U{i} @ h{i}[t-1] + b{i})" for i in range(2, n + 1)]
    return _header(f"ring{n}", _recurrent_params(n), eqs, f"mean_t mse(h{n}[t], y[t])")


def shared(n: int) -> str:
    params = [f"  W{i}: {{shape: [H, F]}}\n  U{i}: {{shape: [H, H]}}\n  b{i}: {{shape: [H]}}" for i in range(1, n + 1)]
    eqs = ["  h1[t] = tanh(W1 @ x[t] + U1 @ h1[t-1] + b1)"]
    eqs += [f"  h{i}[t] = sigmoid(W{i} @ x[t] + U{i} @ h1[t-1] + b{i}) * h{i - 1}[t]" for i in range(2, n + 1)]
    return _header(f"shared{n}", params, eqs, f"mean_t mse(h{n}[t], y[t])")


def wide(n: int, context: int = 2) -> str:
    """About n equations: n/2 windowed ones and the n/2 - 1 sums that add them up."""
    leaves = max(1, (n + 1) // 2)
    width = 2 * context + 1
    params = [f"  W{i}: {{shape: [H, F*{width}]}}\n  b{i}: {{shape: [H]}}" for i in range(1, leaves + 1)]
    eqs = [f"  h{i}[t] = tanh(W{i} @ x[t-{context}:t+{context}] + b{i})" for i in range(1, leaves + 1)]
    level, k = [f"h{i}" for i in range(1, leaves + 1)], 0
    while len(level) > 1:
        pairs = list(zip(level[::2], level[1::2]))
        eqs += [f"  s{k + j + 1}[t] = {a}[t] + {b}[t]" for j, (a, b) in enumerate(pairs)]
        level = [f"s{k + j + 1}" for j in range(len(pairs))] + level[len(pairs) * 2:]
        k += len(pairs)
    return _header(f"wide{n}", params, eqs, f"mean_t mse({level[0]}[t], y[t])")


def reversed_layers(n: int) -> str:
    params = [f"  W{i}: {{shape: [H, {'F' if i == 1 else 'H'}]}}\n  b{i}: {{shape: [H]}}" for i in range(1, n + 1)]
    eqs = [f"  h{i}[t] = tanh(W{i} @ h{i - 1}[t] + b{i})" for i in range(n, 1, -1)]
    eqs.append("  h1[t] = tanh(W1 @ x[t] + b1)")
    return _header(f"reversed{n}", params, eqs, f"mean_t mse(h{n}[t], y[t])")


def lstm(n: int) -> str:
    layers = max(1, n // 6)
    params, eqs = [], []
    for k in range(1, layers + 1):
        below = "x" if k == 1 else f"h{k - 1}"
        params += [f"  W{g}{k}: {{shape: [H, {'F' if k == 1 else 'H'}]}}\n  U{g}{k}: {{shape: [H, H]}}\n"
                   f"  b{g}{k}: {{shape: [H]}}" for g in "ifog"]
        eqs += [f"  {g}{k}[t] = {'tanh' if g == 'g' else 'sigmoid'}(W{g}{k} @ {below}[t] + U{g}{k} @ h{k}[t-1]"
                f" + b{g}{k})" for g in "ifog"]
        eqs += [f"  c{k}[t] = f{k}[t] * c{k}[t-1] + i{k}[t] * g{k}[t]", f"  h{k}[t] = o{k}[t] * tanh(c{k}[t])"]
    return _header(f"lstm{n}", params, eqs, f"mean_t mse(h{layers}[t], y[t])")


def spec(shape: str, n: int) -> str:
    return {"chain": chain, "ring": ring, "shared": shared, "wide": wide, "reversed": reversed_layers,
            "lstm": lstm}[shape](n)


# ---- one measurement, in a child process -------------------------------------------------------

def _compile_stages(text: str) -> dict:
    from rnndsl.compiler import lower, schedule
    from rnndsl.semantics import timegraph
    from rnndsl.backends.numpy import emit
    from rnndsl.backends.numpy import runtime as numpy_runtime
    from rnndsl.pipeline import loads_spec
    times, t0 = {}, time.perf_counter()

    def lap(stage: str):
        nonlocal t0
        times[stage], t0 = time.perf_counter() - t0, time.perf_counter()

    model = loads_spec(text, "scaling.yaml"); lap("check")
    analysis = timegraph.analyse(model); lap("analyse")
    low = lower.lower(model, analysis); lap("lower")
    program = schedule.schedule(model, low); lap("schedule")
    source = emit.emit_module(program, model.name, "scaling.yaml", "float64"); lap("emit")
    numpy_runtime.load(source, model.name); lap("load")
    return times


def _graph(path: str, steps: int, fmt: str) -> dict:
    from rnndsl.tools import cli
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        rc = cli.main(["graph", path, "--unroll", str(steps), "--format", fmt])
    seconds = time.perf_counter() - t0
    head = out.getvalue().split("\n", 1)[0]
    return {"total": seconds, "rc": rc, "head": head, "bytes": len(out.getvalue())}


def _one(args) -> None:
    if args.one == "compile":
        result = _compile_stages(spec(args.shape, args.n))
    else:
        result = _graph(args.path, args.n, args.format)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _child(timeout: int, *argv) -> dict:
    try:
        done = subprocess.run([sys.executable, __file__, *map(str, argv)], capture_output=True, text=True,
                              cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout} s"}
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- the tables ----------------------------------------------------------------------------------

def compile_table(shapes, sizes, timeout: int) -> None:
    stages = ("check", "analyse", "lower", "schedule", "emit", "load")
    print(f"{'spec':<12}" + "".join(f"{s:>9}" for s in stages) + f"{'total s':>9}{'MB':>7}")
    for shape in shapes:
        for n in sizes:
            r = _child(timeout, "--one", "compile", "--shape", shape, "--n", n)
            if "error" in r:
                print(f"{shape}{n:<7} {r['error']}")
                continue
            total = sum(r[s] for s in stages)
            print(f"{shape + str(n):<12}" + "".join(f"{r[s]:>9.3f}" for s in stages)
                  + f"{total:>9.2f}{r['max_rss_mb']:>7.0f}")


def graph_table(specs, steps, formats, tmp: Path, timeout: int) -> None:
    print(f"{'spec':<24}{'T':>6}  {'format':<6}{'seconds':>9}{'MB':>7}{'out MB':>8}  graph")
    for name in specs:
        path = name
        if name.startswith("wide:"):
            path = tmp / f"wide{name[5:]}.yaml"
            path.write_text(wide(int(name[5:])))
        for t in steps:
            for fmt in formats:
                r = _child(timeout, "--one", "graph", "--path", path, "--n", t, "--format", fmt)
                if "error" in r:
                    print(f"{name:<24}{t:>6}  {fmt:<6} {r['error']}")
                    continue
                print(f"{name:<24}{t:>6}  {fmt:<6}{r['total']:>9.2f}{r['max_rss_mb']:>7.0f}"
                      f"{r['bytes'] / 1e6:>8.1f}  {r['head'].split(': ', 1)[-1] if fmt == 'text' else ''}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes: does it run?")
    p.add_argument("--sizes", help="equation counts, comma-separated (default 100,300,1000)")
    p.add_argument("--unroll", help="steps for graph, comma-separated (default 100,400,1000)")
    p.add_argument("--shapes", default=",".join(SHAPES), help=f"spec shapes ({', '.join(SHAPES)})")
    p.add_argument("--formats", default="text,dot,json", help="graph output formats")
    p.add_argument("--timeout", type=int, default=600, help="seconds a case may take (default 600)")
    p.add_argument("--one", choices=("compile", "graph"), help=argparse.SUPPRESS)
    p.add_argument("--shape", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--format", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        return _one(args)
    sizes = [int(s) for s in (args.sizes or ("30,100" if args.quick else "100,300,1000")).split(",")]
    steps = [int(s) for s in (args.unroll or ("100,400" if args.quick else "100,400,1000")).split(",")]
    compile_table(args.shapes.split(","), sizes, args.timeout)
    print()
    with tempfile.TemporaryDirectory() as tmp:
        graph_table(GRAPH_SPECS, steps, args.formats.split(","), Path(tmp), args.timeout)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
