"""A layered layout of grouped nodes, in pure Python (no Graphviz, no layout library).

Why our own: the picture has a fixed shape — namespaces as boxes, workloads inside them, arrows
between — and that shape is what a reviewer needs to read it, so the layout works on it
directly. Groups are placed in columns by a longest-path layering of the group graph (clients
from outside on the left, outside servers and nodes on the right, back edges of cycles ignored
for ranking), stacked within a column and ordered by the barycentre of their neighbours, the
Sugiyama heuristic for fewer crossings; nodes inside a group are ordered the same way and wrap
into sub-columns so that a namespace of 100 workloads stays a block, not a 3,000-pixel strip.
Everything is sorted before it is compared, so the same graph gives the same picture.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from netpolgen.report.model import NODES_GROUP, OUTSIDE_CLIENTS, OUTSIDE_SERVERS

NODE_H = 24
NODE_GAP = 10
GROUP_PAD = 12
GROUP_HEADER = 22
GROUP_GAP = 26
COLUMN_GAP = 150
SUBCOLUMN_GAP = 16
MAX_ROWS = 16  # nodes per sub-column of a group
CHAR_W = 6.6  # average glyph width of the 11 px sans-serif labels
MIN_NODE_W, MAX_NODE_W = 70, 240
MAX_LABEL_CHARS = int((MAX_NODE_W - 14) / CHAR_W)


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    def overlaps(self, other: "Box") -> bool:
        return self.x < other.x + other.w and other.x < self.x + self.w and self.y < other.y + other.h and other.y < self.y + self.h

    def contains(self, other: "Box") -> bool:
        return (self.x <= other.x and self.y <= other.y and other.x + other.w <= self.x + self.w
                and other.y + other.h <= self.y + self.h)


@dataclass(frozen=True)
class Layout:
    nodes: dict[str, Box]
    groups: dict[str, Box]
    labels: dict[str, str]  # node id -> the label as drawn (shortened to fit its box)
    columns: dict[str, int]  # group -> column
    width: float
    height: float


def fit_label(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def label_width(label: str) -> float:
    return len(label) * CHAR_W


def _ranks(groups: list[str], links: dict[tuple[str, str], int]) -> dict[str, int]:
    nodes_are_clients = NODES_GROUP in groups and not any(b == NODES_GROUP for (a, b) in links if a != NODES_GROUP)
    inner = [g for g in groups if g not in (OUTSIDE_CLIENTS, OUTSIDE_SERVERS, NODES_GROUP)]
    out_edges: dict[str, list[str]] = defaultdict(list)
    for (a, b) in sorted(links):
        if a in inner and b in inner and a != b:
            out_edges[a].append(b)
    # Back edges by a depth-first walk from the groups with fewest incoming links.
    indeg: dict[str, int] = defaultdict(int)
    for bs in out_edges.values():
        for b in bs:
            indeg[b] += 1
    state: dict[str, int] = {}
    forward: list[tuple[str, str]] = []
    for start in sorted(inner, key=lambda g: (indeg[g], g)):
        if start in state:
            continue
        stack = [(start, iter(out_edges[start]))]
        state[start] = 1
        while stack:
            g, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[g] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                continue  # a back edge: ignored for ranking
            forward.append((g, nxt))
            if nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(out_edges[nxt])))
    rank = {g: 0 for g in inner}
    for _ in range(len(inner)):
        changed = False
        for a, b in forward:
            if rank[b] < rank[a] + 1:
                rank[b] = rank[a] + 1
                changed = True
        if not changed:
            break
    first = 1 if OUTSIDE_CLIENTS in groups or nodes_are_clients else 0
    out = {g: r + first for g, r in rank.items()}
    last = max(out.values(), default=first - 1) + 1
    if OUTSIDE_CLIENTS in groups:
        out[OUTSIDE_CLIENTS] = 0
    if nodes_are_clients:
        out[NODES_GROUP] = 0
    for g in (OUTSIDE_SERVERS, NODES_GROUP):
        if g in groups and g not in out:
            out[g] = last
    return out


def layout(nodes: list[tuple[str, str, str]], edges: list[tuple[str, str]]) -> Layout:
    """``nodes``: (id, label, group); ``edges``: (src id, dst id)."""
    group_of = {n: g for n, _, g in nodes}
    label_of = {n: fit_label(lab) for n, lab, _ in nodes}
    members: dict[str, list[str]] = defaultdict(list)
    for n, _, g in sorted(nodes, key=lambda t: (t[2], t[0])):
        members[g].append(n)
    links: dict[tuple[str, str], int] = defaultdict(int)
    nbrs: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        if a in group_of and b in group_of:
            links[(group_of[a], group_of[b])] += 1
            if a != b:
                nbrs[a].add(b)
                nbrs[b].add(a)
    groups = sorted(members)
    rank = _ranks(groups, links)
    columns: dict[int, list[str]] = defaultdict(list)
    for g in groups:
        columns[rank[g]].append(g)

    # Initial order: by name; then sweeps by barycentre of neighbours' positions.
    pos: dict[str, float] = {}
    order_of_group: dict[str, list[str]] = {g: list(ms) for g, ms in members.items()}

    def number() -> None:
        i = 0
        for c in sorted(columns):
            for g in columns[c]:
                for n in order_of_group[g]:
                    pos[n] = i
                    i += 1

    number()
    for _ in range(4):
        for c in sorted(columns):
            def gbary(g: str) -> tuple[float, str]:
                ys = [pos[m] for n in members[g] for m in nbrs[n] if group_of[m] != g]
                return (sum(ys) / len(ys) if ys else math.inf, g)
            columns[c].sort(key=gbary)
            for g in columns[c]:
                def nbary(n: str) -> tuple[float, str]:
                    ys = [pos[m] for m in nbrs[n]]
                    return (sum(ys) / len(ys) if ys else math.inf, n)
                order_of_group[g].sort(key=nbary)
            number()

    node_boxes: dict[str, Box] = {}
    group_boxes: dict[str, Box] = {}
    x = 20.0
    height = 0.0
    for c in sorted(columns):
        y = 20.0
        col_w = 0.0
        for g in columns[c]:
            ms = order_of_group[g]
            node_w = min(MAX_NODE_W, max(MIN_NODE_W, max(label_width(label_of[n]) for n in ms) + 14,
                                         label_width(g) + 2 - 2 * GROUP_PAD))
            n_sub = max(1, math.ceil(len(ms) / MAX_ROWS))
            rows = math.ceil(len(ms) / n_sub)
            for i, n in enumerate(ms):
                sub, row = divmod(i, rows)
                node_boxes[n] = Box(x + GROUP_PAD + sub * (node_w + SUBCOLUMN_GAP),
                                    y + GROUP_HEADER + row * (NODE_H + NODE_GAP), node_w, NODE_H)
            gw = 2 * GROUP_PAD + n_sub * node_w + (n_sub - 1) * SUBCOLUMN_GAP
            gw = max(gw, label_width(g) + 2 * GROUP_PAD)
            gh = GROUP_HEADER + rows * (NODE_H + NODE_GAP) - NODE_GAP + GROUP_PAD
            group_boxes[g] = Box(x, y, gw, gh)
            y += gh + GROUP_GAP
            col_w = max(col_w, gw)
        height = max(height, y)
        x += col_w + COLUMN_GAP
    return Layout(node_boxes, group_boxes, label_of, dict(rank), x - COLUMN_GAP + 20, height)
