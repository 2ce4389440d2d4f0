"""Training: a spec, its data and its settings -> a run directory that can be resumed.

    prepare   spec + data + --set -> the compiled model, bound data, settings (rnndsl/training/job.py)
    train     the loop: minibatches (or parallel streams carrying their state across windows),
              clipping, the optimizer and schedule, metrics, loss.png, atomic checkpoints
    resume    the same loop from a checkpoint: same parameters, optimizer, schedule, position

A NaN or inf loss, or parameters that stopped being finite, stop the run naming the step and
keep the last good checkpoint (every save checks the parameters first); Ctrl-C
lets the step in progress finish, writes a checkpoint and stops cleanly (a second Ctrl-C stops
at once and keeps the last checkpoint). Every random choice comes from the settings' seed, so
a resumed run ends where an uninterrupted one would.

A run's folder is locked for the whole of `train` and `resume` (rundir.new_run, runfiles.lock);
its spec.yaml is compared with the text the checkpoint recorded before anything of it is
compiled (`load_run`, `resume`), so an edited run is refused, never run.

Parameters, optimizer state and carried states live in `model.xp` (the GPU's, for cupy);
checkpoints hold host copies, one format: a GPU run resumes on a CPU and the other way round.
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoint, data, optim, rundir, runfiles
from .evaluate import eval_batches
from ..core.errors import DataError, SpecError, printable
from ..runtime import device
from ..runtime.mpi import Ranks
from ..semantics.inputs import training_masks
from .job import MIN_TO_HOLD_OUT, Job, prepare, split_settings   # noqa: F401 (train.prepare is the API)
from ..pipeline import compile as compile_spec
from ..pipeline import loads_spec

CHECKPOINT_SECONDS = 30.0          # at most this long between checkpoints within an epoch
EPOCH_CHECKPOINT_SECONDS = 5.0     # at an epoch's end, a checkpoint if the last is this old


class TrainingStopped(DataError):
    """The run stopped on a NaN or inf loss or parameters (its message names the step)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run after writing its checkpoint; `run` is where to --resume."""

    def __init__(self, run: Path):
        super().__init__(str(run))
        self.run = run


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch: int = 0                      # batches done in this epoch
    best: float = math.inf
    carry: dict = field(default_factory=dict)


# ---- the loop -----------------------------------------------------------------------------------

class Trainer:
    """`source` is the run's spec.yaml text, recorded in every checkpoint; `publish`, when the
    run is staged (--overwrite), moves it over the old run after its first checkpoint."""

    def __init__(self, job: Job, run: Path, quiet: bool = False, source: str | None = None, publish=None,
                 writer: bool = True):
        self.job, self.run, self.quiet = job, run, quiet
        self.writer = writer             # False on MPI ranks other than 0: they compute, rank 0 writes
        self.ranks = None                # the MPI job's ranks (rnndsl.runtime.mpi), set by _fit
        self.callbacks = ()              # functions called with each step's and epoch's record
        self.source = job.spec_text if source is None else source
        self.publish = publish
        self.model, self.s = job.model, job.settings
        self.xp = self.model.xp
        self.params = device.to_device(self.xp, self.model.init_params(self.s.seed))
        self.opt = optim.make_optimizer(self.s, self.params, self.xp)
        # only cosine reads the run's length (counting it cuts every batch of an epoch once)
        self.schedule = optim.Schedule(self.s, self.total_steps() if self.s.schedule == "cosine" else 1)
        self.progress = Progress()
        self.last_save, self.saved_step = time.monotonic(), None

    # -- batches ---------------------------------------------------------------------------------
    def streaming(self) -> bool:
        b = self.job.train
        return b.stream is not None and (len(b.stream) - 1) // self.s.batch >= (self.s.bptt or data.DEFAULT_BPTT)

    def epoch_batches(self, epoch: int) -> list:
        if self.streaming():
            return list(self.job.train.stream_batches(self.s.batch, self.s.bptt or data.DEFAULT_BPTT))
        return list(data.batches(self.job.train, self.s.batch, seed=self.s.seed * 100_003 + epoch,
                                 bucket=self.s.bucket))

    # -- one step ----------------------------------------------------------------------------------
    def step(self, batch: dict) -> dict:
        p = self.progress
        lr = self.schedule.lr(p.step, p.epoch)
        carry = p.carry if self.streaming() and p.carry else None
        if self.model.spec.masks:          # drawn from the seed and the step: a resumed run draws the same
            batch = {**batch, **training_masks(self.model.spec, batch, np.random.default_rng([self.s.seed, p.step]),
                                               self.model.dtype)}
        with np.errstate(over="ignore", invalid="ignore"):      # a non-finite loss is reported below
            result = self.model.step(self.params, batch, carry=carry, truncate=self.s.truncate or None)
            grads, norm = optim.clip_global_norm(result.grads, self.s.clip, self.xp)
        if not (math.isfinite(result.loss) and math.isfinite(norm)):
            self._stop_on_nan(result.loss, norm)
        with np.errstate(all="ignore"):             # parameters that overflow are caught before a save
            self.opt.step(self.params, grads, lr)
        p.carry = result.final if self.streaming() else {}
        p.step += 1
        p.batch += 1
        return {"step": p.step, "epoch": p.epoch, "loss": result.loss, "lr": lr, "grad_norm": norm}

    def _stop_on_nan(self, loss: float, norm: float) -> None:
        what = "loss" if not math.isfinite(loss) else "gradient norm"
        value = loss if what == "loss" else norm
        kept = self.run / rundir.CHECKPOINT
        raise TrainingStopped(
            f"the {what} became {value} at step {self.progress.step + 1} (epoch {self.progress.epoch}); "
            f"training stopped" + (f", the last good checkpoint is {kept}" if kept.exists() else ""),
            "train again with a lower learning rate (--set lr=...) or clipped gradients (--set clip=5), "
            "or check the data for extreme values")

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self) -> float | None:
        if self.job.valid is None:
            return None
        with np.errstate(all="ignore"):     # an overflow shows as an inf loss, logged as such
            return evaluate_loss(self.model, self.params, self.job.valid, self.s)

    # -- the loop --------------------------------------------------------------------------------
    def fit(self) -> None:
        p = self.progress
        bar = _progress_bar(self.total_steps(), p.step, self.quiet, self.model.spec.name)
        try:
            with _ctrl_c_between_steps() as ctrl_c:
                while p.epoch < self.s.epochs and not self.done():
                    batches = self.epoch_batches(p.epoch)
                    for batch in batches[p.batch:]:
                        self.after_step(self.step(batch), bar)
                        if self.done() or self._stop(ctrl_c):
                            break
                    if p.batch >= len(batches):
                        self.end_epoch(bar)
                    if self._stop(ctrl_c):
                        raise KeyboardInterrupt
            self.save()
        except _Abort:                                 # a second Ctrl-C: keep the last checkpoint
            bar.close()
            raise
        except KeyboardInterrupt:
            try:
                self.save()
            finally:
                self.finish(bar)
            raise Interrupted(self.run) from None
        except TrainingStopped:
            self.finish(bar)
            raise
        self.finish(bar)

    def _tell(self, record: dict) -> None:
        for callback in self.callbacks if self.writer else ():
            callback(dict(record))

    def _stop(self, ctrl_c) -> bool:
        """Ctrl-C pressed here, or on any rank of an MPI job (they must stop at the same step)."""
        return self.ranks.any(ctrl_c.pressed) if self.ranks is not None else ctrl_c.pressed

    def finish(self, bar) -> None:
        bar.close()
        if self.writer:
            rundir.plot(self.run, self.model.spec.name)

    def total_steps(self) -> int:
        per_epoch = len(self.epoch_batches(0))
        total = per_epoch * self.s.epochs
        return min(total, self.s.steps) if self.s.steps else total

    def done(self) -> bool:
        return bool(self.s.steps) and self.progress.step >= self.s.steps

    def after_step(self, record: dict, bar) -> None:
        p = self.progress
        if self.s.eval_every and p.step % self.s.eval_every == 0:
            record.update(self._validation())
        if self.writer:
            rundir.log(self.run, record)
        self._tell(record)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
        if self.writer and time.monotonic() - self.last_save > CHECKPOINT_SECONDS:
            self.save()
            rundir.plot(self.run, self.model.spec.name)

    def end_epoch(self, bar) -> None:
        p = self.progress
        record = {"step": p.step, "epoch": p.epoch, "epoch_end": True}
        if not self.s.eval_every:
            record.update(self._validation())
        if len(record) > 3 and self.writer:
            rundir.log(self.run, record)
        self._tell(record)
        p.epoch += 1
        p.batch = 0
        p.carry = {}
        if p.epoch == 1 or time.monotonic() - self.last_save > EPOCH_CHECKPOINT_SECONDS:
            self.save()                     # so even a short run that later fails keeps one

    def _validation(self) -> dict:
        val = self.evaluate()
        if val is None:
            return {}
        self.schedule.observe(val)
        self.progress.best = min(self.progress.best, val)
        return {"val_loss": val}

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self) -> None:
        """A checkpoint of the parameters (refused unless all are finite), the optimizer, the
        schedule and the position, from host copies; a staged run is then published over the
        one it replaces."""
        p = self.progress
        params = device.to_host(self.params)
        bad = checkpoint.invalid_params(params)
        if bad:
            self._stop_on_params(bad)
        if not self.writer:
            return
        state = optim.training_state(self.opt, self.schedule)
        state.update({f"carry/{k}": v for k, v in device.to_host(p.carry).items()})
        meta = {**checkpoint.spec_meta(self.model.spec), **checkpoint.source_meta(self.source),
                "step": p.step, "epoch": p.epoch, "batch": p.batch,
                "best": p.best if math.isfinite(p.best) else None, "settings": self.s.as_dict()}
        checkpoint.save(self.run / rundir.CHECKPOINT, params, state, meta)
        self.last_save, self.saved_step = time.monotonic(), p.step
        if self.publish is not None:
            self.run, self.publish = self.publish(), None

    def _stop_on_params(self, bad: list) -> None:
        p, kept = self.progress, self.run / rundir.CHECKPOINT
        raise TrainingStopped(
            f"the parameters stopped being finite by step {p.step}: {'; '.join(bad[:3])}; "
            f"training stopped without saving them"
            + (f", the last good checkpoint is {kept} (step {self.saved_step})" if kept.exists() else ""),
            "train again with a lower learning rate or weight decay (--set lr=..., --set weight_decay=...), "
            "or clipped gradients (--set clip=5)")

    def restore(self, ckpt) -> None:
        checkpoint.require(ckpt, ("step", "epoch", "batch"))
        carry = {k[len("carry/"):]: v for k, v in ckpt.opt_state.items() if k.startswith("carry/")}
        state = {k: v for k, v in ckpt.opt_state.items() if not k.startswith("carry/")}
        self._check_carry(ckpt.path, carry)
        for name, value in ckpt.params.items():
            device.put(self.xp, self.params[name], value)
        optim.restore(self.opt, self.schedule, state)
        m = ckpt.meta
        self.progress = Progress(m["step"], m["epoch"], m["batch"], m.get("best") or math.inf,
                                 device.to_device(self.xp, carry))
        self.saved_step = m["step"]
        if self.writer:
            rundir.truncate_metrics(self.run, m["step"])

    def _check_carry(self, path: str, carry: dict) -> None:
        """Carried states are the spec's variables, one row per stream, finite."""
        want = {eq.name: (self.s.batch, *eq.type.dims) for eq in self.model.spec.equations}
        for name, value in carry.items():
            if name not in want or value.shape != want[name] or value.dtype.kind != "f" \
                    or not np.isfinite(value).all():
                raise DataError(f"{path}: the carried state {name} "
                                f"({value.dtype}, shape {list(value.shape)}) does not fit the run "
                                f"(expected finite numbers of shape {list(want.get(name, ['?']))})",
                                "the checkpoint was changed; restore it or train again")


