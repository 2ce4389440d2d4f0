"""`rnndsl sample RUN`: generate from a trained run by sampling (temperature; 0 is greedy) or
by beam search (--beam K, --length-norm ALPHA, --nbest), printing symbols of the run's
vocabulary, or class numbers for a run trained on named arrays. A thin layer over Run.stream,
Run.search and Run.example (rnndsl/tools/runs.py): this module reads flags and prints.
"""
from __future__ import annotations

import sys

from . import symbols as sym
from .runs import generation, load_run
from ..core.errors import SpecError
from ..core.textsafe import printable


def cmd_sample(args) -> int:
    run = load_run(args.run_dir, args.backend)
    generation(run.model.spec, searching=bool(args.beam))
    _check_flags(args)
    run.start(args.prime), run.stop_class(args.stop)     # a wrong prime or stop is named before --from is read
    inputs = _inputs(args, run)
    if args.beam:
        found = run.search(args.prime, args.beam, args.length, args.stop, args.length_norm or 0.0, inputs)
        for score, text in found if args.nbest else found[:1]:
            shown = printable(text, keep="\n\t")
            print(f"{score:.4f}\t{shown}" if args.nbest else shown)
        return 0
    _print_stream(run.stream(args.prime, args.length, args.temperature, args.seed, args.stop, inputs))
    return 0


def _check_flags(args) -> None:
    """Sampling and searching take different options: refuse a mix rather than ignore one."""
    if args.beam and args.temperature is not None:
        raise SpecError.at(None, "--beam searches for the likeliest sequences; --temperature samples one",
                           "use one of them: --beam K (with --length-norm, --nbest), or --temperature T")
    extra = [flag for flag, on in (("--length-norm", args.length_norm is not None), ("--nbest", args.nbest)) if on]
    if extra and not args.beam:
        raise SpecError.at(None, f"{' and '.join(extra)} rank the hypotheses of a beam search, and no --beam is given",
                           "add --beam K, for example --beam 5")


def _inputs(args, run) -> dict:
    """The inputs off the generated axis: --input's numbers over --from's example."""
    context = {}
    if args.source is not None:
        context, reference = run.example(args.source, args.index)
        if reference is not None:
            print(f"example {args.index} of {printable(args.source)}; its own: {printable(reference)}",
                  file=sys.stderr)
    return {**context, **sym.given_inputs(run.model.spec, args.input)}


def _print_stream(pieces) -> None:
    """Each piece as it is drawn: a long sample shows as it grows and is never held whole.
    Newlines and tabs print as they are; other control characters escaped."""
    for piece in pieces:
        sys.stdout.write(printable(piece, keep="\n\t"))
        sys.stdout.flush()
    sys.stdout.write("\n")
