"""Benchmarks: FLOP counts from a spec, timing, NumPy GEMM throughput, a PyTorch reference.

What `rnndsl bench SPEC` and benchmarks/run.py print. Nothing here imports torch at module
level: `torch_reference` imports it when called and returns None when it is missing.

FLOP counting rule (`flops`), walked over the typed IR (`model.spec.equations` and the loss),
so the count is a property of the network, not of the code the compiler happens to emit:

* forward: `W @ v` costs 2*m*n per row for an (m, n) matrix (2 * result size * inner size in
  general); `W @ onehot` is a gather and costs nothing; every other op costs 1 per element of
  its largest operand (tanh, sigmoid, exp, a softmax's element each count as one);
* backward: a matmul costs its forward once per operand that needs a gradient (dW and dv;
  an input needs none, so the input GEMM of `W @ x[t]` costs its forward once more); every
  other op costs twice its forward;
* a row is one step of one sequence: an expression on an axis runs T*B times, a static
  one B times, one of parameters only once.

GEMMs count 2 FLOPs per multiply-add, the usual convention; at the benchmark shapes (see
benchmarks/) everything but the GEMMs is under 1% of the count.
"""
from __future__ import annotations

import statistics
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np

from ..frontend import ir
from ..runtime.mpi import Ranks
from ..core import limits
from ..core.errors import DataError
from ..core.ops import Kind, Op

# ---- FLOP counts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flops:
    forward: int          # one forward pass (loss included)
    train: int            # forward + backward

    @property
    def backward(self) -> int:
        return self.train - self.forward


def flops(model, steps, batch: int) -> Flops:
    """FLOPs of one forward and one forward+backward pass over a batch (the rule above).
    `model`: a CompiledModel or a checked ir.Model; `steps`: T for every axis or {axis: T}."""
    spec = getattr(model, "spec", model)
    rows = _rows(spec, steps, batch)
    grads = _grad_vars(spec)
    fwd = bwd = 0
    for e in [eq.expr for eq in spec.equations] + [spec.loss]:
        for node in ir.walk(e):
            f, b = _node_flops(spec, node, grads)
            n = rows(node)
            fwd, bwd = fwd + f * n, bwd + b * n
    return Flops(fwd, fwd + bwd)


def _rows(spec: ir.Model, steps, batch: int):
    """How many times a node runs: T*B on an axis, B when static, 1 for parameters only."""
    params = {p.name for p in spec.params}
    per_axis = steps if isinstance(steps, dict) else {a: steps for a in spec.axes}

    def rows(node: ir.Expr) -> int:
        if node.axis is not None:
            return per_axis[node.axis] * batch
        if isinstance(node, ir.Reduce):                     # runs over its body's rows
            return per_axis[node.over] * batch
        leaves = [n for n in ir.walk(node) if not isinstance(n, (ir.Apply, ir.Const))]
        return 1 if leaves and all(isinstance(n, ir.ReadStatic) and n.var in params for n in leaves) else batch
    return rows


def _node_flops(spec: ir.Model, node: ir.Expr, grads: set) -> tuple:
    """(forward, backward) FLOPs of one node for one row."""
    if isinstance(node, ir.Reduce):
        n = _size(node.body.type)
        return n, 2 * n
    if not isinstance(node, ir.Apply):
        return 0, 0
    if node.op is Op.MATMUL:
        a, b = node.args
        if {a.type.kind, b.type.kind} & {Kind.ONEHOT, Kind.INDEX}:
            return 0, 0                                      # a column gather / scatter-add
        f = 2 * _size(node.type) * a.type.dims[-1]
        return f, f * sum(_needs_grad(x, spec, grads) for x in node.args)
    n = max([_size(node.type)] + [_size(x.type) for x in node.args])
    return n, 2 * n


def _size(t) -> int:
    return int(np.prod(t.dims, dtype=np.int64)) if t.dims else 1


def _grad_vars(spec: ir.Model) -> set:
    """Equations whose value depends on a parameter (so their adjoint is needed)."""
    grads, changed = set(), True
    while changed:
        changed = False
        for eq in spec.equations:
            if eq.name not in grads and _needs_grad(eq.expr, spec, grads):
                grads.add(eq.name)
                changed = True
    return grads


def _needs_grad(e: ir.Expr, spec: ir.Model, grads: set) -> bool:
    params = {p.name for p in spec.params}
    return any(getattr(n, "var", None) in params | grads for n in ir.walk(e))


# ---- the GEMMs an ideal schedule runs ------------------------------------------------------


@dataclass(frozen=True)
class Gemm:
    count: int            # how many times it runs per pass
    m: int                # (m, k) @ (k, n)
    n: int
    k: int
    phase: str            # "forward" or "backward"

    @property
    def flops(self) -> int:
        return 2 * self.count * self.m * self.n * self.k