class _Abort(KeyboardInterrupt):
    """A second Ctrl-C, which may arrive in the middle of a step."""


class _CtrlC:
    pressed = False


@contextmanager
def _ctrl_c_between_steps():
    """Ctrl-C is acted on between steps (and epoch ends), so the checkpoint it writes never
    holds half an update; a second Ctrl-C stops at once, without writing one."""
    ctrl_c = _CtrlC()
    if threading.current_thread() is not threading.main_thread():
        yield ctrl_c                                   # signals reach the main thread only
        return

    def handler(signum, frame):
        if ctrl_c.pressed:
            raise _Abort
        ctrl_c.pressed = True
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, previous)


def evaluate_loss(model, params: dict, bound: data.Bound, settings: optim.Settings) -> float:
    """The mean per-sequence loss over a bound dataset, in `rnndsl eval`'s batches (streams
    carry their state); the parameters are moved to the model's device once, the losses
    brought back once."""
    xp, losses, carry = model.xp, [], None
    params = device.to_device(xp, params)
    for batch in eval_batches(bound, settings):
        result = model.step(params, batch, carry=carry, grad=False)
        losses.append(result.losses)
        carry = result.final if bound.stream is not None else None
    return float(np.mean(device.to_host(xp.concatenate(losses))))


def _progress_bar(total: int, done: int, quiet: bool, name: str, stream=None):
    """tqdm's bar on a terminal; a plain line now and then where stderr is a file or a pipe
    (a bar's carriage returns would pile up in a log as one endless line)."""
    import sys
    stream = stream or sys.stderr
    if not quiet and not stream.isatty():
        return LineProgress(total, done, printable(name), stream)
    from tqdm import tqdm
    return tqdm(total=total, initial=done, disable=quiet, desc=printable(name), unit="step", dynamic_ncols=True,
                leave=True)


