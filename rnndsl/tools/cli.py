"""The command line: check, graph, compile, gradcheck, bench.

A mistake in a spec or in data prints a compiler error and exits 1, never a traceback; a
backend this machine cannot run (no cupy, no usable GPU) says what is missing and exits 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from . import cliargs
from .sample_cmd import cmd_sample
from .. import backends
from ..core import files, limits
from ..frontend import ir
from ..semantics import timegraph
from ..core.errors import DataError, SpecError
from .graphviz import graph_dot, graph_json, graph_text
from ..runtime.params import check_memory as check_param_memory
from ..runtime.device import BackendUnavailable
from ..runtime.mpi import Ranks
from ..pipeline import load_spec
from ..frontend.scalars import resolve_plain
from ..core.textsafe import printable
from ..semantics.unroll import unroll
from ..semantics.usage import unused

STEPS = cliargs.whole(1, limits.MAX_STEPS)
BATCH = cliargs.whole(1, limits.MAX_BATCH)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    _suggest_command(parser, argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.run(args)
    except BackendUnavailable as exc:        # this machine lacks what the backend runs on
        print(exc.format(), file=sys.stderr)
        return 2
    except SpecError as exc:
        if _first_rank():                    # every rank of an MPI job finds the same mistake
            print(exc.format(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rnndsl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _as_mpi_job(args) -> int:
    """`train --workers N`: this command again as an N-rank MPI job on this machine (the one
    data-parallel path: rnndsl.runtime.mpi), through the launcher the mpich wheel installs."""
    from ..runtime.mpi import launcher, launched
    if launched():
        raise SpecError.at(None, "--workers inside an MPI job: the launcher already gave it its ranks",
                           "leave --workers out under mpiexec (mpiexec -n N sets the number of ranks)")
    command = launcher(args.workers, [sys.executable, "-m", "rnndsl", *_without_workers(args.argv)])
    job = subprocess.Popen(command)
    while True:
        try:
            return job.wait()            # the ranks' exit status, through the launcher
        except KeyboardInterrupt:        # Ctrl-C reached the ranks too: they save and stop
            continue


def _without_workers(argv: list) -> list:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: an unknown option is reported with that command's usage, not the
    top-level one (argparse hands unknown arguments up to `rnndsl`'s own parser)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def _first_rank() -> bool:
    """True unless this is an MPI job's rank other than 0."""
    ranks = Ranks.world()
    return ranks is None or ranks.rank == 0


COMMANDS = ("check", "graph", "compile", "gradcheck", "train", "sample", "eval", "export", "bench")


def _suggest_command(parser: argparse.ArgumentParser, argv: list) -> None:
    """A mistyped command is a usage error that names the nearest one (argparse lists them all)."""
    if not argv or argv[0].startswith("-") or argv[0] in COMMANDS:
        return
    from ..core.errors import did_you_mean
    hint = did_you_mean(argv[0], COMMANDS) or f"commands: {', '.join(COMMANDS)}"
    parser.error(f"unknown command {argv[0]!r}; {hint}")


