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

    def sample(self, prime: str | None = None, length: int | None = None, temperature: float | None = None,
               seed: int = 0, stop: str | None = None, inputs: dict | None = None):
        """Generated text after `prime` (the spec's generate: start when None); a run without
        a vocabulary takes and gives class numbers ("3 1 4"); `inputs`: the other inputs of
        one example (a source sentence as class numbers, an image), unbatched."""
        from ..training import data, generate
        gen = self.model.spec.generate
        symbols = sym.symbols_of(self.info, self.model.spec, data.Vocab)
        primed = sym.start(symbols, self.model.spec, prime)
        ids = generate.generate(self.model, self.params, primed, length if length is not None else gen.max_len,
                                temperature if temperature is not None else gen.temperature, seed,
                                dict(inputs or {}), sym.stop_class(symbols, self.model.spec, stop))
        return symbols.decode(list(primed) + list(ids))

    def evaluate(self, data_path=None, beam: int | None = None, stop: str | None = None) -> dict:
        """The metrics `rnndsl eval` prints: on the part of the run's own data training held out,
        or on all of `data_path`; `beam` decodes (CTC, seq2seq, captioning) with a beam search."""
        from ..training import data, evaluate, optim, train
        path = data_path or (None if self.info["data"] == "<embedded hello>" else self.info["data"])
        job = train.prepare(self.source, path, self.info["dims"], self.model.backend, self.info,
                            optim.Settings(**self.info["settings"]), hold_out=data_path is None)
        bound = job.valid if job.valid is not None else job.train
        symbols = sym.symbols_of(self.info, self.model.spec, data.Vocab)
        stop_id = sym.stop_class(symbols, self.model.spec, stop) if evaluate.decodes(self.model.spec) == "generate" else None
        return evaluate.metrics(self.model, self.params, bound, job.settings, self.vocab,
                                evaluate.Decoding(beam, 0.0, stop_id))

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
