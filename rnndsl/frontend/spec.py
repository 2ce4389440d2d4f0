"""YAML text -> a located tree (`YNode`), every node carrying its file position.

Only pyyaml's safe composer is used: a spec is data, no tag ever constructs an
object. Expressions stay strings here; `YNode.pos_at` maps an offset inside a
scalar (a block of equations, say) back to the file's own line and column.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from ..core import files, limits
from ..core.errors import Diagnostic, Diagnostics, Source, SourcePos, SpecError, did_you_mean
from .scalars import resolve_plain

MAX_NODES = 20_000
MAX_YAML_DEPTH = 32        # pyyaml composes recursively; a spec is four or five levels deep

TOP_LEVEL_KEYS = ("name", "doc", "dims", "inputs", "params", "state", "equations",
                  "loss", "outputs", "generate", "train", "export")


@dataclass(frozen=True)
class YNode:
    """A YAML value with its position: a dict of YNodes, a list of YNodes or a scalar.

    A scalar also keeps `text`, what the expression parser reads: the file's own characters
    where YAML leaves them alone (block, plain and simple quoted scalars), so every offset
    maps to an exact line and column. `text_at` is the file position of its first character;
    later lines of `text` begin at column 1 of the following file lines."""
    value: object
    pos: SourcePos
    text: str | None = field(default=None, compare=False, repr=False)
    text_at: tuple = field(default=(), compare=False, repr=False)       # (line, col)
    key_pos: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    @property
    def source_text(self) -> str:
        """The scalar as written, for parsing expressions (a `>` block keeps its lines)."""
        return self.text if self.text is not None else str(self.value)

    @cached_property
    def _row_starts(self) -> list:
        """The offset of each line's first character in `source_text`."""
        return [0] + [m.end() for m in re.finditer("\n", self.source_text)]

    def pos_at(self, start: int, end: int | None = None) -> SourcePos:
        """The file position of characters [start, end) of `source_text`."""
        line, col = self._locate(start)
        end_line, end_col = self._locate(end if end is not None else start + 1)
        return SourcePos(self.pos.source, line, col, end_line, end_col)

    def _locate(self, offset: int) -> tuple[int, int]:
        starts = self._row_starts
        offset = max(0, min(offset, len(self.source_text)))
        row = bisect_right(starts, offset) - 1        # a search, not a count over the whole block
        col_in_row = offset - starts[row]
        line, col = self.text_at or (self.pos.line, self.pos.col)
        return (line, col + col_in_row) if row == 0 else (line + row, 1 + col_in_row)