def _parser() -> argparse.ArgumentParser:
    from .. import __version__
    p = argparse.ArgumentParser(prog="rnndsl", description="Compile recurrent networks written as YAML specs.")
    p.add_argument("--version", action="version", version=f"rnndsl {__version__}")
    sub = p.add_subparsers(required=True, metavar="COMMAND", parser_class=_CommandParser)

    c = sub.add_parser("check", help="parse and check specs; print a summary")
    c.add_argument("specs", nargs="+", metavar="SPEC")
    c.add_argument("--strict", action="store_true",
                   help="warnings (a parameter or equation that does not reach the loss) are errors")
    _add_set(c)
    c.set_defaults(run=cmd_check)

    g = sub.add_parser("graph", help="print the unrolled acyclic graph")
    g.add_argument("spec", metavar="SPEC")
    g.add_argument("--unroll", default="4", metavar="T",
                   help="steps per axis: one number for every axis, or s=5,t=3")
    g.add_argument("--format", choices=("text", "dot", "json"), default="text")
    g.add_argument("--params", action="store_true",
                   help="show parameter nodes in text and dot (json always has every node)")
    _add_set(g)
    g.set_defaults(run=cmd_graph)

    k = sub.add_parser("compile", help="emit a standalone module; print a stage or explain the schedule")
    k.add_argument("spec", metavar="SPEC")
    k.add_argument("--backend", choices=backends.names(), default=None,
                   help="default: the fastest installed (numba, else numpy)")
    k.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    k.add_argument("-o", "--output", metavar="FILE", help="write the module here (default: standard output)")
    k.add_argument("--cuda-dir", metavar="DIR",
                   help="--backend cupy: also write each CUDA kernel as DIR/<kernel>.cu, the source CuPy compiles")
    k.add_argument("--dump", choices=("ir", "unrolled", "program", "code"),
                   help="print one stage: the typed IR, the unrolled graph, the scheduled program, the code")
    k.add_argument("--explain", action="store_true", help="report what the schedule did, in spec terms")
    k.add_argument("--steps", type=STEPS, default=100, metavar="T", help="T for --explain's buffer sizes")
    k.add_argument("--batch", type=BATCH, default=32, metavar="B", help="B for --explain's buffer sizes")
    _add_set(k)
    k.set_defaults(run=cmd_compile)

    c = sub.add_parser("gradcheck", help="derived gradients against float64 finite differences")
    c.add_argument("spec", metavar="SPEC")
    c.add_argument("--steps", type=STEPS, default=5, metavar="T")
    c.add_argument("--batch", type=BATCH, default=2, metavar="B")
    c.add_argument("--seed", type=cliargs.seed, default=0)
    c.add_argument("--tol", type=cliargs.tolerance, default=1e-6, help="largest relative error accepted (0 to 1)")
    c.add_argument("--lengths", action="append", default=[], metavar="N,N,...",
                   help="each sequence's length (default random): 3,1, or per axis s=3,1 (repeatable)")
    c.add_argument("--truncate", type=STEPS, default=None, metavar="K",
                   help="check truncated BPTT's gradient with windows of K steps")
    c.add_argument("--search", type=cliargs.whole(1, 100_000), default=None, metavar="N",
                   help="let hypothesis search N cases (dims not --set, T, B, lengths, seed, truncation) and print "
                        "the smallest failing one as a command (needs rnndsl[testing])")
    _add_set(c)
    c.set_defaults(run=cmd_gradcheck)

    t = sub.add_parser("train", help="train a spec; writes a run directory (metrics, loss.png, checkpoints)")
    t.add_argument("spec", metavar="SPEC", nargs="?")
    t.add_argument("--data", metavar="PATH", help="text, a speech manifest (.tsv or its folder), an .npz; "
                   "default: the embedded 'hello' (specs/char_rnn.yaml)")
    t.add_argument("--out", metavar="RUN", help="the run directory (default runs/NAME-TIME)")
    t.add_argument("--resume", metavar="RUN", help="continue a run where its checkpoint stopped")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    t.add_argument("--level", choices=("char", "word"), default="char", help="text: characters or words")
    t.add_argument("--features", choices=("mfcc", "logspec"), default="mfcc",
                   help="speech: MFCCs or a log spectrogram, as many per frame as the spec's frame input")
    t.add_argument("--backend", choices=backends.names(), default=None,
                   help="default: the fastest installed (numba, else numpy); with --resume, the run's own "
                        "where it can run here")
    t.add_argument("--workers", type=cliargs.workers, default=1, metavar="N",
                   help="MPI ranks on this machine that share each batch, one core each: the same as "
                        "`mpiexec -n N rnndsl train ...` (default 1: this process, with multithreaded BLAS)")
    t.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="default float32; the run records it, and --resume, sample and eval use it")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_set(t, "override a dim or a training setting, e.g. --set H=128 --set lr=0.01")
    t.set_defaults(run=cmd_train)

    s = sub.add_parser("sample", help="generate from a trained run, feeding outputs back as inputs")
    s.add_argument("run_dir", metavar="RUN")
    s.add_argument("--prime", default=None, help="text to start from (default: the spec's generate: start)")
    s.add_argument("--length", type=cliargs.whole(0, limits.MAX_SAMPLE_LENGTH), default=None,
                   help=f"how many symbols to generate (at most {limits.MAX_SAMPLE_LENGTH:,})")
    s.add_argument("--temperature", type=cliargs.temperature, default=None,
                   help=f"0 is greedy, else {limits.MIN_TEMPERATURE:g} or more "
                        "(default: the spec's generate: temperature, else 1)")
    s.add_argument("--seed", type=cliargs.seed, default=0)
    s.add_argument("--from", dest="source", metavar="PATH",
                   help="condition on an example of this data file (in the run's format): its image, its "
                        "source sentence, whatever the spec reads off the generated axis")
    s.add_argument("--index", type=cliargs.whole(0, limits.MAX_EXAMPLES), default=0, metavar="N",
                   help="which example of --from (from 0)")
    s.add_argument("--input", action="append", default=[], metavar="NAME=NUMBERS",
                   help="give an input off the generated axis as class numbers, e.g. --input src=3,1,4 "
                        "(repeatable; replaces that input of --from)")
    s.add_argument("--stop", default=None, metavar="SYMBOL",
                   help="end a sequence at this symbol (a class number for a run without a vocabulary); "
                        "default: the spec's generate: stop")
    _add_beam(s, "search for the likeliest sequences with a beam of K hypotheses instead of sampling")
    s.add_argument("--nbest", action="store_true", help="with --beam: print every finished hypothesis, "
                   "best first, each after its score")
    _add_run_backend(s)
    s.set_defaults(run=cmd_sample)

    x = sub.add_parser("export", help="a run's weights as safetensors or .npz, under the spec's names")
    x.add_argument("run_dir", metavar="RUN")
    x.add_argument("-o", "--output", metavar="FILE", help="default: NAME.safetensors (or .npz) here, NAME the run "
                                                          "folder's name")
    x.add_argument("--format", choices=("safetensors", "npz", "torch"), default=None,
                   help="default: by FILE's suffix, else safetensors; torch: safetensors of the state_dict the "
                        "spec's export: torch section names")
    x.set_defaults(run=cmd_export)

    e = sub.add_parser("eval", help="loss and the metrics that fit the spec on a data set")
    e.add_argument("run_dir", metavar="RUN")
    e.add_argument("--data", metavar="PATH", help="default: the data the run trained on")
    e.add_argument("--decode", choices=("greedy", "beam"), default="greedy",
                   help="beam: also decode with a beam search (CTC prefix beam search, or a beam over "
                        "generated sequences) and report its metrics next to greedy decoding's")
    _add_beam(e, "the beam's width with --decode beam (default 4)")
    e.add_argument("--stop", default=None, metavar="SYMBOL",
                   help="the symbol that ends a generated sequence (default: the spec's generate: stop)")
    _add_run_backend(e)
    e.set_defaults(run=cmd_eval)

    b = sub.add_parser("bench", help="time forward and forward+backward; report GFLOP/s")
    b.add_argument("spec", metavar="SPEC")
    b.add_argument("--steps", type=STEPS, default=100, metavar="T")
    b.add_argument("--batch", type=BATCH, default=32, metavar="B")
    b.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    b.add_argument("--repeat", type=cliargs.whole(1, limits.MAX_REPEAT), default=10)
    b.add_argument("--threads", type=cliargs.whole(1, 4096), default=None,
                   help="cap BLAS and OpenMP threads (threadpoolctl)")
    b.add_argument("--workers", type=cliargs.workers, default=1, metavar="N",
                   help="MPI ranks that share each batch, one core each (as train --workers)")
    _add_set(b)
    b.set_defaults(run=cmd_bench)
    return p


