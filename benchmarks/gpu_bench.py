"""rnndsl's cupy backend against PyTorch's cuDNN on the same GPU (issue 11), and the cupy
backend's gradients against the NumPy backend's: one table.

    python benchmarks/gpu_bench.py                    # lstm, bilstm, deepspeech (cupy, a GPU, torch)
    python benchmarks/gpu_bench.py --dry-run          # anywhere: tiny cases on the NumPy backend, torch
                                                      # on the CPU if installed: the logic and the table
    python benchmarks/gpu_bench.py --cases lstm --budget 10 --out results/

Each case compiles its spec with the cupy backend, builds the same network in PyTorch on the GPU
(benchmarks/references.py: nn.LSTM and nn.RNN run cuDNN) with rnndsl's initial weights and the
same data, prints both losses (they agree to float32 rounding), and times forward and
forward+backward of each alternately, the GPU synchronised after every call. Inputs and
parameters are on the GPU before timing, for both. The cupy backend's gradients are then compared
with the NumPy backend's on the CPU (same weights, same data): the largest |difference| over
the largest |gradient|, over all parameters. Without a usable GPU (and without --dry-run) it
says why and exits 0; a case that fails or runs past its --deadline is reported, and the others
go on. The table is also written to $OUT/gpu_bench.md (and .json) when $OUT or --out is set.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
sys.path[:0] = [str(REPO), str(ROOT)]

import references  # noqa: E402
from run import Shape  # noqa: E402
import rnndsl  # noqa: E402
from rnndsl import backends  # noqa: E402
from rnndsl.runtime import device  # noqa: E402
from rnndsl.tools import bench  # noqa: E402

CASES = [
    Shape("lstm", "benchmarks/specs/lstm.yaml", "lstm", 100, 64, 1024, 1024),
    Shape("bilstm", "benchmarks/specs/bilstm.yaml", "lstm", 100, 64, 1024, 1024, bidirectional=True),
    Shape("deepspeech", "specs/deepspeech.yaml", "deepspeech", 200, 64, 26, 1024, K=29, input_dim="F"),
]


@dataclass
class Target:
    """Where the cases run: the rnndsl backend, its array module, how to wait for it, torch's device."""
    backend: str
    xp: object
    sync: object
    torch_device: str
    torch_sync: object


def _nothing():
    return None


def target(dry_run: bool) -> Target:
    """The GPU (BackendUnavailable when there is none), or for --dry-run the NumPy backend and
    torch on the CPU."""
    if dry_run:
        return Target("numpy", np, _nothing, "cpu", _nothing)
    if "cupy" not in backends.REGISTRY:
        raise device.BackendUnavailable("this rnndsl has no cupy backend (backends/cupy)")
    device.require("cupy")
    import cupy
    torch = bench._torch()
    torch_sync = torch.cuda.synchronize if torch is not None and torch.cuda.is_available() else _nothing
    return Target("cupy", cupy, cupy.cuda.Device().synchronize, "cuda", torch_sync)


def tiny(case: Shape) -> Shape:
    """A case small enough for --dry-run on a CPU."""
    return Shape(case.name, case.spec, case.kind, 6, 2, 5 if case.kind == "deepspeech" else 8, 8, case.K,
                 case.bidirectional, input_dim=case.input_dim)


# ---- one case ------------------------------------------------------------------------------------

def prepare(case: Shape, backend: str, dtype: str) -> dict:
    """The compiled model, host parameters and data, as bench.prepare makes them (full lengths)."""
    model = rnndsl.compile(REPO / case.spec, backend=backend, dtype=dtype, dims=case.dims)
    arrays, lengths = bench.random_inputs(model.spec, case.T, case.B, 0, dtype)
    return {"model": model, "params": model.init_params(0), "arrays": arrays, "lengths": lengths}


def timed_calls(run: dict, tgt: Target) -> dict:
    """forward and forward+backward of the compiled module, parameters and inputs already on
    the device, each call waiting for the device to finish."""
    model, mod = run["model"], run["model"].module
    params, arrays = device.to_device(tgt.xp, run["params"]), device.to_device(tgt.xp, run["arrays"])
    lengths, dt = run["lengths"], model.dtype

    def forward():
        mod.forward(params, arrays, lengths, dt)
        tgt.sync()

    def train():
        mod.backward(params, mod.forward(params, arrays, lengths, dt), None, model.buffers())
        tgt.sync()
    return {"rnndsl_fwd": forward, "rnndsl_train": train}


def torch_calls(case: Shape, run: dict, tgt: Target) -> tuple:
    """({cudnn_fwd, cudnn_train}, rnndsl's loss, torch's loss), or ({}, loss, None) without torch."""
    ref = references.reference(case, run, device=tgt.torch_device)
    model = run["model"]
    params = device.to_device(model.xp, run["params"])
    ours = float(model.module.forward(params, run["arrays"], run["lengths"], model.dtype)["_total_loss"])
    if ref is None:
        return {}, ours, None

    def call(fn):
        def waited():
            fn()
            tgt.torch_sync()
        return waited
    return {"cudnn_fwd": call(ref["forward"]), "cudnn_train": call(ref["train"])}, ours, float(ref["loss"]().detach())


def gradient_difference(case: Shape, run: dict, dtype: str) -> tuple:
    """(largest |g - g_numpy| / largest |g_numpy| over all parameters, the parameter where it is)."""
    model, params, arrays, lengths = run["model"], run["params"], run["arrays"], run["lengths"]
    mod = model.module
    ours = device.to_host(mod.backward(device.to_device(model.xp, params),
                                       mod.forward(device.to_device(model.xp, params), arrays, lengths, model.dtype),
                                       None, None))
    ref = rnndsl.compile(REPO / case.spec, backend="numpy", dtype=dtype, dims=case.dims).module
    theirs = ref.backward(params, ref.forward(params, arrays, lengths, model.dtype), None, None)
    worst = {k: float(np.max(np.abs(ours[k] - theirs[k]))) / max(float(np.max(np.abs(theirs[k]))), 1e-30)
             for k in theirs}
    name = max(worst, key=worst.get)
    return worst[name], name


