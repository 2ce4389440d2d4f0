"""Training steps per second of an LSTM with 1 process and with K MPI ranks on this machine.

    python benchmarks/mpi_steps.py                       # 1 process, then 2 ranks through mpiexec
    python benchmarks/mpi_steps.py --ranks 2 --steps 30

The spec and shape are issue 10's table's first row (T=100, B=32, I=128, H=256), float32, the
default backend. A step is what the trainer does: forward and backward of one batch, shared out
to the ranks and all-reduced; the parameters are not updated (the optimizer's cost is the same
either way). Each configuration is timed in its own process, after two warm-up steps; the
median of `--steps` steps is reported. Run it with nothing else on the machine.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC, T, B, DIMS = ROOT / "benchmarks" / "specs" / "lstm.yaml", 100, 32, {"I": 128, "H": 256, "K": 64}


def timed_steps(steps: int) -> list:
    """Seconds of each step, on this process (and its ranks, under mpiexec)."""
    sys.path.insert(0, str(ROOT))
    import rnndsl
    from rnndsl.runtime.mpi import Ranks
    from rnndsl.semantics.inputs import prepare, random_batch
    model = rnndsl.compile(SPEC, dtype="float32", dims=DIMS)
    ranks = Ranks.world()
    if ranks is not None:
        model.use_ranks(ranks)
    params = model.init_params(0)
    batch = prepare(model.spec, random_batch(model.spec, T, B, 0, ragged=False))
    inputs = {**batch.arrays, "lengths": batch.lengths}
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        model.step(params, inputs)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        times = timed_steps(args.steps)
        from rnndsl.runtime.mpi import Ranks
        ranks = Ranks.world()
        if ranks is None or ranks.rank == 0:
            print(statistics.median(times))
        return
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    runs = {"1 process": [sys.executable, __file__, "--child", "--steps", str(args.steps)],
            f"{args.ranks} ranks": [mpiexec, "-n", str(args.ranks), sys.executable, __file__, "--child",
                                   "--steps", str(args.steps)]}
    base = None
    for name, command in runs.items():
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
        seconds = float(out[-1])
        base = base or seconds
        print(f"{name:>10}: {seconds * 1e3:7.1f} ms per step, {1 / seconds:6.2f} steps/s, x{base / seconds:.2f}")


if __name__ == "__main__":
    main()
