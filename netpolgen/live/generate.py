"""``generate`` over a stream: the proposal rewritten as traffic arrives.

The caller (``commands/generate.py``) makes the final write from the returned result exactly
as it does for files, so a stream's final output is the same as that file's output.
"""

from __future__ import annotations

import sys
import time

from netpolgen.errors import NetpolgenError
from netpolgen.live.accumulate import EdgeAccumulator
from netpolgen.live.run import DEFAULT_EVERY, ChangeReporter, StreamLoop
from netpolgen.pipeline import ClusterOptions, GenerateResult, generate_from_edges, load_inventory_from
from netpolgen.sources.base import SourceOptions
from netpolgen.synthesize import SynthesisOptions


def proposal(acc: EdgeAccumulator, synthesis_options: SynthesisOptions | None) -> GenerateResult:
    """The proposal as of now, from the accumulated edges."""
    return generate_from_edges(acc.edges.copy(), [acc.summary], acc.report, acc.current_inventory(),
                               synthesis_options)


def generate_live(
    arg: str,
    inventory_paths: list[str],
    fmt: str | None,
    source_options: SourceOptions,
    synthesis_options: SynthesisOptions | None,
    output: str,
    cluster_cidrs: list[str] | None = None,
    cluster: ClusterOptions | None = None,
    every: float = DEFAULT_EVERY,
    follow: bool = False,
    quiet: bool = False,
) -> tuple[GenerateResult, ChangeReporter]:
    """Follow ``arg`` (``-`` or a file), writing the proposal into ``output`` every ``every``
    seconds and on SIGHUP (not when ``output`` is ``-``: stdout gets the final one only).
    Returns the final proposal, for the caller to write, and the reporter for its last line."""
    from netpolgen.render import write_policy_files

    inventory = load_inventory_from(inventory_paths, cluster)
    if inventory is not None:
        for cidr in cluster_cidrs or []:
            inventory.add_cluster_network(cidr)
    reporter = ChangeReporter(sys.stderr)

    def on_write(acc: EdgeAccumulator) -> None:
        result = proposal(acc, synthesis_options)
        if not result.report.connections and not len(result.edges):
            if not quiet:
                sys.stderr.write(f"{time.strftime('%H:%M:%S')} no traffic yet "
                                 f"({acc.summary.stats.records} records); nothing written\n")  # type: ignore[union-attr]
            return
        if output == "-" or reporter.unchanged(result):
            line = reporter.line(result)
        else:
            try:
                write_policy_files(result.policies, output)
            except NetpolgenError:
                raise
            line = reporter.line(result)
        if not quiet:
            sys.stderr.write(line)
            sys.stderr.flush()

    loop = StreamLoop(arg, fmt, source_options, inventory, every, follow, on_write)
    acc = loop.run()
    return proposal(acc, synthesis_options), reporter


__all__ = ["generate_live", "proposal"]


def stream_generate(
    sources: list[str], inventory_paths: list[str], fmt: str | None, source_options: SourceOptions,
    synthesis_options: SynthesisOptions | None, output: str, cluster_cidrs: list[str] | None,
    cluster: ClusterOptions | None, every: str | None, follow: bool, quiet: bool, engine: str = "pandas",
) -> tuple[GenerateResult, ChangeReporter]:
    """The command line's checks for a stream, then ``generate_live``."""
    from netpolgen.errors import UsageError
    from netpolgen.live.run import parse_duration

    if len(sources) != 1:
        raise UsageError(None, "SOURCE", "a stream (- or --follow FILE) is read alone: give it as the only source")
    if engine != "pandas":
        raise UsageError(None, "--engine", "a stream is read in process: --engine dask reads files")
    seconds = parse_duration(every) if every is not None else DEFAULT_EVERY
    return generate_live(sources[0], inventory_paths, fmt, source_options, synthesis_options, output,
                         cluster_cidrs, cluster, seconds, follow, quiet)
