"""Word-level Tiny Shakespeare for the language-model comparison (a derived file, not synthetic).

Lower-cases the text, splits punctuation off the words, and replaces every word seen fewer than
`--min-count` times in the training part by <unk>, so that the vocabulary is the same for every
model and no held-out word is unknown to it. Writes one line of tokens per non-blank line; rnndsl's
word-level loader (`--level word`) adds <eos> to each line and holds out the last 10% of the
tokens, which is exactly the part `split()` below calls valid.

    python examples/lm_words/make_data.py --text ../shared/data/text/tinyshakespeare.txt --out /tmp/lm_words
"""
import argparse
import re
from collections import Counter
from pathlib import Path

EOS, UNK = "<eos>", "<unk>"
TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|[^\w\s]")    # words (with inner apostrophes) or one punctuation mark


def tokenize(text: str) -> list:
    """Token lists of the non-blank lines."""
    lines = (TOKEN.findall(line.lower()) for line in text.splitlines())
    return [toks for toks in lines if toks]


def stream(lines: list) -> list:
    """The token stream as rnndsl reads it at word level: each line's tokens, then <eos>."""
    return [t for toks in lines for t in toks + [EOS]]


def split(tokens: list, fraction: float = 0.1) -> tuple:
    """(train, valid) as rnndsl's text loader cuts a stream: the last `fraction` held out."""
    cut = len(tokens) - max(2, round(len(tokens) * fraction))
    return tokens[:cut], tokens[cut:]


def restrict(lines: list, min_count: int) -> list:
    """Lines with the words rarer than `min_count` in the training part replaced by <unk>."""
    train, _ = split(stream(lines))
    counts = Counter(train)
    return [[t if counts[t] >= min_count else UNK for t in toks] for toks in lines]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", default="../shared/data/text/tinyshakespeare.txt")
    ap.add_argument("--out", default="/tmp/lm_words")
    ap.add_argument("--min-count", type=int, default=3)
    args = ap.parse_args(argv)
    lines = restrict(tokenize(Path(args.text).read_text(encoding="ascii")), args.min_count)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "words.txt").write_text("".join(" ".join(toks) + "\n" for toks in lines), encoding="ascii")
    train, valid = split(stream(lines))
    print(f"{out / 'words.txt'}: {len(train) + len(valid):,} tokens ({len(train):,} train, "
          f"{len(valid):,} valid), vocabulary {len(set(train)):,} incl. <eos> and <unk>")


if __name__ == "__main__":
    main()