def _add_beam(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--beam", type=cliargs.whole(1, limits.MAX_BEAM), default=None, metavar="K", help=text)
    p.add_argument("--length-norm", type=cliargs.alpha, default=None, metavar="ALPHA",
                   help="with a beam: rank finished sequences by log-probability / length^ALPHA (default 0: raw)")


def _add_run_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=backends.names(), default=None,
                   help="default: the one the run trained with where it can run here, else the fastest installed")


def _add_set(p: argparse.ArgumentParser, text: str = "override a dim, e.g. --set H=128 (repeatable)") -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=text)


def parse_settings(items: list[str]) -> dict:
    """--set K=V pairs -> {K: int, float, bool or str}, each value read as a spec reads a plain
    YAML value (so --set epochs=1:30 is the same error as in the spec)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        shown = printable(item if len(item) <= 60 else item[:57] + "...")
        if not sep or not key.strip() or not value.strip():
            raise SpecError.at(None, f"--set {shown}: expected NAME=VALUE", "for example --set H=128")
        try:
            typed = resolve_plain(value.strip())
        except ValueError as exc:
            raise SpecError.at(None, f"--set {shown}: {exc.args[0]}", exc.args[1]) from None
        out[key.strip()] = value.strip() if typed is None else typed
    return out


# ---- check -----------------------------------------------------------------------------------

def cmd_check(args) -> int:
    dims = parse_settings(args.set)
    failed = 0
    for path in args.specs:
        try:
            model = load_spec(path, dims=dims)
            check_param_memory(model)           # training it would fit in this machine's memory
        except SpecError as exc:
            print(exc.format(), file=sys.stderr)
            failed += 1
            continue
        print(summary(model))
        failed += _warn(unused(model), args.strict)
    if len(args.specs) > 1:
        print(f"{len(args.specs) - failed} of {len(args.specs)} specs ok")
    return 1 if failed else 0


def _warn(warnings: list, strict: bool) -> int:
    """Print the warnings (as errors with --strict); 1 if that fails the spec."""
    for w in warnings:
        print((dataclasses.replace(w, severity="error") if strict else w).format(), file=sys.stderr)
    return int(strict and bool(warnings))


def summary(model: ir.Model) -> str:
    analysis = timegraph.analyse(model)
    lines = [f"{model.path}: {model.name} ok"]
    if model.doc:
        lines.append(f"  {' '.join(model.doc.split())[:100]}")
    lines.append(f"  dims:   {', '.join(f'{n}={d.value}' for n, d in model.dims) or '-'}")
    lines.append(f"  inputs: {', '.join(f'{i.name} {i.type}' + (f' over {i.axis}' if i.axis else '') for i in model.inputs)}")
    if model.masks:
        lines.append("  noise:  " + ", ".join(f"{m.noise} at line {m.pos.line if m.pos else '?'}"
                                              + (" (one mask per sequence)" if m.axis is None else "")
                                              for m in model.masks) + "; off in eval, sample and gradcheck")
    lines.append(f"  params: {len(model.params)} tensors, {model.param_count():,} values")
    for p in model.params:
        lines.append(f"    {p.name:<12} {str(p.type):<28} {p.init}")
    for r in analysis.recurrences:
        delays = ", ".join(str(d) for d in r.delays)
        lines.append(f"  recurrence {', '.join(r.members)}: {r.direction.value.split()[0]} over {r.axis}, "
                     f"delay {delays}")
    for cls in (timegraph.Class.PARALLEL, timegraph.Class.STATIC):
        names = [n for n, c in analysis.classes.items() if c is cls]
        if names:
            lines.append(f"  {cls.value}: {', '.join(names)}")
    lines.append(f"  loss:   {ir.show(model.loss)}")
    return "\n".join(map(printable, lines))


# ---- compile and gradcheck ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Emitted:
    """What `rnndsl compile` reports on: a compiled model's parts, without loading the module
    (emitting needs nothing the module runs on: CuPy code is emitted without CuPy or a GPU)."""
    spec: ir.Model
    program: object
    source: str
    dtype: object
    backend: str


def cmd_compile(args) -> int:
    import numpy as np
    from ..pipeline import emit
    backend = args.backend or backends.default()
    if args.cuda_dir and backend != "cupy":
        raise SpecError.at(None, f"--cuda-dir writes the CUDA kernels of the cupy backend, not of {backend}",
                           "add --backend cupy")
    model = Emitted(*emit(args.spec, backend, args.dtype, parse_settings(args.set)), np.dtype(args.dtype), backend)
    if args.cuda_dir:
        _write_cuda(args.cuda_dir, model)
    if args.explain:
        from ..compiler.explain import explain
        print(_lines(explain(model, args.steps, args.batch)))
        return 0
    if args.dump:
        print(_lines(_dump(model, args.dump)))
        return 0
    if args.output:
        fail = lambda problem, hint: SpecError.at(None, f"-o {args.output}: {problem}", hint)
        files.write_file(args.output, model.source, fail)
        needs = {"numba": "numpy and numba", "cupy": "numpy and cupy"}.get(model.backend, "only numpy")
        print(f"wrote {printable(args.output)} ({len(model.source.splitlines())} lines, needs {needs})")
    else:
        print(model.source, end="")
    return 0


def _write_cuda(folder: str, model: Emitted) -> None:
    """Each CUDA kernel of the module as FOLDER/<kernel>.cu (the folder made if its parent exists)."""
    from ..backends import cupy
    fail = lambda problem, hint: SpecError.at(None, f"--cuda-dir {folder}: {problem}", hint)
    try:
        Path(folder).mkdir(exist_ok=True)
    except OSError as e:
        raise fail(f"cannot be made: {e.strerror}", "name a folder whose parent exists") from None
    kernels = cupy.cuda_files(model.program, model.dtype.name)
    for name, text in kernels.items():
        files.write_file(Path(folder) / name, text, fail)
    print(f"wrote {len(kernels)} CUDA kernels to {printable(folder)}", file=sys.stderr)


def _lines(text: str) -> str:
    """Multi-line text with each line's control characters escaped (names come from specs)."""
    return "\n".join(map(printable, text.split("\n")))