def repeats(calls: dict, budget: float) -> int:
    """Repetitions that fit about `budget` seconds, from one call of each (3 to 100)."""
    start = time.perf_counter()
    for fn in calls.values():
        fn()
    once = time.perf_counter() - start
    return int(min(100, max(3, budget / max(once, 1e-6))))


def run_case(case: Shape, tgt: Target, budget: float, dtype: str) -> dict:
    run = prepare(case, tgt.backend, dtype)
    calls = timed_calls(run, tgt)
    theirs, loss, torch_loss = torch_calls(case, run, tgt)
    calls.update(theirs)
    t = bench.interleave(calls, repeats(calls, budget), warmup=2)
    diff, where = gradient_difference(case, run, dtype)
    return {"case": case.name, "T": case.T, "B": case.B, "H": case.H, "input": case.I,
            **{k: v.ms for k, v in t.items()}, "loss_rnndsl": loss, "loss_torch": torch_loss,
            "grad_rel_diff": diff, "grad_worst_param": where}


class Overran(Exception):
    pass


@contextmanager
def deadline(seconds: int):
    """Overran after `seconds` (a case that hangs does not take the others' time)."""
    def alarm(signum, frame):
        raise Overran(f"ran past its {seconds} s deadline")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---- text --------------------------------------------------------------------------------------

def versions(tgt: Target) -> list:
    lines = [f"python {platform.python_version()}, numpy {np.__version__}, rnndsl backend {tgt.backend}"]
    if tgt.backend == "cupy":
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        lines.append(f"GPU: {name}; CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, driver "
                     f"{cupy.cuda.runtime.driverGetVersion()}; cupy {cupy.__version__}")
    torch = bench._torch()
    if torch is not None:
        cudnn = torch.backends.cudnn.version() if tgt.torch_device == "cuda" else None
        lines.append(f"torch {torch.__version__} on {tgt.torch_device}" + (f", cuDNN {cudnn}" if cudnn else ""))
    return lines


def _ms(row: dict, key: str) -> str:
    return f"{row[key]:.2f}" if key in row else "-"


def table(rows: list) -> str:
    head = ["case", "T x B, in -> H", "rnndsl fwd ms", "cuDNN fwd ms", "rnndsl fwd+bwd ms", "cuDNN fwd+bwd ms",
            "speed vs cuDNN (fwd+bwd)", "loss rnndsl / torch", "grad vs NumPy (max rel)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['case']} | failed: {r['error']} |" + " |" * (len(head) - 2))
            continue
        speed = f"{r['cudnn_train'] / r['rnndsl_train']:.2f}x" if "cudnn_train" in r else "-"
        loss = f"{r['loss_rnndsl']:.5f} / " + (f"{r['loss_torch']:.5f}" if r["loss_torch"] is not None else "-")
        out.append(f"| {r['case']} | {r['T']} x {r['B']}, {r['input']} -> {r['H']} | {_ms(r, 'rnndsl_fwd')} | "
                   f"{_ms(r, 'cudnn_fwd')} | {_ms(r, 'rnndsl_train')} | {_ms(r, 'cudnn_train')} | {speed} | {loss} | "
                   f"{r['grad_rel_diff']:.1e} ({r['grad_worst_param']}) |")
    return "\n".join(out)


def write(out: str | None, text: str, rows: list) -> None:
    if not out:
        return
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gpu_bench.md").write_text(text + "\n")
    (folder / "gpu_bench.json").write_text(json.dumps(rows, indent=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny cases on the NumPy backend: no GPU needed")
    ap.add_argument("--cases", default=",".join(c.name for c in CASES), help="comma-separated")
    ap.add_argument("--budget", type=float, default=8.0, help="seconds of timed calls per case")
    ap.add_argument("--deadline", type=int, default=150, help="seconds before a case is given up")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", default=os.environ.get("OUT"), help="also write gpu_bench.md/.json here")
    ap.add_argument("--require-gpu", action="store_true", help="no usable GPU is a failure (exit 1), not a skip")
    args = ap.parse_args(argv)
    by_name = {c.name: c for c in CASES}
    unknown = [n for n in args.cases.split(",") if n not in by_name]
    if unknown:
        ap.error(f"unknown case {', '.join(unknown)}; choose from {', '.join(by_name)}")
    try:
        tgt = target(args.dry_run)
    except device.BackendUnavailable as exc:
        print(f"gpu_bench: skipped, no GPU to run on here (--dry-run checks the logic without one):\n{exc.format()}")
        return 1 if args.require_gpu else 0
    rows = []
    for name in args.cases.split(","):
        case = tiny(by_name[name]) if args.dry_run else by_name[name]
        start = time.perf_counter()
        try:
            with deadline(args.deadline):
                rows.append(run_case(case, tgt, 0.2 if args.dry_run else args.budget, args.dtype))
        except Exception as exc:             # one case's failure is reported; the others go on
            rows.append({"case": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    title = "dry run: tiny cases, NumPy backend, torch on the CPU" if args.dry_run else f"{args.dtype}, the GPU"
    text = "\n".join(versions(tgt) + ["", f"rnndsl {tgt.backend} against PyTorch ({title})", "", table(rows)])
    print(text)
    write(args.out, text, rows)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
