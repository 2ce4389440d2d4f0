"""One drawn check of a spec file, and the `rnndsl gradcheck` command that repeats it.

A Case holds only what the command's flags hold (the spec's path, dims, steps, batch, lengths
per axis, seed, truncation window); the parameters and input values follow from the seed
exactly as `rnndsl gradcheck` makes them (tools/gradcheck.py), so the printed command
reproduces a failure the search found.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..pipeline import compile as compile_spec
from ..semantics.inputs import random_batch
from ..tools.gradcheck import perturbed_params


@dataclass(frozen=True)
class Case:
    spec: str              # the spec file's path
    dims: tuple            # (name, value) pairs overriding the spec's dims
    steps: int             # padded steps of every axis
    batch: int
    lengths: tuple         # (axis, (length of each sequence)) pairs
    seed: int              # parameters and input values
    truncate: int | None = None

    def command(self) -> str:
        """The `rnndsl gradcheck` command that checks this case."""
        words = ["rnndsl", "gradcheck", self.spec, "--steps", str(self.steps), "--batch", str(self.batch)]
        for axis, n in self.lengths:
            words += ["--lengths", ",".join(map(str, n)) if len(self.lengths) == 1 else f"{axis}={','.join(map(str, n))}"]
        for name, value in self.dims:
            words += ["--set", f"{name}={value}"]
        words += ["--seed", str(self.seed)] + (["--truncate", str(self.truncate)] if self.truncate else [])
        return shlex.join(words)

    def model(self, dtype: str = "float64", backend: str | None = None):
        return compiled(self.spec, self.dims, dtype, backend)

    def point(self, model) -> tuple:
        """(params, inputs, rng) as `rnndsl gradcheck` makes them; rng then draws directions."""
        rng = np.random.default_rng(self.seed)
        inputs = random_batch(model.spec, self.steps, self.batch, self.seed,
                              lengths=dict(self.lengths), garbage=True)
        return perturbed_params(model, self.seed, rng), inputs, rng


@lru_cache(maxsize=64)
def compiled(path: str, dims: tuple, dtype: str = "float64", backend: str | None = None):
    """The compiled model of a spec file at some dims (cached: a search repeats them)."""
    return compile_spec(path, backend=backend, dtype=dtype, dims=dict(dims))
