"""Data files -> `Dataset` (examples of unbatched arrays); `bind` (binding.py) then matches a
dataset to a spec's inputs and cuts padded time-major batches.

    plain text        load_text              {"ids": (N,)} one token stream + Vocab
    manifest.tsv      load_speech_manifest   {"frames": (T, F), "labels": (U,)} + Vocab + FeatureStats
    images .npz       load_images            {"image": (C, H, W), "label": (), "caption": (L,)}
    other .npz        load_arrays            arrays named after a spec's inputs, one row each

A mistake in a file is a DataError naming the file. The records (Vocab, FeatureStats, Dataset)
live in dataset.py and binding and batching in binding.py; their names are re-exported here, so
`data.bind`, `data.Vocab` and the rest keep working.
"""
from __future__ import annotations

import stat
import struct
import wave
from pathlib import Path

import numpy as np

from ...core import files, limits, safenpz
from ...frontend import ir
from .audio import FEATURES, features_of
from .binding import (DEFAULT_BPTT, Bound, CannotFeed, batches, bind, check_class_indices, check_memory,  # noqa: F401
                      collate, stream_batches, windows)
from .dataset import (BLANK, DIGITS, END, EOS, START, UNKNOWN, Dataset, Example, FeatureStats,  # noqa: F401
                      Vocab, embedded_hello)
from ...core.errors import DataError
from ...core.ops import Kind

WAV_HINT = "rnndsl reads RIFF/WAVE 16-bit PCM mono; convert with: sox in.wav -b 16 -c 1 out.wav"
TOKEN_BYTES = 24        # memory per character of text read as tokens: the text, a list entry, an id


def load(path, model: ir.Model | None = None, level: str = "char", vocab: Vocab | None = None,
         stats: FeatureStats | None = None, features: str = "mfcc") -> Dataset:
    """Read `path` by its kind: a folder or .tsv is a speech manifest (features sized to
    `model`'s frame input), an .npz images (if it has `images`) or arrays, else text."""
    p = Path(path)
    found = files.status(p, _fail(p))
    folder = found is not None and stat.S_ISDIR(found.st_mode)
    if folder and files.status(p / "manifest.tsv", _fail(p)) is None:
        raise DataError(f"{p}: is a folder without a manifest.tsv; a folder is read as a speech data set",
                        "give a file (text or .npz), or the folder of a speech manifest.tsv")
    if folder or p.suffix == ".tsv":
        return load_speech_manifest(p, features, _frame_size(model), stats, vocab)
    if p.suffix == ".npz":
        arrays = load_npz(p)
        return _images(arrays, p, vocab) if "images" in arrays else _arrays(arrays, p)
    return load_text(p, level, vocab)


# ---- files ------------------------------------------------------------------------------------

def _fail(path):
    """How files.py's problems with the file at `path` become DataErrors naming it."""
    return lambda problem, hint: DataError(f"{path}: {problem}", hint or "check the path given with --data")


def _read_text(path, limit: int = limits.MAX_TEXT_BYTES, what: str = "a text file") -> str:
    """A regular file's UTF-8 text, at most `limit` bytes; DataError naming the file."""
    data = files.read_regular(path, limit, what, _fail(path))
    if not data:
        raise DataError(f"{path}: the file is empty")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
                        "save the file as UTF-8") from None


def load_text(path, level: str = "char", vocab: Vocab | None = None, max_size: int | None = None,
              limit: int | None = None) -> Dataset:
    """A text file (its first `limit` characters) as one stream of token ids: characters, or
    words with <eos> ending each non-blank line. A run's `vocab` fixes the level and symbols."""
    text = _read_text(path)[:limit]
    limits.check_memory(len(text) * TOKEN_BYTES, f"reading {path} as tokens", "train on a part of the text")
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
    """Every array of an .npz archive (through links, entries may be compressed), headers
    checked before data, never unpickled (safenpz)."""
    p = Path(path)
    return safenpz.load_arrays(files.open_regular(p, limits.MAX_NPZ_BYTES, "an .npz archive", _fail(p)), p)


def load_wav(path) -> tuple[np.ndarray, int]:
    """A RIFF/WAVE file of 16-bit PCM mono as (samples in [-1, 1) float64, sample rate)."""
    p = Path(path)
    try:
        with files.open_regular(p, limits.MAX_WAV_BYTES, "a WAV file", _fail(p)) as f, wave.open(f, "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError, ValueError, struct.error, RuntimeError, OverflowError) as e:
        raise DataError(f"{p}: not a PCM WAV file ({e or type(e).__name__})", WAV_HINT) from None
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
    text = _read_text(p, limits.MAX_MANIFEST_BYTES, "a speech manifest")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    header = _header(p, lines[0])
    rows = []
    for number, line in enumerate(lines[1:], 2):
        if limit and len(rows) == limit:
            break
        if len(rows) == limits.MAX_EXAMPLES:
            raise DataError(f"{p}: lists more than {limits.MAX_EXAMPLES:,} files", "split the manifest")
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


def _header(p: Path, line: str) -> list:
    """A manifest's column names: file and transcript among them, none twice."""
    header = line.split("\t")
    if "file" not in header or "transcript" not in header:
        raise DataError(f"{p}:1: the header must name the columns file and transcript, "
                        f"tab-separated; got {line!r}")
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise DataError(f"{p}:1: the header names the column {twice[0]!r} {header.count(twice[0])} times",
                        "name each column once: rnndsl would not know which one to read")
    return header


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
    if n > limits.MAX_EXAMPLES:
        raise DataError(f"{p}: holds {n:,} examples; the limit is {limits.MAX_EXAMPLES:,}", "split the file")
    return Dataset("arrays", tuple({k: a[i] for k, a in arrays.items()} for i in range(n)), source=str(p))


def _frame_size(model: ir.Model | None) -> int | None:
    """Features per frame of `model`'s float sequence input, if it has exactly one."""
    sizes = [i.type.dims[0] for i in (model.inputs if model else ())
             if i.axis and i.type.kind is Kind.FLOAT and i.type.rank == 1]
    return sizes[0] if len(sizes) == 1 else None
