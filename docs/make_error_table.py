"""Regenerate the error table of docs/language.md by triggering every error for real.

    python docs/make_error_table.py            # print the table (Markdown)
    python docs/make_error_table.py --json     # every case with the full stderr
    python docs/make_error_table.py --write    # replace the table in docs/language.md

Each case is a small spec (a base spec with one edit) or a command line. The script runs
the `rnndsl` command line on it (in this process) and records the first diagnostic's message
and hint, so the table quotes what the checker prints today. A case that exits 0, prints no error or prints a
traceback is reported on stderr and makes the script exit 1.
"""
import contextlib
import io
import json
import os
import re
import sys
import tempfile
import traceback

from rnndsl.tools.cli import main as rnndsl

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "language.md")
BEGIN, END = "<!-- error-table -->", "<!-- /error-table -->"

BASE = """\
name: t
dims: {V: 4, H: 8}
inputs:
  x: {onehot: V, axis: t}
  target: {index: V, axis: t}
params:
  W: {shape: [H, V]}
  U: {shape: [H, H]}
  b: {shape: [H]}
  Wy: {shape: [V, H]}
state:
  h: {init: zeros}
equations: |
  h[t] = tanh(W @ x[t] + U @ h[t-1] + b)
  y[t] = Wy @ h[t]
loss: mean_t cross_entropy(y[t], target[t])
"""

TWO_AXES = """\
name: t2
dims: {V: 4, H: 8}
inputs:
  src: {onehot: V, axis: s}
  tgt: {onehot: V, axis: t}
  out: {index: V, axis: t}
params:
  E: {shape: [H, V]}
  U: {shape: [H, H]}
  Wy: {shape: [V, H]}
state:
  dec:
    init: enc[end]
equations: |
  enc[s] = tanh(E @ src[s] + U @ enc[s-1])
  dec[t] = tanh(E @ tgt[t] + U @ dec[t-1])
  y[t] = Wy @ dec[t]
loss: mean_t cross_entropy(y[t], out[t])
"""

EQ = "  h[t] = tanh(W @ x[t] + U @ h[t-1] + b)\n  y[t] = Wy @ h[t]\n"
LOSS = "loss: mean_t cross_entropy(y[t], target[t])\n"


def sub(old, new, base=BASE):
    assert old in base, old
    return base.replace(old, new, 1)


def add(text, base=BASE):
    return base + text


