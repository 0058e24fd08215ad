"""The pipeline end to end, as plain functions the CLI (and users) call.

sources → flow table → resolve (inventory) → aggregate → synthesize → self-check.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from netpolgen.aggregate import aggregate_edges
from netpolgen.flows import take_flows
from netpolgen.inventory import Inventory, load_inventory
from netpolgen.inventory.from_flows import inventory_for
from netpolgen.k8snames import screen_names
from netpolgen.progress import ProgressTracker
from netpolgen.resolve import ResolveReport, resolve_flows
from netpolgen.selfcheck import SelfCheck, self_check
from netpolgen.sources import expand_inputs, open_source
from netpolgen.sources.base import Source, SourceOptions
from netpolgen.synthesize import SynthesisOptions, SynthesisResult, synthesize

__all__ = ["ClusterOptions", "GenerateResult", "ReadResult", "ResolveResult", "SelfCheck", "generate",
           "generate_from_edges", "generate_from_resolved", "load_inventory_from", "read_and_resolve", "read_flows",
           "self_check"]


@dataclass(frozen=True)
class ClusterOptions:
    """Read the inventory from a live cluster (kubeconfig and context; None means the defaults)."""

    kubeconfig: str | None = None
    context: str | None = None


def load_inventory_from(paths: list[str], cluster: ClusterOptions | None = None) -> Inventory | None:
    """The inventory from files and/or a live cluster; None when neither is given."""
    if cluster is None:
        return load_inventory(paths) if paths else None
    from netpolgen.inventory.live import ClusterReader

    reader = ClusterReader(cluster.kubeconfig, cluster.context)
    inventory = load_inventory(paths, reader.objects(), extra_origin=f"cluster {cluster.context or 'current-context'}")
    inventory.skipped_files.extend(s.line() for s in reader.skipped_kinds)
    return inventory


@dataclass
class ReadResult:
    flows: pd.DataFrame
    sources: list[Source]


@dataclass
class ResolveResult:
    flows: pd.DataFrame  # resolve.RESOLVED_COLUMNS
    report: ResolveReport
    sources: list[Source]
    inventory: Inventory


@dataclass
class GenerateResult:
    sources: list  # Source objects (or anything with path, format_name and stats)
    report: ResolveReport
    inventory: Inventory
    edges: pd.DataFrame
    synthesis: SynthesisResult
    self_check: SelfCheck
    resolved_flows: pd.DataFrame | None = None  # the in-process engine keeps them; Dask does not

    @property
    def policies(self) -> list[dict]:
        return self.synthesis.policies


def read_flows(inputs: list[str], fmt: str | None = None, options: SourceOptions | None = None) -> ReadResult:
    """Read every input (files, directories, globs) into one flow table."""
    opts = options or SourceOptions()
    paths = expand_inputs(inputs)
    sources = [open_source(path, fmt, opts) for path in paths]
    chunks: list[pd.DataFrame] = []
    with ProgressTracker(paths, enabled=opts.show_progress) as tracker:
        for src in sources:
            tracker.start_file(src.path)
            chunks.extend(screen_names(c, src.stats.skipped, src.path) for c in src.chunks())
            tracker.finish_file(src.path)
    return ReadResult(take_flows(chunks), sources)


def read_and_resolve(
    inputs: list[str],
    inventory: Inventory | None,
    fmt: str | None = None,
    options: SourceOptions | None = None,
) -> ResolveResult:
    opts = options or SourceOptions()
    read = read_flows(inputs, fmt, opts)
    inv = inventory_for(read.flows, inventory)
    res = resolve_flows(read.flows, inv, since=opts.since, until=opts.until)
    return ResolveResult(res.flows, res.report, read.sources, inv)


def generate(
    inputs: list[str],
    inventory_paths: list[str],
    fmt: str | None = None,
    source_options: SourceOptions | None = None,
    synthesis_options: SynthesisOptions | None = None,
    cluster_cidrs: list[str] | None = None,
    engine: str = "pandas",
    scheduler: str | None = None,
    cluster: ClusterOptions | None = None,
) -> GenerateResult:
    """The whole job. ``engine="dask"`` reads and aggregates on a Dask cluster (``scheduler``,
    or a local one); synthesis always runs here on the small edge table. ``cluster`` adds the
    objects of a live cluster to the inventory files."""
    inventory = load_inventory_from(inventory_paths, cluster)
    if inventory is not None:
        for cidr in cluster_cidrs or []:
            inventory.add_cluster_network(cidr)
    if engine == "dask":
        from netpolgen.scaleout import edges_on_dask

        de = edges_on_dask(inputs, inventory, fmt, source_options, scheduler)
        return generate_from_edges(de.edges, de.sources, de.report, de.inventory, synthesis_options)
    resolved = read_and_resolve(inputs, inventory, fmt, source_options)
    return generate_from_resolved(resolved, synthesis_options)


def generate_from_resolved(resolved: ResolveResult, synthesis_options: SynthesisOptions | None = None) -> GenerateResult:
    edges = aggregate_edges(resolved.flows)
    return generate_from_edges(edges, resolved.sources, resolved.report, resolved.inventory,
                               synthesis_options, resolved.flows)


def generate_from_edges(
    edges: pd.DataFrame,
    sources: list,
    report: ResolveReport,
    inventory: Inventory,
    synthesis_options: SynthesisOptions | None = None,
    resolved_flows: pd.DataFrame | None = None,
) -> GenerateResult:
    """Synthesis and self-check: the part both engines (in-process and Dask) share."""
    entities = getattr(report, "entities", None)
    synthesis = synthesize(edges, inventory, synthesis_options, entities=entities)
    check = self_check(edges, inventory, synthesis)
    return GenerateResult(sources, report, inventory, edges, synthesis, check, resolved_flows)