class LineProgress:
    """The progress bar's calls, written as one line at most every `every` seconds and at the end."""

    def __init__(self, total: int, done: int, name: str, stream, every: float = 30.0):
        self.total, self.n, self.name, self.stream, self.every = total, done, name, stream, every
        self.postfix, self.start, self.last = {}, time.monotonic(), time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.every:
            self._line()

    def set_postfix(self, refresh: bool = True, **values) -> None:
        self.postfix = values

    def close(self) -> None:
        self._line()

    def _line(self) -> None:
        self.last = time.monotonic()
        shown = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(f"{self.name}: step {self.n}/{self.total}{shown} ({self.last - self.start:.0f} s)",
              file=self.stream, flush=True)


# ---- entry points --------------------------------------------------------------------------------

def train(spec_path, data_path=None, out=None, sets: dict | None = None, backend: str | None = None,
          quiet: bool = False, overwrite: bool = False, loader: dict | None = None, workers: int = 1,
          dtype: str | None = None, callbacks: tuple = ()) -> Path:
    """A new run; returns its directory. `overwrite` replaces a run already in `out` (after this
    run's first checkpoint: until then the old run stays whole); `loader` picks how data is read:
    {"level": "char"|"word", "features": "mfcc"|"logspec"}; `workers` processes share each batch
    (an MPI job's ranks: rnndsl.runtime.mpi; the result is the same up to rounding); `dtype`: "float32" (None:
    job.DTYPE) or "float64", recorded in run.json."""
    job = prepare(spec_path, data_path, sets, backend, loader=loader, dtype=dtype)   # all that can fail, first
    ranks = _ranks(job.model, workers)
    run = Path(out) if out else default_folder(job.model.spec.name)
    source = _resolved_spec(job)
    if ranks is not None and ranks.rank != 0:           # rank 0 makes the folder; the others compute
        _joined(ranks)
        _fit(Trainer(job, run, True, source, writer=False), workers, ranks)
        return run
    with contextlib.ExitStack() as stack:
        with _setup(ranks):
            place = stack.enter_context(rundir.new_run(run, overwrite))
            rundir.start(place.folder, source, job.info)
        trainer = Trainer(job, place.folder, quiet, source, place.publish if place.staging else None)
        trainer.callbacks = tuple(callbacks)
        _fit(trainer, workers, ranks)
    return run


