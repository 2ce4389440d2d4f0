"""The run directory: everything a training run leaves behind, all of it readable.

    RUN/run.json         the marker {"rnndsl_run": 1}, dims, settings, data path, vocabulary, ... (runinfo)
    RUN/spec.yaml        the spec as trained (its text, after a comment with the dims it was trained with)
    RUN/metrics.jsonl    one JSON object per logged step (step, epoch, loss, lr, grad_norm, ...)
    RUN/loss.png         the loss curve, redrawn as training goes
    RUN/checkpoint.npz   parameters, optimizer state and progress (rnndsl/training/checkpoint.py)
    RUN/.rnndsl.lock     locked by the process training the run (runfiles.lock)

A new run goes only into a new or empty folder, or into a run (run.json has the marker); a run
with a checkpoint is replaced only with --overwrite, and then last: the new run is written into
a staging folder RUN/.rnndsl-new.PID.HEX and moved over the old one's files once it has its first
checkpoint. rnndsl deletes only the files named above, in a marked run, and its own temporary files.
Every file is opened without following links (runfiles). Readers (sample, eval) take no lock:
every write replaces a file whole, so they see the old or the new one.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import stat
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core import limits
from . import runfiles, runinfo
from ..core.errors import DataError, Source, printable
from .runfiles import failure, write_atomically

SPEC, INFO, METRICS, PLOT, CHECKPOINT = "spec.yaml", "run.json", "metrics.jsonl", "loss.png", "checkpoint.npz"
FILES = (INFO, SPEC, METRICS, PLOT, CHECKPOINT)          # a run's files; the order a new run is published in
_STAGING = re.compile(r"\.rnndsl-new\.[0-9]+\.[0-9a-f]{8}")


# ---- a new run ---------------------------------------------------------------------------------

@dataclass
class Place:
    """Where a new run writes: `target` itself, or `staging` until `publish` moves it over."""
    target: Path
    staging: Path | None = None

    @property
    def folder(self) -> Path:
        return self.staging or self.target

    def publish(self) -> Path:
        """Move the staged run's files over the old run's, checkpoint last; an old file the new
        run has not written (its loss.png) is deleted. Returns the run's folder."""
        if self.staging is not None:
            for name in FILES:
                _move_or_delete(self.staging / name, self.target / name)
            _remove_staging(self.staging)
            self.staging = None
        return self.target

    def discard(self) -> None:
        """A staged run that never got its checkpoint is deleted; the old run stays as it was."""
        if self.staging is not None:
            _remove_staging(self.staging)
            self.staging = None


@contextmanager
def new_run(out: Path, overwrite: bool = False):
    """Lock `out` for a new run and yield its Place. Refuses a folder holding anything but a
    run of rnndsl's, and a run with a checkpoint unless `overwrite`."""
    out = Path(out)
    _make_folder(out)
    _admit(out, overwrite)                        # before writing the lock file into it
    with runfiles.lock(out):
        replace = _admit(out, overwrite)          # again, now that no other rnndsl can change it
        remove_leftovers(out)
        place = Place(out, _make_staging(out) if replace else None)
        try:
            yield place
        finally:
            place.discard()


def start(folder: Path, spec_text: str, info: dict) -> None:
    """A new run's first files: run.json first (it marks the folder as a run), then spec.yaml
    and an empty metrics.jsonl; the plot of a run that stopped before its checkpoint goes."""
    write_atomically(folder / INFO, json.dumps({runinfo.MARKER: runinfo.FORMAT, **info}, indent=1, sort_keys=True))
    write_atomically(folder / SPEC, spec_text)
    write_atomically(folder / METRICS, "")
    runfiles.remove_regular(folder / PLOT)


def update_settings(run: Path, changes: dict) -> None:
    """run.json with some training settings changed (a resumed run trained longer)."""
    info = read_info(run)
    info["settings"] = {**info["settings"], **changes}
    write_atomically(run / INFO, json.dumps(info, indent=1, sort_keys=True))


def _make_folder(out: Path) -> None:
    if os.path.lexists(out) and not out.is_dir():
        raise DataError(f"{out} is a file, not a folder for a run", "choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the run directory {out} ({exc.strerror})",
                        "choose another --out") from None


def _admit(out: Path, overwrite: bool) -> bool:
    """Whether a new run in `out` replaces one with a checkpoint (then it is staged)."""
    if not runinfo.is_marked(out / INFO):
        theirs = sorted(name for name in _names(out) if not _ours(name))
        if theirs:
            listed = ", ".join(theirs[:3]) + (", ..." if len(theirs) > 3 else "")
            raise DataError(f"{out} is not empty ({listed}) and is not an rnndsl run folder",
                            "rnndsl writes a new run only into a new or empty folder, and --overwrite replaces "
                            "only a run: choose another --out")
        return False
    check_files(out)
    if not os.path.lexists(out / CHECKPOINT):
        return False                              # a run stopped before its first checkpoint
    if not overwrite:
        raise DataError(f"{out} already holds a run",
                        f"continue it with --resume {out}, replace it with --overwrite, or choose another --out")
    return True


def _ours(name: str) -> bool:
    return name == runfiles.LOCK or bool(runfiles.TEMP.fullmatch(name) or _STAGING.fullmatch(name))


def _names(folder: Path) -> list:
    try:
        return os.listdir(folder)
    except OSError as exc:
        raise failure(folder, exc) from None


