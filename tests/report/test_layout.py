"""The picture stays readable at 200 workloads: no two boxes overlap, every workload sits inside
its namespace's box, labels fit their boxes, namespaces never overlap, and the layout is the same
every time for the same graph."""

from __future__ import annotations

import random

from netpolgen.report.layout import CHAR_W, layout
from netpolgen.report.model import OUTSIDE_CLIENTS, OUTSIDE_SERVERS

NAMESPACES = ["shop", "payments", "data", "search", "identity", "platform-observability", "batch", "edge"]


def _graph(n_workloads: int, n_edges: int, seed: int = 3):
    rng = random.Random(seed)
    nodes = []
    for i in range(n_workloads):
        ns = NAMESPACES[i % len(NAMESPACES)] if i % 5 else "shop"  # one big namespace
        nodes.append((f"{ns}/service-{i:03d}-{'x' * rng.randrange(0, 30)}[Deployment]",
                      f"service-{i:03d}-{'x' * rng.randrange(0, 30)}", ns))
    nodes += [("203.0.113.9", "203.0.113.9 (api.example)", OUTSIDE_SERVERS), ("198.51.100.1", "198.51.100.1", OUTSIDE_CLIENTS)]
    ids = [n for n, _, _ in nodes]
    edges = sorted({(rng.choice(ids), rng.choice(ids)) for _ in range(n_edges)})
    return nodes, edges


def test_two_hundred_workloads_lay_out_without_overlap() -> None:
    nodes, edges = _graph(200, 900)
    lay = layout(nodes, edges)
    boxes = sorted(lay.nodes.items())
    assert len(boxes) == len(nodes)
    # Sweep by x so that the overlap check stays near-linear.
    ordered = sorted(boxes, key=lambda kv: kv[1].x)
    for i, (a_id, a) in enumerate(ordered):
        for b_id, b in ordered[i + 1:]:
            if b.x >= a.x + a.w:
                break
            assert not a.overlaps(b), (a_id, b_id)
    group_of = {n: g for n, _, g in nodes}
    for n, box in boxes:
        assert lay.groups[group_of[n]].contains(box), n
        assert len(lay.labels[n]) * CHAR_W <= box.w, n
        assert box.x + box.w <= lay.width and box.y + box.h <= lay.height
    groups = list(lay.groups.items())
    for i, (ga, a) in enumerate(groups):
        for gb, b in groups[i + 1:]:
            assert not a.overlaps(b), (ga, gb)


def test_a_big_namespace_wraps_into_sub_columns_instead_of_one_strip() -> None:
    nodes, edges = _graph(200, 300)
    lay = layout(nodes, edges)
    shop = lay.groups["shop"]
    shop_nodes = [lay.nodes[n] for n, _, g in nodes if g == "shop"]
    assert len(shop_nodes) >= 40
    assert len({b.x for b in shop_nodes}) > 1  # several sub-columns
    assert shop.h < 40 * 34  # not one box per row: 40 rows would be this tall


def test_outside_clients_left_outside_servers_right_and_deterministic() -> None:
    nodes, edges = _graph(60, 200)
    a, b = layout(nodes, edges), layout(list(reversed(nodes)), list(reversed(edges)))
    assert a == b
    xs = [box.x for g, box in a.groups.items() if g not in (OUTSIDE_CLIENTS, OUTSIDE_SERVERS)]
    assert a.groups[OUTSIDE_CLIENTS].x < min(xs)
    assert a.groups[OUTSIDE_SERVERS].x > max(xs)


def test_groups_follow_the_direction_of_traffic() -> None:
    # web -> app -> db: three columns, left to right.
    nodes = [("web/a", "a", "web"), ("app/b", "b", "app"), ("db/c", "c", "db")]
    lay = layout(nodes, [("web/a", "app/b"), ("app/b", "db/c")])
    assert lay.groups["web"].x < lay.groups["app"].x < lay.groups["db"].x
