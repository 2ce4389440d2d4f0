"""Expression text -> AST with source spans (a lark LALR grammar).

Three entry points share one grammar: `parse_equations` (the equations block),
`parse_expr` (loss:, state inits, param inits) and `parse_dim` (shapes such as
`F*(2*C+1)`). Every AST node carries the `SourcePos` of its text in the YAML file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ..core.errors import SourcePos, SpecError
from .spec import YNode

MAX_DEPTH = 32          # nesting of parentheses and calls
MAX_OPERATORS = 100     # per expression; with MAX_DEPTH this bounds the AST depth (recursion)
MAX_EQUATION_CHARS = 20_000
_TARGET = re.compile(r"^\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*(?:\[[^\]]*\])?\s*=",
                     re.MULTILINE)                                      # `h[t] =`, `e[t, s] =`, `i, f =`
_OPERATOR = re.compile(r"[-+*/@]|\b(sum|mean|max|min)_[A-Za-z]")

GRAMMAR = r"""
equation: NAME ("[" NAME ("," NAME)? "]")? "=" expr
    | NAME ("," NAME)+ "=" expr -> split_equation

?expr: sum
?sum: term
    | sum "+" term        -> add
    | sum "-" term        -> sub
?term: factor
    | term "*" factor     -> mul
    | term "/" factor     -> div
    | term "@" factor     -> matmul
?factor: atom
    | "-" factor          -> neg
    | REDUCER term        -> reduce
?atom: NUMBER             -> number
    | NAME                -> name
    | NAME "[" index "]"  -> indexed
    | NAME "[" dimexpr "," dimexpr "]" -> indexed2
    | NAME "(" [args] ")" -> call
    | "(" expr ")"
args: arg ("," arg)*
?arg: expr
    | NAME "=" expr       -> kwarg

?index: dimexpr
    | dimexpr ":" dimexpr -> window

?dimexpr: dimterm
    | dimexpr "+" dimterm -> dadd
    | dimexpr "-" dimterm -> dsub
?dimterm: dimatom
    | dimterm "*" dimatom -> dmul
    | dimterm "/" dimatom -> ddiv
?dimatom: NUMBER          -> dnum
    | NAME                -> dname
    | "-" dimatom         -> dneg
    | "(" dimexpr ")"

