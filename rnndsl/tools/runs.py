"""The Python API for training and runs: what the CLI's train, sample, eval and export do.

    run = rnndsl.train("specs/char_rnn.yaml", data="input.txt", out="runs/lm", epochs=5)
    run = rnndsl.load_run("runs/lm")
    run.sample("ROMEO:", length=200, temperature=0.8)     # text (class numbers for .npz runs)
    run.evaluate()                                         # the held-out part, or evaluate("x.txt")
    run.export("lm.safetensors")                           # or .npz; rnndsl.load_params reads both

A Run holds the compiled model, its trained parameters and run.json; `metrics` are the lines
of metrics.jsonl (a pandas DataFrame when pandas is installed, else a list of dicts). Training takes `callbacks`, functions called with each step's record (step,
epoch, loss, lr, grad_norm) and each epoch's (val_loss), for users who log elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import symbols as sym
from ..core.errors import DataError
from .weights import save_params


@dataclass
class Run:
    path: Path
    model: object                  # the CompiledModel, in the run's dtype
    params: dict                   # name -> NumPy array, the checkpoint's
    info: dict                     # run.json
    source: object                 # the spec's text as trained (what eval and sample --from prepare)

    @property
    def settings(self) -> dict:
        return dict(self.info["settings"])

    @property
    def vocab(self):
        from ..training import data
        return data.Vocab.from_json(self.info["vocab"]) if self.info.get("vocab") else None

    @property
    def metrics(self):
        """The records of metrics.jsonl: a pandas DataFrame (one row a record, NaN where a
        record lacks a column) when pandas is installed, else a list of dicts."""
        from ..training import rundir
        return as_frame(rundir.read_metrics(self.path))

    @property
    def symbols(self):
        """What sample and evaluate read and print: the vocabulary, or class numbers (symbols.Numbers)."""
        from ..training import data
        return sym.symbols_of(self.info, self.model.spec, data.Vocab)

    @property
    def data_path(self) -> str | None:
        """The data the run trained on, as run.json records it; None for the embedded hello."""
        return None if self.info["data"] == "<embedded hello>" else self.info["data"]

    def stop_class(self, stop: str | None = None) -> int | None:
        """The class that ends a generated sequence: `stop` (a symbol, or a class number for a
        run without a vocabulary), else the spec's generate: stop where it is a symbol; or None."""
        return sym.stop_class(self.symbols, self.model.spec, stop)

    def sample(self, prime: str | None = None, length: int | None = None, temperature: float | None = None,
               seed: int = 0, stop: str | None = None, inputs: dict | None = None) -> str:
        """Generated text after `prime` (the spec's generate: start when None); a run without
        a vocabulary takes and gives class numbers ("3 1 4"); `inputs`: the other inputs of
        one example (a source sentence as class numbers, an image), unbatched."""
        return "".join(self.stream(prime, length, temperature, seed, stop, inputs))

    def stream(self, prime: str | None = None, length: int | None = None, temperature: float | None = None,
               seed: int = 0, stop: str | None = None, inputs: dict | None = None):
        """`sample`'s text in pieces, each yielded as soon as it is drawn (the prime, then each
        symbol, after a space in a word vocabulary); every argument is checked before the first."""
        from ..training import generate
        gen = generation(self.model.spec)
        symbols, primed, stop_id = self.symbols, self.start(prime), self.stop_class(stop)
        ids = generate.stream(self.model, self.params, primed, length if length is not None else gen.max_len,
                              temperature if temperature is not None else gen.temperature, seed,
                              dict(inputs or {}), stop_id)
        return _pieces(symbols, primed, ids)

    def search(self, prime: str | None = None, beam: int = 4, length: int | None = None, stop: str | None = None,
               length_norm: float = 0.0, inputs: dict | None = None) -> list:
        """Beam search instead of sampling: every finished hypothesis as (score, text), best
        first, the score log-probability / length^length_norm; the text as `sample` gives it."""
        from ..training import beam as beams, generate
        gen = generation(self.model.spec, searching=True)
        symbols, primed, stop_id = self.symbols, self.start(prime), self.stop_class(stop)
        found = beams.search(self.model, self.params, [primed], beam, length if length is not None else gen.max_len,
                             stop_id, length_norm, generate.batch_of_one(self.model.spec, dict(inputs or {})))[0]
        return [(h.score(length_norm), "".join(_pieces(symbols, primed, h.ids))) for h in found]

    def example(self, data_path, index: int = 0) -> tuple:
        """(inputs, reference) of example `index` of a data file read as the run reads its data:
        the inputs off the generated axis (an image, a source sentence), which `sample` and
        `search` take as `inputs`, and the example's own target on that axis as text (None
        when the spec has no single one)."""
        from .examples import example_of
        context, reference = example_of(self, data_path, index)
        return context, (None if reference is None else self.symbols.decode(list(reference)))

    def evaluation(self, data_path=None, beam: int | None = None, stop: str | None = None,
                   length_norm: float = 0.0) -> "Evaluation":
        """`evaluate`'s metrics with what they were measured on: the data's path (None for the
        embedded hello) and whether that was the part training held out."""
        from ..training import evaluate, optim, train
        path = data_path or self.data_path
        job = train.prepare(self.source, path, self.info["dims"], self.model.backend, self.info,
                            optim.Settings(**self.info["settings"]), hold_out=not data_path)
        held_out = job.valid is not None
        stop_id = self.stop_class(stop) if evaluate.decodes(self.model.spec) == "generate" else None
        found = evaluate.metrics(self.model, self.params, job.valid if held_out else job.train, job.settings,
                                 self.vocab, evaluate.Decoding(beam, length_norm, stop_id))
        return Evaluation(path, held_out, found)

    def evaluate(self, data_path=None, beam: int | None = None, stop: str | None = None,
                 length_norm: float = 0.0) -> dict:
        """The metrics `rnndsl eval` prints: on the part of the run's own data training held out,
        or on all of `data_path`; `beam` decodes (CTC, seq2seq, captioning) with a beam search,
        ranking generated sequences by log-probability / length^length_norm."""
        return self.evaluation(data_path, beam, stop, length_norm).metrics

    def start(self, prime: str | None = None) -> list:
        """The class ids generation starts from: `prime`'s, else the spec's generate: start."""
        return sym.start(self.symbols, self.model.spec, prime)

    def export(self, path, format: str | None = None) -> Path:
        """The parameters under the spec's names, as safetensors (with the spec's text and dims
        in its metadata) or .npz, chosen by `format` or the file's suffix; format="torch": a
        safetensors file of the state_dict the spec's `export: torch` section maps them to
        (`module.load_state_dict(safetensors.torch.load_file(path))`)."""
        meta = {"spec": self.source.text, "dims": self.info["dims"], "run": str(self.path)}
        if format == "torch":
            from ..frontend.export import stacked
            return save_params(path, stacked(self.model.spec, "torch", self.params), meta, "safetensors")
        return save_params(path, self.params, meta, format)


