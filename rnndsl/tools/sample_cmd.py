"""`rnndsl sample RUN`: generate from a trained run by sampling (temperature; 0 is greedy) or
by beam search (--beam K, --length-norm ALPHA, --nbest), printing symbols of the run's
vocabulary, or class numbers for a run trained on named arrays.
"""
from __future__ import annotations

import sys

from . import symbols as sym
from ..core.errors import DataError, SpecError
from ..core.ops import Kind
from ..core.textsafe import printable
from ..frontend import ir


def cmd_sample(args) -> int:
    from ..training import data, generate, train
    model, params, info, source = train.load_checked_run(args.run_dir, args.backend)
    gen = model.spec.generate
    if gen is None or not gen.feed:
        raise DataError(f"{model.spec.name} has no generate: section, so there is nothing to sample"
                        + (" or search (--beam)" if args.beam else ""),
                        "add generate: {feed: {x: y}} to say which output feeds which input")
    _check_flags(args)
    symbols = sym.symbols_of(info, model.spec, data.Vocab)
    primed = sym.start(symbols, model.spec, args.prime)
    stop = sym.stop_class(symbols, model.spec, args.stop)
    length = args.length if args.length is not None else gen.max_len
    context = _context(args, source, model, info, symbols)
    if args.beam:
        return _beam(model, params, symbols, primed, length, stop, context, args)
    temperature = args.temperature if args.temperature is not None else gen.temperature
    ids = generate.stream(model, params, primed, length, temperature, args.seed, context, stop)
    _print_stream(symbols, primed, ids)
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


def _context(args, source, model, info: dict, symbols) -> dict:
    """The inputs off the generated axis: --input's numbers over --from's example."""
    context = {}
    if args.source is not None:
        context, reference = _example(source, args.source, args.index, model.spec, info, model.backend)
        if reference is not None:
            print(f"example {args.index} of {printable(args.source)}; its own: "
                  f"{printable(symbols.decode(list(reference)))}", file=sys.stderr)
    return {**context, **sym.given_inputs(model.spec, args.input)}


def _beam(model, params, symbols, primed: list, length: int, stop, context: dict, args) -> int:
    from ..training import beam, generate
    found = beam.search(model, params, [primed], args.beam, length, stop, args.length_norm or 0.0,
                        generate.batch_of_one(model.spec, context))[0]
    alpha = args.length_norm or 0.0
    for h in found if args.nbest else found[:1]:
        text = _text(symbols, primed, h.ids)
        print(f"{h.score(alpha):.4f}\t{text}" if args.nbest else text)
    return 0


def _text(symbols, prime: list, ids) -> str:
    gap = " " if symbols.level == "word" and len(ids) else ""
    return printable(symbols.decode(prime) + gap + symbols.decode(list(ids)), keep="\n\t")


def _print_stream(symbols, prime, ids) -> None:
    """The prime, then each symbol as it is sampled: a long sample shows as it grows and is
    never held whole. Newlines and tabs print as they are; other control characters escaped."""
    out, gap = sys.stdout, " " if symbols.level == "word" else ""
    out.write(printable(symbols.decode(prime), keep="\n\t"))
    for i in ids:
        out.write(printable(gap + symbols.decode([i]), keep="\n\t"))
        out.flush()
    out.write("\n")


def _example(source, path, index: int, spec: ir.Model, info: dict, backend: str) -> tuple:
    """(context, reference) of example `index` of a data file read as the run reads data: the
    inputs off the generated axis (an image, a source sentence) condition the generation; the
    index input on that axis other than the fed one (the target) is shown for comparison."""
    from ..training import optim, train
    job = train.prepare(source, path, info["dims"], backend, info,
                        optim.Settings(**info["settings"]), hold_out=False)
    examples = job.train.examples
    if not 0 <= index < len(examples):
        raise DataError(f"{path} has {len(examples)} examples; --index {index} is not one of them",
                        "--index counts from 0")
    fed = spec.generate.feed[0][0]
    axis = next(i.axis for i in spec.inputs if i.name == fed)
    example = examples[index]
    context = {i.name: example[i.name] for i in spec.inputs if i.axis != axis}
    targets = [i.name for i in spec.inputs if i.axis == axis and i.name != fed and i.type.kind is Kind.INDEX]
    return context, (example[targets[0]] if len(targets) == 1 else None)