def _dump(model, stage: str) -> str:
    from ..compiler import program
    if stage == "ir":
        return ir.pretty(model.spec)
    if stage == "unrolled":
        return graph_text(model.spec, unroll(model.spec, 3))
    if stage == "program":
        return ("# forward\n" + program.show(model.program.forward)
                + "\n\n# backward\n" + program.show(model.program.backward))
    return model.source


def cmd_gradcheck(args) -> int:
    from .gradcheck import FORWARD_TOL, gradcheck
    from .gradsearch import parse_lengths, search
    from ..pipeline import compile as compile_spec
    if args.search:
        found = search(args.spec, args.search, args.tol, parse_settings(args.set))
        print(f"{args.search} cases searched: " + (f"this one fails:\n  {printable(found.command())}" if found else "all pass"))
        return 1 if found else 0
    model = compile_spec(args.spec, dtype="float64", dims=parse_settings(args.set))
    lengths = parse_lengths(args.lengths, model.spec.axes, args.batch)
    report = gradcheck(model, args.steps, args.batch, args.seed, lengths=lengths, truncate=args.truncate)
    print(f"{printable(model.spec.name)}: float64, T={args.steps} B={args.batch}, "
          f"{'lengths ' + ' '.join(args.lengths) if lengths else 'ragged lengths'}, seed {args.seed}"
          + (f", truncated BPTT every {args.truncate} steps" if args.truncate else ""))
    print("forward vs the reference interpreter (largest |difference| / max(1, |value|)):")
    for v in report.forward:
        print(f"  {_checked(v.name, v.shape)} {v.error:.1e}  {'ok' if v.ok() else 'FAIL'}")
    print("gradient vs finite differences (worst relative error over the directions checked):")
    for p in report.params:
        print(f"  {_checked(p.name, p.shape)} {p.worst:.1e}  {'ok' if p.ok(args.tol) else 'FAIL'}{_skipped(p)}")
    bad_values = sum(not v.ok() for v in report.forward)
    bad_params = sum(not p.ok(args.tol) for p in report.params)
    print(f"forward: {len(report.forward) - bad_values} of {len(report.forward)} values within {FORWARD_TOL:g}; "
          f"gradient: {len(report.params) - bad_params} of {len(report.params)} parameters within {args.tol:g}")
    return 1 if bad_values or bad_params else 0


