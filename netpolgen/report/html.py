"""The report as one self-contained HTML file: styles, script and picture inline, and a
Content-Security-Policy that forbids the page any request at all (it opens offline, and a
reviewer's browser never leaks that it was opened)."""

from __future__ import annotations

from html import escape

from netpolgen.report.model import DENIED, NEW, REMOVED, UNCHANGED, Report, RuleRow
from netpolgen.report.svg import COLOURS, SVG_STYLE, render_svg

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 20px 40px; color: #102a43; background: #fff; }
h1 { margin: 18px 0 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #d9e2ec; } h3 { margin: 20px 0 6px; }
.meta { color: #486581; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 14px 0; }
.card { border: 1px solid #d9e2ec; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 20px; }
.ok { color: #2e7d32; } .bad { color: #c62828; }
#picture { border: 1px solid #d9e2ec; border-radius: 6px; overflow: auto; max-height: 80vh; }
.toolbar { margin: 8px 0; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 22px; height: 3px; vertical-align: middle; margin-right: 5px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid #d9e2ec; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f4f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { font-size: 11px; border-radius: 3px; padding: 1px 5px; color: #fff; background: #829ab1; }
.badge.new { background: #2e7d32; } .badge.unchanged { background: #546e7a; } .badge.removed { background: #c62828; }
.badge.changed { background: #b7791f; } .badge.denied { background: #e65100; }
code { font-size: 12px; } .muted { color: #829ab1; }
"""

SCRIPT = """
(function () {
  var svg = document.getElementById('graph');
  if (svg) {
    var marks = svg.querySelectorAll('[data-src]');
    var nodes = svg.querySelectorAll('g.node');
    var focus = function (node, on) {
      svg.classList.toggle('focus', on);
      node.classList.toggle('hl', on);
      for (var i = 0; i < marks.length; i++) {
        var m = marks[i];
        var hit = m.getAttribute('data-src') === node.id || m.getAttribute('data-dst') === node.id;
        m.classList.toggle('hl', on && hit);
      }
    };
    for (var i = 0; i < nodes.length; i++) {
      (function (node) {
        node.addEventListener('mouseenter', function () { focus(node, true); });
        node.addEventListener('mouseleave', function () { focus(node, false); });
      })(nodes[i]);
    }
    var w0 = parseFloat(svg.getAttribute('width')), h0 = parseFloat(svg.getAttribute('height')), scale = 1;
    var zoom = function (s) {
      scale = Math.max(0.1, Math.min(4, s));
      svg.setAttribute('width', String(w0 * scale));
      svg.setAttribute('height', String(h0 * scale));
    };
    var box = document.getElementById('picture');
    var on = function (id, f) { var b = document.getElementById(id); if (b) b.addEventListener('click', f); };
    on('zoom-in', function () { zoom(scale * 1.25); });
    on('zoom-out', function () { zoom(scale / 1.25); });
    on('zoom-fit', function () { zoom((box.clientWidth - 4) / w0); });
    on('zoom-1', function () { zoom(1); });
  }
  var filter = document.getElementById('rule-filter');
  if (filter) {
    filter.addEventListener('input', function () {
      var q = filter.value.toLowerCase();
      var rows = document.querySelectorAll('tr.rule');
      for (var i = 0; i < rows.length; i++) {
        rows[i].style.display = rows[i].textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
      }
    });
  }
  document.body.setAttribute('data-ready', '1');
})();
"""


LEGEND = {
    NEW: "allowed by a rule the baseline lacks (every rule, without --existing)",
    UNCHANGED: "allowed as before: by a rule the baseline holds, or no policy governs it",
    REMOVED: "a baseline rule nothing used over the window (removed with --prune)",
    DENIED: "observed, and these policies deny it",
}


def _e(x: object) -> str:
    return escape(str(x), quote=True)


def _num(n: int) -> str:
    return f"{n:,}"


def _rule_rows(rows: tuple[RuleRow, ...] | list[RuleRow], files_known: bool) -> list[str]:
    out = ['<table class="rules"><thead><tr><th>rule</th><th>allows</th><th>status</th><th>connections</th>'
           '<th>bytes</th><th>first seen</th><th>last seen</th><th>input files</th><th>example</th></tr></thead><tbody>']
    for r in rows:
        example = f"{_e(r.example_src)} → {_e(r.example_dst)}" if r.example_src else f'<span class="muted">{_e(r.note)}</span>'
        files = ", ".join(_e(f) for f in r.files) if r.files else ('<span class="muted">-</span>' if files_known else
                                                                  '<span class="muted">not kept by this engine</span>')
        out.append(
            f'<tr class="rule" data-policy="{_e(r.policy)}" data-rule="{_e(r.ref)}" data-status="{r.status}" '
            f'data-connections="{r.connections}" data-bytes="{r.bytes}" data-first-seen="{_e(r.first_seen)}" '
            f'data-last-seen="{_e(r.last_seen)}" data-files="{_e(" ".join(r.files))}" '
            f'data-example="{_e(r.example_src + " -> " + r.example_dst if r.example_src else "")}">'
            f"<td><code>{r.direction}[{r.index}]</code></td><td>{_e(r.text)}</td>"
            f'<td><span class="badge {r.status}">{r.status}</span></td>'
            f'<td class="num">{_num(r.connections)}</td><td class="num">{_num(r.bytes) if r.bytes else "-"}</td>'
            f"<td>{_e(r.first_seen) or '-'}</td><td>{_e(r.last_seen) or '-'}</td><td>{files}</td><td>{example}</td></tr>"
        )
    out.append("</tbody></table>")
    return out


def _list(items: list[str], empty: str) -> str:
    if not items:
        return f'<p class="muted">{_e(empty)}</p>'
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def render_html(report: Report) -> str:
    r = report
    rules = [row for p in r.policies for row in p.rules]
    chk = r.self_check
    if chk.unavailable:
        check_text, check_cls = f"self-check skipped: {chk.unavailable}", "bad"
    elif chk.denied:
        check_text, check_cls = f"{len(chk.denied)} of {chk.checked} observed connections are DENIED", "bad"
    else:
        check_text, check_cls = f"all {chk.checked} observed connection{'' if chk.checked == 1 else 's'} allowed", "ok"
    window = f"{r.window[0]} .. {r.window[1]}" if r.window else "unknown"
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(r.title)}</title><style>{STYLE}{SVG_STYLE}</style></head><body>",
        f"<h1>{_e(r.title)}</h1>",
        f'<p class="meta">Observation window {_e(window)}' + (f"; compared with {_e(r.baseline)}" if r.baseline else "") + "</p>",
        '<div class="cards">',
        f'<div class="card"><b>{len(r.policies)}</b>policies</div>',
        f'<div class="card"><b>{len(rules)}</b>rules</div>',
        f'<div class="card"><b>{len(r.nodes)}</b>nodes</div>',
        f'<div class="card"><b>{_num(r.connections)}</b>connections</div>',
        f'<div class="card"><b class="{check_cls}">{"passed" if chk.passed else "attention"}</b>self-check</div>',
        "</div>",
        '<h2 id="graph-heading">Connectivity</h2>',
        '<div class="toolbar"><span class="legend">'
        + "".join(f'<span title="{_e(LEGEND[s])}"><i style="background:{COLOURS[s]}"></i>{s}</span>'
                  for s in (NEW, UNCHANGED, REMOVED, DENIED))
        + '</span><button id="zoom-out" type="button">−</button><button id="zoom-1" type="button">100%</button>'
          '<button id="zoom-in" type="button">+</button><button id="zoom-fit" type="button">fit</button>'
          '<span class="muted">Point at a workload to follow its arrows.</span></div>',
        f'<div id="picture">{render_svg(r)}</div>',
        '<h2 id="self-check">Self-check</h2>',
        f'<p class="{check_cls}">{_e(check_text)}</p>',
        _list([f"<code>{_e(d)}</code>" for d in chk.denied], "The generated policies allow every observed connection."),
        '<h2 id="policies">Policies and their evidence</h2>',
        '<div class="toolbar"><input id="rule-filter" type="search" placeholder="filter rules" aria-label="filter rules"></div>',
    ]
    for p in r.policies:
        head = (f'<section class="policy" data-policy="{_e(p.key)}" data-status="{p.status}"><h3>{_e(p.key)} '
                f'<span class="badge {p.status}">{p.status}</span></h3>')
        sub = f'<p class="meta"><code>{_e(p.path)}</code>' + (f" — selects {_e(p.workload)}" if p.workload else "") + "</p>"
        out += [head, sub]
        out += _rule_rows(p.rules, r.files_known) if p.rules else [
            '<p class="muted">default-deny: no rules (everything not allowed by another policy is denied)</p>']
        out.append("</section>")
    if r.baseline:
        out.append('<h2 id="unused">Rules nothing used over the window</h2>')
        out += _rule_rows(r.unused, r.files_known) if r.unused else [
            '<p class="muted">none: every rule of the baseline admitted observed traffic</p>']
    c = r.coverage
    out += [
        '<h2 id="coverage">Coverage</h2>',
        "<h3>Namespaces with pods and no observed traffic</h3>",
        _list([f"{_e(ns)} ({n} pods)" for ns, n in c.quiet_namespaces],
              "none: every namespace with pods was seen talking"),
        "<h3>Low-confidence workloads (seen briefly or in few connections)</h3>",
        _list([f"{_e(w)}: {_e(y)}" for w, y in c.low_confidence], "none"),
        "<h3>Unresolved addresses (no rule written)</h3>",
        _list([f"{_e(a)}: {_e(y)}" for a, y in c.unresolved], "none"),
        "<h3>Label classes (workloads no selector can tell apart)</h3>",
        _list([f"{_e(ns)}: {{{_e(lab)}}}: {_e(', '.join(ws))}" for ns, lab, ws in c.label_classes], "none"),
        "<h3>Widened CIDRs</h3>",
        _list([f"{_e(p)}: {_e(cidr)}" for p, cidr in c.widened], "none: every ipBlock is a single address"),
        "<h3>Workloads that could not be selected exactly</h3>",
        _list([_e(x) for x in c.not_selectable], "none"),
        '<h2 id="inputs">Inputs</h2>',
        _list([f"<code>{_e(s.path)}</code> ({_e(s.format)}, {_num(s.records)} records)" for s in r.sources], "none recorded"),
        f"<script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(out) + "\n"