def read_text(path: str | Path) -> Source:
    """The spec file's text, or a SpecError naming what is wrong with the file: missing, not
    a regular file (a folder, a FIFO, /dev/zero), over limits.MAX_SPEC_BYTES, not UTF-8."""
    path = Path(path)
    pos = SourcePos(Source(str(path), ""), 1, 1)
    fail = lambda problem, hint: SpecError.at(pos, f"the spec file {problem}", hint)
    if files.status(path, fail) is None:        # a dangling link too
        raise SpecError.at(pos, f"no such spec file: {path}",
                           "check the path; specs shipped with rnndsl live in specs/")
    data = files.read_regular(path, limits.MAX_SPEC_BYTES, "a spec", fail)
    try:
        return Source(str(path), data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError.at(pos, f"spec file is not UTF-8 text (byte {exc.start})") from None


def parse_yaml(source: Source) -> YNode:
    """Compose the YAML document safely and convert it into a located tree."""
    source = Source(source.path, _normalise_breaks(source.text))
    if len(source.text) > limits.MAX_SPEC_BYTES:
        raise SpecError.at(SourcePos(source, 1, 1),
                           f"spec is {len(source.text):,} characters; the limit is {limits.MAX_SPEC_BYTES:,}")
    try:
        _check_nesting(source)
        node = yaml.compose(source.text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(source, exc) from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(source, exc) from None
    except yaml.YAMLError as exc:
        raise SpecError.at(SourcePos(source, 1, 1), f"invalid YAML: {exc}") from None
    if node is None:
        raise SpecError.at(SourcePos(source, 1, 1), "the spec is empty",
                           "a spec is a YAML mapping with at least equations: and loss:")
    tree = _convert(node, source, [0], 0)
    if not tree.is_map:
        raise SpecError.at(tree.pos, "a spec must be a YAML mapping (name:, dims:, equations:, ...)")
    unknown = [Diagnostic(tree.key_pos[key], f"unknown section '{key}'", did_you_mean(key, TOP_LEVEL_KEYS)
                          or "sections are: " + ", ".join(TOP_LEVEL_KEYS))
               for key in tree.value if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise SpecError(unknown)
    return tree


FLOW_HINT = ("inside a {...} flow mapping, [ ] { } and , are YAML syntax: write an expression "
             "such as enc[end] or normal(0, 1) in quotes, or in block style on its own line")
INDENT_HINT = "check the indentation: the keys of one mapping line up in one column (spaces, never tabs)"


def _check_nesting(source: Source) -> None:
    """Refuse absurdly deep nesting before pyyaml's recursive composer meets it."""
    depth = 0
    for event in yaml.parse(source.text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise _too_deep(source, event)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _too_deep(source: Source, node) -> SpecError:
    return SpecError.at(_pos(source, node), f"YAML nests deeper than {MAX_YAML_DEPTH} levels",
                        "a spec is a few levels deep (section, entry, field); an alias that "
                        "contains itself nests without end")


def _normalise_breaks(text: str) -> str:
    """Every line break YAML knows becomes \\n, so lines count the same here as in YAML."""
    return text.replace("\r\n", "\n").translate(_BREAKS)


_BREAKS = {ord(c): "\n" for c in "\r\x85\u2028\u2029"}


def _reader_error(source: Source, exc: yaml.reader.ReaderError) -> SpecError:
    before = source.text[:exc.position]
    line, col = before.count("\n") + 1, exc.position - before.rfind("\n")
    char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
    return SpecError.at(SourcePos(source, line, col, line, col + 1),
                        f"invalid YAML: the character {char} is not allowed in a spec",
                        "remove it; a spec is plain text")


def _yaml_error(source: Source, exc: yaml.MarkedYAMLError) -> SpecError:
    """pyyaml's error, moved to where the mistake starts when pyyaml notices it later."""
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    context = exc.context or ""
    start = exc.context_mark
    if start and "flow" in context and (problem.endswith("'<stream end>'")
                                        or exc.problem_mark.line > start.line):
        bracket = source.text[start.index] if start.index < len(source.text) else "{"
        closer = "}" if bracket == "{" else "]"
        return _yaml_at(source, start, f"invalid YAML: this '{bracket}' is never closed",
                        f"add the missing '{closer}'" + ("; " + FLOW_HINT if closer == "}" else ""))
    if start and "end of stream" in problem and "quoted" in context:
        return _yaml_at(source, start, "invalid YAML: this quoted text is never closed",
                        "add the closing quote")
    if "single document" in context:
        return _yaml_at(source, exc.problem_mark, "invalid YAML: a spec is a single YAML document",
                        "remove the `---` line and what follows it, or split the file")
    where = f" ({context})" if exc.context and exc.problem else ""
    return _yaml_at(source, exc.problem_mark or start, f"invalid YAML: {problem}{where}",
                    _yaml_hint(source, exc, problem, context))


def _yaml_hint(source: Source, exc: yaml.MarkedYAMLError, problem: str, context: str) -> str:
    line = source.line(exc.problem_mark.line + 1) if exc.problem_mark else ""
    if "\t" in problem or "\t" in line[:len(line) - len(line.lstrip())]:
        return "YAML does not allow tabs for indentation; use spaces"
    if "cannot start any token" in problem:
        return "this character cannot start a plain YAML value; put the value in quotes"
    if "flow" in context:
        return FLOW_HINT
    if "mapping values are not allowed" in problem:
        return INDENT_HINT + "; a value that contains ': ' goes in quotes"
    if "<block end>" in problem or "expected ':'" in problem:
        return INDENT_HINT
    return ""


def _yaml_at(source: Source, mark, message: str, hint: str) -> SpecError:
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return SpecError.at(SourcePos(source, line, col, line, col + 1), message, hint)


def _pos(source: Source, node: yaml.Node) -> SourcePos:
    s, e = node.start_mark, node.end_mark
    return SourcePos(source, s.line + 1, s.column + 1, e.line + 1, e.column + 1)


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _convert(node: yaml.Node, source: Source, count: list[int], depth: int) -> YNode:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise SpecError.at(_pos(source, node), f"spec has more than {MAX_NODES:,} YAML nodes",
                           "YAML aliases can multiply a document; a spec needs no aliases")
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if depth > MAX_YAML_DEPTH:           # only aliases get here: the text was checked
            raise _too_deep(source, node)
        if node.tag not in _PLAIN_TAGS:
            raise SpecError.at(_pos(source, node), f"unsupported YAML tag {node.tag}",
                               "a spec holds plain numbers and strings; remove the tag")
    if isinstance(node, yaml.MappingNode):
        return _convert_map(node, source, count, depth)
    if isinstance(node, yaml.SequenceNode):
        return YNode([_convert(n, source, count, depth + 1) for n in node.value], _pos(source, node))
    value = _scalar(node, source)
    text, text_at = _raw_text(node, source, value)
    return YNode(value, _pos(source, node), text, text_at)


def _convert_map(node: yaml.MappingNode, source: Source, count: list[int], depth: int) -> YNode:
    values, keys = {}, {}
    for key_node, value_node in node.value:
        if node.flow_style:
            _check_flow_split(value_node, source)
            _check_flow_split(key_node, source)
        if key_node.tag == "tag:yaml.org,2002:merge":
            raise SpecError.at(_pos(source, key_node), "YAML merge keys (<<) are not supported in specs")
        if not isinstance(key_node, yaml.ScalarNode) or not key_node.value:
            raise SpecError.at(_pos(source, key_node), "a key must be a plain name")
        key = key_node.value  # raw text: `on:` or `N:` stay names, never booleans
        if key in values:
            raise SpecError.at(_pos(source, key_node), f"duplicate key '{key}'",
                               f"'{key}' is already given on line {keys[key].line}")
        keys[key] = _pos(source, key_node)
        values[key] = _convert(value_node, source, count, depth + 1)
    return YNode(values, _pos(source, node), key_pos=keys)


def _check_flow_split(node: yaml.Node, source: Source) -> None:
    """Inside {...} a comma ends a value, so `init: normal(0, 1)` arrives as `normal(0`: say so
    here, where the bracket is, rather than as a syntax error and a stray key `1)`."""
    if not isinstance(node, yaml.ScalarNode) or node.style is not None:
        return
    text = str(node.value)
    if text.count("(") + text.count("[") <= text.count(")") + text.count("]"):
        return
    line = source.line(node.start_mark.line + 1)
    whole = _balanced_prefix(line[node.start_mark.column:])
    pos = _pos(source, node)
    pos = SourcePos(source, pos.line, pos.col, pos.line, pos.col + len(whole))
    raise SpecError.at(pos, f"invalid YAML: inside {{...}}, the comma in {whole} ends the value",
                       f'write it in quotes, as "{whole}", or in block style on its own line')


def _balanced_prefix(text: str) -> str:
    """`text` up to where its brackets balance again (all of it if they never do)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch in "([") - (ch in ")]")
        if depth == 0 and ch in ")]":
            return text[:i + 1]
    return text.rstrip()


def _scalar(node: yaml.ScalarNode, source: Source):
    """A scalar's value: quoted and block scalars are strings, plain ones resolved by YAML 1.2's
    core schema (`resolve_plain`); of explicit tags only !!str is accepted."""
    if _has_tag(node, source):
        if node.tag == "tag:yaml.org,2002:str":
            return node.value
        raise SpecError.at(_pos(source, node), f"unsupported YAML tag {node.tag}",
                           "a spec holds plain numbers and strings; remove the tag")
    if node.style is not None:
        return node.value
    try:
        return resolve_plain(node.value)
    except ValueError as exc:
        raise SpecError.at(_pos(source, node), exc.args[0], exc.args[1]) from None


def _has_tag(node: yaml.ScalarNode, source: Source) -> bool:
    """Whether the scalar is written with a tag (`!!int 5`): its properties come first."""
    for token in source.text[node.start_mark.index:node.end_mark.index].split()[:2]:
        if token.startswith("!"):
            return True
        if not token.startswith("&"):
            return False
    return False


def _raw_text(node: yaml.ScalarNode, source: Source, value) -> tuple[str | None, tuple]:
    """The scalar's characters in the file and where they start, when they are its value up to
    whitespace (block and plain scalars; quoted ones without escapes). Else (None, ())."""
    s, e = node.start_mark, node.end_mark
    if node.style in ("|", ">"):
        body = source.text.find("\n", s.index, e.index) + 1      # skip the `|` header line
        return (source.text[body:e.index], (s.line + 2, 1)) if body else ("", (s.line + 1, 1))
    if node.style is None:
        return source.text[s.index:e.index], (s.line + 1, s.column + 1)
    inner = source.text[s.index + 1:e.index - 1]
    return (inner if inner == value else None), (s.line + 1, s.column + 2)


# ---- checking the shape of the tree -------------------------------------------------------

def mapping(node: YNode | None, what: str, errs: Diagnostics) -> dict:
    if node is None or node.value is None:
        return {}
    if not node.is_map:
        errs.add(node.pos, f"{what} must be a mapping of names to entries",
                 "write each on its own line as `name: ...`")
        return {}
    return node.value


def fields(entry: YNode, name: str, allowed: tuple, example: str, errs: Diagnostics) -> dict | None:
    """An entry's fields, reporting unknown ones; None (reported) if it is not a mapping."""
    if entry.value is None:
        return {}
    if not entry.is_map:
        errs.add(entry.pos, f"{name}: expected a mapping such as {example}",
                 "fields are: " + ", ".join(allowed))
        return None
    for key in entry.value:
        if key not in allowed:
            errs.add(entry.key_pos[key], f"{name}: unknown field '{key}'",
                     did_you_mean(key, allowed) or "fields are: " + ", ".join(allowed))
    return entry.value


# ---- sections ------------------------------------------------------------------------------

def describe(node: YNode) -> str:
    if node.is_map:
        return "a mapping"
    if node.is_list:
        return "a list"
    return "nothing" if node.value is None else repr(node.value)
