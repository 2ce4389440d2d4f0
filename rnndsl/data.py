"""Data: files -> `Dataset` (examples of unbatched arrays) -> `bind` to a spec's inputs ->
padded time-major batches, exactly as `inputs.prepare` takes them.

    plain text        load_text              {"ids": (N,)} one token stream + Vocab
    manifest.tsv      load_speech_manifest   {"frames": (T, F), "labels": (U,)} + Vocab + FeatureStats
    images .npz       load_images            {"image": (C, H, W), "label": (), "caption": (L,)}
    other .npz        load_arrays            arrays named after a spec's inputs, one row each

`bind` matches a dataset to a spec by the inputs' types: a language model (onehot/index
sequence + index target on its axis), CTC (float frames + index labels on a second axis),
classification (float sequence or image + static index label) and captioning (image +
caption pair). What a run must keep to read new data the same way (Vocab, FeatureStats) has
a JSON form; nothing is pickled. A mistake in a file is a DataError naming the file.
"""
from __future__ import annotations

import json
import math
import wave
import zipfile
from collections import Counter
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from . import ir
from .audio import FEATURES, features_of
from .errors import DataError
from .ops import Kind

Example = dict          # name -> np.ndarray: one sequence (T, ...) or one static value
BLANK = "_"             # the CTC blank: index 0 of a transcript vocabulary
START, END, UNKNOWN, EOS = "<start>", "<end>", "<unk>", "<eos>"
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DEFAULT_BPTT = 25       # window length of a language model whose spec sets no train: bptt
WAV_HINT = "rnndsl reads RIFF/WAVE 16-bit PCM mono; convert with: sox in.wav -b 16 -c 1 out.wav"


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


def load(path, model: ir.Model | None = None, level: str = "char", vocab: Vocab | None = None,
         stats: FeatureStats | None = None, features: str = "mfcc") -> Dataset:
    """Read `path` by its kind: a folder or .tsv is a speech manifest (features sized to
    `model`'s frame input), an .npz images (if it has `images`) or arrays, else text."""
    p = Path(path)
    if p.is_dir() or p.suffix == ".tsv":
        return load_speech_manifest(p, features, _frame_size(model), stats, vocab)
    if p.suffix == ".npz":
        arrays = load_npz(p)
        return _images(arrays, p, vocab) if "images" in arrays else _arrays(arrays, p)
    return load_text(p, level, vocab)


# ---- files ------------------------------------------------------------------------------------