def _checked(name: str, shape: tuple) -> str:
    return f"{printable(name):<14} {str(list(shape)):<16}"


def _skipped(p) -> str:
    """Directions replaced because a kink was too close for any step (none checked fails)."""
    if not p.checked:
        return f"  (all {p.skipped} directions tried lie on a kink: try another --seed)"
    return f"  ({p.skipped} of {p.checked + p.skipped} directions on a kink, replaced)" if p.skipped else ""


def cmd_train(args) -> int:
    from ..training import train
    if args.workers > 1:
        return _as_mpi_job(args)
    if args.resume:
        _only_resume(args)
    elif args.spec is None:
        raise SpecError.at(None, "train needs a SPEC (or --resume RUN)", "for example: rnndsl train specs/char_rnn.yaml")
    try:
        run = train.resume(args.resume, args.quiet, args.workers, args.backend,
                           parse_settings(args.set)) if args.resume else train.train(
            args.spec, args.data, args.out, parse_settings(args.set), args.backend, args.quiet, args.overwrite,
            loader={"level": args.level, "features": args.features}, workers=args.workers, dtype=args.dtype)
    except train.Interrupted as stop:
        if _first_rank():
            print(f"rnndsl: interrupted; the checkpoint holds every finished step: continue with --resume {stop.run}",
                  file=sys.stderr)
        return 130
    if not _first_rank():                # rank 0 reports for the whole MPI job
        return 0
    last = _last_loss(run)
    shown = printable(run)
    print(f"trained {shown}" + (f": loss {last:.4f}" if last is not None else "") + f"; see {shown}/loss.png")
    return 0


