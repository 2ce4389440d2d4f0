"""The lecture's comparison: validation perplexity of an interpolated Kneser-Ney n-gram and of
the neural language models trained by train_all.sh, on the same held-out tokens.

The n-gram is estimated on the training part of words.txt and scored on the held-out last 10%
(each token given the ones before it); each neural run is scored by `rnndsl eval RUN`, which
reads the same held-out part (cut into parallel streams, each starting from a zero state).

    python examples/lm_words/compare.py /tmp/lm_words/words.txt /tmp/lm_words/runs/{ffnn,rnn,lstm}
"""
import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_data  # noqa: E402
import ngram  # noqa: E402


def read_stream(path: str) -> list:
    lines = [line.split() for line in Path(path).read_text(encoding="ascii").splitlines() if line.split()]
    return make_data.stream(lines)


def rnndsl_perplexity(run: str) -> float:
    """The perplexity `rnndsl eval` reports for a run's held-out part."""
    exe = shutil.which("rnndsl", path=str(Path(sys.executable).parent)) or "rnndsl"
    out = subprocess.run([exe, "eval", run], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"perplexity\s+([0-9.]+)", out).group(1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("words")
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--orders", default="2,3")
    args = ap.parse_args(argv)
    train, valid = make_data.split(read_stream(args.words))
    print(f"{len(train):,} training tokens, {len(valid):,} held out, vocabulary {len(set(train)):,}\n")
    print("| model | validation perplexity |\n|---|---|")
    for order in map(int, args.orders.split(",")):
        kn = ngram.KneserNey(train, order)
        print(f"| interpolated Kneser-Ney {order}-gram | {kn.perplexity(valid[1:], tuple(valid[:1])):.1f} |")
    for run in args.runs:
        print(f"| {Path(run).name} (`rnndsl eval`) | {rnndsl_perplexity(run):.1f} |")


if __name__ == "__main__":
    main()
