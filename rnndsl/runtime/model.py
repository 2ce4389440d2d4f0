"""The compiled model users hold: parameters, forward, loss_and_grad (DESIGN.md's API)."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..frontend import ir
from ..core.errors import DataError
from ..semantics.inputs import prepare
from .params import init_params
from . import device
from ..compiler.program import Program


@dataclass(frozen=True)
class Step:
    """One training step's result: mean loss, per-sequence losses, gradients, and each
    carried recurrence's state at each sequence's last step (the next window's carry)."""
    loss: float
    losses: np.ndarray
    grads: dict
    final: dict


class CompiledModel:
    """A spec compiled to code. `source` is the emitted module's text. The module is shared by
    every model of the same source (backends/numpy/runtime.py caches it); what a call keeps
    between calls (backward()'s adjoint buffers) belongs to the model and the calling thread."""

    def __init__(self, spec: ir.Model, program: Program, source: str, module, dtype: str, backend: str = "numpy"):
        self.spec, self.program, self.source, self.module = spec, program, source, module
        self.backend = backend
        self.dtype = np.dtype(dtype)
        self.xp = device.array_module(module)     # numpy, or the device's array module (cupy)
        self.workers = None            # an MPI job's ranks (rnndsl.runtime.mpi), or None
        self._local = threading.local()

    def buffers(self) -> dict:
        """This thread's adjoint buffers for the module's backward(), reused from call to call
        (fresh memory costs page faults: docs/benchmarks.md); one dict per model and thread,
        so two models, or two threads using one model, never write into the same array."""
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        return buffers

    def use_ranks(self, ranks) -> "CompiledModel":
        """Run step on the ranks of an MPI job (rnndsl.runtime.mpi.Ranks), each with its share
        of every batch: `mpiexec -n K python script.py` with `model.use_ranks(Ranks.world())`."""
        self.close()
        self.check_workers(ranks.size)
        self.workers = ranks.attach(self)
        return self

    def check_workers(self, count: int) -> None:
        """DataError for several MPI ranks on a device backend without NCCL to all-reduce with."""
        from .mpi import nccl_ready
        if count > 1 and self.xp is not np and not nccl_ready(self.xp):
            raise DataError(f"{count} ranks on the {self.backend} backend all-reduce through NCCL, which "
                            "this CuPy does not have", "train on one rank (leave --workers at 1): the device "
                            "takes the whole batch; or install a CuPy with NCCL")

    def close(self) -> None:
        """Leave the MPI job's ranks (they stay the launcher's)."""
        if self.workers is not None:
            self.workers.close()
            self.workers = None

    def init_params(self, seed: int = 0) -> dict:
        return init_params(self.spec, seed, self.dtype)

    def forward(self, params: dict, inputs: dict) -> dict:
        """Every variable (time-major, padded steps zero) and the loss: {"loss": float,
        "losses": (B,), name: array}; arrays in the module's array module (self.xp)."""
        batch = prepare(self.spec, inputs)
        tape = self.module.forward(self._params(params), batch.arrays, batch.lengths, self.dtype)
        out = {"loss": tape["_total_loss"], "losses": tape["_loss"]}
        for eq in self.spec.equations:
            value = tape[eq.name]
            if eq.axis:
                valid = tape[f"_valid_{eq.axis}"]           # (T, B)
                if eq.inner:                                # (T, S, B): valid at both steps
                    valid = valid[:, None] & tape[f"_valid_{eq.inner}"][None]
                valid = valid.reshape(valid.shape + (1,) * len(eq.type.dims))
                value = self.xp.where(valid, value, 0)
            out[eq.name] = value
        return out

    def loss_and_grad(self, params: dict, inputs: dict, truncate: int | None = None) -> tuple:
        """The mean loss over the batch and its gradient for every parameter; `truncate`
        cuts the gradient of each recurrence at windows of that many steps."""
        result = self.step(params, inputs, truncate=truncate)
        return result.loss, result.grads

    def step(self, params: dict, inputs: dict, carry: dict | None = None, truncate: int | None = None,
             grad: bool = True) -> Step:
        """Forward (and backward) on one batch, starting recurrences from `carry` (the last
        window's `final`): truncated BPTT over a stream cut into windows. Losses, gradients and
        final states are in the module's array module (on the device for a GPU backend)."""
        batch = prepare(self.spec, inputs)
        params = self._params(params)
        if self.workers is not None:
            loss, losses, grads, final = self.workers.step(params, batch, carry, truncate, grad)
        else:
            tape = self.module.forward(params, batch.arrays, batch.lengths, self.dtype, carry)
            grads = self.module.backward(params, tape, truncate, self.buffers()) if grad else {}
            loss, losses, final = tape["_total_loss"], tape["_loss"], tape["_final"]
        return Step(loss, losses, {k: self.xp.asarray(v, self.dtype) for k, v in grads.items()}, final)

    def _params(self, params: dict) -> dict:
        want = {p.name: p.type.dims for p in self.spec.params}
        missing, extra = set(want) - set(params), set(params) - set(want)
        if missing or extra:
            raise DataError(f"parameters do not match {self.spec.name}: "
                            + "; ".join(filter(None, [f"missing {', '.join(sorted(missing))}" if missing else "",
                                                      f"unknown {', '.join(sorted(extra))}" if extra else ""])),
                            "make them with model.init_params()")
        for name, dims in want.items():
            shape = _shape(params[name])
            if shape != dims:
                raise DataError(f"parameter {name} has shape {shape}; {self.spec.name} declares {dims}")
        return params


def _shape(value) -> tuple:
    """A host or device array's shape (NumPy refuses to look into a device array), or a list's."""
    shape = getattr(value, "shape", None)
    return tuple(np.shape(value) if shape is None else shape)
