"""Compare a trained autoregression run's weights with the true AR coefficients.

    python examples/autoregression/evaluate.py RUN /tmp/ar3/train.npz /tmp/ar3/test.npz

Prints the learned a_1..a_P (the spec's A lists them oldest first, [A_P ... A_1], so it is read
backwards), the true ones, the least-squares fit on the training series (the best any learner
can do from that data) and the one-step mean squared error on the test series. Exits 1 when a
learned coefficient is further than --tol from the true one.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from rnndsl.training import train


def _generator():
    """This folder's make_data.py under a name of its own (every example has a make_data)."""
    path = Path(__file__).resolve().with_name("make_data.py")
    spec = importlib.util.spec_from_file_location(f"{path.parent.name}_make_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COEFFS = _generator().COEFFS   # the generator's truth, one definition


def lagged(x: np.ndarray, p: int) -> tuple:
    """Rows of (x[t-1], ..., x[t-p]) and x[t] for every t >= p of every series (N, T)."""
    cols = [x[:, p - k:x.shape[1] - k] for k in range(1, p + 1)]
    return np.stack(cols, -1).reshape(-1, p), x[:, p:].reshape(-1)


def least_squares(x: np.ndarray, p: int) -> np.ndarray:
    """a_1..a_p and an intercept fitted by ordinary least squares."""
    X, y = lagged(x, p)
    X = np.concatenate([X, np.ones((len(X), 1))], 1)
    return np.linalg.lstsq(X, y, rcond=None)[0]


def one_step_mse(x: np.ndarray, coeffs: np.ndarray, bias: float) -> float:
    X, y = lagged(x, len(coeffs))
    return float(np.mean((X @ coeffs + bias - y) ** 2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("train", type=Path)
    ap.add_argument("test", type=Path)
    ap.add_argument("--tol", type=float, default=0.02)
    args = ap.parse_args(argv)
    _, params, _ = train.load_run(args.run)
    learned = np.asarray(params["A"], np.float64)[0, ::-1]
    bias = float(params["c"][0])
    truth = np.array(COEFFS)
    fit = least_squares(np.load(args.train)["x"][..., 0].astype(np.float64), len(truth))
    test = np.load(args.test)["x"][..., 0].astype(np.float64)
    print(f"{'':14s}" + "".join(f"{f'a_{k}':>9s}" for k in range(1, len(truth) + 1)) + f"{'c':>9s}")
    for name, a, c in [("true", truth, 0.0), ("least squares", fit[:-1], fit[-1]), ("learned", learned, bias)]:
        print(f"{name:14s}" + "".join(f"{v:9.4f}" for v in a) + f"{c:9.4f}")
    err = np.abs(learned - truth).max()
    print(f"largest |learned - true|: {err:.4f} (tolerance {args.tol})")
    print(f"test one-step MSE: learned {one_step_mse(test, learned, bias):.4f}, "
          f"true coefficients {one_step_mse(test, truth, 0.0):.4f}")
    return 0 if err <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
