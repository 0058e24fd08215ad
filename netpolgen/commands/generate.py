"""`netpolgen generate`: traffic + inventory → policies."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from netpolgen import exitcodes
from netpolgen.commands.options import FORMAT_HELP, input_format, output_format, warn_deprecated
from netpolgen.errors import NoTrafficError, UsageError
from netpolgen.sources import SOURCE_CLASSES

if TYPE_CHECKING:  # pandas behind it: not at start-up
    from netpolgen.pipeline import GenerateResult
from netpolgen.sources.limits import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    DEFAULT_MAX_EXPANSION_RATIO,
    DEFAULT_MAX_RECORD_SIZE,
)


def generate_command(
    sources: Annotated[list[str], typer.Argument(help="Captures or flow logs: files, directories, globs.")],
    inventory: Annotated[Optional[list[str]], typer.Option("--inventory", "-i", help="kubectl -o json output or manifests (repeatable). Optional for Hubble/Calico.")] = None,
    from_cluster: Annotated[bool, typer.Option("--from-cluster", help="Read the inventory from the live cluster of the current kubeconfig context.")] = False,
    kubeconfig: Annotated[Optional[str], typer.Option("--kubeconfig", help="Kubeconfig for the live cluster (implies --from-cluster).")] = None,
    context: Annotated[Optional[str], typer.Option("--context", help="Kubeconfig context (implies --from-cluster).")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Directory for <namespace>/<name>.yaml, or - for stdout. Default: output, or the --existing directory.")] = None,
    input_fmt: Annotated[Optional[str], typer.Option("--input-format", help=f"Force the input format: {', '.join(SOURCE_CLASSES)}.")] = None,
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP + " text is the summary on stderr; the others go to stdout.")] = "text",
    source_format: Annotated[Optional[str], typer.Option("--source-format", hidden=True, help="Deprecated: --input-format.")] = None,
    report: Annotated[Optional[str], typer.Option("--report", help="Also write a review report: PATH (self-contained HTML) and its Markdown twin (PATH with .md).")] = None,
    no_annotations: Annotated[bool, typer.Option("--no-annotations", help="No netpolgen.io/ evidence annotations (flows, first/last seen, window) on the policies.")] = False,
    existing: Annotated[Optional[str], typer.Option("--existing", help="Build on the policies of an earlier run in DIR: its rules stay, new connections add rules, unused rules are listed; only files that change are rewritten.")] = None,
    prune: Annotated[bool, typer.Option("--prune", help="With --existing: remove the rules nothing used over the window.")] = False,
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
    kind: Annotated[Optional[list[str]], typer.Option("--kind", help="Output kind (repeatable; each is a complete policy set): networkpolicy (default), cilium, cilium-clusterwide (Cilium with the rules every namespace shares in one CiliumClusterwideNetworkPolicy), clusternetworkpolicy (a Baseline ClusterNetworkPolicy with NetworkPolicies on top).")] = None,
    fqdn_pattern: Annotated[Optional[list[str]], typer.Option("--fqdn-pattern", help="Cilium: write names matching this pattern (e.g. '*.s3.amazonaws.com') as one toFQDNs matchPattern (repeatable).")] = None,
    dns_lookup_pattern: Annotated[Optional[list[str]], typer.Option("--dns-lookup-pattern", help="Cilium: also let the DNS proxy answer lookups matching this pattern (e.g. '*.*.svc.cluster.local') for workloads with toFQDNs rules; their toFQDNs stay as observed (repeatable).")] = None,
    max_cidrs_per_rule: Annotated[Optional[int], typer.Option("--max-cidrs-per-rule", min=1, help="Collapse a rule's unnamed outside addresses into at most N CIDRs (widening reported per rule).")] = None,
    cidr_floor: Annotated[int, typer.Option("--cidr-floor", min=0, max=32, help="With --max-cidrs-per-rule: no IPv4 CIDR wider than this prefix.")] = 24,
    cidr_floor_v6: Annotated[int, typer.Option("--cidr-floor-v6", min=0, max=128, help="With --max-cidrs-per-rule: no IPv6 CIDR wider than this prefix.")] = 48,
    known_range: Annotated[Optional[list[str]], typer.Option("--known-range", help="With --max-cidrs-per-rule: an outside range you vouch for (repeatable); addresses inside it become that range.")] = None,
    warn_on_self_check: Annotated[bool, typer.Option("--warn-on-self-check", help="A failed self-check (the output denies observed traffic) is a warning and exits 0, not exit 3.")] = False,
    every: Annotated[Optional[str], typer.Option("--every", help="Streams (- or --follow): rewrite the output this often (10s, 2m, seconds; default 60s) and on SIGHUP.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Read the file as tail -F does (appends, rotation, truncation) until SIGINT/SIGTERM, keeping the output current.")] = False,
) -> None:
    """Generate least-privilege NetworkPolicies from observed traffic.

    Exit 0 when the self-check passes; 3 when the written policies would deny observed traffic
    (the files are written, to inspect; the denied connections are listed on stderr); 4 when the
    inputs hold no usable traffic; 2 on bad input; 5 when the output cannot be written.
    """
    # Imported here, not at the top: `netpolgen --help` must not pay for pandas and numpy.
    from netpolgen.identity import DEFAULT_VOLATILE_LABELS
    from netpolgen.pipeline import ClusterOptions, generate
    from netpolgen.render import write_stream
    from netpolgen.sources.base import SourceOptions
    from netpolgen.summary import format_reading, format_summary, no_traffic_message
    from netpolgen.synthesize import DEFAULT_EXCLUDED_NAMESPACES, SynthesisOptions
    from netpolgen.timeparse import parse_when

    if fmt in SOURCE_CLASSES:  # the old meaning of --format on generate: the input format
        warn_deprecated(f"--format {fmt} (an input format)", f"--input-format {fmt}")
        if input_fmt is not None and input_fmt != fmt:
            raise UsageError(None, "--format", f"given as input format {fmt!r} and --input-format {input_fmt!r}")
        input_fmt, fmt = fmt, "text"
    out_fmt = output_format(fmt)
    in_fmt = input_format(input_fmt, source_format, tuple(SOURCE_CLASSES))
    if prune and existing is None:
        raise UsageError(None, "--prune", "only applies with --existing DIR")
    if output is None:
        output = existing if existing is not None else "output"
    if output == "-" and out_fmt != "text":
        raise UsageError(None, "--format", f"{out_fmt} is printed on stdout, where --output - writes the policies; choose one")
    if output == "-" and existing is not None:
        raise UsageError(None, "--existing", "merges into a directory; --output - has none")
    source_options = SourceOptions(
        strict=strict, include_dropped=include_dropped,
        since=parse_when(since, "--since"), until=parse_when(until, "--until"),
        show_progress=False if quiet else None,
        max_record_size=max_record_size, max_expansion_ratio=max_expansion_ratio,
        max_decompressed_size=max_decompressed_size,
    )
    from netpolgen.kindoptions import kind_options

    synthesis_options = SynthesisOptions(
        **kind_options(kind, fqdn_pattern, max_cidrs_per_rule, cidr_floor, cidr_floor_v6, known_range, existing,
                       dns_lookup_pattern),
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

        result, reporter = stream_generate(sources, inventory or [], in_fmt, source_options, synthesis_options, output,
                                           cluster_cidr, cluster, every, follow, quiet, engine)
    elif every is not None:
        raise UsageError(None, "--every", "only applies to a stream: - (standard input) or --follow FILE")
    else:
        result = generate(sources, inventory or [], in_fmt, source_options, synthesis_options, cluster_cidr, engine,
                          scheduler, cluster)
    if not result.report.connections:
        # nothing to write a rule for: an empty output would look like success
        if not quiet:
            sys.stderr.write(format_reading(result))
        raise NoTrafficError(", ".join(src.path for src in result.sources) or None, None, no_traffic_message(result))
    from netpolgen.publish import merge_summary, prepare, report_of, write_files

    detailed = report is not None or out_fmt in ("json", "markdown")
    pub = prepare(result, existing_dir=existing, prune=prune, annotations=not no_annotations, with_files=detailed,
                  bounds=(source_options.since, source_options.until))
    written: list[str] | None = None
    if output == "-":
        write_stream(pub.policies, sys.stdout)
    else:
        written = write_files(pub, output).written
    report_model = report_of(pub, result, out_dir=None if output == "-" else output) if detailed else None
    report_files: tuple[str, str] | None = None
    if report is not None and report_model is not None:
        from netpolgen.report import write_report

        report_files = write_report(report_model, report)
    if reporter is not None and not quiet:
        sys.stderr.write(reporter.line(result))
    if out_fmt == "text" and not quiet:
        sys.stderr.write(format_summary(result, written) + merge_summary(pub)
                         + (f"report: {report_files[0]} and {report_files[1]}\n" if report_files else ""))
    elif out_fmt != "text":
        from netpolgen.commands.printing import print_generate

        print_generate(out_fmt, pub, report_model, written or [])
    _finish(result, said=out_fmt == "text" and not quiet, warn_only=warn_on_self_check)


def _finish(result: GenerateResult, said: bool, warn_only: bool) -> None:
    """The exit of a run: a failed self-check is exit 3 (its denied connections on stderr, if
    the summary did not list them already), or a warning with ``--warn-on-self-check``."""
    from netpolgen.summary import format_self_check

    if not result.self_check.failed:
        return
    if not said:  # whatever is printed, the denied connections are said on stderr
        sys.stderr.write("\n".join(format_self_check(result, limit=None)) + "\n")
    if warn_only:
        sys.stderr.write("warning: the self-check failed; --warn-on-self-check makes that exit 0\n")
        return
    raise typer.Exit(exitcodes.SELF_CHECK_FAILED)
