"""Training: a spec, its data and its settings -> a run directory that can be resumed.

    prepare   spec + data + --set -> dims from the data (vocabulary size), the compiled model,
              the bound training and validation data, the settings
    train     the loop: minibatches (or parallel streams carrying their state across windows),
              clipping, the optimizer and schedule, metrics, loss.png, atomic checkpoints
    resume    the same loop from a checkpoint: same parameters, optimizer, schedule, position

A NaN or inf loss stops the run naming the step and keeps the last good checkpoint; Ctrl-C
lets the step in progress finish, writes a checkpoint and stops cleanly (a second Ctrl-C stops
at once and keeps the last checkpoint). Every random choice comes from the settings' seed, so
a resumed run ends where an uninterrupted one would.
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

from . import checkpoint, data, optim, rundir
from .check import TRAIN_KEYS
from .errors import DataError, SpecError, did_you_mean
from .pipeline import compile as compile_spec
from .pipeline import load_spec
from .spec import read_text

CHECKPOINT_SECONDS = 30.0          # at most this long between checkpoints within an epoch
EPOCH_CHECKPOINT_SECONDS = 5.0     # at an epoch's end, a checkpoint if the last is this old


class TrainingStopped(DataError):
    """The run stopped on a NaN or inf (its message names the step)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run after writing its checkpoint; `run` is where to --resume."""

    def __init__(self, run: Path):
        super().__init__(str(run))
        self.run = run


@dataclass
class Job:
    """Everything a run needs, resolved."""
    model: object                       # CompiledModel
    settings: optim.Settings
    train: data.Bound
    valid: data.Bound | None
    info: dict                          # what run.json records
    spec_text: str


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch: int = 0                      # batches done in this epoch
    best: float = math.inf
    carry: dict = field(default_factory=dict)


def split_settings(pairs: dict, spec) -> tuple:
    """--set pairs -> (dims, training settings), by name; SpecError for a key that is neither."""
    for key in pairs:
        if key not in TRAIN_KEYS and key not in spec.dim:
            raise SpecError.at(None, f"--set {key}: not a dim of {spec.name} or a training setting",
                               did_you_mean(key, [*spec.dim, *TRAIN_KEYS])
                               or f"dims: {', '.join(spec.dim)}; training settings: {', '.join(TRAIN_KEYS)}")
    dims = {k: v for k, v in pairs.items() if k not in TRAIN_KEYS}
    return dims, {k: v for k, v in pairs.items() if k in TRAIN_KEYS}


def prepare(spec_path, data_path=None, sets: dict | None = None, backend: str = "numpy",
            info: dict | None = None, settings: optim.Settings | None = None, hold_out: bool = True,
            loader: dict | None = None) -> Job:
    """Load the data, size the spec's class dims from its vocabulary, compile, bind. With
    `info` (a run's run.json) the run's vocabulary and feature statistics are reused. Without
    `hold_out` all the data is in `train` (eval on a test set)."""
    sets = dict(sets or {})
    probe = load_spec(spec_path)                    # as written: is it the embedded hello's spec?
    dims, train_sets = split_settings(sets, probe)
    spec = load_spec(spec_path, dims=dims)
    loader = dict(loader or (info or {}).get("loader") or {})
    dataset = _dataset(spec, data_path, info, _is_hello(probe), loader)
    dims = {**_dims_from_data(spec, dataset, info), **dims}
    model = compile_spec(spec_path, backend=backend, dims=dims or None)
    settings = settings or optim.settings_from(model.spec.train, train_sets)
    bptt = settings.bptt or data.DEFAULT_BPTT
    data.check_class_indices(model.spec, dataset)       # the whole file, before the split reorders it
    train_part, valid_part = _split(dataset, settings) if hold_out else (dataset, None)
    text = read_text(spec_path).text if not (isinstance(spec_path, str) and "\n" in spec_path) else spec_path
    # the data's absolute path: --resume and eval may run from another folder
    record = {"spec": str(spec_path), "data": str(Path(data_path).resolve()) if data_path else "<embedded hello>",
              "dims": {k: d.value for k, d in model.spec.dims}, "settings": settings.as_dict(),
              "vocab": dataset.vocab.to_json() if dataset.vocab else None,
              "stats": dataset.stats.to_json() if dataset.stats else None, "backend": backend,
              "loader": loader}
    return Job(model, settings, data.bind(model.spec, train_part, bptt),
               data.bind(model.spec, valid_part, bptt) if valid_part else None, record, text)


def _dataset(spec, data_path, info: dict | None, hello: bool, loader: dict) -> data.Dataset:
    if data_path is None:
        if info is None and not hello:
            raise DataError(f"{spec.name} needs training data", "give --data PATH (text, a speech manifest, "
                            "an .npz); the embedded data is 'hello' over h, e, l, o, for specs with 4 symbols "
                            "such as specs/char_rnn.yaml")
        return data.embedded_hello()
    vocab = data.Vocab.from_json(info["vocab"]) if info and info.get("vocab") else None
    stats = data.FeatureStats.from_json(info["stats"]) if info and info.get("stats") else None
    return data.load(data_path, spec, level=loader.get("level", "char"), vocab=vocab, stats=stats,
                     features=loader.get("features", "mfcc"))


def _is_hello(spec) -> bool:
    """A language model over 4 symbols as its file declares it (before --set V=...)."""
    pair = [i for i in spec.inputs if i.axis]
    return len(pair) == 2 and all(i.type.classes is not None and i.type.classes.value == 4 for i in pair)


def _dims_from_data(spec, dataset: data.Dataset, info: dict | None) -> dict:
    """A class count that is a plain dim (V, K) takes the vocabulary's size."""
    if dataset.vocab is None:
        return {}
    names = {i.type.classes.name for i in spec.inputs if i.type.classes is not None and i.axis}   # sequences
    # of symbols (text, transcripts, captions); a static label's classes are the data's own
    return {n: len(dataset.vocab) for n in names if n in spec.dim}


MIN_TO_HOLD_OUT = {"text": 1000, "default": 20}     # tokens of a text, or examples


def _split(dataset: data.Dataset, settings: optim.Settings) -> tuple:
    """(train, validation): 10% held out, unless the data is too small to spare any
    (the embedded "hello" trains on all of itself)."""
    size = len(dataset.stream) if dataset.kind == "text" else len(dataset.examples)
    if size < MIN_TO_HOLD_OUT.get(dataset.kind, MIN_TO_HOLD_OUT["default"]):
        return dataset, None
    return dataset.split(0.1, settings.seed)


# ---- the loop -----------------------------------------------------------------------------------

class Trainer:
    def __init__(self, job: Job, run: Path, quiet: bool = False):
        self.job, self.run, self.quiet = job, run, quiet
        self.model, self.s = job.model, job.settings
        self.params = self.model.init_params(self.s.seed)
        self.opt = optim.make_optimizer(self.s, self.params)
        self.schedule = optim.Schedule(self.s)
        self.progress = Progress()
        self.last_save = time.monotonic()

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
        with np.errstate(over="ignore", invalid="ignore"):      # a non-finite loss is reported below
            result = self.model.step(self.params, batch, carry=carry, truncate=self.s.truncate or None)
            grads, norm = optim.clip_global_norm(result.grads, self.s.clip)
        if not (math.isfinite(result.loss) and math.isfinite(norm)):
            self._stop_on_nan(result.loss, norm)
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
        except _Abort:                                 # a second Ctrl-C: keep the last checkpoint
            bar.close()
            raise
        except KeyboardInterrupt:
            self.save()
            bar.close()
            rundir.plot(self.run, self.model.spec.name)
            raise Interrupted(self.run) from None
        except TrainingStopped:
            bar.close()
            rundir.plot(self.run, self.model.spec.name)
            raise
        bar.close()
        self.save()
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
        p = self.progress
        state = optim.training_state(self.opt, self.schedule)
        state.update({f"carry/{k}": np.asarray(v) for k, v in p.carry.items()})
        meta = {**checkpoint.spec_meta(self.model.spec), "step": p.step, "epoch": p.epoch, "batch": p.batch,
                "best": p.best if math.isfinite(p.best) else None, "settings": self.s.as_dict()}
        checkpoint.save(self.run / rundir.CHECKPOINT, self.params, state, meta)
        self.last_save = time.monotonic()

    def restore(self, ckpt) -> None:
        carry = {k[len("carry/"):]: v for k, v in ckpt.opt_state.items() if k.startswith("carry/")}
        state = {k: v for k, v in ckpt.opt_state.items() if not k.startswith("carry/")}
        for name, value in ckpt.params.items():
            self.params[name][...] = value
        optim.restore(self.opt, self.schedule, state)
        m = ckpt.meta
        self.progress = Progress(m["step"], m["epoch"], m["batch"], m.get("best") or math.inf, carry)
        rundir.truncate_metrics(self.run, m["step"])


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
    """The mean per-sequence loss over a bound dataset (streams carry their state)."""
    losses, carry = [], None
    if bound.stream is not None and (len(bound.stream) - 1) // settings.batch >= 1:
        for batch in bound.stream_batches(settings.batch, settings.bptt or data.DEFAULT_BPTT):
            result = model.step(params, batch, carry=carry, grad=False)
            losses.append(result.losses)
            carry = result.final
    else:
        for batch in data.batches(bound, settings.batch, seed=0, bucket=False):
            losses.append(model.step(params, batch, grad=False).losses)
    return float(np.mean(np.concatenate(losses)))


def _progress_bar(total: int, done: int, quiet: bool, name: str):
    from tqdm import tqdm
    return tqdm(total=total, initial=done, disable=quiet, desc=name, unit="step", dynamic_ncols=True,
                leave=True)


# ---- entry points --------------------------------------------------------------------------------

def train(spec_path, data_path=None, out=None, sets: dict | None = None, backend: str = "numpy",
          quiet: bool = False, overwrite: bool = False, loader: dict | None = None, workers: int = 1) -> Path:
    """A new run; returns its directory. `overwrite` replaces a run already in `out`;
    `loader` picks how data is read: {"level": "char"|"word", "features": "mfcc"|"logspec"};
    `workers` processes share each batch (rnndsl.parallel; the result is the same up to rounding)."""
    job = prepare(spec_path, data_path, sets, backend, loader=loader)
    run = Path(out) if out else Path("runs") / f"{job.model.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if overwrite:
        rundir.clear(run)
    rundir.create(run, _resolved_spec(job), job.info)
    _fit(Trainer(job, run, quiet), workers)
    return run


def _fit(trainer: "Trainer", workers: int) -> None:
    trainer.job.model.use_workers(workers)
    try:
        trainer.fit()
    finally:
        trainer.job.model.close()


def resume(run, quiet: bool = False, workers: int = 1) -> Path:
    """Continue a run exactly where its checkpoint stopped."""
    run = Path(run)
    info = rundir.read_info(run)
    rundir.remove_leftovers(run)
    data_path = None if info["data"] == "<embedded hello>" else info["data"]
    settings = optim.Settings(**info["settings"])
    job = prepare(str(run / rundir.SPEC), data_path, info["dims"], info.get("backend", "numpy"), info, settings)
    trainer = Trainer(job, run, quiet)
    trainer.restore(checkpoint.load(run / rundir.CHECKPOINT, job.model.spec))
    _fit(trainer, workers)
    return run


def _resolved_spec(job: Job) -> str:
    """The spec's own text, preceded by the dims it was trained with (as a comment)."""
    dims = ", ".join(f"{k}={v}" for k, v in job.info["dims"].items())
    return f"# trained with dims {dims}\n{job.spec_text}"


def load_run(run) -> tuple:
    """(compiled model, parameters, run.json) of a finished or interrupted run."""
    run = Path(run)
    info = rundir.read_info(run)
    model = compile_spec(str(run / rundir.SPEC), backend=info.get("backend", "numpy"), dims=info["dims"])
    ckpt = checkpoint.load(run / rundir.CHECKPOINT, model.spec)
    return model, ckpt.params, info
