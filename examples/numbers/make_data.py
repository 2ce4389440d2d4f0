"""A synthetic translation task: English number words to digits, or back (generated, seeded).

    "three hundred forty two thousand seventeen"  <->  3 4 2 0 1 7

Numbers run from 0 to 999,999; their digit count (1-6) is drawn uniformly, then the number
uniformly among those with that many digits, so short and long numbers are equally common. The
test numbers are never training numbers. Written as named arrays for the seq2seq specs
(docs/cli.md 13.5), as examples/reversal does: src (N, S), tgt_in and tgt_out (N, T),
lengths_s, lengths_t; the target's class 0 is <start>, 1 is <end>.

    python examples/numbers/make_data.py --out /tmp/numbers                        # words -> digits
    python examples/numbers/make_data.py --out /tmp/numbers_back --direction digits2words

Source and target vocabularies: words are the 30 of WORDS (src V=30, or
tgt W=32 with <start> and <end>); digits are 0-9 (src V=10, or tgt W=12).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

START, END = 0, 1
ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen").split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
WORDS = ONES + TENS + ["hundred", "thousand"]
DIGITS = list("0123456789")


def below_thousand(n: int) -> list:
    """Words of 1 <= n < 1000, without "and": 342 -> three hundred forty two."""
    words = [ONES[n // 100], "hundred"] if n >= 100 else []
    n %= 100
    if n >= 20:
        words += [TENS[n // 10 - 2]] + ([ONES[n % 10]] if n % 10 else [])
    elif n:
        words.append(ONES[n])
    return words


def in_words(n: int) -> list:
    if n == 0:
        return ["zero"]
    high, low = divmod(n, 1000)
    return (below_thousand(high) + ["thousand"] if high else []) + (below_thousand(low) if low else [])


def draw_numbers(n: int, rng: np.random.Generator, exclude: set) -> list:
    """n distinct numbers not in exclude, with a uniform digit count."""
    chosen: set = set()
    while len(chosen) < n:
        digits = int(rng.integers(1, 7))
        k = int(rng.integers(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits))
        if k not in exclude:
            chosen.add(k)
    return sorted(chosen, key=lambda _: rng.random())


def pair(n: int, direction: str) -> tuple:
    """(source ids, target ids) of one number; target ids are shifted past <start>, <end>."""
    words, digits = [WORDS.index(w) for w in in_words(n)], [int(d) for d in str(n)]
    src, tgt = (words, digits) if direction == "words2digits" else (digits, words)
    return src, [t + 2 for t in tgt]


def arrays(numbers: list, direction: str) -> dict:
    pairs = [pair(n, direction) for n in numbers]
    ls, lt = np.array([len(s) for s, _ in pairs]), np.array([len(t) + 1 for _, t in pairs])
    src = np.zeros((len(pairs), ls.max()), np.int64)
    tgt_in, tgt_out = np.zeros((2, len(pairs), lt.max()), np.int64)
    for i, (s, t) in enumerate(pairs):
        src[i, :len(s)] = s
        tgt_in[i, 0], tgt_in[i, 1:len(t) + 1] = START, t
        tgt_out[i, :len(t)], tgt_out[i, len(t)] = t, END
    return {"src": src, "tgt_in": tgt_in, "tgt_out": tgt_out, "lengths_s": ls, "lengths_t": lt,
            "number": np.array(numbers)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for train.npz and test.npz")
    ap.add_argument("--direction", choices=["words2digits", "digits2words"], default="words2digits")
    ap.add_argument("--n", type=int, default=8000, help="training pairs (test: an eighth, at least 500)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    train = draw_numbers(args.n, rng, set())
    test = draw_numbers(max(500, args.n // 8), rng, set(train))
    for name, numbers in [("train", train), ("test", test)]:
        a = arrays(numbers, args.direction)
        np.savez_compressed(out / f"{name}.npz", **a)
        print(f"wrote {out / name}.npz: {len(numbers)} pairs, source {a['lengths_s'].min()}-{a['lengths_s'].max()} "
              f"symbols, target {a['lengths_t'].min()}-{a['lengths_t'].max()} with <end>")
    v, w = (len(WORDS), len(DIGITS) + 2) if args.direction == "words2digits" else (len(DIGITS), len(WORDS) + 2)
    print(f"train with --set V={v} --set W={w}")


if __name__ == "__main__":
    main()
