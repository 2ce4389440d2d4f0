"""Data records: `Vocab` (symbols <-> ids), `FeatureStats` (speech feature normalisation) and
`Dataset` (the examples one file holds, unbatched). What a run must keep to read new data the
same way (Vocab, FeatureStats) has a JSON form; nothing is pickled.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from ...core import limits
from .audio import FEATURES
from ...core.errors import DataError

Example = dict          # name -> np.ndarray: one sequence (T, ...) or one static value
BLANK = "_"             # the CTC blank: index 0 of a transcript vocabulary
START, END, UNKNOWN, EOS = "<start>", "<end>", "<unk>", "<eos>"
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


# ---- vocabularies and feature statistics (stored with a run as JSON) --------------------------

@dataclass(frozen=True)
class Vocab:
    """Ordered symbols (characters or words); a symbol's id is its position."""
    symbols: tuple
    level: str = "char"             # "char": decode joins symbols; "word": joins with spaces
    unknown: str | None = None      # the symbol standing for any other (max_size cut the rest)

    def __post_init__(self):
        if self.level not in ("char", "word"):
            raise DataError(f"vocabulary level must be char or word, got {self.level!r}")
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise DataError("a vocabulary needs at least one symbol and no symbol twice")
        if self.unknown is not None and self.unknown not in self.symbols:
            raise DataError(f"the unknown symbol {self.unknown!r} is not in the vocabulary")

    @classmethod
    def build(cls, tokens, level: str = "char", specials: tuple = (), max_size: int | None = None) -> Vocab:
        """`specials` first, then the distinct tokens sorted; with `max_size`, only the most
        frequent tokens are kept and the rest become <unk>."""
        counts = Counter(t for t in tokens if t not in specials)
        if max_size is None and len(counts) > limits.MAX_VOCAB:
            raise DataError(f"the data holds {len(counts):,} distinct {level} symbols; a vocabulary holds at "
                            f"most {limits.MAX_VOCAB:,}", "is this the right file, read at the right level?")
        words, unknown = sorted(counts), None
        if max_size is not None and len(specials) + len(words) > max_size:
            keep = max_size - len(specials) - 1
            if keep < 1:
                raise DataError(f"a vocabulary of at most {max_size} symbols has no room for words")
            words = sorted(sorted(counts, key=lambda w: (-counts[w], w))[:keep])
            specials, unknown = tuple(specials) + (UNKNOWN,), UNKNOWN
        return cls(tuple(specials) + tuple(words), level, unknown)

    @cached_property
    def ids(self) -> dict:
        return {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol) -> bool:
        return symbol in self.ids

    def index(self, symbol: str) -> int:
        if symbol not in self.ids:
            raise DataError(f"{symbol!r} is not in the vocabulary of {len(self)} symbols")
        return self.ids[symbol]

    def tokens(self, seq) -> list:
        """A string's characters, or its words at word level; a list of symbols as it is."""
        if isinstance(seq, str):
            return seq.split() if self.level == "word" else list(seq)
        return list(seq)

    def lookup(self, tokens: list) -> np.ndarray:
        """Ids of `tokens`; -1 for a symbol outside the vocabulary (the <unk> id if it has one)."""
        missing = self.ids.get(self.unknown, -1)
        return np.fromiter((self.ids.get(t, missing) for t in tokens), np.int64, len(tokens))

    def encode(self, seq) -> np.ndarray:
        """Ids of a string or a list of symbols; DataError naming the first unknown symbol."""
        tokens = self.tokens(seq)
        ids = self.lookup(tokens)
        if (ids < 0).any():
            at = int(np.argmax(ids < 0))
            raise DataError(f"symbol {tokens[at]!r} (position {at}) is not in the vocabulary "
                            f"of {len(self)} symbols")
        return ids

    def decode(self, ids) -> str:
        """The text of `ids`: characters joined, words joined with spaces."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        bad = ids[(ids < 0) | (ids >= len(self))]
        if bad.size:
            raise DataError(f"id {bad[0]} is outside the vocabulary of {len(self)} symbols")
        return (" " if self.level == "word" else "").join(self.symbols[i] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"level": self.level, "unknown": self.unknown, "symbols": list(self.symbols)})

    @classmethod
    def from_json(cls, text: str, where: str = "vocab.json") -> Vocab:
        return _record(cls, text, where)


@dataclass(frozen=True)
class FeatureStats:
    """How speech frames were computed and normalised: per-feature mean and std of the
    training set, reused unchanged for validation and eval."""
    features: str           # "mfcc" | "logspec"
    n_features: int
    rate: int               # sample rate of every file
    mean: tuple
    std: tuple

    def __post_init__(self):
        if self.features not in FEATURES:
            raise DataError(f"unknown features {self.features!r}; choose {' or '.join(FEATURES)}")
        if not len(self.mean) == len(self.std) == self.n_features:
            raise DataError(f"feature statistics need {self.n_features} means and stds")

    @classmethod
    def of(cls, frames: list, features: str, rate: int) -> FeatureStats:
        """Mean and std of every feature over all frames of `frames` [(T, F), ...]."""
        stacked = np.concatenate(frames)
        std = np.maximum(stacked.std(0), 1e-5)
        return cls(features, stacked.shape[1], int(rate), tuple(map(float, stacked.mean(0))),
                   tuple(map(float, std)))

    def apply(self, frames: np.ndarray) -> np.ndarray:
        return ((frames - np.array(self.mean)) / np.array(self.std)).astype(np.float32)

    def to_json(self) -> str:
        return json.dumps({k: getattr(self, k) for k in ("features", "n_features", "rate", "mean", "std")})

    @classmethod
    def from_json(cls, text: str, where: str = "features.json") -> FeatureStats:
        return _record(cls, text, where)


def _record(cls, text: str, where: str):
    """A frozen record from its JSON text (lists become tuples); DataError when malformed."""
    try:
        fields = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    except (ValueError, TypeError, AttributeError, DataError) as e:
        problem = e.message if isinstance(e, DataError) else e
        raise DataError(f"{where}: not a valid {cls.__name__} record ({problem})",
                        "rnndsl train writes it; train again to recreate it") from None


# ---- datasets ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dataset:
    """Examples read from one file, with what is needed to read more data the same way."""
    kind: str                           # "text" | "speech" | "images" | "arrays"
    examples: tuple                     # Example dicts; their keys depend on the kind
    vocab: Vocab | None = None          # text tokens, transcript characters or caption words
    stats: FeatureStats | None = None   # speech: feature normalisation
    source: str = ""                    # the file read, for messages

    @property
    def stream(self) -> np.ndarray:
        """A text dataset's token ids (N,)."""
        return self.examples[0]["ids"]

    def split(self, fraction: float = 0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
        """(train, validation). Text keeps its order and holds out its last `fraction` of
        tokens (as char-rnn does); other kinds hold out a seeded random `fraction`."""
        if not 0 < fraction < 1:
            raise DataError(f"the validation fraction must lie in (0, 1), got {fraction}")
        if self.kind == "text":
            ids = self.stream
            cut = len(ids) - max(2, round(len(ids) * fraction))
            if cut < 2:
                raise DataError(f"{self.source}: {len(ids)} tokens are too few to hold out {fraction:g}")
            return (replace(self, examples=({"ids": ids[:cut]},)),
                    replace(self, examples=({"ids": ids[cut:]},)))
        n, k = len(self.examples), round(len(self.examples) * fraction)
        if not 0 < k < n:
            raise DataError(f"{self.source}: {n} examples are too few to hold out {fraction:g}")
        order = np.random.default_rng(seed).permutation(n)
        part = lambda idx: replace(self, examples=tuple(self.examples[i] for i in sorted(idx)))
        return part(order[k:]), part(order[:k])


def embedded_hello() -> Dataset:
    """The default data of `rnndsl train specs/char_rnn.yaml`: "hello" over h, e, l, o, which
    binds as the single sequence x = "hell", target = "ello"."""
    vocab = Vocab(("h", "e", "l", "o"))
    return Dataset("text", ({"ids": vocab.encode("hello")},), vocab, source="<hello>")
