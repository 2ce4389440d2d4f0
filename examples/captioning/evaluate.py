"""Exact captions by the number of digits in the strip: splits a test file by its `labels` (the
digit count) and runs `rnndsl eval RUN --data PART` on each part.

    python examples/captioning/evaluate.py runs/captioning /tmp/captioning/test.npz
"""
import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def exact(run: str, path: Path) -> float:
    exe = shutil.which("rnndsl", path=str(Path(sys.executable).parent)) or "rnndsl"
    out = subprocess.run([exe, "eval", run, "--data", str(path)], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"exact_seqs\s+([0-9.]+)", out).group(1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("test")
    args = ap.parse_args(argv)
    z = dict(np.load(args.test))
    print("| digits | strips | exact captions |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for k in np.unique(z["labels"]):
            keep = z["labels"] == k
            part = Path(tmp) / f"part{k}.npz"
            np.savez(part, **{name: a[keep] for name, a in z.items()})
            print(f"| {k} | {keep.sum()} | {exact(args.run, part):.1%} |")
    print(f"| all | {len(z['labels'])} | {exact(args.run, Path(args.test)):.1%} |")


if __name__ == "__main__":
    main()
