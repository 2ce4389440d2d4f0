"""Which spec a checkpoint belongs to, and what differs when it is another.

    ir.Model                 --spec_text / spec_hash-->  the IR lines that give parameters their meaning
    shapes, ir.Model         --param_differences---->   one line per missing, extra or reshaped parameter
    trained text, run text   --edited--------------->   DataError naming the top-level keys that changed

The IR hash says whether a checkpoint fits a spec at all (dims, parameters, equations); the
whole text of a run's spec.yaml, recorded in the checkpoint, says whether it is the spec the
run was trained from (checkpoint.check_source): any edit, even of `name:` or a comment, is refused.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib

import yaml

from . import ir
from ..core.errors import DataError


def spec_text(model: ir.Model) -> str:
    """The parts of the IR that fix the parameters and their meaning: dims, inputs, params
    (name and shape), states, typed equations, loss, outputs. Not the name, file path, doc,
    comments, initialisers, train or generate settings."""
    anonymous = dataclasses.replace(model, name="", path="")   # a name or path may hold a line break
    lines = ir.pretty(anonymous).split("\n")[1:]              # line 0 names the model and its path
    return "\n".join(_drop_init(line) for line in lines) + "\n"


def _drop_init(line: str) -> str:
    return line.rsplit(" = ", 1)[0] if line.startswith("param ") else line


def spec_hash(model: ir.Model) -> str:
    """sha256 (hex) of `spec_text`: equal for specs that differ only in layout or comments."""
    return hashlib.sha256(spec_text(model).encode()).hexdigest()


def spec_meta(model: ir.Model) -> dict:
    """The metadata `load` compares against a model: put it in every checkpoint's `meta`."""
    return {"spec_hash": spec_hash(model), "spec_text": spec_text(model), "spec_name": model.name}


# ---- another spec ------------------------------------------------------------------------------

def param_differences(shapes: dict, model: ir.Model) -> list:
    """One line per parameter missing from `shapes` (name -> shape), extra, or of another shape."""
    want = {p.name: p for p in model.params}
    out = [f"{name}: in the spec as {want[name].type}, missing from the checkpoint"
           for name in want if name not in shapes]
    out += [f"{name}: in the checkpoint {list(shapes[name])}, not in the spec"
            for name in shapes if name not in want]
    out += [f"{name}: {list(shapes[name])} in the checkpoint, {want[name].type} in the spec"
            for name in want if name in shapes and tuple(shapes[name]) != want[name].type.dims]
    return out


def ir_differences(old, model: ir.Model, limit: int = 8) -> list:
    """The parameters match: show the IR lines that differ, when the checkpoint kept its text."""
    if not isinstance(old, str):
        return ["the parameters match, but the equations or dims differ (the spec hash changed)"]
    diff = difflib.unified_diff(old.splitlines(), spec_text(model).splitlines(), lineterm="", n=0)
    lines = [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    labelled = [("checkpoint: " if line[0] == "-" else "this spec: ") + line[1:] for line in lines]
    return ["the parameters match, but these lines of the IR differ: " + "; ".join(labelled[:limit])]


def other_spec(path: str, name, model: ir.Model, differences: list) -> DataError:
    named = f" ({name}, not {model.name})" if isinstance(name, str) and name != model.name else ""
    return DataError(f"checkpoint {path} was written for another spec{named}: {'; '.join(differences)}",
                     "resume with the spec the run was trained with, or start a new run with another --out")


# ---- an edited spec.yaml -----------------------------------------------------------------------

def edited(spec_path: str, ckpt_path: str, old: str, new: str) -> DataError:
    """The error for a run whose spec.yaml is not the text its checkpoint was trained from."""
    keys = changed_keys(old, new)
    what = "its text changed (it is no longer a YAML mapping)" if keys is None else \
        (", ".join(f"`{k}`" for k in keys) if keys else "a comment or the layout") + " changed"
    line = first_difference(old, new)
    return DataError(f"{spec_path} was edited after training: {what}; the checkpoint {ckpt_path} "
                     f"was trained from other text (line {line[0]}: trained {line[1]!r:.80}, now {line[2]!r:.80})",
                     "rnndsl refuses a run whose spec changed; restore spec.yaml as it was trained, "
                     "or train a new run from the edited spec")


def changed_keys(old: str, new: str) -> list | None:
    """The top-level YAML keys whose text differs (added, removed or changed), in order; None
    when either text is not a YAML mapping. Compares the source text of each key and its value, so
    aliases and huge scalars cost no more than their text."""
    a, b = _sections(old), _sections(new)
    if a is None or b is None:
        return None
    return [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]


def _sections(text: str) -> dict | None:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError, ValueError):
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    return {str(k.value) if isinstance(k, yaml.ScalarNode) else f"line {k.start_mark.line + 1}":
            text[k.start_mark.index:v.end_mark.index] for k, v in node.value}


def first_difference(old: str, new: str) -> tuple:
    """(line number, the line as trained, the line now) of the first line that differs."""
    a, b = old.split("\n"), new.split("\n")
    for number, (x, y) in enumerate(zip(a, b), 1):
        if x != y:
            return number, x, y
    number = min(len(a), len(b)) + 1
    return number, a[number - 1] if number <= len(a) else "", b[number - 1] if number <= len(b) else ""