# (group, trigger shown in the table, spec text or ("cli", args), meaning and fix)
CASES = [
    # ---- the file and YAML ---------------------------------------------------------------
    ("file", "`rnndsl check nosuch.yaml`", ("cli", ["check", "nosuch.yaml"]),
     "The path is wrong."),
    ("file", "an empty file", "", "The file has no content."),
    ("file", "`- h[t] = ...` (a list at the top)", "- a\n- b\n",
     "The top level is a mapping of sections."),
    ("file", "`param:` at the top level", sub("params:", "param:"),
     "Sections are name, doc, dims, inputs, params, state, equations, loss, outputs, generate, train."),
    ("file", "`b` given twice under `params:`", sub("  Wy: {shape: [V, H]}\n", "  Wy: {shape: [V, H]}\n  b: {shape: [H]}\n"),
     "Each key appears once per mapping; merge the two entries."),
    ("file", "`init: normal(0, 1)` inside `{...}`",
     sub("  W: {shape: [H, V]}", "  W: {shape: [H, V], init: normal(0, 1)}"),
     "Inside `{...}` a comma ends the value."),
    ("file", "`init: enc[end]` inside `{...}`",
     sub("  dec:\n    init: enc[end]\n", "  dec: {init: enc[end]}\n", TWO_AXES),
     "Inside `{...}` brackets are YAML syntax; use block style: `dec:` then `init: enc[end]` on the next line."),
    ("file", "`{shape: [H, V]` (no `}`)", sub("  W: {shape: [H, V]}", "  W: {shape: [H, V]"),
     "A flow mapping or list is not closed."),
    ("file", "a tab before `h[t] = ...` in the equations block",
     sub("  y[t] = Wy @ h[t]\n", "\ty[t] = Wy @ h[t]\n"),
     "A tab in indentation."),
    ("file", "a key indented one space too far", sub("  U: {shape: [H, H]}", "   U: {shape: [H, H]}"),
     "YAML could not match the indentation."),
    ("file", "`<<: *defaults`",
     sub("params:\n", "params:\n  <<: {Q: {shape: [H]}}\n"), "Write each entry out; anchors and merges are not used in specs."),
    ("file", "`init: !!python/str zeros`", sub("  W: {shape: [H, V]}", "  W: {shape: [H, V], init: !!python/str zeros}"),
     "Tags construct objects; specs do not use them."),
    ("file", "`doc: Note: a colon`", sub("name: t", "name: t\ndoc: Note: a colon"),
     "`: ` inside a plain value starts a mapping; write `doc: >` and the text on the next lines."),
    ("file", "`name: \"t` (no closing quote)", sub("name: t", "name: \"t"), "A quoted value runs to the end of the file."),
    ("file", "a second document after `---`", add("---\nname: u\n"), "One spec per file."),
    # ---- dims --------------------------------------------------------------------------------
    ("dims", "`dims: {V: 4, H: 0}`", sub("H: 8}", "H: 0}"), "A size is at least 1."),
    ("dims", "`dims: {V: 4, H: 2.5}`", sub("H: 8}", "H: 2.5}"), "A size is a whole number."),
    ("dims", "`dims: {V: 4, H: 2*Q}`", sub("H: 8}", "H: 2*Q}"), "A size uses a name that is not a dim; dims may only use dims declared before them."),
    ("dims", "`dims: {V: 4, H: V/3}`", sub("H: 8}", "H: V/3}"), "`/` in a size must divide exactly; change the dims."),
    ("dims", "`shape: [H, 2.5*V]`", sub("  b: {shape: [H]}", "  b: {shape: [2.5*V]}"), "A number in a size expression is not whole."),
    ("dims", "`H-1: 3` as a dim name", sub("dims: {V: 4, H: 8}", "dims: {V: 4, H: 8, H-1: 3}"),
     "A dim name is not a name."),
    ("dims", "`rnndsl check SPEC --set Q=3`", ("cli", ["check", "SPEC", "--set", "Q=3"]),
     "`--set` names a dim the spec does not declare (names are case-sensitive)."),
    ("dims", "`rnndsl check SPEC --set H=1.5`", ("cli", ["check", "SPEC", "--set", "H=1.5"]),
     "An override is a whole number."),
    ("dims", "`rnndsl check SPEC --set H`", ("cli", ["check", "SPEC", "--set", "H"]),
     "The override lacks `=`."),
    # ---- inputs ------------------------------------------------------------------------------
    ("inputs", "`x: {onehot: V, float: [V], axis: t}`", sub("x: {onehot: V, axis: t}", "x: {onehot: V, float: [V], axis: t}"),
     "An input has one kind: float, onehot or index."),
    ("inputs", "`x: {onehot: [V, V], axis: t}`", sub("x: {onehot: V, axis: t}", "x: {onehot: [V, V], axis: t}"),
     "onehot and index take the number of classes; only float takes a shape list."),
    ("inputs", "`x: {onehot: V, axis: 1}`", sub("x: {onehot: V, axis: t}", "x: {onehot: V, axis: 1}"),
     "An axis is a name, not a number."),
    ("inputs", "`x: {onehot: V, axes: t}`", sub("x: {onehot: V, axis: t}", "x: {onehot: V, axes: t}"),
     "A misspelt field."),
    ("inputs", "`inputs: [x, target]`", sub("inputs:\n  x: {onehot: V, axis: t}\n  target: {index: V, axis: t}\n", "inputs: [x, target]\n"),
     "inputs, params, state and dims are mappings `name: entry`."),
    ("inputs", "`dims: {V: 4, H: 8, t: 3}` with inputs on axis t", sub("dims: {V: 4, H: 8}", "dims: {V: 4, H: 8, t: 3}"),
     "Axis names must differ from dims, ops and `end`."),
    # ---- params --------------------------------------------------------------------------------
    ("params", "`b: {init: zeros}`", sub("  b: {shape: [H]}", "  b: {init: zeros}"), "`shape:` is required."),
    ("params", "`W: [H, V]`", sub("  W: {shape: [H, V]}", "  W: [H, V]"), "A param entry is a mapping: `W: {shape: [H, V]}`."),
    ("params", "`init: gaussian(0.1)`", sub("  W: {shape: [H, V]}", "  W: {shape: [H, V], init: gaussian(0.1)}"),
     "Not an initialiser."),
    ("params", "`b: {shape: [H], init: orthogonal}`", sub("  b: {shape: [H]}", "  b: {shape: [H], init: orthogonal}"),
     "orthogonal needs a matrix."),
    ("params", "`shape: [65536, 65536]`", sub("  b: {shape: [H]}", "  b: {shape: [65536, 65536]}"),
     "A parameter may have at most 2^30 entries."),
    ("params", "a param named `x` (an input's name)", sub("  b: {shape: [H]}", "  x: {shape: [H]}"),
     "Every name is declared once across dims, inputs, params and equations."),
    ("params", "a param named `tanh`", sub("  b: {shape: [H]}", "  tanh: {shape: [H]}"),
     "Op names are reserved."),
    ("params", "a param named `t` (an axis)", sub("  b: {shape: [H]}", "  t: {shape: [H]}"),
     "Axis names are reserved."),
    ("params", "a param named `sum_w`", sub("  b: {shape: [H]}", "  sum_w: {shape: [H]}"),
     "Such names would lex as reductions."),
    ("params", "a param named `end`", sub("  b: {shape: [H]}", "  end: {shape: [H]}"),
     "`end` is the last step of a sequence."),
    ("params", "`init: 0.1`", sub("  W: {shape: [H, V]}", "  W: {shape: [H, V], init: 0.1}"),
     "A number is not an initialiser: write constant(0.1)."),
    ("params", "`init: normal(0, 1, 2)`", sub("  W: {shape: [H, V]}", "  W:\n    shape: [H, V]\n    init: normal(0, 1, 2)"),
     "Each initialiser takes the listed number of arguments."),
    ("params", "`init: normal(H)`", sub("  W: {shape: [H, V]}", "  W: {shape: [H, V], init: normal(H)}"),
     "Initialiser arguments are plain numbers (not dims)."),
    ("params", "`init: normal(-1)`", sub("  W: {shape: [H, V]}", "  W: {shape: [H, V], init: normal(-1)}"),
     "A standard deviation is not negative."),
    # ---- state ---------------------------------------------------------------------------------
    ("state", "`state: {z: {init: zeros}}`", sub("  h: {init: zeros}", "  z: {init: zeros}"),
     "A state names a variable defined by an equation over an axis."),
    ("state", "a state for a static variable `m = mean_t h[t]`",
     sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  m = mean_t h[t]\n", sub("  h: {init: zeros}", "  h: {init: zeros}\n  m: {init: zeros}")),
     "Only sequences have a value before their first step."),
    ("state", "`h: {init: 0}`", sub("  h: {init: zeros}", "  h: {init: 0}"),
     "Write zeros, learned or an expression."),
    ("state", "`h: {init: ones}`", sub("  h: {init: zeros}", "  h: {init: ones}"),
     "Only `zeros` and `learned` are keywords; anything else is read as an expression. For an init of ones declare `h0: {shape: [H], init: ones}` and write `init: h0` (trained with the rest)."),
    ("state", "`h: {init: learned}` while a param `h_init` exists",
     sub("  b: {shape: [H]}", "  b: {shape: [H]}\n  h_init: {shape: [H]}", sub("  h: {init: zeros}", "  h: {init: learned}")),
     "A learned init is a parameter called `<var>_init`; rename the other one."),
    ("state", "`h: {initial: zeros}`", sub("  h: {init: zeros}", "  h: {initial: zeros}"),
     "State fields are init and shape."),
    ("state", "`dec: init: mean_s src[s]` ([V]) for a state of shape [H]",
     sub("    init: enc[end]", "    init: mean_s src[s]", TWO_AXES),
     "The init must have the variable's shape: project it (`W @ ...`)."),
    ("state", "`h: {shape: [V]}` while `h[t] = tanh(W @ x[t] + b)` gives [H]",
     sub("U @ h[t-1] + b", "b", sub("  h: {init: zeros}", "  h: {init: zeros, shape: [V]}")),
     "A declared state shape must match the equation."),
    # ---- equations: syntax ------------------------------------------------------------------
    ("syntax", "no `equations:` section", sub(EQ, "", BASE).replace("equations: |\n", ""),
     "Add the equations."),
    ("syntax", "`equations: 5`", sub("state:\n  h: {init: zeros}\n", "", sub("equations: |\n" + EQ, "equations: 5\n")), "Write `equations: |` and the lines below it."),
    ("syntax", "`h[t] = tanh(W @ x[t] + U @ h[t-1] + b` (no `)`)",
     sub("h[t-1] + b)", "h[t-1] + b"), "Close the bracket; a line continues while a bracket is open."),
    ("syntax", "`y[t] = Wy @ h[t])`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t])\n"),
     "A stray closing bracket."),
    ("syntax", "`y[t] == Wy @ h[t]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] == Wy @ h[t]\n"),
     "One `=` per equation."),
    ("syntax", "`y[t] = Wy h[t]` (operator missing)", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy h[t]\n"),
     "Two values side by side need an operator between them."),
    ("syntax", "`y{t} = Wy @ h{t}`", sub("  y[t] = Wy @ h[t]\n", "  y{t} = Wy @ h{t}\n"),
     "Time indices use square brackets."),
    ("syntax", "`y[t] = ` (nothing after `=`)", sub("  y[t] = Wy @ h[t]\n", "  y[t] =\n"), "Write the right-hand side."),
    ("syntax", "`y[t] = Wy ** h[t]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy ** h[t]\n"),
     "There is no power operator: write `h[t] * h[t]`."),
    ("syntax", "a `# comment` inside a `loss: |` block",
     sub(LOSS, "loss: |\n  mean_t cross_entropy(y[t], target[t])  # per step\n"),
     "`#` is a comment only in `equations:`; in a `loss: |` block it is text. Move the comment out, or write the loss on one line, where YAML strips `  # ...`."),
    ("syntax", "`y[t] = Wy @ h[t]` written twice", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  y[t] = Wy @ h[t]\n"),
     "One equation per variable."),
    ("syntax", "`y[u] = Wy @ h[t]` (no axis u)", sub("  y[t] = Wy @ h[t]\n", "  y[u] = Wy @ h[t]\n"),
     "An axis exists once an input declares it."),
    ("syntax", "an expression nested more than 32 brackets deep", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ " + "(" * 65 + "h[t]" + ")" * 65 + "\n"),
     "Name inner parts as variables of their own."),
    # ---- names and time indices ------------------------------------------------------------
    ("names", "`y[t] = Wy @ hh[t]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ hh[t]\n"),
     "A typo or an undeclared name; the hint names the closest."),
    ("names", "`y[t] = Wy @ tanh`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ tanh\n"), "Call ops with parentheses."),
    ("names", "`y[t] = Wy @ h[t] + t`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t] + t\n"),
     "An axis is not a number; there is no step counter value."),
    ("names", "`y[t] = Wy @ h`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h\n"), "Read a sequence at a step."),
    ("names", "`y[t] = Wy[t] @ h[t]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy[t] @ h[t]\n"),
     "Parameters and static values take no index."),
    ("names", "`y[t] = Wy @ h(t)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h(t)\n"),
     "A variable is read with square brackets."),
    ("names", "`y[t] = Wy @ h[t-0.5]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t-0.5]\n"),
     "Offsets are whole steps."),
    ("names", "`y[t] = Wy @ h[2*t]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[2*t]\n"),
     "An index is t, t-k, t+k, end, end-k or a step number."),
    ("names", "`y[t] = Wy @ h[-t]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[-t]\n"),
     "An index counts forward from the axis."),
    ("names", "`y[t] = Wy @ h[t-V/3]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t-V/3]\n"),
     "Dim arithmetic in an index must be whole."),
    ("names", "`y[t] = Wy @ h[t-b]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t-b]\n"),
     "Only dims and numbers shift a time index."),
    ("names", "`y[t] = Wy @ h[end+1]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[end+1]\n"),
     "From the end, count back: end, end-1, ..."),
    ("names", "`y[t] = Wy @ h[-1]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[-1]\n"),
     "Step numbers count from 0; for the last step write end."),
    ("names", "`y[t] = Wy @ h[t+20000]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t+20000]\n"),
     "Offsets are limited to 10,000 steps."),
    ("names", "`y[t] = Wy @ h[t+1:t-1]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t+1:t-1]\n"),
     "Write the earlier step first; at most 1,000 steps."),
    ("names", "`y[t] = Wy @ h[0:3]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[0:3]\n"),
     "A window is relative to the current step: `h[t-k:t+k]`."),
    ("names", "`z[t] = m[t-1:t]` where `m[t] = mse(y[t], y[t])` is a number per step",
     sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  m[t] = mse(y[t], y[t])\n  z[t] = m[t-1:t]\n"),
     "Windows join vectors; wrap scalars first."),
    # ---- axes ---------------------------------------------------------------------------------
    ("axes", "`dec[t] = tanh(E @ tgt[t] + U @ enc[t])` (enc is over s)",
     sub("U @ dec[t-1])", "U @ enc[t])", TWO_AXES), "Read a variable on its own axis."),
    ("axes", "`dec[t] = tanh(E @ tgt[t] + U @ enc[s])`",
     sub("U @ dec[t-1])", "U @ enc[s])", TWO_AXES),
     "Another axis is reached through a static value (`enc[end]`, `mean_s enc[s]`) or by attention (section 4.8)."),
    ("axes", "`ctx[t] = a[t, s] * enc[s]` with `a[t, s]` defined",
     sub("  y[t] = Wy @ dec[t]\n", "  a[t, s] = dec[t] @ enc[s]\n  ctx[t] = a[t, s] * enc[s]\n  y[t] = Wy @ dec[t]\n", TWO_AXES),
     "A variable over two axes is read where both run: reduce over s (`sum_s a[t, s] * enc[s]`)."),
    ("axes", "`ctx[t] = sum_s a[t] * enc[s]`",
     sub("  y[t] = Wy @ dec[t]\n", "  a[t, s] = dec[t] @ enc[s]\n  ctx[t] = sum_s a[t] * enc[s]\n  y[t] = Wy @ dec[t]\n", TWO_AXES),
     "Read it with both indices, `a[t, s]`."),
    ("axes", "`a[t, s] = sum_s dec[t] @ enc[s]`",
     sub("  y[t] = Wy @ dec[t]\n", "  a[t, s] = sum_s dec[t] @ enc[s]\n  y[t] = Wy @ dec[t]\n", TWO_AXES),
     "s already runs in a variable over [t, s]; reduce where the variable is read."),
    ("axes", "`ctx[t] = softmax_s(dec[t])`",
     sub("  y[t] = Wy @ dec[t]\n", "  ctx[t] = softmax_s(dec[t])\n  y[t] = Wy @ dec[t]\n", TWO_AXES),
     "softmax_s normalises over the steps of s: in a variable over [t, s], inside sum_s, or in an equation over s."),
    ("axes", "`a[t, t] = dec[t] @ dec[t]`",
     sub("  y[t] = Wy @ dec[t]\n", "  a[t, t] = dec[t] @ dec[t]\n  y[t] = Wy @ dec[t]\n", TWO_AXES),
     "Self-attention declares the input on a second axis."),
    ("axes", "`a[t, s] = dec[t] @ dec[t]`",
     sub("  y[t] = Wy @ dec[t]\n", "  a[t, s] = dec[t] @ dec[t]\n  y[t] = Wy @ dec[t]\n", TWO_AXES),
     "A variable over [t, s] depends on both."),
    ("axes", "`m = Wy @ h[t]` (a static equation reading a step)",
     sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  m = Wy @ h[t]\n"), "Reduce over t or read h[end]."),
    ("axes", "`loss: cross_entropy(y[t], target[t])` (no reduction)", sub(LOSS, "loss: cross_entropy(y[t], target[t])\n"),
     "The loss is static: reduce with mean_t or sum_t."),
    ("axes", "`m = mean_q h[t]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  m = mean_q h[t]\n"),
     "The reduction's suffix names an axis."),
    ("axes", "`m = mean_t b`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  m = mean_t b\n"),
     "A reduction's body reads the sequence."),
    ("axes", "`loss: mean_t target[t]`", sub(LOSS, "loss: mean_t target[t]\n"), "Class indices are not numbers."),
    # ---- calls --------------------------------------------------------------------------------
    ("calls", "`dropout(h[t-1], 1.0)`", sub("U @ h[t-1]", "U @ dropout(h[t-1], 1.0)"),
     "p is the fraction dropped, in [0, 1)."),
    ("calls", "`dropout(h[t-1], 0.2, same=2)`", sub("U @ h[t-1]", "U @ dropout(h[t-1], 0.2, same=2)"),
     "same is 0 (a new mask each step) or 1 (one mask per sequence)."),
    ("calls", "`z[t] = split(h[t], 2)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  z[t] = split(h[t], 2)\n"),
     "split gives one variable per part: write the names on the left."),
    ("calls", "`a, b2 = tanh(h[t])`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  a, b2 = tanh(h[t])\n"),
     "Only split has several results."),
    ("calls", "`a, b2 = split(h[t], 4)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  a, b2 = split(h[t], 4)\n"),
     "The count is the number of names on the left."),
    ("calls", "`y[t] = Wy @ tanhh(h[t])`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ tanhh(h[t])\n"),
     "A misspelt op; the hint names the closest."),
    ("calls", "`y[t] = Wy @ h(t-1)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h(t-1)\n"),
     "Round brackets call ops; read variables with square brackets."),
    ("calls", "`y[t] = Wy @ tanh(h[t], h[t])`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ tanh(h[t], h[t])\n"),
     "Wrong number of arguments; the message shows the signature."),
    ("calls", "`clip(h[t])`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ clip(h[t])\n"), "clip needs lo and hi."),
    ("calls", "`clip(h[t], 0, hi=1, top=2)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ clip(h[t], 0, hi=1, top=2)\n"),
     "A keyword the op does not have."),
    ("calls", "`clip(h[t], 0, 1, hi=2)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ clip(h[t], 0, 1, hi=2)\n"),
     "An argument given both by position and by name."),
    ("calls", "`max(h[t], b)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ max(h[t], b)\n"),
     "min/max compare with a constant; max over time is max_t."),
    ("calls", "`maxpool2d(img, 2.5)`",
     sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  p = maxpool2d(img, 2.5)\n", sub("  target: {index: V, axis: t}\n", "  target: {index: V, axis: t}\n  img: {float: [1, 8, 8]}\n")),
     "Sizes, strides and padding are whole numbers."),
    ("calls", "`sample(y[t])` in an equation", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  z[t] = sample(y[t])\n"),
     "Sampling is generation's job: use generate: feed."),
    ("calls", "`loss: ctc(y[t], labels)`",
     sub(LOSS, "loss: ctc(y[t], labels)\n", sub("  target: {index: V, axis: t}\n", "  target: {index: V, axis: t}\n  labels: {index: V, axis: u}\n")),
     "ctc takes whole sequences by name."),
    ("calls", "`loss: ctc(y, b)` (b a parameter)",
     sub(LOSS, "loss: ctc(y, b)\n"), "Both arguments of ctc are sequences."),
    # ---- shapes -------------------------------------------------------------------------------
    ("shapes", "`h[t] = tanh(W @ x[t] + U @ h[t-1] + Wy)`", sub("h[t-1] + b)", "h[t-1] + Wy)"),
     "Elementwise operands have equal shapes (or one is a number)."),
    ("shapes", "`y[t] = h[t] @ Wy`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = h[t] @ Wy\n"),
     "The inner sizes of @ must agree: [m,n] @ [n]. Check the order of the operands."),
    ("shapes", "`z[t] = target[t] @ W`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  z[t] = target[t] @ W\n"),
     "An embedding lookup is written with the matrix first, `W @ target[t]`: W's column for the class."),
    ("shapes", "`z[t] = Wy @ target[t]` (Wy is [V, H])",
     sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  z[t] = Wy @ target[t]\n"),
     "`W @ w[t]` with a class index w looks up a column of W: W has one column per class."),
    ("shapes", "`z[t] = b @ target[t]`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  z[t] = b @ target[t]\n"),
     "Only a matrix can be indexed by a class."),
    ("shapes", "`m = sum(sum(b))`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  m = sum(sum(b))\n"),
     "sum, mean, max(x) and min(x) reduce a vector's entries; a number has none."),
    ("shapes", "`z[t] = slice(h[t], 0, 9)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  z[t] = slice(h[t], 0, 9)\n"),
     "slice(x, start, stop) keeps entries start..stop-1: whole numbers or dim expressions such as H/2."),
    ("shapes", "`m = slice(W, 0, 2)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  m = slice(W, 0, 2)\n"),
     "slice takes a vector."),
    ("shapes", "`a, b2, c = split(h[t], 3)` (h has 8 entries)",
     sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  a, b2, c = split(h[t], 3)\n"),
     "split makes equal parts: the size must be a multiple of the number of names."),
    ("shapes", "`a, b2 = split(W, 2)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  a, b2 = split(W, 2)\n"),
     "split takes a vector; its parts are vectors."),
    ("shapes", "`z[t] = tanh(target[t])`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  z[t] = tanh(target[t])\n"),
     "Index inputs feed losses and embedding lookups (`W @ target[t]`); declare onehot to compute with them as vectors."),
    ("shapes", "`conv2d(img, Wy)`",
     sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  p = conv2d(img, Wy)\n", sub("  target: {index: V, axis: t}\n", "  target: {index: V, axis: t}\n  img: {float: [1, 8, 8]}\n")),
     "conv2d takes an image [C, H, W] and filters [O, C, KH, KW]."),
    ("shapes", "`conv2d(img, K)` with 1 channel, filters for 3",
     sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  p = conv2d(img, K)\n", sub("  target: {index: V, axis: t}\n", "  target: {index: V, axis: t}\n  img: {float: [1, 8, 8]}\n", sub("  b: {shape: [H]}", "  b: {shape: [H]}\n  K: {shape: [4, 3, 3, 3]}"))),
     "The filters' second size is the image's channel count."),
    ("shapes", "`conv2d(img, K, stride=1, pad=0)` with 9x9 filters on an 8x8 image",
     sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  p = conv2d(img, K)\n", sub("  target: {index: V, axis: t}\n", "  target: {index: V, axis: t}\n  img: {float: [1, 8, 8]}\n", sub("  b: {shape: [H]}", "  b: {shape: [H]}\n  K: {shape: [4, 1, 9, 9]}"))),
     "Pad, or use a smaller window."),
    ("shapes", "`maxpool2d(b)` on a vector", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  p = maxpool2d(b)\n"),
     "maxpool2d takes [C, H, W]."),
    ("shapes", "`concat(b, U)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  p = concat(b, U)\n"),
     "Concatenated values agree beyond their first axis."),
    ("shapes", "`concat(b, 1)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  p = concat(b, 1)\n"),
     "concat joins vectors, not numbers."),
    ("shapes", "`softmax(1)`", sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  p = softmax(1)\n"),
     "softmax and log_softmax take vectors."),
    ("shapes", "`loss: mean_t cross_entropy(h[t], target[t])` ([H] scores, V classes)",
     sub(LOSS, "loss: mean_t cross_entropy(h[t], target[t])\n"), "Project to as many scores as classes."),
    ("shapes", "`cross_entropy(y[t], z[t])` with z floats",
     sub(LOSS, "loss: mean_t cross_entropy(y[t], y[t])\n"), "Class targets are `{index: K}` (or onehot); real targets use mse."),
    ("shapes", "`cross_entropy(W, target[t])` (a matrix of scores)",
     sub(LOSS, "loss: mean_t cross_entropy(W, target[t])\n"), "Scores are a vector [K]."),
    ("shapes", "`mse(y[t], h[t])`", sub(LOSS, "loss: mean_t mse(y[t], h[t])\n"), "mse compares equal shapes."),
    ("shapes", "`ctc(y, labels, blank=9)` with 4 classes",
     sub(LOSS, "loss: ctc(y, labels, blank=9)\n", sub("  target: {index: V, axis: t}\n", "  target: {index: V, axis: t}\n  labels: {index: V, axis: u}\n")),
     "The blank is one of the K classes."),
    ("shapes", "`h[t] = tanh(h[t-1])` alone",
     sub("  h[t] = tanh(W @ x[t] + U @ h[t-1] + b)\n", "  h[t] = tanh(h[t-1])\n"),
     "Nothing fixes h's shape: add `state: {h: {shape: [H]}}` or a term such as `W @ x[t]`."),
    ("shapes", "`loss: mean_t y[t]`", sub(LOSS, "loss: mean_t y[t]\n"), "The loss is one number per sequence."),
    ("shapes", "`loss:` missing", sub(LOSS, ""), "Add a loss."),
    # ---- time graph -----------------------------------------------------------------------
    ("cycles", "`h[t] = tanh(W @ x[t] + U @ h[t] + b)`", sub("U @ h[t-1]", "U @ h[t]"),
     "A value cannot need itself at the same step: read it at t-1 (or t+1)."),
    ("cycles", "`a[t] = ... b[t]`, `b[t] = ... a[t]`",
     sub("  y[t] = Wy @ h[t]\n", "  y[t] = Wy @ h[t]\n  a[t] = tanh(W @ x[t] + U @ c[t])\n  c[t] = tanh(U @ a[t])\n"),
     "The same through two equations."),
    ("cycles", "`h[t] = tanh(W @ x[t] + U @ h[t-1] + U @ h[t+1] + b)`", sub("U @ h[t-1] + b", "U @ h[t-1] + U @ h[t+1] + b"),
     "One recurrence runs one way; a bidirectional layer is two variables."),
    ("cycles", "`m = mean_t h[t]` read back by `h[t]`",
     sub("  h[t] = tanh(W @ x[t] + U @ h[t-1] + b)\n  y[t] = Wy @ h[t]\n", "  h[t] = tanh(W @ x[t] + U @ h[t-1] + m)\n  m = mean_t h[t]\n  y[t] = Wy @ h[t]\n"),
     "A summary of a sequence cannot feed that sequence."),
    # ---- outputs, generate, train -----------------------------------------------------------
    ("sections", "`outputs: [yy]`", add("outputs: [yy]\n"), "Outputs name variables."),
    ("sections", "`generate: {feed: {img: y}}` (img static)",
     add("generate: {feed: {img: y}}\n", sub("  target: {index: V, axis: t}\n", "  target: {index: V, axis: t}\n  img: {float: [1, 8, 8]}\n")),
     "feed names a sequence input on the left."),
    ("sections", "`generate: {feed: {x: W}}`", add("generate: {feed: {x: W}}\n"), "feed's right side is a sequence variable."),
    ("sections", "`generate: {feed: {x: h}}` (h has H entries, x takes V classes)", add("generate: {feed: {x: h}}\n"),
     "Feed class scores with as many entries as the input has classes."),
    ("sections", "`generate: {feed: {x: y}, max_len: 0}`", add("generate: {feed: {x: y}, max_len: 0}\n"), "1 to 100,000."),
    ("sections", "`generate: {feed: {x: y}, length: 9}`", add("generate: {feed: {x: y}, length: 9}\n"),
     "generate keys: feed, max_len, start, stop, temperature."),
    ("sections", "`generate: {feed: {x: y}, start: true}`", add("generate: {feed: {x: y}, start: true}\n"),
     "YAML reads `true` as a boolean: quote tokens, `start: \"true\"`."),
    ("sections", "`generate: {feed: {x: y}, temperature: -1}`", add("generate: {feed: {x: y}, temperature: -1}\n"),
     "A temperature is 0 or more."),
    ("sections", "`train: {lr: fast}`", add("train: {lr: fast}\n"), "Each train key has a type; rates and counts are positive."),
    ("sections", "`train: {epochs: 2.5}`", add("train: {epochs: 2.5}\n"), "Counts are whole."),
    ("sections", "`train: {optimiser: adam}`", add("train: {optimiser: adam}\n"), "A misspelt key."),
    ("sections", "`name: [a, b]`", sub("name: t", "name: [a, b]"), "name and doc are text."),
    ("cli", "`rnndsl graph SPEC --unroll x`", ("cli", ["graph", "SPEC", "--unroll", "x"]),
     "A number, or axis=number pairs."),
    ("cli", "`rnndsl graph SPEC --unroll s=3` (spec over t)", ("cli", ["graph", "SPEC", "--unroll", "s=3"]),
     "Name each axis of the spec once, 1 to 1000 steps."),
]


