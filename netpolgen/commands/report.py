"""`netpolgen report SOURCE... --policies DIR`: the review report over policies already written.

The policies (a netpolgen output tree, or any directory of NetworkPolicy files) are evaluated
against the traffic: each rule with its evidence, the connectivity picture, coverage, and which
observed connections the policies would deny. ``--existing BASE`` colours what changed against
an earlier policy set. Exit 0 when the policies allow every observed connection they govern, 1
when they deny some, 2 on error.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from netpolgen.commands.options import FORMAT_HELP, input_format, output_format
from netpolgen.errors import UsageError


def report_command(
    sources: Annotated[list[str], typer.Argument(help="Captures or flow logs: files, directories, globs.")],
    policies: Annotated[str, typer.Option("--policies", "-p", help="The policies to report on: a directory (e.g. generate's output).")],
    output: Annotated[str, typer.Option("--output", "-o", help="The HTML report; its Markdown twin is written beside it (.md).")] = "report.html",
    inventory: Annotated[Optional[list[str]], typer.Option(
        "--inventory", "-i", help="kubectl -o json output or manifests (repeatable). Optional for Hubble/Calico.")] = None,
    existing: Annotated[Optional[str], typer.Option(
        "--existing", help="An earlier policy directory to compare with (new / unchanged / removed).")] = None,
    from_cluster: Annotated[bool, typer.Option(
        "--from-cluster", help="Read the inventory from the live cluster of the current kubeconfig context.")] = False,
    kubeconfig: Annotated[Optional[str], typer.Option("--kubeconfig", help="Kubeconfig for the live cluster (implies --from-cluster).")] = None,
    context: Annotated[Optional[str], typer.Option("--context", help="Kubeconfig context (implies --from-cluster).")] = None,
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP + " text: one line naming the files written.")] = "text",
    input_fmt: Annotated[Optional[str], typer.Option("--input-format", help="Force the input format of SOURCE.")] = None,
    cluster_cidr: Annotated[Optional[list[str]], typer.Option("--cluster-cidr", help="Pod or Service range (repeatable).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="The first malformed record is fatal.")] = False,
    title: Annotated[str, typer.Option("--title", help="The report's heading.")] = "netpolgen report",
) -> None:
    """Write the review report (HTML + Markdown) for policies already written, over observed traffic."""
    import json

    from netpolgen.aggregate import aggregate_edges
    from netpolgen.evidence import gather_evidence
    from netpolgen.merge import read_existing
    from netpolgen.pipeline import ClusterOptions, load_inventory_from, read_and_resolve
    from netpolgen.report import build_report, write_report
    from netpolgen.report.check import check_view, junit_cases
    from netpolgen.sources import SOURCE_CLASSES
    from netpolgen.sources.base import SourceOptions

    out_fmt = output_format(fmt)
    in_fmt = input_format(input_fmt, None, tuple(SOURCE_CLASSES))
    pols = read_existing(policies)
    if not pols:
        raise UsageError(policies, None, "no NetworkPolicy files found (give the directory generate wrote)")
    cluster = ClusterOptions(kubeconfig, context) if (from_cluster or kubeconfig or context) else None
    inv = load_inventory_from(inventory or [], cluster)
    if inv is not None:
        for cidr in cluster_cidr or []:
            inv.add_cluster_network(cidr)
    resolved = read_and_resolve(sources, inv, in_fmt, SourceOptions(strict=strict, show_progress=False))
    edges = aggregate_edges(resolved.flows)
    docs = [p.policy for p in pols]
    ev = gather_evidence(docs, edges, resolved.inventory, resolved.sources, resolved.flows)
    check = check_view(ev, docs)
    baseline = [p.policy for p in read_existing(existing)] if existing is not None else None
    model = build_report(docs, ev, resolved.inventory, sources=resolved.sources, resolve_report=resolved.report,
                         self_check=check, baseline=baseline, baseline_label=f"--existing {existing}" if existing else "",
                         title=title, paths={p.key: p.path for p in pols})
    html_path, md_path = write_report(model, output)
    if out_fmt == "json":
        doc = model.to_json()
        doc["files"] = {"written": [html_path, md_path], "unchanged": [], "removed": []}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif out_fmt == "markdown":
        from netpolgen.report import render_markdown

        sys.stdout.write(render_markdown(model))
    elif out_fmt == "junit":
        from netpolgen.report.junit import render_junit

        sys.stdout.write(render_junit("netpolgen report: policies vs observed traffic", junit_cases(ev, docs)))
    else:
        state = "allow every observed connection they govern" if check.passed else \
            f"deny {len(check.denied)} of {check.checked} observed connections they govern"
        sys.stdout.write(f"wrote {html_path} and {md_path}: {len(docs)} policies, which {state}\n")
    raise typer.Exit(0 if check.passed else 1)
