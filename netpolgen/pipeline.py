"""The pipeline end to end, as plain functions the CLI (and users) call.

sources → flow table → resolve (inventory) → aggregate → synthesize → self-check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from netpolgen.aggregate import aggregate_edges
from netpolgen.flows import take_flows
from netpolgen.inventory import Inventory, load_inventory
from netpolgen.inventory.from_flows import inventory_for
from netpolgen.k8snames import screen_names
from netpolgen.progress import ProgressTracker
from netpolgen.resolve import ResolveReport, resolve_flows
from netpolgen.sources import expand_inputs, open_source
from netpolgen.sources.base import Source, SourceOptions
from netpolgen.synthesize import SynthesisOptions, SynthesisResult, synthesize


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
class SelfCheck:
    """The generated policies evaluated by the engine against the traffic they came from.

    A connection here is an edge: one client workload (or address) to one server on one
    protocol and port, however many flows stand for it."""

    checked: int = 0  # observed connections touching a namespace the output covers
    denied: list[str] = field(default_factory=list)  # those the output denies: "src -> dst PROTO/port: why"
    unavailable: str = ""
    observed: int = 0  # every observed connection, covered or not

    @property
    def allowed(self) -> int:
        return self.checked - len(self.denied)

    @property
    def failed(self) -> bool:
        return bool(self.denied)


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


def self_check(edges: pd.DataFrame, inventory: Inventory, synthesis: SynthesisResult) -> SelfCheck:
    """Evaluate the generated policies with the engine over every observed edge that touches a
    namespace they cover: each must be allowed (anything else is a bug, or a workload the
    summary already says could not be selected). An edge stands for all its connections: its
    workloads' pods are selected alike, so one representative pod per side decides. Each policy
    set of another kind (``synthesis.policy_sets``) is checked on its own; its lines say which."""
    from netpolgen.policy import Engine, parse_policies

    covered = set(synthesis.namespaces)
    rows = edges[edges["src_namespace"].isin(covered) | edges["dst_namespace"].isin(covered)]
    if rows.empty:
        return SelfCheck(observed=len(edges))
    if synthesis.policy_sets:
        from netpolgen.selfcheck import check_policy_sets

        return check_policy_sets(rows, edges, inventory, synthesis, synthesis.entities,
                                 lambda engine, tag: _check_rows(rows, engine, synthesis, tag))  # type: ignore[return-value]
    engine = Engine(inventory, parse_policies(synthesis.policies))
    return _check_rows(rows, engine, synthesis, "", len(edges))


def _check_rows(rows: pd.DataFrame, engine: object, synthesis: SynthesisResult, tag: str,
                observed: int = 0) -> SelfCheck:
    """The edges ``rows`` asked of ``engine`` (anything with ``evaluate_flows``)."""
    query = pd.DataFrame({
        "src_pod": rows["src_pod"].to_numpy(),
        "src_ip": [w if k != "pod" else "" for k, w in zip(rows["src_kind"], rows["src_workload"])],
        "dst_pod": rows["dst_pod"].to_numpy(),
        "dst_ip": [w if k != "pod" else "" for k, w in zip(rows["dst_kind"], rows["dst_workload"])],
        "dst_port": rows["dst_port"].to_numpy(),
        "proto": rows["proto"].to_numpy(),
    })
    verdicts = engine.evaluate_flows(query).reset_index(drop=True)  # type: ignore[attr-defined]
    denied_mask = ~verdicts["allowed"].to_numpy(dtype=bool)
    denied = rows.reset_index(drop=True)[denied_mask]
    problems = _unselectable(synthesis)
    lines = sorted(
        f"{tag}{r.src_workload} -> {r.dst_workload} {r.proto}/{r.dst_port}: {_why_denied(r, v, problems)}"
        for r, v in zip(denied.itertuples(index=False), verdicts[denied_mask].itertuples(index=False))
    )
    return SelfCheck(checked=len(rows), denied=lines, observed=observed)


def _unselectable(synthesis: SynthesisResult) -> dict[str, str]:
    """workload text -> the reason synthesis gave for not selecting it."""
    out: dict[str, str] = {}
    for problem in synthesis.problems:
        for token in problem.replace(",", " ").split():
            token = token.rstrip(":")
            if "/" in token and token.endswith("]"):
                out.setdefault(token, problem)
    return out


def _why_denied(edge: object, verdict: object, problems: dict[str, str]) -> str:
    """Which side's policies deny the connection, and the synthesis problem behind it if any."""
    sides = []
    if not verdict.egress_allowed:  # type: ignore[attr-defined]
        sides.append(f"egress of the client denied by {verdict.egress_policies or 'its isolation'}")  # type: ignore[attr-defined]
    if not verdict.ingress_allowed:  # type: ignore[attr-defined]
        sides.append(f"ingress of the server denied by {verdict.ingress_policies or 'its isolation'}")  # type: ignore[attr-defined]
    for wl in (edge.src_workload, edge.dst_workload):  # type: ignore[attr-defined]
        if wl in problems:
            sides.append(f"no rule could name {wl} ({problems[wl]})")
    return "; ".join(sides) or "denied"
