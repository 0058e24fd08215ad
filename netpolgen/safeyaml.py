"""YAML read safely: the safe loader, and bounds on what a small file may turn into.

The safe loader builds only plain data, but plain data can still be a bomb: YAML aliases let a
1 kB "billion laughs" document stand for 10^9 strings. PyYAML shares the aliased objects, so
loading is quick, and whatever walks the result next (netpolgen's inventory and policy readers,
or ``json.dumps`` in a report) would never finish. So each document's node graph is measured
before it is constructed: its size with every alias expanded, its depth, the alias references,
and recursive aliases (a node containing itself) are refused outright. The cost is one pass over
the distinct nodes (the expansion is computed, never built).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import yaml

from netpolgen.errors import NetpolgenError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on one document (defaults far above any real manifest or ``kubectl -o yaml``)."""

    max_document_bytes: int = 512 << 20
    max_nodes: int = 20_000_000  # scalars, mappings and sequences, aliases expanded
    max_depth: int = 100
    max_alias_references: int = 100_000


DEFAULT_LIMITS = YamlLimits()


def load_all(text: str, path: str, error: type[NetpolgenError], limits: YamlLimits = DEFAULT_LIMITS) -> Iterator[Any]:
    """The documents of ``text`` (each None, a dict, a list or a scalar). Malformed YAML and
    documents beyond ``limits`` raise ``error(path, "line N" or "document N", what)``."""
    if len(text) > limits.max_document_bytes:
        raise error(path, None, f"YAML larger than {limits.max_document_bytes} bytes; refusing to read it")
    loader = _LOADER(text)
    number = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
            except yaml.YAMLError as e:
                raise error(path, _where(e), f"invalid YAML: {_problem(e)}") from e
            number += 1
            if node is None:
                yield None
                continue
            _measure(node, path, number, error, limits)
            try:
                yield loader.construct_document(node)
            except yaml.YAMLError as e:
                raise error(path, _where(e) or f"document {number}", f"invalid YAML: {_problem(e)}") from e
    finally:
        loader.dispose()


def _where(e: yaml.YAMLError) -> str | None:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    return f"line {mark.line + 1}" if mark is not None else None


def _problem(e: yaml.YAMLError) -> str:
    return getattr(e, "problem", None) or str(e).splitlines()[0]


def _measure(root: yaml.Node, path: str, number: int, error: type[NetpolgenError], limits: YamlLimits) -> None:
    """Raise ``error`` when the document at ``root`` is beyond ``limits`` (see module doc)."""
    size: dict[int, int] = {}  # id(node) -> nodes in its expansion
    height: dict[int, int] = {}
    open_: set[int] = set()  # nodes being measured: meeting one again is a recursive alias
    references = 0
    where = f"document {number}"

    def refuse(node: yaml.Node, what: str) -> NetpolgenError:
        mark = getattr(node, "start_mark", None)
        at = f"line {mark.line + 1}" if mark is not None else where
        return error(path, at, what)

    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0)
            if size[key] > limits.max_nodes:
                raise refuse(node, f"YAML expands to more than {limits.max_nodes} nodes through aliases"
                                   " (a \"billion laughs\" document?); refusing to read it")
            if height[key] > limits.max_depth:
                raise refuse(node, f"YAML nested deeper than {limits.max_depth} levels")
            continue
        if key in size:
            references += 1
            if references > limits.max_alias_references:
                raise refuse(node, f"more than {limits.max_alias_references} alias references")
            continue
        if key in open_:
            raise refuse(node, "recursive YAML alias (a node that contains itself)")
        open_.add(key)
        if len(open_) > limits.max_depth:
            raise refuse(node, f"YAML nested deeper than {limits.max_depth} levels")
        stack.append((node, True))
        for kid in _children(node):
            kid_key = id(kid)
            if kid_key in open_:
                raise refuse(kid, "recursive YAML alias (a node that contains itself)")
            stack.append((kid, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