def _only_resume(args) -> None:
    """--resume takes its spec, data and settings from the run: refuse any it would ignore."""
    given = [flag for flag, value in (("SPEC", args.spec), ("--data", args.data), ("--out", args.out),
                                      ("--overwrite", args.overwrite), ("--dtype", args.dtype)) if value]
    if given:
        raise SpecError.at(None, f"--resume continues a run as it was; it does not take {', '.join(given)}",
                           "to train with other settings or data, start a new run with another --out")


def _last_loss(run):
    from ..training import rundir
    losses = [r["loss"] for r in rundir.read_metrics(run) if "loss" in r]
    return losses[-1] if losses else None


def cmd_export(args) -> int:
    from ..training import runfiles
    from .runs import load_run
    from .weights import load_params
    run = load_run(args.run_dir)
    kind = args.format or ("npz" if args.output and args.output.endswith(".npz") else "safetensors")
    name = runfiles.safe_name(Path(args.run_dir).resolve().name)
    suffix = {"torch": "torch.safetensors"}.get(kind, kind)
    default = Path(f"{name}.{suffix}")
    if args.output is None and os.path.lexists(default):   # only -o names a file to replace
        raise DataError(f"{default} already exists in this folder; export does not replace a file it was not told to",
                        f"give the file to write (or replace) with -o, e.g. -o {default}")
    path = run.export(args.output or default, kind)
    print(f"wrote {printable(path)}: {len(load_params(path))} tensors")
    return 0


