"""The connectivity picture as inline SVG: group boxes, node boxes, arrows coloured by status
and labelled with their ports. Text only (no fonts, images or links to fetch)."""

from __future__ import annotations

from html import escape

from netpolgen.report.layout import Box, Layout, layout
from netpolgen.report.model import DENIED, NEW, REMOVED, STATUSES, UNCHANGED, Report

COLOURS = {NEW: "#2e7d32", UNCHANGED: "#546e7a", REMOVED: "#c62828", DENIED: "#e65100"}
#: Above this many arrows, port labels show only on the arrows of the node under the pointer.
LABELLED_EDGES = 120
_MAX_PORTS_SHOWN = 3


def _attr(text: object) -> str:
    return escape(str(text), quote=True)


def port_label(ports: tuple[str, ...]) -> str:
    shown = list(ports[:_MAX_PORTS_SHOWN])
    if len(ports) > _MAX_PORTS_SHOWN:
        shown.append(f"+{len(ports) - _MAX_PORTS_SHOWN}")
    return ", ".join(shown)


def _bezier(a: Box, b: Box, bend: float, loop_left: bool = False) -> tuple[str, tuple[float, float]]:
    """Path text and its midpoint: left to right when the target lies right of the source,
    right to left when it lies left, else (one column) a loop on the right side — or on the
    left (``loop_left``), so that a loop out of a group's first sub-column does not run over
    the next one's boxes."""
    ay, by = a.y + a.h / 2, b.y + b.h / 2
    if b.x >= a.x + a.w:
        x0, x1 = a.x + a.w, b.x
        dx = max(40.0, (x1 - x0) / 2)
        c = (x0 + dx, ay + bend, x1 - dx, by + bend)
    elif b.x + b.w <= a.x:
        x0, x1 = a.x, b.x + b.w
        dx = max(40.0, (x0 - x1) / 2)
        c = (x0 - dx, ay + bend, x1 + dx, by + bend)
    elif loop_left:
        x0, x1 = a.x, b.x
        out = min(x0, x1) - 30 - min(120.0, abs(by - ay) / 4) - abs(bend)
        c = (out, ay, out, by)
    else:
        x0, x1 = a.x + a.w, b.x + b.w
        out = max(x0, x1) + 30 + min(120.0, abs(by - ay) / 4) + abs(bend)
        c = (out, ay, out, by)
    p = (x0, ay, c[0], c[1], c[2], c[3], x1, by)
    mx = 0.125 * p[0] + 0.375 * p[2] + 0.375 * p[4] + 0.125 * p[6]
    my = 0.125 * p[1] + 0.375 * p[3] + 0.375 * p[5] + 0.125 * p[7]
    return f"M{p[0]:.1f},{p[1]:.1f} C{p[2]:.1f},{p[3]:.1f} {p[4]:.1f},{p[5]:.1f} {p[6]:.1f},{p[7]:.1f}", (mx, my)


def graph_layout(report: Report) -> Layout:
    return layout([(n.id, n.label, n.group) for n in report.nodes], [(e.src, e.dst) for e in report.edges])


def render_svg(report: Report, lay: Layout | None = None) -> str:
    lay = lay or graph_layout(report)
    many = len(report.edges) > LABELLED_EDGES
    ids = {n.id: i for i, n in enumerate(report.nodes)}
    groups = {n.id: n.group for n in report.nodes}
    w, h = max(lay.width, 200), max(lay.height, 80)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="graph" class="graph{" many" if many else ""}" '
           f'width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}" role="img" '
           f'aria-label="connectivity graph: {len(report.nodes)} nodes, {len(report.edges)} edges">']
    out.append("<defs>" + "".join(
        f'<marker id="arrow-{s}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{COLOURS[s]}"/></marker>' for s in STATUSES) + "</defs>")
    for g, box in sorted(lay.groups.items(), key=lambda kv: (kv[1].x, kv[1].y)):
        out.append(f'<g class="group" data-group="{_attr(g)}"><rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" '
                   f'height="{box.h:.1f}" rx="6"/><text x="{box.x + 8:.1f}" y="{box.y + 15:.1f}">{escape(g)}</text></g>')
    seen: dict[tuple[str, str], int] = {}
    labels = []
    for e in report.edges:
        a, b = lay.nodes.get(e.src), lay.nodes.get(e.dst)
        if a is None or b is None:
            continue
        k = seen.get((e.src, e.dst), 0)
        seen[(e.src, e.dst)] = k + 1
        group = lay.groups.get(groups[e.src])
        first_sub = group is not None and a.x == b.x and a.x < group.x + group.w / 2 and a.x + a.w < group.x + group.w - 20
        d, (mx, my) = _bezier(a, b, 8.0 * k, loop_left=first_sub)
        dash = {REMOVED: ' stroke-dasharray="6 4"', DENIED: ' stroke-dasharray="2 3"'}.get(e.status, "")
        title = f"{e.src} → {e.dst}: {', '.join(e.ports)} ({e.status}" + (f", {e.connections} connections)" if e.connections else ")")
        attrs = f'data-src="n{ids[e.src]}" data-dst="n{ids[e.dst]}" data-status="{e.status}"'
        out.append(f'<g class="edge {e.status}" {attrs} data-ports="{_attr(",".join(e.ports))}"><title>{escape(title)}</title>'
                   f'<path d="{d}" stroke="{COLOURS[e.status]}"{dash} marker-end="url(#arrow-{e.status})"/></g>')
        labels.append(f'<text class="port {e.status}" {attrs} x="{mx:.1f}" y="{my - 3:.1f}">{escape(port_label(e.ports))}</text>')
    out.extend(labels)  # above every arrow, so that arrows never hide a label
    for n in report.nodes:
        box = lay.nodes[n.id]
        out.append(f'<g class="node k-{n.kind}" id="n{ids[n.id]}" data-id="{_attr(n.id)}" data-group="{_attr(n.group)}">'
                   f'<title>{escape(n.detail or n.id)}</title>'
                   f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" rx="4"/>'
                   f'<text x="{box.x + box.w / 2:.1f}" y="{box.y + box.h / 2 + 4:.1f}">{escape(lay.labels[n.id])}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


SVG_STYLE = """
svg.graph { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: #fff; }
svg.graph .group rect { fill: #f3f6fa; stroke: #9fb3c8; }
svg.graph .group text { fill: #334e68; font-weight: 600; }
svg.graph .node rect { fill: #fff; stroke: #486581; }
svg.graph .node.k-external rect { fill: #fff8e1; stroke: #b7791f; }
svg.graph .node.k-node rect { fill: #ede7f6; stroke: #5e35b1; }
svg.graph .node text { text-anchor: middle; fill: #102a43; }
svg.graph .edge path { fill: none; stroke-width: 1.4; }
svg.graph text.port { text-anchor: middle; font-size: 10px; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg.graph text.port.new { fill: #1b5e20; } svg.graph text.port.unchanged { fill: #37474f; } svg.graph text.port.removed { fill: #b71c1c; }
svg.graph text.port.denied { fill: #bf360c; }
svg.graph.many text.port { display: none; }
svg.graph.focus .edge:not(.hl), svg.graph.focus text.port:not(.hl) { opacity: 0.07; }
svg.graph.focus text.port.hl { display: inline; }
svg.graph.focus .edge.hl path { stroke-width: 2.4; }
svg.graph .node.hl rect { stroke-width: 2.5; }
"""