TITLES = {"file": "The file and YAML", "dims": "Dims", "inputs": "Inputs", "params": "Params",
          "state": "State", "syntax": "Equations: syntax", "names": "Names and time indices",
          "axes": "Axes and reductions", "calls": "Calls", "shapes": "Shapes and types",
          "cycles": "Cycles", "sections": "Outputs, generate, train", "cli": "Command line"}


def cell(text: str) -> str:
    """Markdown written for a table cell: a `|`, even inside a code span, must be escaped."""
    return text.replace("|", "\\|")


def code(text: str) -> str:
    """`text` as a Markdown code span, safe inside a table cell."""
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def run(case):
    group, trigger, spec, fix = case
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "spec.yaml")
        with open(path, "w") as f:
            f.write(BASE if isinstance(spec, tuple) else spec)
        args = [path if a == "SPEC" else a for a in spec[1]] if isinstance(spec, tuple) else ["check", path]
        rc, err = _call(args, d)
    err = err.replace(path, "spec.yaml")
    first = next((l for l in err.splitlines() if "error:" in l), "")
    msg = first.split("error: ", 1)[1] if first else ""
    hint = next((l[6:] for l in err.splitlines() if l.startswith("hint: ")), "")
    where = re.match(r"spec\.yaml:(\d+):(\d+)", first)
    return dict(group=group, trigger=trigger, fix=fix, rc=rc, message=msg, hint=hint,
                where=where.groups() if where else None, stderr=err, traceback="Traceback" in err)


