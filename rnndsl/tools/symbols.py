"""What `sample` and `eval` read and print as symbols: a run's vocabulary, or, for a run trained
on named arrays (which has none), the class numbers themselves ("0 4 2" in, "0 4 2" out).

    symbols_of(info, spec)        the run's Vocab, or Numbers sized by the fed input's classes
    stop_class(symbols, spec, s)  the stop class: --stop, else the spec's generate: stop, or None
    start(symbols, spec, prime)   the prime's ids: --prime, else the spec's generate: start
    given_inputs(spec, items)     --input NAME=3,1,4: inputs off the generated axis, as numbers
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import DataError
from ..core.ops import Kind
from ..frontend import ir

NO_VOCAB = "the run trained on named arrays, so it has no vocabulary: symbols are class numbers"


@dataclass(frozen=True)
class Numbers:
    """Class numbers 0..classes-1 standing in for a vocabulary; printed separated by spaces."""
    classes: int
    level: str = "word"              # joined with spaces, as a word vocabulary is

    def __contains__(self, symbol) -> bool:
        return _number(symbol) is not None and _number(symbol) < self.classes

    def index(self, symbol) -> int:
        return int(self.encode(str(symbol))[0])

    def encode(self, text) -> np.ndarray:
        parts = text.replace(",", " ").split() if isinstance(text, str) else [str(t) for t in text]
        bad = [p for p in parts if p not in self]
        if bad:
            raise DataError(f"{bad[0]!r} is not a class number from 0 to {self.classes - 1}; {NO_VOCAB}",
                            "give class numbers separated by spaces or commas, such as 0 or 3,1,4")
        return np.array([int(p) for p in parts], np.int64)

    def decode(self, ids) -> str:
        return " ".join(str(int(i)) for i in np.asarray(ids).reshape(-1))


def _number(symbol) -> int | None:
    text = str(symbol).strip()
    return int(text) if text.isdigit() and len(text) < 10 else None


def symbols_of(info: dict, spec: ir.Model, vocab_type):
    """The run's vocabulary (vocab_type.from_json of run.json's), else class numbers of the fed
    input (of the first sequence index input without a generate: section)."""
    if info.get("vocab"):
        return vocab_type.from_json(info["vocab"])
    return Numbers(_classes(spec))


def _classes(spec: ir.Model) -> int:
    if spec.generate is not None and spec.generate.feed:
        fed = spec.generate.feed[0][0]
        return next(i.type.classes.value for i in spec.inputs if i.name == fed)
    classes = [i.type.classes.value for i in spec.inputs if i.type.kind is not Kind.FLOAT]
    return max(classes, default=1)


def stop_class(symbols, spec: ir.Model, given: str | None) -> int | None:
    """--stop (an error if not a symbol), else the spec's stop where it names one, else None."""
    if given is not None:
        if given not in symbols:
            raise DataError(f"--stop {given!r} is not a symbol of the run"
                            + (f"; {NO_VOCAB}" if isinstance(symbols, Numbers) else ""),
                            "give a symbol of the run's vocabulary, or a class number for a run without one")
        return symbols.index(given)
    stop = spec.generate.stop if spec.generate else None
    return symbols.index(stop) if stop is not None and stop in symbols else None


def start(symbols, spec: ir.Model, prime: str | None) -> list:
    """The prime's ids: --prime, else the spec's generate: start."""
    gen_start = spec.generate.start if spec.generate else None
    if prime is None and gen_start is not None and isinstance(symbols, Numbers) and gen_start not in symbols:
        raise DataError(f"the spec's generate: start {gen_start!r} names no class: {NO_VOCAB}",
                        "give the start as a class number, such as --prime 0")
    text = prime if prime is not None else (gen_start or "")
    return [int(i) for i in symbols.encode(text)]


def given_inputs(spec: ir.Model, items: list) -> dict:
    """--input NAME=3,1,4 (repeatable): class numbers for an index or onehot input off the
    generated axis (a source sentence over its own axis, or one static class)."""
    fed = spec.generate.feed[0][0] if spec.generate and spec.generate.feed else None
    axis = next((i.axis for i in spec.inputs if i.name == fed), None)
    usable = {i.name: i for i in spec.inputs if i.type.kind is not Kind.FLOAT and (i.axis is None or i.axis != axis)}
    out = {}
    for item in items:
        name, _, text = item.partition("=")
        if name.strip() not in usable:
            raise DataError(f"--input {item}: expected NAME=NUMBERS for one of {', '.join(usable) or 'no input'}",
                            "name a class-index input the spec reads off the generated axis, e.g. --input src=3,1,4")
        inp = usable[name.strip()]
        ids = Numbers(inp.type.classes.value).encode(text)
        if inp.axis is None and len(ids) != 1:
            raise DataError(f"--input {item}: {inp.name} is one class, not a sequence", f"for example --input {inp.name}=3")
        if len(ids) == 0:
            raise DataError(f"--input {item}: no class numbers", f"for example --input {inp.name}=3,1,4")
        out[inp.name] = ids if inp.axis else ids[0]
    return out
