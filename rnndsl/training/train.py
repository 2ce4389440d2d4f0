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

import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoint, data, optim, rundir, runfiles
from ..core.errors import DataError, SpecError, printable
from ..runtime import device
from ..semantics.inputs import dropout_masks
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

    def __init__(self, job: Job, run: Path, quiet: bool = False, source: str | None = None, publish=None):
        self.job, self.run, self.quiet = job, run, quiet
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
            batch = {**batch, **dropout_masks(self.model.spec, batch, np.random.default_rng([self.s.seed, p.step]))}
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
                        if self.done() or ctrl_c.pressed:
                            break
                    if p.batch >= len(batches):
                        self.end_epoch(bar)
                    if ctrl_c.pressed:
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

    def finish(self, bar) -> None:
        bar.close()
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
        rundir.log(self.run, record)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
        if time.monotonic() - self.last_save > CHECKPOINT_SECONDS:
            self.save()
            rundir.plot(self.run, self.model.spec.name)

    def end_epoch(self, bar) -> None:
        p = self.progress
        record = {"step": p.step, "epoch": p.epoch, "epoch_end": True}
        if not self.s.eval_every:
            record.update(self._validation())
        if len(record) > 3:
            rundir.log(self.run, record)
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
    """The mean per-sequence loss over a bound dataset (streams carry their state); the
    parameters are moved to the model's device once, the losses brought back once."""
    xp, losses, carry = model.xp, [], None
    params = device.to_device(xp, params)
    if bound.stream is not None and (len(bound.stream) - 1) // settings.batch >= 1:
        for batch in bound.stream_batches(settings.batch, settings.bptt or data.DEFAULT_BPTT):
            result = model.step(params, batch, carry=carry, grad=False)
            losses.append(result.losses)
            carry = result.final
    else:
        for batch in data.batches(bound, settings.batch, seed=0, bucket=False):
            losses.append(model.step(params, batch, grad=False).losses)
    return float(np.mean(device.to_host(xp.concatenate(losses))))


def _progress_bar(total: int, done: int, quiet: bool, name: str):
    from tqdm import tqdm
    return tqdm(total=total, initial=done, disable=quiet, desc=printable(name), unit="step", dynamic_ncols=True,
                leave=True)


# ---- entry points --------------------------------------------------------------------------------

def train(spec_path, data_path=None, out=None, sets: dict | None = None, backend: str | None = None,
          quiet: bool = False, overwrite: bool = False, loader: dict | None = None, workers: int = 1,
          dtype: str | None = None) -> Path:
    """A new run; returns its directory. `overwrite` replaces a run already in `out` (after this
    run's first checkpoint: until then the old run stays whole); `loader` picks how data is read:
    {"level": "char"|"word", "features": "mfcc"|"logspec"}; `workers` processes share each batch
    (rnndsl.runtime.parallel; the result is the same up to rounding); `dtype`: "float32" (None:
    job.DTYPE) or "float64", recorded in run.json."""
    job = prepare(spec_path, data_path, sets, backend, loader=loader, dtype=dtype)   # all that can fail, first
    job.model.check_workers(workers)
    run = Path(out) if out else default_folder(job.model.spec.name)
    source = _resolved_spec(job)
    with rundir.new_run(run, overwrite) as place:
        rundir.start(place.folder, source, job.info)
        _fit(Trainer(job, place.folder, quiet, source, place.publish if place.staging else None), workers)
    return run


def default_folder(name: str) -> Path:
    """runs/NAME-TIME, the spec's name made a safe file name: it never leaves runs/."""
    return Path("runs") / f"{runfiles.safe_name(name)}-{time.strftime('%Y%m%d-%H%M%S')}"


def _fit(trainer: "Trainer", workers: int) -> None:
    trainer.job.model.use_workers(workers)
    try:
        trainer.fit()
    finally:
        trainer.job.model.close()


def resume(run, quiet: bool = False, workers: int = 1, backend: str | None = None) -> Path:
    """Continue a run exactly where its checkpoint stopped, holding the run's lock; with
    `backend` (None: the run's own where it can run here, else the default: device.runnable)."""
    run = Path(run)
    backend = device.runnable(rundir.read_info(run)["backend"], backend)   # before a lock file is made
    with runfiles.lock(run):
        info = rundir.read_info(run)
        rundir.check_files(run)
        rundir.remove_leftovers(run)
        source = rundir.read_spec(run)
        ckpt, _ = _checked_checkpoint(run, source, info)
        job = prepare(source, _data_path(info), info["dims"], backend, info,
                      optim.Settings(**info["settings"]), dtype=info["dtype"])
        trainer = Trainer(job, run, quiet, source.text)
        trainer.restore(ckpt)
        _fit(trainer, workers)
    return run


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
