"""The run directory: everything a training run leaves behind, all of it readable.

    RUN/spec.yaml        the spec as trained (its text, with the dims it was trained with)
    RUN/run.json         dims, settings, data path, vocabulary, feature statistics
    RUN/metrics.jsonl    one JSON object per logged step (step, epoch, loss, lr, grad_norm, ...)
    RUN/loss.png         the loss curve, redrawn as training goes
    RUN/checkpoint.npz   parameters, optimizer state and progress (rnndsl/checkpoint.py)
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import DataError

SPEC, INFO, METRICS, PLOT, CHECKPOINT = "spec.yaml", "run.json", "metrics.jsonl", "loss.png", "checkpoint.npz"


def write_atomically(path: Path, text: str) -> None:
    """Write a text file so that a reader sees the old or the new version, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        _usual_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _read_umask()                  # read once: setting it to read it is not thread-safe


def _usual_mode(path) -> None:
    """mkstemp makes files only their owner can read; give them the mode open() would."""
    os.chmod(path, 0o666 & ~_UMASK)


def remove_leftovers(run: Path) -> None:
    """Delete temporary files that a process killed while writing left behind."""
    for leftover in Path(run).glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    for leftover in Path(run).glob(".loss.*.png"):
        leftover.unlink(missing_ok=True)


def create(out: Path, spec_text: str, info: dict) -> Path:
    """A new run directory (refusing to overwrite another run's checkpoint)."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file, not a folder for a run", "choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the run directory {out} ({exc.strerror})", "choose another --out") from None
    if (out / CHECKPOINT).exists():
        raise DataError(f"{out} already holds a run", f"continue it with --resume {out}, or choose another --out")
    write_atomically(out / SPEC, spec_text)
    write_atomically(out / INFO, json.dumps(info, indent=1, sort_keys=True))
    (out / METRICS).write_text("")
    return out


def clear(out: Path) -> None:
    """Remove a previous run's files (only the ones a run writes) from `out`."""
    for name in (SPEC, INFO, METRICS, PLOT, CHECKPOINT):
        (out / name).unlink(missing_ok=True)


def read_info(run: Path) -> dict:
    path = Path(run) / INFO
    if not path.exists():
        raise DataError(f"{run} is not an rnndsl run directory (no {INFO})",
                        "give the folder that `rnndsl train --out` wrote")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is unreadable: {exc}") from None


def log(run: Path, record: dict) -> None:
    with open(run / METRICS, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def read_metrics(run: Path) -> list:
    path = run / METRICS
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            break                                    # a line cut by a kill: ignore the tail
    return out


def truncate_metrics(run: Path, step: int) -> None:
    """On resume, forget records logged after the checkpoint being resumed."""
    kept = [r for r in read_metrics(run) if r.get("step", 0) <= step]
    write_atomically(run / METRICS, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))


def plot(run: Path, title: str) -> None:
    """loss.png: training loss per step and validation loss where measured."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    records = read_metrics(run)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    valid = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if train:
        ax.plot(*zip(*train), lw=1, label="train")
    if valid:
        ax.plot(*zip(*valid), "o-", lw=1.5, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or valid:                                   # a run stopped at step 1 has no curve yet
        ax.legend()
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=run, prefix=".loss.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp)
        _usual_mode(tmp)
        os.replace(tmp, run / PLOT)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
