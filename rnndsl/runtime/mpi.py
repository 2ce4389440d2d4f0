"""Data parallelism over MPI ranks: each rank runs its share of every batch, and one in-place
all-reduce of a fused buffer gives every rank the whole batch's gradient.

    mpiexec -n 4 rnndsl train SPEC --data DATA --out RUN        # any MPI launcher, any hosts

Every rank prepares the same data, settings and initial parameters (all of them come from the
seed), cuts each global batch into the same contiguous shares of sequences and runs share
`rank`; the shares' gradients, each weighted by its share of the sequences, are summed by one
`Allreduce` into a single buffer, so every rank applies the same update and the ranks stay
identical without ever sending parameters. The result equals one process on the whole batch up
to the order of the floating-point sums. Rank 0 alone writes the run folder.

mpi4py is imported only when a launcher started this process (its environment says so): a plain
`rnndsl train` never initialises MPI.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from .device import to_device, to_host


# what MPICH (Hydra), Open MPI, Intel MPI, PMIx and Slurm put in a rank's environment
_LAUNCHED = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "SLURM_NTASKS")


def launched() -> bool:
    """Whether an MPI launcher started this process with more than one rank."""
    for key in _LAUNCHED:
        value = os.environ.get(key, "")
        if value.isdigit() and (key == "PMIX_RANK" or int(value) > 1):
            return True
    return False


def launcher(ranks: int, command: list) -> list:
    """The command line that runs `command` on `ranks` ranks of this machine: the mpiexec next to
    this Python (the mpich wheel's), else the first on PATH. DataError without mpi4py or one."""
    import shutil
    import sys
    from ..core.errors import DataError
    import importlib.util
    if importlib.util.find_spec("mpi4py") is None:
        raise DataError(f"--workers {ranks} runs an MPI job, and mpi4py is not installed",
                        "pip install -e '.[mpi]' (mpi4py and the mpich wheel), or train with --workers 1")
    here = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if here is None:
        raise DataError(f"--workers {ranks} runs an MPI job, and there is no mpiexec",
                        "pip install mpich (an MPI from a wheel), or put your MPI's mpiexec on PATH")
    return [here, "-n", str(ranks), *command]


class Ranks:
    """The ranks of one job (MPI.COMM_WORLD) as a model's data-parallel engine: the model's
    step() hands each batch to step() here (CompiledModel.use_ranks)."""

    def __init__(self, comm):
        self.comm, self.model = comm, None      # the model: set by attach()
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.summer = None                      # the all-reduce: MPI's on the host, NCCL's on GPUs

    def attach(self, model) -> "Ranks":
        """Serve `model` (before its parameters are made: a GPU rank picks its device here)."""
        if self.model is not model:
            self.model = model
            self.summer = HostSum(self.comm) if model.xp is np else device_sum(self.comm, model.xp)
        return self

    @staticmethod
    def world() -> "Ranks | None":
        """The job's ranks when an MPI launcher started this process with several, else None;
        the same object at every call (finding them once is collective: every rank must)."""
        return _world()

    def step(self, params: dict, batch, carry: dict | None, truncate: int | None, grad: bool):
        """(mean loss, per-sequence losses, gradients, final states) of the whole batch."""
        shares = _shares(batch.size, self.size)
        sizes = [hi - lo for lo, hi in shares] + [0] * (self.size - len(shares))
        mine = self._run(params, batch, carry, truncate, grad, shares)
        names = sorted(params) if grad else []
        fused = self.summer.sum(_fuse(mine, names, params, sizes[self.rank] / batch.size, self.summer))
        grads = _unfuse(fused, names, params)
        rows = sizes[self.rank]
        losses = self._gather(to_host(mine[1])[:rows], sizes, ())
        final = {k: to_device(self.model.xp, self._gather(to_host(v)[:rows], sizes, np.shape(to_host(v))[1:]))
                 for k, v in sorted(mine[3].items())}
        return float(fused[-1]), losses, grads, final

    def _run(self, params, batch, carry, truncate, grad, shares) -> tuple:
        """This rank's share: (loss, losses, grads, final). A rank without a share (a batch
        smaller than the job) runs the first sequence with weight 0 and sends no rows, so that
        every rank takes part in the same collective calls with the same arrays."""
        lo, hi = shares[self.rank] if self.rank < len(shares) else (0, 1)
        inputs, lengths, part_carry = _share(self.model.spec, batch, carry, lo, hi)
        module = self.model.module
        tape = module.forward(params, inputs, lengths, self.model.dtype, part_carry)
        grads = module.backward(params, tape, truncate, self.model.buffers()) if grad else {}
        return tape["_total_loss"], tape["_loss"], grads, tape["_final"]

    def _gather(self, local, sizes: list, trailing: tuple) -> np.ndarray:
        """Every rank's rows of a per-sequence array, in rank order (the batch's order)."""
        local = np.ascontiguousarray(local, dtype=np.float64).reshape((-1,) + tuple(trailing))
        row = int(np.prod(trailing, dtype=np.int64)) if trailing else 1
        out = np.empty((sum(sizes),) + tuple(trailing), np.float64)
        self.comm.Allgatherv(local, [out, [n * row for n in sizes]])
        return out

    def agree(self, ok: bool) -> bool:
        """Whether every rank says ok (a rank that failed its part of the setup says no)."""
        return bool(self.comm.allreduce(int(ok), op=self._mpi().MIN))

    def any(self, flag: bool) -> bool:
        """Whether some rank raised `flag` (Ctrl-C reaches the ranks at different moments)."""
        return bool(self.comm.allreduce(int(flag), op=self._mpi().MAX))

    def abort(self, code: int) -> None:
        """Stop every rank of the job now: one rank's error must not leave the others waiting."""
        self.comm.Abort(code)

    def close(self) -> None:
        """Nothing to stop: the ranks are the launcher's."""

    @staticmethod
    def _mpi():
        from mpi4py import MPI
        return MPI


@functools.cache
def _world() -> Ranks | None:
    if not launched():
        return None
    from mpi4py import MPI
    if MPI.COMM_WORLD.Get_size() == 1:
        return None
    _share_cores(MPI.COMM_WORLD)
    return Ranks(MPI.COMM_WORLD)


def _share_cores(comm) -> None:
    """The ranks on one machine split its cores between their BLAS thread pools: two ranks with
    two BLAS threads each on two cores would fight over them (a rank of its own machine keeps
    them all)."""
    from threadpoolctl import threadpool_limits
    local = comm.Split_type(_mpi_shared()).Get_size()
    threadpool_limits(limits=max(1, (os.cpu_count() or 1) // local), user_api="blas")


def _mpi_shared():
    from mpi4py import MPI
    return MPI.COMM_TYPE_SHARED


def _shares(size: int, count: int) -> list:
    """[(lo, hi)] contiguous row ranges, as even as possible, none empty."""
    n = max(1, min(count, size))
    bounds = [size * i // n for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _share(spec, batch, carry: dict | None, lo: int, hi: int) -> tuple:
    """(inputs, lengths, carry) of sequences lo..hi, each axis cut to their longest."""
    lengths = {axis: np.asarray(ls[lo:hi]) for axis, ls in batch.lengths.items()}
    steps = {axis: max(1, int(ls.max())) for axis, ls in lengths.items()}
    inputs = {}
    for inp in spec.all_inputs:
        a = batch.arrays[inp.name]
        inputs[inp.name] = a[:steps[inp.axis], lo:hi] if inp.axis else a[lo:hi]
    return inputs, lengths, ({k: v[lo:hi] for k, v in carry.items()} if carry else None)


def _fuse(mine: tuple, names: list, params: dict, weight: float, summer) -> object:
    """One float64 buffer where the all-reduce runs (host or device): each gradient times this
    share's weight, then the weighted loss."""
    loss, _, grads, _ = mine
    fused = summer.zeros(sum(_size(params[n]) for n in names) + 1)
    start = 0
    for n in names:
        size = _size(params[n])
        fused[start:start + size] = grads[n].reshape(-1) * weight
        start += size
    fused[-1] = float(loss) * weight
    return fused


def _size(a) -> int:
    return int(np.prod(a.shape, dtype=np.int64))


class HostSum:
    """MPI's in-place Allreduce of a host buffer."""

    def __init__(self, comm):
        self.comm = comm

    def zeros(self, n: int) -> np.ndarray:
        return np.zeros(n, np.float64)

    def sum(self, buf: np.ndarray) -> np.ndarray:
        from mpi4py import MPI
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return buf


class NcclSum:
    """NCCL's in-place all-reduce of a device buffer, each rank on its own GPU (the local
    rank's, round robin): the gradients never leave the devices. The communicator's id is
    made by rank 0 and sent to the others over MPI."""

    def __init__(self, comm, xp):
        from cupy.cuda import nccl
        local = comm.Split_type(_mpi_shared()).Get_rank()
        xp.cuda.Device(local % xp.cuda.runtime.getDeviceCount()).use()
        uid = comm.bcast(nccl.get_unique_id() if comm.Get_rank() == 0 else None, root=0)
        self.xp, self.nccl = xp, nccl
        self.comm = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())

    def zeros(self, n: int):
        return self.xp.zeros(n, self.xp.float64)

    def sum(self, buf):
        stream = self.xp.cuda.get_current_stream()
        self.comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, self.nccl.NCCL_FLOAT64, self.nccl.NCCL_SUM,
                            stream.ptr)
        return buf


def device_sum(comm, xp):
    """The all-reduce for ranks whose model runs on a device (tests put a stand-in here)."""
    return NcclSum(comm, xp)


def nccl_ready(xp) -> bool:
    """Whether xp (CuPy) has NCCL to all-reduce with."""
    try:
        from cupy.cuda import nccl
    except ImportError:
        return False
    return bool(getattr(nccl, "available", True)) and xp is not np


def _unfuse(fused: np.ndarray, names: list, params: dict) -> dict:
    out, start = {}, 0
    for n in names:
        size = _size(params[n])
        out[n] = fused[start:start + size].reshape(params[n].shape)
        start += size
    return out