@dataclass(frozen=True)
class Evaluation:
    data: str | None               # the data's path; None for the embedded hello
    held_out: bool                 # the part of the run's data that training held out
    metrics: dict


def generation(spec, searching: bool = False):
    """The spec's generate: section, or the error that there is nothing to sample."""
    gen = spec.generate
    if gen is None or not gen.feed:
        raise DataError(f"{spec.name} has no generate: section, so there is nothing to sample"
                        + (" or search (--beam)" if searching else ""),
                        "add generate: {feed: {x: y}} to say which output feeds which input")
    return gen


def _pieces(symbols, prime: list, ids):
    """The prime's text, then each id's, after a space where symbols are words (or numbers)."""
    yield symbols.decode(prime)
    gap = " " if symbols.level == "word" else ""
    for i in ids:
        yield gap + symbols.decode([i])


def as_frame(records: list):
    """`records` as a pandas DataFrame where pandas is installed; the list itself otherwise
    (pandas is not a dependency of rnndsl)."""
    try:
        import pandas
    except ImportError:
        return records
    return pandas.DataFrame.from_records(records)


def train(spec, data=None, out=None, *, backend: str | None = None, dtype: str | None = None, level: str = "char",
          features: str = "mfcc", quiet: bool = True, overwrite: bool = False, callbacks=(), **settings) -> Run:
    """Train `spec` (a path) on `data` into the run folder `out` (runs/NAME-TIME by default),
    with training settings and dims as keywords (epochs=5, lr=0.01, H=128); the finished Run."""
    from ..training import train as training
    run = training.train(spec, data, out, settings, backend, quiet, overwrite,
                         loader={"level": level, "features": features}, dtype=dtype, callbacks=tuple(callbacks))
    return load_run(run, backend)


def load_run(path, backend: str | None = None) -> Run:
    """A finished or interrupted run, its spec.yaml compiled only once it is the text its
    checkpoint was trained from (rnndsl.training.train.load_checked_run)."""
    from ..training import train as training
    model, params, info, source = training.load_checked_run(path, backend)
    return Run(Path(path), model, params, info, source)