def _ranks(model, workers: int):
    """The MPI job's ranks (None in a plain process), once they can train `model`."""
    ranks = _launched_for(workers)
    model.check_workers(ranks.size if ranks else workers)
    return ranks.attach(model) if ranks is not None else None      # before the parameters are made


def _launched_for(workers: int):
    """The job's ranks; a DataError saying how to start one when `workers` asks for ranks in a
    process no launcher started."""
    ranks = Ranks.world()
    if workers > 1 and ranks is None:
        raise DataError(f"workers={workers} trains as an MPI job of {workers} ranks, started by a launcher",
                        f"run `rnndsl train ... --workers {workers}`, or your script under "
                        f"`mpiexec -n {workers} python script.py` (the ranks find each other)")
    return ranks


class SetupFailed(SystemExit):
    """Rank 0 could not set the run up (and said why); the other ranks stop quietly."""


@contextlib.contextmanager
def _setup(ranks):
    """Rank 0's part of starting an MPI job: the others wait for its word before training."""
    try:
        yield
    except BaseException:
        if ranks is not None:
            ranks.agree(False)
        raise
    if ranks is not None:
        ranks.agree(True)


def _joined(ranks) -> None:
    if not ranks.agree(True):
        raise SetupFailed(1)


def default_folder(name: str) -> Path:
    """runs/NAME-TIME, the spec's name made a safe file name: it never leaves runs/."""
    return Path("runs") / f"{runfiles.safe_name(name)}-{time.strftime('%Y%m%d-%H%M%S')}"


