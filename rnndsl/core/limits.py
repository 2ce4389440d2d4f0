"""Resource limits: the caps rnndsl puts on what a spec, a data file or a command-line argument
may ask for, in one table (docs/security.md lists them), and the estimate-first memory check
that runs before a large allocation, so that a request too big for the machine is an error
naming the size ("needs about 7.5 GiB; this machine has 4 GiB"), never a MemoryError.

Limits of the spec language itself live beside the code that checks them: spec.py (YAML nodes,
nesting), scalars.py (digits of a number), parse.py (expression depth and length), declare.py /
typecheck.py (dims, entries per parameter, offsets, windows), check.py (equations, max_len).
"""
from __future__ import annotations

import math
import numbers
import os

from .errors import DataError, SourcePos, SpecError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# ---- files read -------------------------------------------------------------------------------
MAX_SPEC_BYTES = 1_000_000           # a spec file, in bytes (a spec is a few dozen lines)
MAX_TEXT_BYTES = 256 * MiB           # a text corpus given with --data
MAX_MANIFEST_BYTES = 16 * MiB        # a speech manifest.tsv
MAX_WAV_BYTES = 256 * MiB            # one WAV file a manifest lists (2 hours of 16 kHz 16-bit mono)
MAX_NPZ_BYTES = 4 * GiB              # an .npz file on disk
MAX_NPZ_ARRAY_BYTES = 16 * GiB       # an .npz's arrays once inflated (the memory check also applies)
MAX_NPZ_ARRAYS = 10_000              # arrays in one .npz
MAX_EXAMPLES = 10_000_000            # examples (rows) in one data file
MAX_VOCAB = 1 << 20                  # distinct symbols in a vocabulary built from data

# ---- command-line arguments and training settings --------------------------------------------
MAX_STEPS = 1_000_000                # --steps T of gradcheck, bench, compile --explain; train: bptt, truncate
MAX_BATCH = 1 << 16                  # --batch B, and train: batch
MAX_REPEAT = 100_000                 # bench --repeat
MAX_WORKERS = 64                     # --workers (and never more than the machine's cores)
MAX_SEED = (1 << 63) - 1             # --seed and train: seed, 0 up to this
MAX_SAMPLE_LENGTH = 100_000          # sample --length (check.py caps generate: max_len alike)
MAX_BEAM = 1_000                     # sample and eval --beam: hypotheses kept per step
MIN_TEMPERATURE = 1e-3               # sample --temperature: 0 (greedy) or at least this
MAX_EPOCHS = 1_000_000               # train: epochs
MAX_TRAIN_STEPS = 1_000_000_000      # train: steps, eval_every, decay_every, warmup, patience

# ---- memory -----------------------------------------------------------------------------------
MEMORY_FRACTION = 0.8                # refuse an estimate above this share of the machine's memory


def machine_memory() -> int | None:
    """Bytes of memory this process may use: the machine's physical memory, or a smaller
    cgroup (container) limit; None where neither can be read."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        physical = None
    limits = [n for n in (physical, _cgroup_limit()) if n and n > 0]
    return min(limits) if limits else None


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read(64).strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:      # "max" or a huge number: no limit
            return int(text)
    return None


def check_memory(need: int, what: str, hint: str, pos: SourcePos | None = None) -> None:
    """Raise a SpecError when `need` bytes exceed MEMORY_FRACTION of the machine's memory."""
    have = machine_memory()
    if have is not None and need > MEMORY_FRACTION * have:
        raise SpecError.at(pos, f"{what} needs about {size(need)}; this machine has {size(have)} of memory "
                           f"(rnndsl uses at most {MEMORY_FRACTION:.0%} of it)", hint)


def size(n: int) -> str:
    """A byte count for people: '512 bytes', '3.0 KiB', '7.5 GiB'."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


def temperature_problem(value) -> str:
    """'' for a usable sampling temperature, else what is wrong with it."""
    if value == 0:
        return ""
    if not isinstance(value, numbers.Real) or not math.isfinite(value) or value < MIN_TEMPERATURE:
        return (f"must be 0 (greedy) or a finite number from {MIN_TEMPERATURE:g} up "
                "(below that, the scores divided by it overflow)")
    return ""


def check_sampling(length, temperature) -> None:
    """Raise a SpecError unless `length` and `temperature` suit generation."""
    problem = temperature_problem(temperature)
    if problem:
        raise SpecError.at(None, f"the sampling temperature {temperature!r} {problem}", "")
    if not isinstance(length, int) or not 0 <= length <= MAX_SAMPLE_LENGTH:
        raise SpecError.at(None, f"a sample length must be a whole number from 0 to {MAX_SAMPLE_LENGTH:,}, "
                           f"got {length!r}", "sample in several runs, or raise MAX_SAMPLE_LENGTH in rnndsl/core/limits.py")


def check_seed(seed) -> None:
    """Raise a DataError unless `seed` is a whole number from 0 to MAX_SEED (NumPy's seeds)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise DataError(f"a seed must be a whole number from 0 to {MAX_SEED:,}, got {seed!r}")
