"""One example of a data file, read as a run reads its data: what `sample --from` (and
Run.example) conditions generation on, and the example's own target to compare with.
"""
from __future__ import annotations

from ..core.errors import DataError
from ..core.ops import Kind


def example_of(run, path, index: int) -> tuple:
    """(context, reference ids) of example `index` of `path`: the inputs off the generated axis
    (an image, a source sentence) condition the generation; the index input on that axis other
    than the fed one (the target) is the reference, or None when there is not exactly one."""
    from ..training import optim, train
    job = train.prepare(run.source, path, run.info["dims"], run.model.backend, run.info,
                        optim.Settings(**run.info["settings"]), hold_out=False)
    examples = job.train.examples
    if not 0 <= index < len(examples):
        raise DataError(f"{path} has {len(examples)} examples; --index {index} is not one of them",
                        "--index counts from 0")
    spec = run.model.spec
    fed = spec.generate.feed[0][0]
    axis = next(i.axis for i in spec.inputs if i.name == fed)
    example = examples[index]
    context = {i.name: example[i.name] for i in spec.inputs if i.axis != axis}
    targets = [i.name for i in spec.inputs if i.axis == axis and i.name != fed and i.type.kind is Kind.INDEX]
    return context, (example[targets[0]] if len(targets) == 1 else None)