def check_files(run: Path) -> None:
    """A run's files must be regular files (or absent) before anything replaces them."""
    for name in FILES:
        try:
            mode = os.lstat(run / name).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise failure(run / name, exc) from None
        if not stat.S_ISREG(mode):
            raise runfiles.not_regular(run / name, mode)


def _make_staging(out: Path) -> Path:
    staging = out / f".rnndsl-new.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        staging.mkdir()
    except OSError as exc:
        raise failure(staging, exc, "create") from None
    return staging


def _move_or_delete(new: Path, old: Path) -> None:
    try:
        if os.path.lexists(new):
            runfiles.check_replaceable(old)
            os.replace(new, old)
        else:
            runfiles.remove_regular(old)
    except OSError as exc:
        raise failure(old, exc, "replace") from None


def _remove_staging(staging: Path) -> None:
    """Delete a staging folder's run files and temporary files, then the folder if that empties it."""
    for name in FILES:
        runfiles.remove_regular(staging / name)
    runfiles.remove_own_temps(staging)
    try:
        staging.rmdir()
    except OSError:
        pass                                      # something not ours is in it: leave it


def remove_leftovers(run: Path) -> None:
    """Temporary files and staging folders a killed rnndsl left (call it holding the lock)."""
    runfiles.remove_own_temps(run)
    for name in _names(run):
        path = Path(run) / name
        if _STAGING.fullmatch(name) and path.is_dir() and not path.is_symlink() \
                and path.stat().st_uid == os.getuid():
            _remove_staging(path)


# ---- reading a run -----------------------------------------------------------------------------

def read_info(run) -> dict:
    """run.json, checked field by field (runinfo)."""
    path = Path(run) / INFO
    if not os.path.lexists(path):
        raise DataError(f"{run} is not an rnndsl run directory (no {INFO})",
                        "give the folder that `rnndsl train --out` wrote")
    return runinfo.read(path)


def read_spec(run) -> Source:
    """The run's spec.yaml, read once (never through a link); what is checked is what is compiled."""
    path = Path(run) / SPEC
    return Source(str(path), runfiles.read_text(path, limits.MAX_SPEC_BYTES + 4096))     # + the dims comment


# ---- metrics -----------------------------------------------------------------------------------

MAX_RECORD = 1 << 16                    # bytes in one line of metrics.jsonl; rnndsl writes about 150
_NUMBERS = ("loss", "val_loss", "lr", "grad_norm")


def log(run: Path, record: dict) -> None:
    runfiles.append_text(Path(run) / METRICS, json.dumps(record, sort_keys=True) + "\n")


def read_metrics(run: Path) -> list:
    """The valid records of metrics.jsonl (every other line skipped)."""
    return scan_metrics(run)[0]


def scan_metrics(run: Path) -> tuple:
    """(valid records, [(line number, what is wrong)] for the lines that are not records)."""
    path = Path(run) / METRICS
    if not os.path.lexists(path):
        return [], []
    records, bad = [], []
    with os.fdopen(runfiles.open_regular(path), "rb") as f:
        for number, line in enumerate(_lines(f), 1):
            record, why = _record(line)
            if why:
                bad.append((number, why))
            else:
                records.append(record)
    return records, bad


def _lines(f):
    """The file's lines, each at most MAX_RECORD bytes (None for a longer one, skipped unread)."""
    while line := f.readline(MAX_RECORD + 1):
        if len(line) > MAX_RECORD:
            while (rest := f.readline(MAX_RECORD)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield line


def _record(line) -> tuple:
    if line is None:
        return None, f"longer than {MAX_RECORD:,} bytes"
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except (ValueError, RecursionError):
        return None, "not JSON"
    return (record, "") if _valid(record) else (None, "not a metrics record")


def _valid(record) -> bool:
    """A dict with a step, whose known fields have the types the readers of metrics rely on."""
    def count(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0
    return isinstance(record, dict) and count(record.get("step")) and count(record.get("epoch", 0)) \
        and all(isinstance(record.get(k, 0.0), (int, float)) and not isinstance(record.get(k), bool)
                for k in _NUMBERS) and isinstance(record.get("epoch_end", False), bool)


def truncate_metrics(run: Path, step: int) -> None:
    """On resume, forget records logged after the checkpoint being resumed, and lines that are
    not records (a warning on stderr names them: the valid records around them are kept)."""
    records, bad = scan_metrics(run)
    if bad:
        _warn_dropped(Path(run) / METRICS, bad, len(records))
    kept = [r for r in records if r["step"] <= step]
    write_atomically(Path(run) / METRICS, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))


def _warn_dropped(path: Path, bad: list, valid: int) -> None:
    lines = ", ".join(f"line {n} ({why})" for n, why in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    print(f"rnndsl: warning: {printable(path)}: dropped {lines}; kept the {valid} valid records", file=sys.stderr)


# ---- the plot ----------------------------------------------------------------------------------

def plot(run: Path, title: str) -> None:
    """loss.png: training loss per step and validation loss where measured."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    records = read_metrics(run)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    valid = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    try:
        if train:
            ax.plot(*zip(*train), lw=1, label="train")
        if valid:
            ax.plot(*zip(*valid), "o-", lw=1.5, label="validation")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(printable(title), parse_math=False, usetex=False)      # a spec's name is text, not TeX
        ax.grid(alpha=0.3)
        if train or valid:                                   # a run stopped at step 1 has no curve yet
            ax.legend()
        fig.tight_layout()
        write_atomically(Path(run) / PLOT, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)
