"""Safe YAML reading with a line number on every value.

Invariants:
- Only the safe composer runs (LibYAML's C one when present, ~4x faster);
  values are built here from nodes, never by PyYAML's constructors for
  anything but plain scalars, so no tag can construct an object.
- Only the YAML core tags are accepted (str, int, float, bool, null,
  timestamp, map, seq); `!!python/object`, `!!set`, merge keys `<<` and
  local tags are refused.
- Aliases are refused: composition shares the node an alias points to, so a
  node met twice is an alias. Each node is visited at most once, so an alias
  bomb ("billion laughs") costs what its text costs and fails at once.
- Nesting deeper than MAX_DEPTH is refused (orders nest four levels).
- Reading never raises for bad input: problems come back as Problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import yaml

__all__ = [
    "MAX_DEPTH", "MAX_ORDER_BYTES", "Map", "Node", "Problem", "Scalar", "Seq", "read_documents",
]

MAX_DEPTH = 32
# YAML checks at ~0.6 MB/s and ~70 MB of memory a MiB (bench/README.md): 4 MiB is
# seconds, not minutes; more targets than that belong in a bulk `file:` list.
MAX_ORDER_BYTES = 4 << 20

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # no LibYAML: the pure-Python safe loader, slower, same result
    _Loader = yaml.SafeLoader

_T = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_T + t for t in ("str", "int", "float", "bool", "null", "timestamp"))

_NO_ALIASES = "YAML aliases (*name) are not allowed in orders: write the value out"

ScalarValue = str | int | float | bool | date | datetime | None


@dataclass(frozen=True, slots=True)
class Scalar:
    value: ScalarValue  # as YAML reads it; a str when it could not be read as its tag
    text: str  # the source text, exactly as written
    line: int
    tag: str


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Node, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Map:
    items: dict[str, tuple[int, Node]]  # key -> (line of the key, value)
    line: int


Node = Scalar | Seq | Map


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    field: str
    message: str


class _RefusedError(Exception):
    def __init__(self, line: int, field: str, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(line, field, message)


class _Builder:
    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.problems: list[Problem] = []  # found while building, not fatal
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, field: str, depth: int = 0) -> Node:
        line = node.start_mark.line + 1
        if id(node) in self.seen:
            raise _RefusedError(line, field, _NO_ALIASES)
        self.seen.add(id(node))
        if depth > MAX_DEPTH:
            raise _RefusedError(line, field, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, field, line)
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, _T + "seq", field, line)
            elements: list[Node] = []
            for n in node.value:
                if id(n) in self.seen:  # an alias: its node says where the anchor is
                    raise _RefusedError(line, field, _NO_ALIASES)
                elements.append(self.build(n, field, depth + 1))
            return Seq(tuple(elements), line)
        if isinstance(node, yaml.MappingNode):
            self._check_tag(node, _T + "map", field, line)
            items: dict[str, tuple[int, Node]] = {}
            for knode, vnode in node.value:
                kline = knode.start_mark.line + 1
                if id(knode) in self.seen:
                    raise _RefusedError(kline, field, _NO_ALIASES)
                self.seen.add(id(knode))
                if not isinstance(knode, yaml.ScalarNode):
                    raise _RefusedError(kline, field, "a key must be a plain name")
                key = self._scalar(knode, field, kline).text
                if id(vnode) in self.seen:  # report the alias where it is used
                    raise _RefusedError(kline, key, _NO_ALIASES)
                value = self.build(vnode, key, depth + 1)
                if key in items:  # reported, and the document is still checked
                    message = f"duplicate key (first at line {items[key][0]})"
                    self.problems.append(Problem(kline, key, message))
                    continue
                items[key] = (kline, value)
            return Map(items, line)
        raise _RefusedError(line, field, f"unexpected YAML node {type(node).__name__}")

    @staticmethod
    def _check_tag(node: yaml.Node, tag: str, field: str, line: int) -> None:
        if node.tag != tag:
            raise _RefusedError(line, field, f"YAML tag {node.tag!r} is not allowed in orders")

    def _scalar(self, node: yaml.ScalarNode, field: str, line: int) -> Scalar:
        if node.tag not in _SCALAR_TAGS:
            raise _RefusedError(line, field, f"YAML tag {node.tag!r} is not allowed in orders")
        value: ScalarValue
        try:
            value = self.constructor.construct_object(node)
        except (ValueError, OverflowError, yaml.YAMLError):
            value = node.value  # e.g. 2015-02-30: the field check says what is wrong
        return Scalar(value, node.value, line, node.tag)


def _yaml_problem(e: yaml.YAMLError) -> Problem:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    what = " ".join(str(x) for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x)
    return Problem(line, "yaml", f"not valid YAML: {what or e}")


def read_documents(path: Path) -> tuple[list[Node], list[Problem]]:
    """Every non-empty document of the file, as Nodes; and what went wrong.

    A problem in one document does not hide the documents before it; a YAML
    syntax error ends the file (the parser cannot resynchronise).
    """
    docs: list[Node] = []
    problems: list[Problem] = []
    try:
        if not path.is_file():  # a FIFO would block, a device would never end
            if not path.exists():
                return docs, [Problem(1, "file", "cannot read: a broken symbolic link")]
            return docs, [Problem(1, "file", "cannot read: not a regular file")]
        if path.stat().st_size > MAX_ORDER_BYTES:
            message = (f"larger than {MAX_ORDER_BYTES >> 20} MiB: put long target lists "
                       "in a bulk `file:` list")
            return docs, [Problem(1, "file", message)]
        data = path.read_bytes()
    except OSError as e:
        return docs, [Problem(1, "file", f"cannot read: {e.strerror or e}")]
    try:
        for node in yaml.compose_all(data, Loader=_Loader):
            if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _T + "null"):
                continue  # an empty document, e.g. after a trailing `---`
            builder = _Builder()
            try:
                docs.append(builder.build(node, "document"))
            except _RefusedError as r:
                problems.append(r.problem)
            problems.extend(builder.problems)
    except yaml.YAMLError as e:
        problems.append(_yaml_problem(e))
    except RecursionError:  # the pure-Python composer on absurd nesting
        problems.append(Problem(1, "yaml", f"nested deeper than {MAX_DEPTH} levels"))
    return docs, problems
