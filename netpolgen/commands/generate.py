"""`netpolgen generate`: traffic + inventory → policies."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from netpolgen.errors import UsageError
from netpolgen.sources import SOURCE_CLASSES


def generate_command(
    sources: Annotated[list[str], typer.Argument(help="Captures or flow logs: files, directories, globs.")],
    inventory: Annotated[Optional[list[str]], typer.Option("--inventory", "-i", help="kubectl -o json output or manifests (repeatable). Optional for Hubble/Calico.")] = None,
    from_cluster: Annotated[bool, typer.Option("--from-cluster", help="Read the inventory from the live cluster of the current kubeconfig context.")] = False,
    kubeconfig: Annotated[Optional[str], typer.Option("--kubeconfig", help="Kubeconfig for the live cluster (implies --from-cluster).")] = None,
    context: Annotated[Optional[str], typer.Option("--context", help="Kubeconfig context (implies --from-cluster).")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Directory for <namespace>/<name>.yaml, or - for stdout.")] = "output",
    fmt: Annotated[Optional[str], typer.Option("--format", "--source-format", help=f"Force the input format: {', '.join(SOURCE_CLASSES)} (--source-format, as in diff, is the same option).")] = None,
    namespace: Annotated[Optional[list[str]], typer.Option("--namespace", "-n", help="Only write policies for this namespace (repeatable).")] = None,
    exclude_namespace: Annotated[Optional[list[str]], typer.Option("--exclude-namespace", help="Write no policies for this namespace (repeatable; default: kube-system).")] = None,
    no_egress: Annotated[bool, typer.Option("--no-egress", help="Ingress rules only; egress stays open.")] = False,
    volatile_label: Annotated[Optional[list[str]], typer.Option("--volatile-label", help="Label key never used in selectors (repeatable, 'prefix/*' allowed); replaces the default list.")] = None,
    cluster_cidr: Annotated[Optional[list[str]], typer.Option("--cluster-cidr", help="Pod or Service range (repeatable); addresses inside it never become ipBlocks.")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Ignore traffic before this time (ISO 8601 or unix seconds).")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Ignore traffic after this time.")] = None,
    include_dropped: Annotated[bool, typer.Option("--include-dropped", help="Flow logs: treat dropped/denied records as observed traffic.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="The first malformed record is fatal.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary or progress on stderr.")] = False,
    engine: Annotated[str, typer.Option("--engine", help="pandas (in process) or dask (many files in parallel).")] = "pandas",
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="Address of a running Dask scheduler (with --engine dask), e.g. tcp://10.0.0.5:8786.")] = None,
) -> None:
    """Generate least-privilege NetworkPolicies from observed traffic."""
    # Imported here, not at the top: `netpolgen --help` must not pay for pandas and numpy.
    from netpolgen.identity import DEFAULT_VOLATILE_LABELS
    from netpolgen.pipeline import ClusterOptions, generate
    from netpolgen.render import write_policy_files, write_stream
    from netpolgen.sources.base import SourceOptions
    from netpolgen.summary import format_summary
    from netpolgen.synthesize import DEFAULT_EXCLUDED_NAMESPACES, SynthesisOptions
    from netpolgen.timeparse import parse_when

    if fmt is not None and fmt not in SOURCE_CLASSES:
        raise UsageError(None, "--format", f"unknown format {fmt!r}; known: {', '.join(SOURCE_CLASSES)}")
    source_options = SourceOptions(
        strict=strict, include_dropped=include_dropped,
        since=parse_when(since, "--since"), until=parse_when(until, "--until"),
        show_progress=False if quiet else None,
    )
    synthesis_options = SynthesisOptions(
        namespaces=tuple(namespace or ()),
        exclude_namespaces=tuple(exclude_namespace) if exclude_namespace is not None else DEFAULT_EXCLUDED_NAMESPACES,
        egress=not no_egress,
        volatile_labels=tuple(volatile_label) if volatile_label is not None else DEFAULT_VOLATILE_LABELS,
    )
    if engine not in ("pandas", "dask"):
        raise UsageError(None, "--engine", f"unknown engine {engine!r}; use pandas or dask")
    if scheduler and engine != "dask":
        raise UsageError(None, "--scheduler", "only applies with --engine dask")
    cluster = ClusterOptions(kubeconfig, context) if (from_cluster or kubeconfig or context) else None
    result = generate(sources, inventory or [], fmt, source_options, synthesis_options, cluster_cidr, engine,
                      scheduler, cluster)
    written: list[str] | None = None
    if output == "-":
        write_stream(result.policies, sys.stdout)
    else:
        written = write_policy_files(result.policies, output)
    if not quiet:
        sys.stderr.write(format_summary(result, written))