def _fit(trainer: "Trainer", workers: int, ranks=None) -> None:
    if ranks is not None:
        trainer.ranks = ranks
        trainer.job.model.use_ranks(ranks)
    try:
        trainer.fit()
    except (Interrupted, TrainingStopped):
        raise                            # every rank stops at the same step, with the same message
    except BaseException as exc:
        if ranks is not None:            # the other ranks would wait for this one for ever
            _abort(ranks, exc)
        raise
    finally:
        trainer.job.model.close()


def _abort(ranks, exc: BaseException) -> None:
    """Say what failed on this rank, then stop the whole MPI job."""
    import sys
    import traceback
    text = exc.format() if isinstance(exc, SpecError) else "".join(traceback.format_exception(exc))
    print(f"rnndsl: rank {ranks.rank} of {ranks.size} failed; stopping every rank:\n{text}", file=sys.stderr, flush=True)
    time.sleep(0.5)                      # the launcher forwards output asynchronously; an abort drops what is in flight
    ranks.abort(1)


EXTENDABLE = ("epochs", "steps")          # what a resumed run may change: how long it trains


def resume(run, quiet: bool = False, workers: int = 1, backend: str | None = None,
           extend: dict | None = None) -> Path:
    """Continue a run exactly where its checkpoint stopped, holding the run's lock; with
    `backend` (None: the run's own where it can run here, else the default: device.runnable);
    `extend` {"epochs": N, "steps": M} trains it longer (recorded in run.json); nothing else
    about a run changes on resume."""
    run = Path(run)
    backend = device.runnable(rundir.read_info(run)["backend"], backend)   # before a lock file is made
    extend = _extension(rundir.read_info(run), extend or {})
    ranks = _launched_for(workers)
    if ranks is not None and ranks.rank != 0:           # rank 0 holds the lock; the others only read
        _joined(ranks)
        _fit(_resumed(run, True, backend, ranks, extend, writer=False), workers, ranks)
        return run
    with runfiles.lock(run):
        with _setup(ranks):
            rundir.check_files(run)
            rundir.remove_leftovers(run)
            if extend:
                rundir.update_settings(run, extend)
        _fit(_resumed(run, quiet, backend, ranks, extend), workers, ranks)
    return run


