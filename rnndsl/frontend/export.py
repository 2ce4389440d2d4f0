"""The `export:` section: how a run's parameters map onto another library's names.

    export:
      torch:                                         # a state_dict for torch.nn.LSTM + nn.Linear
        lstm.weight_ih_l0: [W_i, W_f, W_g, W_o]      # parameters stacked along their first axis
        lstm.weight_hh_l0: [U_i, U_f, U_g, U_o]
        lstm.bias_ih_l0: [b_i, b_f, b_g, b_o]
        lstm.bias_hh_l0: {zeros: [b_i, b_f, b_g, b_o]}   # zeros of that stack's shape
        out.weight: W_y
        out.bias: b_y

Each entry names one array of the target: a parameter, parameters stacked in order along their
first axis, or zeros shaped like such a stack. `rnndsl export RUN --format torch` writes them
(tools/weights.py); the checker makes sure every name is a parameter and every stack stacks.
"""
from __future__ import annotations

from . import ir
from .spec import fields, mapping

TARGETS = ("torch",)


def check_export(node, params: dict, errs, declared=frozenset()) -> tuple:
    """((target, ((name, (params...), zeros), ...)), ...) from the section, mistakes reported;
    `declared`: parameters whose own declaration failed (reported there, not again here)."""
    if node is None:
        return ()
    out = []
    for target, entries in (fields(node, "export", TARGETS, "{torch: {name: [W_a, W_b]}}", errs) or {}).items():
        if target in TARGETS:
            out.append((target, tuple(e for e in (_entry(name, value, params, errs, declared)
                                                  for name, value in mapping(entries, f"export: {target}", errs).items())
                                      if e is not None)))
    return tuple(out)


def _entry(name: str, value, params: dict, errs, declared):
    zeros = value.is_map
    if zeros:
        f = fields(value, f"export: {name}", ("zeros",), "{zeros: [b_a, b_b]}", errs)
        if not f or "zeros" not in f:
            return None
        value = f["zeros"]
    names = [v.value for v in value.value] if value.is_list else [value.value]
    missing = next((n for n in names if n not in params), None)
    if missing in declared:
        return None                       # its declaration's own error says what is wrong
    if missing is not None:
        from ..core.errors import did_you_mean
        errs.add(value.pos, f"export: {name}: {missing!r} is not a parameter", did_you_mean(str(missing), params)
                 or "list the spec's parameters, stacked in the order the target expects")
        return None
    tails = {params[n].type.dims[1:] for n in names}
    if len(tails) > 1:
        errs.add(value.pos, f"export: {name}: {', '.join(names)} do not stack: their shapes past the first axis differ",
                 "stack parameters of the same shape but for their first axis")
        return None
    return name, tuple(names), zeros


def stacked(model: ir.Model, target: str, params: dict) -> dict:
    """The target's arrays from `params` (NumPy arrays by parameter name)."""
    import numpy as np
    entries = dict(model.export).get(target)
    if entries is None:
        from ..core.errors import DataError
        raise DataError(f"{model.name} says nothing about {target}'s names (its spec has no export: {target} section)",
                        "add export: {torch: {name: [params...]}} to the spec (docs/api.md)")
    out = {}
    for name, names, zeros in entries:
        stack = np.concatenate([np.atleast_1d(params[n]) for n in names]) if len(names) > 1 else np.asarray(params[names[0]])
        out[name] = np.zeros_like(stack) if zeros else stack
    return out
