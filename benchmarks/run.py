"""rnndsl against PyTorch (CPU) and against this machine's own NumPy GEMM speed.

    python benchmarks/run.py                    # issue 10's shapes, float32, all cores
    python benchmarks/run.py --quick            # 2 repetitions: does it run?
    python benchmarks/run.py --shapes lstm,elman --threads 1 --json out.json

For each shape it compiles its spec (benchmarks/specs/, or the shipped specs/deepspeech.yaml),
builds the same network in PyTorch (references.py, when torch imports), checks that both give the same loss from the same weights and data,
and then times them alternately in this one process (rnndsl fwd, torch fwd, rnndsl fwd+bwd,
torch fwd+bwd, repeated), so a change in the machine's load hits both alike. It prints the
share of the CPU other processes took during each shape: on a 2-core machine a busy second
core can make 2-thread BLAS many times slower, so numbers taken under load are not numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
sys.path[:0] = [str(REPO), str(ROOT)]

import references  # noqa: E402
from rnndsl import backends  # noqa: E402
from rnndsl.tools import bench  # noqa: E402


@dataclass(frozen=True)
class Shape:
    name: str
    spec: str            # path from the repository's root
    kind: str            # the PyTorch network (references.py): lstm, rnn, gru or deepspeech
    T: int
    B: int
    I: int               # features per input frame
    H: int
    K: int = 64
    bidirectional: bool = False
    note: str = ""
    input_dim: str = "I"     # the spec's name for I

    @property
    def dims(self) -> dict:
        return {self.input_dim: self.I, "H": self.H, "K": self.K}


SHAPES = [
    Shape("lstm", "benchmarks/specs/lstm.yaml", "lstm", 100, 32, 128, 256),
    Shape("lstm-big", "benchmarks/specs/lstm.yaml", "lstm", 100, 32, 512, 512),
    Shape("lstm-b1", "benchmarks/specs/lstm.yaml", "lstm", 50, 1, 64, 128, note="overhead-bound"),
    Shape("gru", "benchmarks/specs/gru.yaml", "gru", 100, 32, 256, 512),
    Shape("bilstm", "benchmarks/specs/bilstm.yaml", "lstm", 100, 32, 128, 256, bidirectional=True),
    Shape("deepspeech", "specs/deepspeech.yaml", "deepspeech", 200, 16, 26, 512, K=20, input_dim="F"),
    Shape("elman", "benchmarks/specs/elman.yaml", "rnn", 50, 1, 64, 128, note="overhead-bound"),
]
DEFAULT = ["lstm", "lstm-big", "lstm-b1", "gru", "bilstm", "deepspeech"]     # issue 10's table


# ---- machine load ----------------------------------------------------------------------------

def _cpu_jiffies() -> tuple:
    """(busy, total) CPU time of the whole machine, in seconds (Linux; zeros elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = fields[3] + fields[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


def _process_seconds(pid: int) -> float:
    """CPU seconds a process has used (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """The share of all cores that other processes used between start() and stop(); `pids`
    are ours too (rnndsl's worker processes)."""

    def __init__(self, pids=()):
        self.pids = list(pids)

    def _own(self) -> float:
        return sum(os.times()[:2]) + sum(_process_seconds(p) for p in self.pids)

    def start(self):
        self.machine, self.own = _cpu_jiffies(), self._own()
        return self

    def stop(self) -> float:
        busy, total = _cpu_jiffies()
        own = self._own() - self.own
        if total - self.machine[1] <= 0:
            return 0.0
        return max(0.0, (busy - self.machine[0] - own) / (total - self.machine[1]))


# ---- one shape ------------------------------------------------------------------------------

def run_shape(shape: Shape, repeat: int, warmup: int, use_torch: bool, dtype: str,
              details_wanted: bool = True, settle: float = 0.0, alone: bool = False,
              ) -> bench.Result:
    """Compile, check against torch, time everything interleaved (or, `alone`, one
    implementation after the other); a Result with extras. Data parallelism over MPI ranks is
    timed by benchmarks/mpi_steps.py."""
    run = bench.prepare(REPO / shape.spec, shape.T, shape.B, shape.dims, dtype)
    model = run["model"]
    try:
        return _time_shape(shape, run, repeat, warmup, use_torch, dtype, details_wanted, settle, alone)
    finally:
        model.close()


def _time_shape(shape, run, repeat, warmup, use_torch, dtype, details_wanted, settle, alone) -> bench.Result:
    model = run["model"]
    extra = {"label": shape.name}
    ref = references.reference(shape, run) if use_torch else None
    fns = {"forward": run["forward"], "train": run["train"]}
    if ref is not None:
        extra["loss_rnndsl"], extra["loss_torch"] = same_loss(shape, run, ref)
        extra["compared"] = references.COMPARED[shape.kind]
        fns = {"forward": run["forward"], "torch_forward": ref["forward"],
               "train": run["train"], "torch_train": ref["train"]}
    gemm_list = bench.gemms(model, shape.T, shape.B)
    fns["gemm"] = bench.gemm_program(gemm_list, dtype)
    meter = LoadMeter(()).start()
    t = _timings(fns, repeat, warmup, settle, alone)
    extra["other_load"] = meter.stop()
    extra.update({k: v for k, v in t.items() if k.startswith("torch")})
    extra.update(gemm=t["gemm"], gemm_seconds=t["gemm"].median,
                 gemm_gflops=sum(g.flops for g in gemm_list) / t["gemm"].median / 1e9)
    if details_wanted:
        extra["gemm_shapes"] = bench.gemm_bound(gemm_list, dtype)[2]
    return bench.Result(shape.name, shape.T, shape.B, shape.dims, dtype,
                        bench.flops(model, shape.T, shape.B), t["forward"], t["train"], extra)


def _timings(fns: dict, repeat: int, warmup: int, settle: float, alone: bool) -> dict:
    """name -> Timing: every function alternately, or (`alone`) one library after the other."""
    if not alone:
        return bench.interleave(fns, repeat, warmup, settle)
    t = {}
    for group in (("forward", "train"), ("gemm",), ("torch_forward", "torch_train")):
        time.sleep(1.0)                      # let the previous library's threads sleep
        t.update(bench.interleave({k: fns[k] for k in group if k in fns}, repeat, warmup))
    return t


def same_loss(shape: Shape, run: dict, ref: dict) -> tuple:
    """(rnndsl's loss, PyTorch's) from the same weights and data; a warning when they differ
    by more than float32 rounding."""
    model = run["model"]
    ours = float(model.module.forward(run["params"], run["arrays"], run["lengths"], model.dtype)["_total_loss"])
    theirs = float(ref["loss"]().detach())
    if abs(ours - theirs) > 1e-3 * max(1.0, abs(theirs)):
        print(f"warning: {shape.name}: losses differ: rnndsl {ours:.6f}, torch {theirs:.6f}", file=sys.stderr)
    return ours, theirs


def auto_repeat(shape: Shape, budget: float, quick: bool, repeat: int | None = None,
                most: int = 200) -> tuple:
    """(repeat, warmup): `repeat` if given, else about `budget` seconds of rnndsl fwd+bwd
    (at most `most`)."""
    if quick:
        return repeat or 2, 1
    if repeat:
        return repeat, 2
    run = bench.prepare(REPO / shape.spec, shape.T, shape.B, shape.dims)
    try:
        once = bench.time_fn(run["train"], 1, warmup=1).median
    finally:
        run["model"].close()
    return int(min(most, max(5, budget / (2 * once)))), 2


# ---- text ------------------------------------------------------------------------------------

def machine() -> list:
    lines = [f"machine: {_cpu_model()}, {os.cpu_count()} logical CPUs; {platform.platform()}",
             f"python {platform.python_version()}, numpy {np.__version__}" + _torch_version()]
    lines += [f"BLAS: {b}" for b in _blas()]
    lines.append(f"rnndsl backend: {_backend()}")
    return lines


def _backend() -> str:
    """The backend bench.prepare compiles with (the default), and numba's version when it is that."""
    name = backends.default()
    if name != "numba":
        return name
    import numba
    return f"numba (numba {numba.__version__})"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _torch_version() -> str:
    try:
        import torch
    except ImportError:
        return ", torch not installed"
    return f", torch {torch.__version__} ({torch.get_num_threads()} threads)"


def _blas() -> list:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["(install threadpoolctl to see it)"]
    return [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, {i.get('num_threads')} "
            f"threads) {Path(i.get('filepath', '')).name}" for i in threadpool_info()]


def details(results: list) -> str:
    out = []
    for r in results:
        shapes = ", ".join(f"{m}x{k}@{k}x{n}: {g:.0f}" for (m, n, k), g in r.extra.get("gemm_shapes", {}).items())
        loss = (f"; loss rnndsl {r.extra['loss_rnndsl']:.5f} torch {r.extra['loss_torch']:.5f}"
                if "loss_torch" in r.extra else "")
        compared = f"; compared with {r.extra['compared']}" if "compared" in r.extra else ""
        out.append(f"- {r.extra['label']}: {r.flops.forward / 1e9:.3f} / {r.flops.train / 1e9:.3f} GFLOP "
                   f"(fwd / fwd+bwd); other processes used {100 * r.extra['other_load']:.0f}% of the CPU"
                   f"{loss}{compared}; NumPy GEMM GFLOP/s by shape: {shapes}")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 repetitions, 1 warm-up: a smoke test")
    ap.add_argument("--shapes", default=",".join(DEFAULT),
                    help=f"comma-separated, from {', '.join(s.name for s in SHAPES)}, or all "
                         f"(default: {', '.join(DEFAULT)})")
    ap.add_argument("--threads", type=int, default=None, help="cap BLAS and torch threads (threadpoolctl)")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions (default: about --budget s each)")
    ap.add_argument("--budget", type=float, default=20.0, help="seconds of rnndsl fwd+bwd per shape")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    ap.add_argument("--settle", type=float, default=None,
                    help="seconds to sleep before each timed call (default 0.1 with torch and "
                         "more than one thread: idle OpenBLAS/OpenMP threads spin for a while "
                         "and would take the other library's core)")
    ap.add_argument("--alone", action="store_true",
                    help="time each implementation in its own block instead of alternating")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    by_name = {s.name: s for s in SHAPES}
    wanted = [n.strip() for n in args.shapes.split(",") if n.strip()]
    wanted = list(by_name) if wanted == ["all"] else wanted
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        ap.error(f"unknown shape {', '.join(unknown)}; choose from {', '.join(by_name)}")
    print("\n".join(machine()))
    settle = args.settle
    if settle is None:
        settle = 0.1 if not args.no_torch and args.threads != 1 else 0.0
    mode = "each alone, one block after the other" if args.alone else f"alternating, settle {settle:g} s"
    print(f"threads: {args.threads or 'default'}; dtype {args.dtype}; {mode}; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n", flush=True)
    results, failed = [], []
    with bench.thread_cap(args.threads):
        for name in wanted:
            shape = by_name[name]
            start = time.perf_counter()
            try:
                repeat, warmup = auto_repeat(shape, args.budget, args.quick, args.repeat,
                                             most=50 if settle else 200)
                results.append(run_shape(shape, repeat, warmup, not args.no_torch, args.dtype,
                                         settle=settle, alone=args.alone))
            except Exception as exc:            # a compiler bug in one shape: report, go on
                print(f"{name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                failed.append(name)
                continue
            print(f"{name}: {repeat} repetitions in {time.perf_counter() - start:.0f} s", flush=True)
    print()
    print(bench.report(results))
    print()
    print(details(results))
    if any(r.extra["other_load"] > 0.1 for r in results):
        print("\nwarning: other processes used the CPU during the run; the numbers are not reliable",
              file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps([_record(r) for r in results], indent=1))
    return 1 if failed else 0


def _record(r: bench.Result) -> dict:
    t = lambda x: {"median_ms": x.ms, "spread": x.spread}
    rec = {"shape": r.extra["label"], "T": r.T, "B": r.B, "dims": r.dims, "dtype": r.dtype,
           "gflop_forward": r.flops.forward / 1e9, "gflop_train": r.flops.train / 1e9,
           "forward": t(r.forward), "train": t(r.train),
           "gflops_forward": r.forward_gflops, "gflops_train": r.train_gflops,
           "numpy_gemm_gflops": r.extra["gemm_gflops"], "gemm_only": t(r.extra["gemm"]),
           "numpy_gemm_gflops_by_shape": {f"{m}x{k}@{k}x{n}": g for (m, n, k), g in r.extra.get("gemm_shapes", {}).items()},
           "other_load": r.extra["other_load"]}
    for k in ("torch_forward", "torch_train"):
        if k in r.extra:
            rec[k] = t(r.extra[k])
    return rec


if __name__ == "__main__":
    sys.exit(main())