def _check_file(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file", "check the path given with --data")
    if p.is_dir():
        raise DataError(f"{p}: is a folder, not a file")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise DataError(f"{p}: cannot read it ({e.strerror})") from None
    if size == 0:
        raise DataError(f"{p}: the file is empty")
    return p


def _read_text(path) -> str:
    p = _check_file(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DataError(f"{p}: cannot read it ({e.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
                        "save the file as UTF-8") from None


def load_text(path, level: str = "char", vocab: Vocab | None = None, max_size: int | None = None,
              limit: int | None = None) -> Dataset:
    """A text file (its first `limit` characters) as one stream of token ids: characters, or
    words with <eos> ending each non-blank line. A run's `vocab` fixes the level and symbols."""
    text = _read_text(path)[:limit]
    level = vocab.level if vocab else level
    if level not in ("char", "word"):
        raise DataError(f"text level must be char or word, got {level!r}")
    tokens = list(text) if level == "char" else [
        w for line in text.split("\n") if line.split() for w in line.split() + [EOS]]
    if len(tokens) < 2:
        raise DataError(f"{path}: the text holds {len(tokens)} {level}(s); a language model needs 2 or more")
    vocab = vocab or Vocab.build(tokens, level, max_size=max_size)
    ids = vocab.lookup(tokens)
    if (ids < 0).any():
        symbol = tokens[int(np.argmax(ids < 0))]
        raise DataError(f"{path}:{_where(text, symbol, level)}: symbol {symbol!r} is not in the "
                        f"vocabulary of {len(vocab)} symbols", "a run's vocabulary comes from its "
                        "training text; evaluate on text written with the same symbols")
    return Dataset("text", ({"ids": ids},), vocab, source=str(path))


def _where(text: str, symbol: str, level: str) -> str:
    """'line:col' of the first occurrence of a character, or 'line' of a word."""
    lines = text.split("\n")
    if level == "word":
        return str(next(i for i, line in enumerate(lines, 1) if symbol in line.split()))
    before = text[:text.index(symbol)]
    return f"{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"


def load_npz(path) -> dict:
    """Every array of an .npz archive, read without pickle (allow_pickle=False)."""
    p = _check_file(path)
    try:
        z = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{p}: not a NumPy .npz archive ({e})",
                        "write one with np.savez(path, name=array, ...)") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(f"{p}: holds one .npy array, not an .npz archive of named arrays",
                        "write one with np.savez(path, name=array, ...)")
    with z:
        arrays = {name: _npz_member(z, name, p) for name in z.files}
    if not arrays:
        raise DataError(f"{p}: the archive holds no arrays")
    return arrays


def _npz_member(z, name: str, p: Path) -> np.ndarray:
    try:
        return z[name]
    except ValueError:
        raise DataError(f"{p}: array {name!r} holds Python objects (dtype=object), which only "
                        "pickle could load; rnndsl reads plain numeric and string arrays",
                        f"save it with a plain dtype: np.savez(path, {name}=np.asarray(x, dtype=np.float32))"
                        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{p}: array {name!r} is damaged ({e})") from None


def load_wav(path) -> tuple[np.ndarray, int]:
    """A RIFF/WAVE file of 16-bit PCM mono as (samples in [-1, 1) float64, sample rate)."""
    p = _check_file(path)
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as e:
        raise DataError(f"{p}: not a PCM WAV file ({e})", WAV_HINT) from None
    if (channels, width) != (1, 2):
        raise DataError(f"{p}: {channels} channel(s) of {8 * width}-bit samples; expected 1 channel "
                        "of 16-bit samples", WAV_HINT)
    if len(raw) < 2:
        raise DataError(f"{p}: the WAV file holds no samples")
    return np.frombuffer(raw[:len(raw) // 2 * 2], "<i2") / 32768.0, rate


def load_speech_manifest(path, features: str = "mfcc", n_features: int | None = None,
                         stats: FeatureStats | None = None, vocab: Vocab | None = None,
                         limit: int | None = None) -> Dataset:
    """A manifest.tsv (or its folder) as examples {"frames": (T, F) float32, "labels": (U,)}:
    features normalised by `stats` (computed here if None: pass the training set's to eval),
    the transcript's characters as labels, index 0 the CTC blank."""
    p = Path(path) / "manifest.tsv" if Path(path).is_dir() else Path(path)
    rows = _manifest_rows(p, limit)
    if stats and n_features not in (None, stats.n_features):
        raise DataError(f"the run's features have {stats.n_features} per frame, not {n_features}")
    features = stats.features if stats else features
    n = stats.n_features if stats else n_features or FEATURES.get(features, 0)
    vocab = vocab or Vocab.build("".join(text for _, _, text in rows), specials=(BLANK,))
    rate = stats.rate if stats else None
    frames, labels = [], []
    for line, wav, text in rows:
        signal, rate = _manifest_wav(p, line, wav, rate)
        frames.append(features_of(signal, rate, features, n))
        labels.append(_transcript(vocab, text, f"{p}:{line}"))
    stats = stats or FeatureStats.of(frames, features, rate)
    examples = tuple({"frames": stats.apply(f), "labels": y} for f, y in zip(frames, labels))
    return Dataset("speech", examples, vocab, stats, str(p))


def _manifest_rows(p: Path, limit: int | None) -> list:
    """(line number, wav path, transcript) per row of a manifest with a header line."""
    lines = [line.rstrip("\r") for line in _read_text(p).split("\n")]
    header = lines[0].split("\t")
    if "file" not in header or "transcript" not in header:
        raise DataError(f"{p}:1: the header must name the columns file and transcript, "
                        f"tab-separated; got {lines[0]!r}")
    rows = []
    for number, line in enumerate(lines[1:], 2):
        if limit and len(rows) == limit:
            break
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header):
            raise DataError(f"{p}:{number}: expected {len(header)} tab-separated fields "
                            f"({', '.join(header)}), got {len(cells)}", "separate columns with one tab")
        row = dict(zip(header, cells))
        if not row["transcript"].strip():
            raise DataError(f"{p}:{number}: the transcript of {row['file']} is empty")
        rows.append((number, p.parent / row["file"], row["transcript"]))
    if not rows:
        raise DataError(f"{p}: the manifest lists no files, only a header")
    return rows


def _manifest_wav(p: Path, line: int, wav: Path, rate: int | None) -> tuple:
    """A manifest row's samples and rate, which must agree with the files before it."""
    try:
        signal, file_rate = load_wav(wav)
    except DataError as e:
        raise DataError(f"{p}:{line}: {e.message}", e.first.hint) from None
    if rate and file_rate != rate:
        raise DataError(f"{p}:{line}: {wav} is sampled at {file_rate} Hz, the data before at {rate} Hz",
                        "resample every file to one rate")
    return signal, file_rate


def _transcript(vocab: Vocab, text: str, where: str) -> np.ndarray:
    ids = vocab.lookup(list(text))
    if BLANK in text or (ids < 0).any():
        bad = BLANK if BLANK in text else text[int(np.argmax(ids < 0))]
        raise DataError(f"{where}: the transcript {text!r} holds {bad!r}, which is "
                        f"{'the CTC blank' if bad == BLANK else 'not in the vocabulary'}",
                        "a run's alphabet comes from its training transcripts")
    return ids


# ---- images and named arrays ------------------------------------------------------------------

def load_images(path, vocab: Vocab | None = None) -> Dataset:
    """An .npz of `images` (N, H, W) or (N, C, H, W) and int `labels` (N,) as examples
    {"image": (C, H, W) float32, "label": () int64, "caption": (L,) word ids}."""
    return _images(load_npz(path), Path(path), vocab)


def _images(arrays: dict, p: Path, vocab: Vocab | None) -> Dataset:
    for key in ("images", "labels"):
        if key not in arrays:
            raise DataError(f"{p}: no array named {key!r}; it holds {', '.join(arrays)}")
    x, y = arrays["images"], arrays["labels"]
    x = x[:, None] if x.ndim == 3 else x
    if x.ndim != 4 or x.dtype.kind not in "fiu" or not len(x):
        raise DataError(f"{p}: images must be numbers shaped (N, H, W) or (N, C, H, W), "
                        f"got {x.dtype} {x.shape}")
    if y.shape != (len(x),) or y.dtype.kind not in "iu" or y.min() < 0:
        raise DataError(f"{p}: labels must be {len(x)} class indices 0 or more, got {y.dtype} {y.shape}")
    captions, vocab = _captions(arrays.get("captions"), y, p, vocab)
    examples = tuple({"image": x[i].astype(np.float32), "label": y[i].astype(np.int64),
                      **({"caption": captions[i]} if captions else {})} for i in range(len(x)))
    return Dataset("images", examples, vocab, source=str(p))


def _captions(strings, labels: np.ndarray, p: Path, vocab: Vocab | None) -> tuple:
    """Word ids of each image's caption: the `captions` array's strings, else the digit's name."""
    if strings is None and labels.max() >= len(DIGITS):
        return None, vocab
    if strings is None:
        words = [DIGITS[i] for i in labels]
        vocab = vocab or Vocab((START, END) + DIGITS, "word")
    else:
        if strings.shape != labels.shape or strings.dtype.kind != "U" or not all(map(str.split, strings)):
            raise DataError(f"{p}: captions must be {len(labels)} non-empty strings, "
                            f"got {strings.dtype} {strings.shape}")
        words = [str(s) for s in strings]
        vocab = vocab or Vocab.build(" ".join(words).split(), "word", specials=(START, END))
    try:
        return [vocab.encode(w) for w in words], vocab
    except DataError as e:
        raise DataError(f"{p}: a caption's {e.message}") from None


def load_arrays(path) -> Dataset:
    """An .npz whose arrays are named after a spec's inputs, one example per row (N, ...);
    arrays `lengths` or `lengths_<axis>` (N,) give the true lengths of padded sequences."""
    return _arrays(load_npz(path), Path(path))


def _arrays(arrays: dict, p: Path) -> Dataset:
    rows = {name: a.shape[0] if a.ndim else None for name, a in arrays.items()}
    if len(set(rows.values())) != 1 or None in rows.values() or not next(iter(rows.values())):
        raise DataError(f"{p}: every array needs the same number of examples as its first dimension; "
                        f"got {rows}")
    n = next(iter(rows.values()))
    return Dataset("arrays", tuple({k: a[i] for k, a in arrays.items()} for i in range(n)), source=str(p))


# ---- binding a dataset to a spec --------------------------------------------------------------

@dataclass(frozen=True)
class Bound:
    """A dataset matched to a spec: examples keyed by the spec's input names."""
    model: str
    axes: dict                          # input name -> its axis, None for a static input
    examples: tuple
    stream: np.ndarray | None = None    # language models: the whole id stream
    names: tuple = ()                   # language models: (input, target)

    def stream_batches(self, batch: int, bptt: int):
        """A language model's stream as `batch` parallel streams in windows (see stream_batches)."""
        if self.stream is None:
            raise DataError(f"{self.model}: only a language model's data is one stream")
        return stream_batches(self.stream, batch, bptt, self.names, self.axes[self.names[0]])


def bind(model: ir.Model, dataset: Dataset, length: int | None = None) -> Bound:
    """Match `dataset` to `model`'s inputs by their types; a language model's stream is cut
    into windows of `length` steps (default: the spec's train bptt). DataError says which
    input the data cannot feed."""
    if dataset.kind == "text":
        return _bind_text(model, dataset, length or dict(model.train).get("bptt", DEFAULT_BPTT))
    binders = {"speech": _bind_speech, "images": _bind_images, "arrays": _bind_arrays}
    return binders[dataset.kind](model, dataset)


def check_class_indices(model: ir.Model, dataset: Dataset) -> None:
    """Every class index a file holds within its input's classes, checked before training
    starts (a bad label deep in a file would otherwise stop the run at its batch), the examples
    numbered as in the file. Text and transcripts need no check: their ids come from a
    vocabulary whose size bind() checks against the spec."""
    if dataset.kind not in ("images", "arrays"):
        return
    bound = bind(model, dataset)
    for inp in model.inputs:
        if inp.type.classes is None:
            continue
        n = inp.type.classes.value
        for i, e in enumerate(bound.examples):
            values = np.asarray(e[inp.name])
            bad = values[(values < 0) | (values >= n)]
            if bad.size:
                big = max([int(np.max(x[inp.name])) for x in bound.examples if np.size(x[inp.name])] + [n - 1])
                name = inp.type.classes.name
                hint = (f"use --set {name}={big + 1} (the largest index in the file is {big})"
                        if bad.max() >= n and name else "class indices count from 0")
                raise DataError(f"{dataset.source or model.name}: {inp.name} of example {i} holds class "
                                f"{int(bad[0])}; {model.name} declares {n} classes, 0 to {n - 1}", hint)


def _describe(inp: ir.Input) -> str:
    floats = inp.type.kind is Kind.FLOAT
    kind = f"float {inp.type}" if floats else f"{inp.type.kind.value}({inp.type.classes})"
    return f"{inp.name}: {kind} {'on axis ' + inp.axis if inp.axis else 'static'}"


def _cannot(model: ir.Model, dataset: Dataset, inp: ir.Input | None, holds: str, feeds: str) -> DataError:
    what = f"input {_describe(inp)}" if inp else "its inputs"
    return DataError(f"{model.name}: {what} cannot be fed from {dataset.source or dataset.kind}, "
                     f"which holds {holds}", f"{dataset.kind} data feeds {feeds}; {model.name} takes "
                     + "; ".join(_describe(i) for i in model.inputs))


def _check_classes(model: ir.Model, inputs, count: int, what: str) -> None:
    for inp in inputs:
        dim = inp.type.classes
        if dim.value < count:
            raise DataError(f"{model.name}: input {_describe(inp)} has {dim.value} classes, but {count} are "
                            f"needed for {what}", f"use --set {dim.name}={count}" if dim.name else "")


def _lm_pair(model: ir.Model) -> tuple | None:
    """(input, target) of a language model: an index target read by the loss and one other
    onehot/index input on its axis."""
    reads = {getattr(e, "var", None) for e in ir.walk(model.loss)}
    ints = [i for i in model.inputs if i.axis and i.type.kind is not Kind.FLOAT]
    for target in (i for i in ints if i.type.kind is Kind.INDEX and i.name in reads):
        inputs = [i for i in ints if i.axis == target.axis and i is not target]
        if len(inputs) == 1:
            return inputs[0], target
    return None


def windows(ids: np.ndarray, length: int) -> list:
    """(x, target) pairs cutting a stream into consecutive windows of up to `length` steps,
    target one step ahead of x; every token but the first is a target once."""
    last = len(ids) - 1
    return [(ids[s:min(s + length, last)], ids[s + 1:s + length + 1]) for s in range(0, last, length)]


def _bind_text(model: ir.Model, dataset: Dataset, length: int) -> Bound:
    pair = _lm_pair(model)
    if pair is None or len(model.inputs) != 2:
        rest = [i for i in model.inputs if i not in (pair or ())]
        other = next((i for i in rest if not i.axis or i.type.kind is Kind.FLOAT), rest[0] if rest else None)
        raise _cannot(model, dataset, other, f"one stream of {len(dataset.stream)} token ids",
                      "a language model: a onehot or index sequence input and an index target on "
                      "its axis (x = ids[:-1], target = ids[1:])")
    _check_classes(model, pair, len(dataset.vocab), "the text's vocabulary")
    x, target = pair
    examples = tuple({x.name: a, target.name: b} for a, b in windows(dataset.stream, length))
    return Bound(model.name, {x.name: x.axis, target.name: x.axis}, examples,
                 dataset.stream, (x.name, target.name))


def _bind_speech(model: ir.Model, dataset: Dataset) -> Bound:
    frames = next((i for i in model.inputs if i.axis and i.type.kind is Kind.FLOAT and i.type.rank == 1), None)
    labels = next((i for i in model.inputs if i.axis and frames and i.axis != frames.axis
                   and i.type.kind is Kind.INDEX), None)
    other = next((i for i in model.inputs if i not in (frames, labels)), None)
    n, stats = len(dataset.examples), dataset.stats
    if not frames or not labels or other:
        raise _cannot(model, dataset, other, f"{n} clips of {stats.features} frames (T, {stats.n_features}) "
                      f"and character labels (U,)", "CTC: a float sequence input [F] of frames and an "
                      "index sequence of labels on a second axis")
    if frames.type.dims != (stats.n_features,):
        dim = frames.type.shape[0]
        raise DataError(f"{model.name}: input {_describe(frames)} takes {dim.value} features per frame, "
                        f"but {dataset.source} has {stats.n_features} {stats.features} features",
                        f"use --set {dim.name}={stats.n_features}, or load the data with "
                        f"n_features={dim.value}")
    _check_classes(model, [labels], len(dataset.vocab), "the transcripts' alphabet with the blank")
    examples = tuple({frames.name: e["frames"], labels.name: e["labels"]} for e in dataset.examples)
    for number, e in enumerate(dataset.examples):
        y = e["labels"]
        need = len(y) + int((y[1:] == y[:-1]).sum())
        if len(e["frames"]) < need:
            raise DataError(f"{dataset.source}: clip {number} has {len(e['frames'])} frames, fewer than "
                            f"the {need} that CTC needs for its {len(y)} labels")
    return Bound(model.name, {frames.name: frames.axis, labels.name: labels.axis}, examples)


def _bind_images(model: ir.Model, dataset: Dataset) -> Bound:
    """Images feed a static float input of their size, a float sequence read row by row, a
    static index label, and a caption pair (<start> + caption, caption + <end>)."""
    c, h, w = dataset.examples[0]["image"].shape
    pair = _lm_pair(model) if "caption" in dataset.examples[0] else None
    take = {inp.name: _image_field(inp, (c, h, w), pair, dataset.vocab) for inp in model.inputs}
    missing = next((i for i in model.inputs if take[i.name] is None), None)
    if missing:
        captions = " and captions" if "caption" in dataset.examples[0] else ""
        raise _cannot(model, dataset, missing,
                      f"{len(dataset.examples)} images ({c}, {h}, {w}) with labels{captions}",
                      f"a static float input of {c * h * w} values, a float sequence [{c * w}] of rows, "
                      "a static index label, and captions (a onehot/index sequence and an index target)")
    if not any(i.type.kind is Kind.FLOAT for i in model.inputs):
        raise DataError(f"{model.name}: no input takes the images of {dataset.source}",
                        f"images feed a static float input of {c * h * w} values or a float sequence "
                        f"[{c * w}] of rows; {model.name} takes " + "; ".join(map(_describe, model.inputs)))
    labels = [i for i in model.inputs if i.type.kind is Kind.INDEX and not i.axis]
    _check_classes(model, labels, 1 + max(int(e["label"]) for e in dataset.examples), "the labels")
    _check_classes(model, pair or (), len(dataset.vocab or ()), "the captions' vocabulary")
    examples = tuple({name: f(e) for name, f in take.items()} for e in dataset.examples)
    return Bound(model.name, {i.name: i.axis for i in model.inputs}, examples)


def _image_field(inp: ir.Input, chw: tuple, pair, vocab: Vocab | None):
    """How `inp` is read from an image example, or None when it cannot be."""
    c, h, w = chw
    if inp.type.kind is Kind.FLOAT and not inp.axis and math.prod(inp.type.dims) == c * h * w:
        return lambda e: e["image"].reshape(inp.type.dims)
    if inp.type.kind is Kind.FLOAT and inp.axis and inp.type.dims == (c * w,):
        return lambda e: e["image"].transpose(1, 0, 2).reshape(h, c * w)
    if inp.type.kind is Kind.INDEX and not inp.axis:
        return lambda e: e["label"]
    if pair and inp is pair[0]:
        return lambda e: np.concatenate([[vocab.index(START)], e["caption"]])
    if pair and inp is pair[1]:
        return lambda e: np.concatenate([e["caption"], [vocab.index(END)]])
    return None


def _bind_arrays(model: ir.Model, dataset: Dataset) -> Bound:
    first = dataset.examples[0]
    for inp in model.inputs:
        if inp.name not in first:
            held = ", ".join(f"{k} {v.shape}" for k, v in first.items())
            raise _cannot(model, dataset, inp, f"arrays {held}", "each input from the array of its name")
    single = "lengths" if len(model.axes) == 1 else None
    lengths = {a: f"lengths_{a}" if f"lengths_{a}" in first else single for a in model.axes}

    def cut(e: Example, inp: ir.Input) -> np.ndarray:
        known = inp.axis and lengths[inp.axis] in e
        return e[inp.name][:int(e[lengths[inp.axis]])] if known else e[inp.name]
    examples = tuple({i.name: cut(e, i) for i in model.inputs} for e in dataset.examples)
    return Bound(model.name, {i.name: i.axis for i in model.inputs}, examples)


def _frame_size(model: ir.Model | None) -> int | None:
    """Features per frame of `model`'s float sequence input, if it has exactly one."""
    sizes = [i.type.dims[0] for i in (model.inputs if model else ())
             if i.axis and i.type.kind is Kind.FLOAT and i.type.rank == 1]
    return sizes[0] if len(sizes) == 1 else None


# ---- batches ----------------------------------------------------------------------------------

def collate(examples: list, axes: dict) -> dict:
    """One batch as inputs.prepare takes it: sequences zero-padded to (T, B, ...), static
    values (B, ...), and "lengths": {axis: (B,) ints}."""
    batch, lengths = {}, {}
    for name, axis in axes.items():
        values = [np.asarray(e[name]) for e in examples]
        if axis is None:
            batch[name] = np.stack(values)
            continue
        n = np.array([len(v) for v in values], np.int64)
        if axis in lengths and not np.array_equal(lengths[axis], n):
            raise DataError(f"inputs on axis {axis} differ in length within an example")
        lengths[axis], batch[name] = n, _pad(values, int(n.max()))
    batch["lengths"] = lengths
    return batch


def _pad(values: list, steps: int) -> np.ndarray:
    out = np.zeros((steps, len(values)) + values[0].shape[1:], values[0].dtype)
    for b, v in enumerate(values):
        out[:len(v), b] = v
    return out


def batches(bound: Bound, batch_size: int, seed: int = 0, bucket: bool = True, pool: int = 50):
    """Padded batches of `bound`'s examples, in a seeded random order. With `bucket`, each
    pool of `pool` batches' worth of shuffled examples is sorted by length before it is cut
    (so a batch holds similar lengths, little padding), and the batches are shuffled."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(bound.examples))
    if bucket:
        size = [sum(len(e[n]) for n, a in bound.axes.items() if a) for e in bound.examples]
        chunks = [order[s:s + batch_size * pool] for s in range(0, len(order), batch_size * pool)]
        order = np.concatenate([c[np.argsort([size[i] for i in c], kind="stable")] for c in chunks])
    groups = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if bucket:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    for group in groups:
        yield collate([bound.examples[i] for i in group], bound.axes)


def stream_batches(ids: np.ndarray, batch: int, bptt: int, names: tuple = ("x", "target"), axis: str = "t"):
    """A stream cut into `batch` contiguous parallel streams, yielded in order as windows of
    up to `bptt` steps {x: (T, B), target: (T, B), "lengths": {axis: (B,)}}; window k+1
    continues window k in every column, so a trainer carries the state across."""
    steps = (len(ids) - 1) // batch
    if steps < 1:
        raise DataError(f"a stream of {len(ids)} tokens is too short for {batch} parallel streams")
    rows = np.asarray(ids)[np.arange(batch)[:, None] * steps + np.arange(steps + 1)[None, :]]
    for s in range(0, steps, bptt):
        n = min(bptt, steps - s)
        yield {names[0]: rows[:, s:s + n].T.copy(), names[1]: rows[:, s + 1:s + n + 1].T.copy(),
               "lengths": {axis: np.full(batch, n, np.int64)}}