def gemms(model, steps, batch: int) -> list:
    """The GEMMs of forward+backward as a well-scheduled implementation would run them:
    matmuls `W @ v` sharing an operand fused into one (gates), inputs hoisted out of the loop
    into one (T*B, n) GEMM, recurrent ones (B, n) per step, weight gradients one GEMM over all
    rows. Only parameter @ vector matmuls are listed (the rest is not GEMM-shaped)."""
    spec = getattr(model, "spec", model)
    per_axis = steps if isinstance(steps, dict) else {a: steps for a in spec.axes}
    groups = _fused_matmuls(spec)
    grads = _grad_vars(spec)
    out = []
    for (_, axis, step), (v, n_out, k) in groups.items():
        T = per_axis[axis] if axis else 1
        count, m = (T, batch) if step else (1, batch * T)
        out.append(Gemm(count, m, n_out, k, "forward"))
        out.append(Gemm(1, n_out, k, batch * T, "backward"))            # dW = dY^T V
        if _needs_grad(v, spec, grads):
            out.append(Gemm(count, m, k, n_out, "backward"))            # dV = dY W
    return out


def _fused_matmuls(spec: ir.Model) -> dict:
    """(operand text, axis, in a loop) -> (operand, summed rows of W, columns of W)."""
    from ..semantics.timegraph import analyse
    member_of = {name: r.members for r in analyse(spec).recurrences for name in r.members}
    params = {p.name for p in spec.params}
    groups: dict = {}
    for eq in spec.equations:
        members = member_of.get(eq.name, ())
        for node in ir.walk(eq.expr):
            if not (isinstance(node, ir.Apply) and node.op is Op.MATMUL):
                continue
            w, v = node.args
            if not (isinstance(w, ir.ReadStatic) and w.var in params and w.type.rank == 2
                    and v.type.rank == 1 and v.type.kind is Kind.FLOAT):
                continue
            step = any(isinstance(n, ir.Read) and n.var in members for n in ir.walk(v))
            key = (ir.show(v, v.axis or "t"), v.axis, step)
            _, rows, cols = groups.get(key, (v, 0, w.type.dims[1]))
            groups[key] = (v, rows + w.type.dims[0], cols)
    return groups


# ---- timing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    median: float         # seconds
    spread: float         # interquartile range / median (0.05: +-2.5% around the median)
    times: tuple = field(default=(), repr=False)

    @property
    def ms(self) -> float:
        return self.median * 1e3


def time_fn(fn, repeat: int = 10, warmup: int = 2) -> Timing:
    """Median and spread of `repeat` calls of fn() after `warmup` untimed ones."""
    return interleave({"fn": fn}, repeat, warmup)["fn"]


def interleave(fns: dict, repeat: int = 10, warmup: int = 2, settle: float = 0.0) -> dict:
    """Time several functions alternately (A B A B ...), so that a change in the machine's
    load during the run hits each of them alike. Returns name -> Timing. `settle`: seconds
    to sleep before each timed call, so that one library's idle worker threads (which spin
    for a while after each call: OpenBLAS, OpenMP) have gone to sleep before the next
    library's call needs the cores."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            if settle:
                time.sleep(settle)
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: _timing(ts) for name, ts in times.items()}


def _timing(ts: list) -> Timing:
    med = statistics.median(ts)
    q = np.percentile(ts, [25, 75]) if len(ts) > 1 else (med, med)
    return Timing(med, float(q[1] - q[0]) / med if med else 0.0, tuple(ts))


@contextmanager
def thread_cap(threads: int | None):
    """Limit BLAS/OpenMP threads (threadpoolctl, if installed) and, if torch is already
    imported, torch's threads (this never imports torch: import it first to cap it)."""
    if not threads:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
        ctx = threadpool_limits(limits=threads)
    except ImportError:
        ctx = nullcontext()
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(threads)
    try:
        with ctx:
            yield
    finally:
        if torch:
            torch.set_num_threads(before)


