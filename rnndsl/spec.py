"""YAML text -> a located tree (`YNode`), every node carrying its file position.

Only pyyaml's safe composer is used: a spec is data, no tag ever constructs an
object. Expressions stay strings here; `Text.pos_at` maps an offset inside a
scalar (a block of equations, say) back to the file's own line and column.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import Source, SourcePos, SpecError, did_you_mean

MAX_SPEC_BYTES = 1_000_000
MAX_NODES = 20_000

TOP_LEVEL_KEYS = ("name", "doc", "dims", "inputs", "params", "state", "equations",
                  "loss", "outputs", "generate", "train")


@dataclass(frozen=True)
class YNode:
    """A YAML value with its position: a dict of YNodes, a list of YNodes or a scalar."""
    value: object
    pos: SourcePos
    line_starts: tuple = field(default=(), compare=False, repr=False)  # (line, col) per text line
    key_pos: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    def pos_at(self, start: int, end: int | None = None) -> SourcePos:
        """The file position of characters [start, end) of this scalar's string value."""
        line, col = self._locate(start)
        end_line, end_col = self._locate(end if end is not None else start + 1)
        return SourcePos(self.pos.source, line, col, end_line, end_col)

    def _locate(self, offset: int) -> tuple[int, int]:
        text = str(self.value)
        offset = max(0, min(offset, len(text)))
        row = text.count("\n", 0, offset)
        col_in_row = offset - (text.rfind("\n", 0, offset) + 1)
        if not self.line_starts:
            return self.pos.line, self.pos.col + col_in_row
        line, col = self.line_starts[min(row, len(self.line_starts) - 1)]
        return line, col + col_in_row


def read_text(path: str | Path) -> Source:
    """The spec file's text, or a SpecError naming what is wrong with the file."""
    path = Path(path)
    pos = SourcePos(Source(str(path), ""), 1, 1)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError.at(pos, f"no such spec file: {path}",
                           "check the path; specs shipped with rnndsl live in specs/") from None
    except OSError as exc:
        raise SpecError.at(pos, f"cannot read spec file: {exc.strerror}") from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError.at(pos, f"spec file is {len(data):,} bytes; the limit is {MAX_SPEC_BYTES:,}",
                           "a spec describes a model in a few dozen lines; is this the right file?")
    try:
        return Source(str(path), data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError.at(pos, f"spec file is not UTF-8 text (byte {exc.start})") from None


def parse_yaml(source: Source) -> YNode:
    """Compose the YAML document safely and convert it into a located tree."""
    if len(source.text) > MAX_SPEC_BYTES:
        raise SpecError.at(SourcePos(source, 1, 1),
                           f"spec is {len(source.text):,} characters; the limit is {MAX_SPEC_BYTES:,}")
    try:
        node = yaml.compose(source.text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(source, exc) from None
    except yaml.YAMLError as exc:
        raise SpecError.at(SourcePos(source, 1, 1), f"invalid YAML: {exc}") from None
    if node is None:
        raise SpecError.at(SourcePos(source, 1, 1), "the spec is empty",
                           "a spec is a YAML mapping with at least equations: and loss:")
    tree = _convert(node, source, [0])
    if not tree.is_map:
        raise SpecError.at(tree.pos, "a spec must be a YAML mapping (name:, dims:, equations:, ...)")
    for key in tree.value:
        if key not in TOP_LEVEL_KEYS:
            raise SpecError.at(tree.key_pos[key], f"unknown section '{key}'",
                               did_you_mean(key, TOP_LEVEL_KEYS)
                               or "sections are: " + ", ".join(TOP_LEVEL_KEYS))
    return tree


def _yaml_error(source: Source, exc: yaml.MarkedYAMLError) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    pos = SourcePos(source, line, col, line, col + 1)
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    hint = ""
    nearby = source.line(line) + source.line(line - 1)
    if "{" in nearby or "flow" in str(exc):
        hint = ("inside a {...} flow mapping, [ ] { } and , are YAML syntax: write an expression "
                "such as enc[end] or normal(0, 1) in quotes, or in block style on its own line")
    elif "\t" in source.line(line):
        hint = "YAML does not allow tabs for indentation; use spaces"
    return SpecError.at(pos, f"invalid YAML: {problem}{context}", hint)


def _pos(source: Source, node: yaml.Node) -> SourcePos:
    s, e = node.start_mark, node.end_mark
    return SourcePos(source, s.line + 1, s.column + 1, e.line + 1, e.column + 1)


def _convert(node: yaml.Node, source: Source, count: list[int]) -> YNode:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise SpecError.at(_pos(source, node), f"spec has more than {MAX_NODES:,} YAML nodes",
                           "YAML aliases can multiply a document; a spec needs no aliases")
    if isinstance(node, yaml.MappingNode):
        return _convert_map(node, source, count)
    if isinstance(node, yaml.SequenceNode):
        return YNode([_convert(n, source, count) for n in node.value], _pos(source, node))
    return YNode(_scalar(node, source), _pos(source, node), _line_starts(node, source))


def _convert_map(node: yaml.MappingNode, source: Source, count: list[int]) -> YNode:
    values, keys = {}, {}
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            raise SpecError.at(_pos(source, key_node), "YAML merge keys (<<) are not supported in specs")
        if not isinstance(key_node, yaml.ScalarNode) or not key_node.value:
            raise SpecError.at(_pos(source, key_node), "a key must be a plain name")
        key = key_node.value  # raw text: `on:` or `N:` stay names, never booleans
        if key in values:
            raise SpecError.at(_pos(source, key_node), f"duplicate key '{key}'",
                               f"'{key}' is already given on line {keys[key].line}")
        keys[key] = _pos(source, key_node)
        values[key] = _convert(value_node, source, count)
    return YNode(values, _pos(source, node), key_pos=keys)


def _scalar(node: yaml.ScalarNode, source: Source):
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except yaml.YAMLError:
        raise SpecError.at(_pos(source, node), f"unsupported YAML tag {node.tag}",
                           "a spec holds plain numbers and strings; remove the tag") from None


def _line_starts(node: yaml.ScalarNode, source: Source) -> tuple:
    """(line, col) in the file where each line of the scalar's value begins."""
    start = node.start_mark
    if node.style in ("|", ">"):
        lines = source.text.splitlines()
        body = lines[start.line + 1:]
        first = next((l for l in body if l.strip()), "")
        indent = len(first) - len(first.lstrip(" "))
        return tuple((start.line + 2 + i, indent + 1) for i in range(len(body)))
    quote = 1 if node.style in ("'", '"') else 0
    return ((start.line + 1, start.column + 1 + quote),)