def _extension(info: dict, extend: dict) -> dict:
    """Checked `extend`: only epochs and steps, typed and checked as --set checks them."""
    other = sorted(set(extend) - set(EXTENDABLE))
    if other:
        raise SpecError.at(None, f"--resume continues a run as it was; --set {other[0]} would change it",
                           "only epochs and steps may grow on resume (--set epochs=N); to train with other "
                           "settings, start a new run with another --out")
    typed = optim.settings_from((), dict(extend))
    return {k: getattr(typed, k) for k in extend}


def _resumed(run: Path, quiet: bool, backend, ranks, extend: dict | None = None, writer: bool = True) -> "Trainer":
    """A trainer at the run's checkpoint (its model attached to the MPI job's ranks, if any,
    before the parameters are made), trained for as long as `extend` says where it says."""
    info = rundir.read_info(run)
    source = rundir.read_spec(run)
    ckpt, _ = _checked_checkpoint(run, source, info)
    job = prepare(source, _data_path(info), info["dims"], backend, info,
                  optim.Settings(**{**info["settings"], **(extend or {})}), dtype=info["dtype"])
    if ranks is not None:
        _ranks(job.model, ranks.size)
    trainer = Trainer(job, run, quiet, source.text, writer=writer)
    trainer.restore(ckpt)
    return trainer


def _data_path(info: dict):
    return None if info["data"] == "<embedded hello>" else info["data"]


def _resolved_spec(job: Job) -> str:
    """The spec's own text, preceded by the dims it was trained with (as a comment)."""
    dims = ", ".join(f"{k}={v}" for k, v in job.info["dims"].items())
    return f"# trained with dims {dims}\n{job.spec_text}"


def load_run(run, backend: str | None = None) -> tuple:
    """(compiled model, parameters, run.json) of a finished or interrupted run; its spec.yaml
    is compiled only once it is the text the checkpoint was trained from, in the run's dtype
    (the parameters cast to it: a checkpoint holds them as they were trained), with `backend`
    (None: the run's own where it can run here, else the default). The parameters are NumPy
    arrays; sampling and evaluation move them to the model's device."""
    return load_checked_run(run, backend)[:3]


def load_checked_run(run, backend: str | None = None) -> tuple:
    """load_run's three and the spec's checked text (a Source): whatever reads the run's data
    again (eval, sample --from) prepares it from this text, not from spec.yaml read anew."""
    run = Path(run)
    info = rundir.read_info(run)
    backend = device.runnable(info["backend"], backend)
    source = rundir.read_spec(run)
    ckpt, spec = _checked_checkpoint(run, source, info)
    model = compile_spec(spec, backend=backend, dtype=info["dtype"])
    params = {k: np.asarray(v, model.dtype) for k, v in ckpt.params.items()}
    return model, params, info, source


def _checked_checkpoint(run: Path, source, info: dict) -> tuple:
    """(checkpoint, checked spec): the spec parsed (never compiled), the checkpoint's parameter
    shapes, then the spec's whole text, then its data checked against it."""
    path = run / rundir.CHECKPOINT
    try:
        spec = loads_spec(source.text, source.path, dims=info["dims"])
    except SpecError:
        checkpoint.load(path, source=source)       # an edit that broke the spec is named as an edit
        raise
    return checkpoint.load(path, spec, source), spec