def _call(args: list, cwd: str) -> tuple:
    """Run the command line in `cwd`: (exit status, what it printed on stderr)."""
    err, here = io.StringIO(), os.getcwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = rnndsl(args)
    except SystemExit as exc:
        rc = exc.code
    except Exception:                         # a checker bug: keep the traceback to report it
        err.write(traceback.format_exc())
        rc = 1
    finally:
        os.chdir(here)
    return rc, err.getvalue()


def markdown(results) -> str:
    out, group = [], None
    for r in results:
        if r["group"] != group:
            group = r["group"]
            out += ["", f"### {TITLES[group]}", "", "| Message (after `error:`) | Example | Meaning and fix |",
                    "| --- | --- | --- |"]
        out.append(f"| {code(r['message'])} | {cell(r['trigger'])} | {cell(r['fix'])}"
                   + (f" Hint: {code(r['hint'])}" if r["hint"] else "") + " |")
    return "\n".join(out[1:])


def main() -> int:
    results = [run(c) for c in CASES]
    broken = [r for r in results if r["rc"] == 0 or not r["message"] or r["traceback"]]
    for r in broken:
        print(f"case {r['trigger']!r} did not give an error message:\n{r['stderr']}", file=sys.stderr)
    if "--json" in sys.argv:
        json.dump(results, sys.stdout, indent=1)
    elif "--write" in sys.argv and broken:
        print(f"{DOC} left as it is", file=sys.stderr)
    elif "--write" in sys.argv:
        doc = open(DOC).read()
        head, rest = doc.split(BEGIN)
        tail = rest.split(END)[1] if END in rest else rest
        open(DOC, "w").write(f"{head}{BEGIN}\n{markdown(results)}\n{END}{tail}")
    else:
        print(markdown(results))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
