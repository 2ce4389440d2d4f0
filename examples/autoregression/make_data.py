"""A synthetic AR(3) process for specs/autoregression.yaml (generated, seeded; nothing real).

    x[t] = 0.6 x[t-1] - 0.3 x[t-2] + 0.2 x[t-3] + noise,   noise ~ N(0, 1)

Each series starts after a burn-in of 200 steps, so it is drawn from the stationary process, and
is scaled by the process's standard deviation so values are about unit size (the coefficients do
not change under scaling). Written as named arrays (docs/cli.md 13.5), x of shape (N, T, 1):

    python examples/autoregression/make_data.py --out /tmp/ar3      # train.npz, test.npz
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

COEFFS = (0.6, -0.3, 0.2)          # a_1, a_2, a_3: x[t] = sum_k a_k x[t-k] + noise
BURN_IN = 200


def check_stationary(coeffs) -> None:
    """A stable AR process has every eigenvalue of its companion matrix inside the unit circle."""
    p = len(coeffs)
    companion = np.eye(p, k=-1)
    companion[0] = coeffs
    radius = np.abs(np.linalg.eigvals(companion)).max()
    if radius >= 1:
        raise SystemExit(f"error: AR coefficients {coeffs} are not stationary (spectral radius {radius:.3f})")


def ar_series(n: int, steps: int, coeffs, rng: np.random.Generator) -> np.ndarray:
    """(n, steps) draws of the AR process, all series stepped together."""
    p = len(coeffs)
    x = np.zeros((n, BURN_IN + steps + p))
    noise = rng.normal(size=x.shape)
    for t in range(p, x.shape[1]):
        x[:, t] = sum(a * x[:, t - k] for k, a in enumerate(coeffs, 1)) + noise[:, t]
    return x[:, -steps:]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for train.npz and test.npz")
    ap.add_argument("--n", type=int, default=512, help="training series (test: a quarter)")
    ap.add_argument("--steps", type=int, default=200, help="steps per series")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    check_stationary(COEFFS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    train = ar_series(args.n, args.steps, COEFFS, rng)
    scale = train.std()
    for name, x in {"train": train, "test": ar_series(max(1, args.n // 4), args.steps, COEFFS, rng)}.items():
        np.savez_compressed(out / f"{name}.npz", x=(x / scale)[..., None].astype(np.float32))
        print(f"wrote {out / name}.npz: {len(x)} series of {args.steps} steps")


if __name__ == "__main__":
    main()