def numpy_gemm_gflops(m: int, n: int, k: int, dtype="float32", repeat: int = 0) -> float:
    """The machine's NumPy GEMM throughput for (m, k) @ (k, n), in GFLOP/s (median). With
    repeat=0, enough calls for about 0.2 s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    out = np.empty((m, n), dtype)
    fn = lambda: np.matmul(a, b, out=out)
    if not repeat:
        start = time.perf_counter()
        fn()
        repeat = int(min(200, max(5, 0.2 / max(time.perf_counter() - start, 1e-6))))
    return 2 * m * n * k / time_fn(fn, repeat, warmup=2).median / 1e9


def gemm_bound(gemm_list: list, dtype="float32") -> tuple:
    """(seconds, GFLOP/s, {(m, n, k): GFLOP/s}): how long `gemm_list` takes at this machine's
    NumPy GEMM speed for each shape; a floor for a NumPy implementation of the network."""
    rates: dict = {}
    for g in gemm_list:
        if (g.m, g.n, g.k) not in rates:
            rates[g.m, g.n, g.k] = numpy_gemm_gflops(g.m, g.n, g.k, dtype)
    seconds = sum(g.flops / (rates[g.m, g.n, g.k] * 1e9) for g in gemm_list)
    total = sum(g.flops for g in gemm_list)
    return seconds, (total / seconds / 1e9 if seconds else 0.0), rates


def gemm_program(gemm_list: list, dtype="float32", seed: int = 0):
    """A closure that runs every GEMM of `gemm_list` (`count` times each, into preallocated
    outputs) with np.matmul: the network's GEMMs and nothing else. Time it interleaved with
    the real thing for a same-run floor."""
    rng = np.random.default_rng(seed)
    work = []
    for g in gemm_list:
        a = rng.standard_normal((g.m, g.k)).astype(dtype)
        b = rng.standard_normal((g.k, g.n)).astype(dtype)
        work.append((g.count, a, b, np.empty((g.m, g.n), dtype)))

    def run():
        for count, a, b, out in work:
            for _ in range(count):
                np.matmul(a, b, out=out)
    return run


# ---- benchmarking a spec --------------------------------------------------------------------


@dataclass
class Result:
    name: str
    T: int
    B: int
    dims: dict
    dtype: str
    flops: Flops
    forward: Timing
    train: Timing                      # forward + backward
    extra: dict = field(default_factory=dict)   # torch timings, GEMM bound, notes
    compile_s: float = 0.0             # rnndsl.compile: spec to loaded module
    first_s: float = 0.0               # the first forward+backward: with numba, its JIT (or disk cache)

    @property
    def forward_gflops(self) -> float:
        return self.flops.forward / self.forward.median / 1e9

    @property
    def train_gflops(self) -> float:
        return self.flops.train / self.train.median / 1e9


def random_inputs(spec: ir.Model, T: int, B: int, seed: int = 0, dtype="float32") -> tuple:
    """(arrays, lengths) for the raw emitted functions: every frame sequence full length T
    (CTC labels as many as fit), float inputs already in `dtype` (as a training loop holds them)."""
    from ..semantics.inputs import training_masks, random_batch
    batch = random_batch(spec, T, B, seed, ragged=False)
    batch.update(training_masks(spec, batch, np.random.default_rng(seed), dtype))   # as training feeds a spec with masks
    lengths = {a: np.asarray(n, np.int64) for a, n in batch.pop("lengths").items()}
    arrays = {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in batch.items()}
    return arrays, lengths

def prepare(spec_path, T: int, B: int, dims: dict | None = None, dtype="float32", seed: int = 0) -> dict:
    """Compile a spec and make the two closures to time: forward, forward+backward. They
    call the emitted module directly (inputs checked once here, not in the timed part); in an
    MPI job of several ranks (`rnndsl bench --workers N`), through the ranks, which share out
    each batch and all-reduce its gradient as training does."""
    from ..semantics.inputs import prepare as check_inputs
    from ..pipeline import compile as compile_spec
    start = time.perf_counter()
    model = compile_spec(spec_path, dtype=dtype, dims=dims)
    compile_s = time.perf_counter() - start
    params = model.init_params(seed)
    arrays, lengths = random_inputs(model.spec, T, B, seed, dtype)
    batch = check_inputs(model.spec, {**arrays, "lengths": lengths})        # checks the inputs once
    mod, dt = model.module, model.dtype
    fwd = lambda: mod.forward(params, arrays, lengths, dt)
    train = lambda: mod.backward(params, mod.forward(params, arrays, lengths, dt), None, model.buffers())
    ranks = Ranks.world()
    if ranks is not None:
        model.use_ranks(ranks)
        fwd = lambda: ranks.step(params, batch, None, None, False)
        train = lambda: ranks.step(params, batch, None, None, True)
    return {"model": model, "params": params, "arrays": arrays, "lengths": lengths,
            "forward": fwd, "train": train, "compile_s": compile_s}


def bench(spec_path, T: int, B: int, dims: dict | None = None, dtype="float32", repeat: int = 10,
          warmup: int = 2, threads: int | None = None) -> Result:
    """Time forward and forward+backward of a spec at T steps, batch B (interleaved)."""
    for what, value, lo, top in (("repeat", repeat, 1, limits.MAX_REPEAT), ("warmup", warmup, 0, limits.MAX_REPEAT)):
        if not isinstance(value, int) or not lo <= value <= top:
            raise DataError(f"bench: {what} must be a whole number from {lo} to {top:,}, got {value!r}")
    run = prepare(spec_path, T, B, dims, dtype)
    model = run["model"]
    try:
        with thread_cap(threads):
            start = time.perf_counter()
            run["train"]()                     # the first call: numba compiles (or loads) its kernels
            first_s = time.perf_counter() - start
            t = interleave({"forward": run["forward"], "train": run["train"]}, repeat, warmup)
    finally:
        model.close()
    return Result(model.spec.name, T, B, {k: d.value for k, d in model.spec.dims}, str(np.dtype(dtype)),
                  flops(model, T, B), t["forward"], t["train"], compile_s=run["compile_s"], first_s=first_s)


# ---- the PyTorch reference ---------------------------------------------------------------------


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_reference(kind: str, T: int, B: int, I: int, H: int, bidirectional: bool = False,
                    K: int = 64, dtype="float32", seed: int = 0, device: str = "cpu"):
    """The same network in PyTorch (on `device`: "cuda" runs cuDNN): nn.LSTM, nn.GRU or
    nn.RNN(tanh), nn.Linear(H or 2H, K), mean cross-entropy over every step. Returns a dict with
    the modules, the data and the closures `forward` and `train` (forward + backward), or None
    when torch is missing."""
    torch = _torch()
    if torch is None:
        return None
    torch.manual_seed(seed)
    tdtype = getattr(torch, str(np.dtype(dtype)))
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN, "elman": torch.nn.RNN}[kind]
    extra = {"nonlinearity": "tanh"} if cls is torch.nn.RNN else {}
    rnn = cls(I, H, bidirectional=bidirectional, **extra).to(device=device, dtype=tdtype)
    head = torch.nn.Linear(H * (2 if bidirectional else 1), K).to(device=device, dtype=tdtype)
    gen = np.random.default_rng(seed)
    x = torch.from_numpy(gen.standard_normal((T, B, I)).astype(dtype)).to(device)
    target = torch.from_numpy(gen.integers(0, K, (T, B))).to(device)
    params = list(rnn.parameters()) + list(head.parameters())

    def loss():
        out, _ = rnn(x)
        return torch.nn.functional.cross_entropy(head(out).reshape(T * B, K), target.reshape(-1))

    def train():
        for p in params:
            p.grad = None
        value = loss()
        value.backward()
        return value

    return {"rnn": rnn, "head": head, "x": x, "target": target, "loss": loss,
            "forward": loss, "train": train}


# ---- text ----------------------------------------------------------------------------------------


def report(results: list, title: str = "") -> str:
    """A Markdown table: one row per Result (torch and GEMM columns where `extra` has them)."""
    head = ["shape", "fwd ms", "fwd+bwd ms", "fwd GFLOP/s", "fwd+bwd GFLOP/s"]
    has_torch = any("torch_train" in r.extra for r in results)
    has_gemm = any("gemm_gflops" in r.extra for r in results)
    if has_torch:
        head += ["torch fwd ms", "torch fwd+bwd ms", "torch/rnndsl"]
    if has_gemm:
        head += ["NumPy GEMM GFLOP/s", "% of GEMM"] + (["torch % of GEMM"] if has_torch else [])
    lines = ([f"{title}", ""] if title else []) + ["| " + " | ".join(head) + " |",
                                                     "|" + "---|" * len(head)]
    for r in results:
        lines.append("| " + " | ".join(_row(r, has_torch, has_gemm)) + " |")
    return "\n".join(lines)


def _row(r: Result, has_torch: bool, has_gemm: bool) -> list:
    label = r.extra.get("label", r.name)
    cells = [f"{label} T={r.T} B={r.B}", _ms(r.forward), _ms(r.train),
             f"{r.forward_gflops:.1f}", f"{r.train_gflops:.1f}"]
    if has_torch:
        tt, tf = r.extra.get("torch_train"), r.extra.get("torch_forward")
        cells += [_ms(tf) if tf else "-", _ms(tt) if tt else "-",
                  f"{tt.median / r.train.median:.2f}" if tt else "-"]
    if has_gemm:
        g, tt = r.extra.get("gemm_gflops"), r.extra.get("torch_train")
        cells += [f"{g:.1f}" if g else "-", _share(r.extra.get("gemm_seconds"), r.train)]
        cells += [_share(r.extra.get("gemm_seconds"), tt)] if has_torch else []
    return cells


def _share(gemm_seconds, t) -> str:
    """The GEMM-only time as a share of a measured fwd+bwd time."""
    return f"{100 * gemm_seconds / t.median:.0f}%" if gemm_seconds and t else "-"


def _ms(t: Timing) -> str:
    return f"{t.ms:.1f} ±{50 * t.spread:.0f}%" if t.ms >= 10 else f"{t.ms:.2f} ±{50 * t.spread:.0f}%"