REDUCER.2: /(sum|mean|max|min)_[A-Za-z][A-Za-z0-9]*(?![A-Za-z0-9_])/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/
%ignore /[ \t\f\r\n]+/
"""


# ---- AST -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    pos: SourcePos


@dataclass(frozen=True)
class Num(Node):
    value: float
    text: str


@dataclass(frozen=True)
class Name(Node):
    name: str


@dataclass(frozen=True)
class Indexed(Node):
    """`v[i]` or a window `v[lo:hi]`; the index stays a dim expression until checking."""
    name: str
    lo: "Node"
    hi: "Node | None" = None     # None unless a window
    inner: "Node | None" = None  # the second index of a variable over two axes: e[t, s]


@dataclass(frozen=True)
class Call(Node):
    fn: str
    args: tuple
    kwargs: tuple                # ((name, Node, pos), ...)


@dataclass(frozen=True)
class BinOp(Node):
    op: str                      # + - * / @
    lhs: Node
    rhs: Node


@dataclass(frozen=True)
class Neg(Node):
    operand: Node


@dataclass(frozen=True)
class Reduce(Node):
    fn: str                      # sum mean max min
    axis: str
    body: Node


@dataclass(frozen=True)
class Equation(Node):
    name: str
    axis: str | None
    expr: Node
    target_pos: SourcePos
    inner: str | None = None     # e[t, s] = ...: a variable over t whose every step is over s


@dataclass(frozen=True)
class SplitEquation(Node):
    """`i, f, o, g = split(z[t], 4)`: several variables from one vector (check.py expands it)."""
    names: tuple                 # ((name, pos), ...)
    expr: Node


@dataclass(frozen=True)
class SplitPart(Node):
    """Part `part` of `parts` equal parts of the vector `of`: the expression of one target of a
    SplitEquation, which only the checker makes."""
    of: Node
    parts: int
    part: int


# ---- parsing -------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _parser() -> Lark:
    return Lark(GRAMMAR, start=["equation", "expr", "dimexpr"], parser="lalr",
                propagate_positions=True, maybe_placeholders=False)


@dataclass(frozen=True)
class ParsedEquations:
    equations: list           # Equation or SplitEquation, in spec order
    errors: list              # SpecError, one per statement that did not parse
    broken: frozenset         # names those statements seem to define, so nothing else reports them


def parse_equations(node: YNode) -> ParsedEquations:
    """Parse an equations block (a string, one equation per logical line, or a list). Each
    statement is parsed on its own, so one syntax error hides none of the others."""
    if node.is_list:
        parts = [parse_equations(item) for item in node.value]
        return ParsedEquations([e for p in parts for e in p.equations], [e for p in parts for e in p.errors],
                               frozenset().union(*(p.broken for p in parts)))
    if not isinstance(node.value, str):
        raise SpecError.at(node.pos, "equations must be text, one equation per line",
                           "write `equations: |` and the equations indented below it")
    equations, errors, broken = [], [], set()
    for start, text in _statements(node.source_text):
        try:
            equations.append(_parse(node, start, text, "equation"))
        except SpecError as exc:
            errors.append(exc)
            broken.update(n.strip() for names in _TARGET.findall(text) for n in names.split(","))
    return ParsedEquations(equations, errors, frozenset(broken))


def parse_expr(node: YNode) -> Node:
    """Parse a single expression (loss:, a state init, a param init)."""
    return _parse(_scalar(node, "an expression"), 0, node.source_text, "expr")


def parse_dim(node: YNode) -> Node:
    """Parse a dim expression such as `F*(2*C+1)`."""
    return _parse(_scalar(node, "a size"), 0, node.source_text, "dimexpr")


def _scalar(node: YNode, what: str) -> YNode:
    if node.is_map or node.is_list:
        kind = "a mapping" if node.is_map else "a list"
        raise SpecError.at(node.pos, f"expected {what} here, found {kind}",
                           "YAML reads [...] as a list and {...} as a mapping; put the expression in quotes")
    return node


def _statements(text: str):
    """Split a block into logical lines: a line continues while brackets are open, when it
    ends with an operator, or when the next line starts with one. Yields (offset, text)."""
    text = _blank_comments(text)
    start, depth, offset = None, 0, 0
    lines = text.split("\n")
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped and start is None:
            start = offset
        depth += line.count("(") + line.count("[") - line.count(")") - line.count("]")
        nxt = next((l.strip() for l in lines[i + 1:] if l.strip()), "")
        continues = depth > 0 or (stripped and stripped[-1] in "+-*/@=,(") or (nxt and nxt[0] in "+-*/@),")
        offset += len(line) + 1
        if start is not None and not continues:
            yield start, text[start:offset - 1]
            start, depth = None, 0
    if start is not None:
        yield start, text[start:]


def _blank_comments(text: str) -> str:
    """Replace `# ...` comments by spaces, keeping every offset."""
    return "\n".join(l[:l.index("#")] + " " * (len(l) - l.index("#")) if "#" in l else l
                     for l in text.split("\n"))


def _parse(node: YNode, base: int, text: str, start: str) -> Node:
    pos_at = lambda a, b: node.pos_at(base + a, base + b)
    lead = len(text) - len(text.lstrip())
    if len(text) > MAX_EQUATION_CHARS:
        raise SpecError.at(pos_at(lead, lead + 1), f"expression is {len(text):,} characters; "
                           f"the limit is {MAX_EQUATION_CHARS:,}", "split it into several equations")
    _check_depth(text, pos_at)
    _check_operators(text, pos_at)
    if not text.strip():
        raise SpecError.at(node.pos, "expected an expression here, found nothing")
    try:
        tree = _parser().parse(text, start=start)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, pos_at) from None
    return _ToAst(pos_at).transform(tree)


def _check_depth(text: str, pos_at) -> None:
    depth = 0
    for i, ch in enumerate(text):
        depth += ch in "([" or -(ch in ")]")
        if depth > MAX_DEPTH:
            raise SpecError.at(pos_at(i, i + 1), f"expression nests deeper than {MAX_DEPTH} levels",
                               "name the inner parts as variables of their own")


def _check_operators(text: str, pos_at) -> None:
    for count, match in enumerate(_OPERATOR.finditer(text), 1):
        if count > MAX_OPERATORS:
            raise SpecError.at(pos_at(match.start(), match.start() + 1),
                               f"expression has more than {MAX_OPERATORS} operators",
                               "split it into several equations")


_TOKEN_NAMES = {"NAME": "a name", "NUMBER": "a number", "REDUCER": "a reduction such as sum_t",
                "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "EQUAL": "'='",
                "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "AT": "'@'",
                "COMMA": "','", "COLON": "':'", "$END": "the end of the line"}


def _syntax_error(exc: UnexpectedInput, text: str, pos_at) -> SpecError:
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        offset, width = exc.token.start_pos, max(1, len(exc.token))
        found = f"'{exc.token}'"
    elif isinstance(exc, UnexpectedCharacters):
        offset, width = exc.pos_in_stream, 1
        found = f"character '{text[offset]}'"
    else:
        offset, width = len(text.rstrip()), 1
        found = "end of the expression"
    unclosed = _unclosed_bracket(text, offset)
    if unclosed is not None and (found == "end of the expression" or "\n" in text[unclosed:offset]):
        return _unclosed_error(text, unclosed, pos_at)
    expected = sorted({_TOKEN_NAMES.get(t, t) for t in (getattr(exc, "expected", None)
                                                        or getattr(exc, "allowed", None) or ())})
    return SpecError.at(pos_at(offset, offset + width), f"syntax error: unexpected {found}",
                        _syntax_hint(text, offset, found, expected))


def _unclosed_bracket(text: str, offset: int) -> int | None:
    """The offset of the innermost bracket still open at `offset`, if any."""
    stack = []
    for i, ch in enumerate(text[:offset]):
        if ch in "([":
            stack.append(i)
        elif ch in ")]" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _unclosed_error(text: str, at: int, pos_at) -> SpecError:
    """An open bracket makes the statement run on to the end, so point at the bracket itself."""
    closer = ")" if text[at] == "(" else "]"
    return SpecError.at(pos_at(at, at + 1), f"syntax error: '{text[at]}' is never closed",
                        f"add the missing '{closer}'; a statement continues onto the next line "
                        "while a bracket is open")


def _syntax_hint(text: str, offset: int, found: str, expected: list[str]) -> str:
    if found == "'='" and "'='" not in expected:
        return "one equation per line: `name[t] = expression`; comparisons are not expressions"
    if found in ("')'", "']'") and _unclosed_bracket(text, offset) is None:
        return f"there is no opening bracket for this {found}"
    if found.startswith("character '{'"):
        return "index a variable by time as v[t], v[t-1], v[t-C:t+C], v[end]"
    if found.startswith("character"):
        return ("expressions are made of names, numbers, + - * / @, parentheses, calls such as "
                "tanh(x), time indices such as h[t-1] and reductions such as mean_t")
    if "'='" in expected and found != "end of the expression":
        return "an equation reads `h[t] = expression` (or `v = expression` for a static value)"
    if expected:
        shown = [e for e in expected if not e.isupper()][:6]
        return "expected " + ", ".join(shown) if shown else ""
    return ""


@v_args(meta=True)
class _ToAst(Transformer):
    """lark tree -> AST nodes, each located in the YAML file."""

    def __init__(self, pos_at):
        super().__init__()
        self.pos_at = pos_at

    def _pos(self, meta) -> SourcePos:
        return self.pos_at(meta.start_pos, meta.end_pos)

    def _tok(self, tok: Token) -> SourcePos:
        return self.pos_at(tok.start_pos, tok.end_pos)

    def equation(self, meta, c):
        axis = str(c[1]) if len(c) >= 3 else None
        inner = str(c[2]) if len(c) == 4 else None
        return Equation(self._pos(meta), str(c[0]), axis, c[-1], self._pos_of_target(c), inner)

    def split_equation(self, meta, c):
        return SplitEquation(self._pos(meta), tuple((str(n), self._tok(n)) for n in c[:-1]), c[-1])

    def _pos_of_target(self, c):
        first, last = c[0], c[-2]
        pos = self._tok(first)
        end = self._tok(last)
        return SourcePos(pos.source, pos.line, pos.col, end.end_line, end.end_col + (len(c) >= 3))

    def number(self, meta, c):
        return Num(self._pos(meta), float(c[0]), str(c[0]))

    def name(self, meta, c):
        return Name(self._pos(meta), str(c[0]))

    def indexed(self, meta, c):
        idx = c[1]
        if isinstance(idx, tuple):
            return Indexed(self._pos(meta), str(c[0]), idx[0], idx[1])
        return Indexed(self._pos(meta), str(c[0]), idx)

    def indexed2(self, meta, c):
        return Indexed(self._pos(meta), str(c[0]), c[1], inner=c[2])

    def window(self, meta, c):
        return (c[0], c[1])

    def call(self, meta, c):
        args = c[1].children if len(c) > 1 else []
        pos_args = tuple(a for a in args if not isinstance(a, tuple))
        kwargs = tuple(a for a in args if isinstance(a, tuple))
        return Call(self._pos(meta), str(c[0]), pos_args, kwargs)

    def kwarg(self, meta, c):
        return (str(c[0]), c[1], self._tok(c[0]))

    def neg(self, meta, c):
        return Neg(self._pos(meta), c[0])

    def reduce(self, meta, c):
        fn, axis = str(c[0]).split("_", 1)
        return Reduce(self._pos(meta), fn, axis, c[1])

    def _binop(self, meta, c, op):
        return BinOp(self._pos(meta), op, c[0], c[1])

    def add(self, meta, c): return self._binop(meta, c, "+")
    def sub(self, meta, c): return self._binop(meta, c, "-")
    def mul(self, meta, c): return self._binop(meta, c, "*")
    def div(self, meta, c): return self._binop(meta, c, "/")
    def matmul(self, meta, c): return self._binop(meta, c, "@")

    dadd, dsub, dmul, ddiv = add, sub, mul, div
    dnum, dname, dneg = number, name, neg
