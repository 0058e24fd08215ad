"""`netpolgen generate`: traffic + inventory → policies."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from netpolgen import exitcodes
from netpolgen.errors import NoTrafficError, UsageError
from netpolgen.identity import DEFAULT_VOLATILE_LABELS
from netpolgen.pipeline import ClusterOptions, generate
from netpolgen.render import write_policy_files, write_stream
from netpolgen.sources import SOURCE_CLASSES
from netpolgen.sources.base import SourceOptions
from netpolgen.sources.limits import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    DEFAULT_MAX_EXPANSION_RATIO,
    DEFAULT_MAX_RECORD_SIZE,
)
from netpolgen.summary import format_reading, format_self_check, format_summary, no_traffic_message
from netpolgen.synthesize import DEFAULT_EXCLUDED_NAMESPACES, SynthesisOptions
from netpolgen.timeparse import parse_when


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
    max_record_size: Annotated[int, typer.Option("--max-record-size", min=1, help="Bytes; a longer record (line) is skipped and counted.")] = DEFAULT_MAX_RECORD_SIZE,
    max_expansion_ratio: Annotated[float, typer.Option("--max-expansion-ratio", min=1.0, help="A compressed input that inflates more than this many times its size is refused (a compression bomb).")] = DEFAULT_MAX_EXPANSION_RATIO,
    max_decompressed_size: Annotated[int, typer.Option("--max-decompressed-size", min=1, help="Bytes one compressed input may inflate to.")] = DEFAULT_MAX_DECOMPRESSED_SIZE,
    engine: Annotated[str, typer.Option("--engine", help="pandas (in process) or dask (many files in parallel).")] = "pandas",
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="Address of a running Dask scheduler (with --engine dask), e.g. tcp://10.0.0.5:8786.")] = None,
    warn_on_self_check: Annotated[bool, typer.Option("--warn-on-self-check", help="A failed self-check (the output denies observed traffic) is a warning and exits 0, not exit 3.")] = False,
    every: Annotated[Optional[str], typer.Option("--every", help="Streams (- or --follow): rewrite the output this often (10s, 2m, seconds; default 60s) and on SIGHUP.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Read the file as tail -F does (appends, rotation, truncation) until SIGINT/SIGTERM, keeping the output current.")] = False,
) -> None:
    """Generate least-privilege NetworkPolicies from observed traffic.

    Exit 0 when the self-check passes; 3 when the written policies would deny observed traffic
    (the files are written, to inspect; the denied connections are listed on stderr); 2 on bad
    input.
    """
    if fmt is not None and fmt not in SOURCE_CLASSES:
        raise UsageError(None, "--format", f"unknown format {fmt!r}; known: {', '.join(SOURCE_CLASSES)}")
    source_options = SourceOptions(
        strict=strict, include_dropped=include_dropped,
        since=parse_when(since, "--since"), until=parse_when(until, "--until"),
        show_progress=False if quiet else None,
        max_record_size=max_record_size, max_expansion_ratio=max_expansion_ratio,
        max_decompressed_size=max_decompressed_size,
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
    from netpolgen.live import wants_stream

    reporter = None
    if wants_stream(sources, follow):  # a pipe or a followed file: netpolgen/live
        from netpolgen.live.generate import stream_generate

        result, reporter = stream_generate(sources, inventory or [], fmt, source_options, synthesis_options, output,
                                           cluster_cidr, cluster, every, follow, quiet, engine)
    elif every is not None:
        raise UsageError(None, "--every", "only applies to a stream: - (standard input) or --follow FILE")
    else:
        result = generate(sources, inventory or [], fmt, source_options, synthesis_options, cluster_cidr, engine,
                          scheduler, cluster)
    if not result.report.connections:
        # nothing to write a rule for: an empty output would look like success
        if not quiet:
            sys.stderr.write(format_reading(result))
        raise NoTrafficError(", ".join(src.path for src in result.sources) or None, None, no_traffic_message(result))
    written: list[str] | None = None
    if output == "-":
        write_stream(result.policies, sys.stdout)
    else:
        written = write_policy_files(result.policies, output)
    if reporter is not None and not quiet:
        sys.stderr.write(reporter.line(result))
    if not quiet:
        sys.stderr.write(format_summary(result, written))
    elif result.self_check.failed:
        sys.stderr.write("\n".join(format_self_check(result, limit=None)) + "\n")
    if result.self_check.failed:
        if warn_on_self_check:
            sys.stderr.write("warning: the self-check failed; --warn-on-self-check makes that exit 0\n")
            return
        raise typer.Exit(exitcodes.SELF_CHECK_FAILED)