def cmd_eval(args) -> int:
    from .runs import load_run
    run = load_run(args.run_dir, args.backend)
    width, alpha, stop = _decoding(args, run)
    # other data is evaluated whole; the run's own data on the part training held out
    done = run.evaluation(args.data, width, stop, alpha)
    held = " (the part held out from training)" if done.held_out else ""
    print(f"{printable(run.model.spec.name)} on {printable(done.data or 'the embedded hello')}{held}:")
    for key, value in done.metrics.items():
        print(f"  {key:<16} {value:.4f}" if isinstance(value, float) else f"  {key:<16} {value}")
    return 0


def _decoding(args, run) -> tuple:
    """eval's --decode, --beam, --length-norm and --stop, checked against what the spec decodes:
    (beam width or None, length norm, stop symbol)."""
    from ..training import evaluate
    spec = run.model.spec
    what = evaluate.decodes(spec)
    if args.decode == "beam" and what is None:
        raise SpecError.at(None, f"--decode beam: {spec.name} has nothing a beam search decodes (its loss has no "
                           "ctc, and it generates no sequence that a target holds)",
                           "beam search decodes CTC runs and runs whose generate: output has a target "
                           "(seq2seq, captioning); drop --decode beam")
    given = [f for f, v in (("--beam", args.beam), ("--length-norm", args.length_norm)) if v is not None]
    if given and args.decode != "beam":
        raise SpecError.at(None, f"{' and '.join(given)} set the beam of --decode beam, which is not given",
                           "add --decode beam")
    streamed = "level" in run.info.get("loader", {})     # text: one stream, no sequences to match whole
    if what == "generate" and not streamed and run.stop_class(args.stop) is None:
        print(f"note: no exact-sequence accuracy: the stop symbol of {printable(spec.name)} is not a symbol of "
              "the run; give it with --stop (a class number for a run without a vocabulary)", file=sys.stderr)
    width = (args.beam or 4) if args.decode == "beam" else None
    return width, args.length_norm or 0.0, args.stop


def cmd_bench(args) -> int:
    from . import bench
    if args.workers > 1:
        return _as_mpi_job(args)
    result = bench.bench(args.spec, args.steps, args.batch, parse_settings(args.set) or None,
                         args.dtype, args.repeat, threads=args.threads)
    if not _first_rank():                # rank 0 reports for the whole MPI job
        return 0
    ranks = Ranks.world()
    notes = f", {ranks.size} MPI ranks" if ranks is not None else ""
    title = f"{args.spec}: T={args.steps} B={args.batch} {args.dtype}, {backends.default()} backend{notes}"
    print(_lines(bench.report([result], title)))
    print(f"compile {result.compile_s:.2f} s; the first forward+backward {result.first_s:.2f} s"
          + (" (numba compiling its kernels, or loading them from its disk cache)" if backends.default() == "numba" else ""))
    print("for a same-run comparison with PyTorch at the standard shapes: python benchmarks/run.py")
    return 0


# ---- graph -----------------------------------------------------------------------------------

def cmd_graph(args) -> int:
    model = load_spec(args.spec, dims=parse_settings(args.set))
    g = unroll(model, _lengths(args.unroll, model))
    print({"text": graph_text, "dot": graph_dot, "json": graph_json}[args.format](model, g, args.params))
    return 0


def _lengths(text: str, model: ir.Model):
    try:
        if "=" not in text:
            n = int(text)
            lengths = {a: n for a in model.axes}
        else:
            lengths = {k.strip(): int(v) for k, v in (p.split("=") for p in text.split(","))}
    except ValueError:
        raise SpecError.at(None, f"--unroll {text}: expected a number or axis=number pairs",
                           "for example --unroll 4 or --unroll s=5,t=3") from None
    missing = [a for a in model.axes if a not in lengths]
    bad = [a for a, n in lengths.items() if a not in model.axes or not 1 <= n <= 1000]
    if missing or bad:
        raise SpecError.at(None, f"--unroll {text}: needs 1..1000 steps for each axis of "
                           f"{model.name} ({', '.join(model.axes)})")
    return lengths


if __name__ == "__main__":
    sys.exit(main())
