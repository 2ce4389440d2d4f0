"""Training windows for Collobert-Weston embeddings from Tiny Shakespeare's words (derived from
the shared text; the corrupted centre words are drawn at random, seeded).

Tokenises as examples/lm_words does (lower case, punctuation split off), keeps the `--vocab`
most frequent tokens and maps the rest to <unk>, cuts the token stream into rows of `--length`
tokens and writes the named arrays `w` (the text) and `neg` (a uniformly drawn word per
position; `--copies` rows with fresh draws per row of text) for specs/cw_embeddings.yaml,
and vocab.json (the words in id order) for neighbours.py.

    python examples/embeddings/make_data.py --text ../shared/data/text/tinyshakespeare.txt --out /tmp/embeddings
"""
import argparse
import importlib.util
import json
from collections import Counter
from pathlib import Path

import numpy as np


def _lm_words():
    """examples/lm_words/make_data.py, loaded by path: the tokeniser all word examples share."""
    spec = importlib.util.spec_from_file_location("lm_words_make_data",
                                                  Path(__file__).resolve().parents[1] / "lm_words/make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_LM = _lm_words()
UNK, tokenize = _LM.UNK, _LM.tokenize


def vocabulary(tokens: list, size: int) -> list:
    """<unk> then the `size - 1` most frequent tokens, most frequent first."""
    counts = Counter(tokens)
    return [UNK] + [w for w, _ in counts.most_common(size - 1)]


def rows(ids: np.ndarray, length: int) -> np.ndarray:
    """The stream cut into (N, length) rows; the incomplete tail is dropped."""
    n = len(ids) // length
    return ids[:n * length].reshape(n, length)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", default="../shared/data/text/tinyshakespeare.txt")
    ap.add_argument("--out", default="/tmp/embeddings")
    ap.add_argument("--vocab", type=int, default=3000)
    ap.add_argument("--length", type=int, default=32)
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    tokens = [t for line in tokenize(Path(args.text).read_text(encoding="ascii")) for t in line]
    words = vocabulary(tokens, args.vocab)
    index = {w: i for i, w in enumerate(words)}
    text = rows(np.array([index.get(t, 0) for t in tokens], np.int64), args.length)
    w = np.tile(text, (args.copies, 1))
    neg = np.random.default_rng(args.seed).integers(1, len(words), size=w.shape)   # never <unk>
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "train.npz", w=w, neg=neg)
    (out / "vocab.json").write_text(json.dumps(words))
    print(f"{out / 'train.npz'}: {w.shape[0]} rows of {args.length} tokens ({len(tokens):,} tokens, "
          f"{args.copies} corruptions each), vocabulary {len(words)}")


if __name__ == "__main__":
    main()
