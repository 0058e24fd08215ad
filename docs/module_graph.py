"""Draw the package's module graph from its imports, as a Mermaid diagram (docs/architecture.md).

    python docs/module_graph.py            # print the diagram
    python docs/module_graph.py --check    # exit 1 when docs/architecture.md's copy is stale

Modules are grouped by pipeline layer (the first part of their name under ``netpolgen``); an
arrow A --> B means some module of layer A imports one of layer B. Imports inside functions
count too: they are dependencies all the same, only deferred (the CLI's lazy imports). The
check also fails on an import cycle between modules, so the picture cannot hide one.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "netpolgen"
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- module-graph:begin -->", "<!-- module-graph:end -->"

# Pipeline order, left to right: a layer may import those before it, never after (except the
# CLI on top, which imports everything).
LAYERS = ["exitcodes", "errors", "flows", "k8snames", "names", "timeparse", "window", "portrules", "selectors", "safeyaml",
          "labels", "endpoint_kinds", "progress", "outdir", "render", "capture", "sources", "inventory", "identity", "nat", "sightings",
          "resolve", "aggregate", "model", "peers", "cidrs", "baseline", "renderers", "kinds", "kindoptions", "synthesize",
          "policy", "selfcheck", "evidence", "annotations", "merge", "diff", "scaleout", "pipeline", "summary", "report",
          "publish", "live", "schemas", "commands", "cli"]


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                if t in mods and t != name:
                    edges[name].add(t)
    return edges


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "netpolgen"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def diagram(edges: dict[str, set[str]]) -> str:
    layer_edges = sorted({(layer(a), layer(b)) for a, bs in edges.items() for b in bs if layer(a) != layer(b)})
    present = sorted({layer(m) for m in edges} - {"netpolgen"}, key=lambda n: (LAYERS.index(n) if n in LAYERS else len(LAYERS), n))
    lines = ["```mermaid", "flowchart LR"]
    lines += [f"    {n}[{n}]" for n in present]
    lines += [f"    {a} --> {b}" for a, b in layer_edges if a != "netpolgen" and b != "netpolgen"]
    lines.append("```")
    return "\n".join(lines)


def back_edges(edges: dict[str, set[str]]) -> list[str]:
    """Layer imports that point against the pipeline order (the CLI and commands excepted)."""
    out = []
    for a, bs in edges.items():
        for b in bs:
            la, lb = layer(a), layer(b)
            if la in LAYERS and lb in LAYERS and LAYERS.index(lb) > LAYERS.index(la):
                out.append(f"{a} -> {b}")
    return sorted(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    edges = imports(modules())
    text = diagram(edges)
    if not args.check:
        print(text)
        return 0
    problems = [f"import cycle: {' <-> '.join(c)}" for c in cycles(edges)]
    problems += [f"back-edge: {e}" for e in back_edges(edges)]
    doc = DOC.read_text()
    current = doc[doc.index(BEGIN) + len(BEGIN):doc.index(END)].strip()
    if current != text:
        problems.append("docs/architecture.md's module graph is stale: run python docs/module_graph.py and paste it")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
