"""Scale-out on Dask: the same reading, resolution and aggregation, spread over many files.

Each task takes a batch of input files (about four batches per worker): read them with their
sources, resolve them against the inventory (sent to the workers once), and group them into
partial edges. ``dask.dataframe`` then combines the
partial edges of all files with a group-by (sums, minima, maxima), and only that small edge
table comes back to this process, where the ordinary synthesis code takes over.

What is per batch here and global in the in-process engine: merging sightings of one connection
across files (several nodes' captures) — a connection seen in two files of different batches
counts twice in the counts, though it gives the same edge and therefore the same policies.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import pandas as pd

from netpolgen.aggregate import EDGE_AGGREGATES, EDGE_KEYS, aggregate_edges, joined_names, with_edge_dtypes
from netpolgen.errors import UsageError
from netpolgen.flows import concat_flows, empty_flows, normalize_flows
from netpolgen.inventory import Inventory
from netpolgen.inventory.from_flows import inventory_for
from netpolgen.resolve import RESOLVED_COLUMNS, ResolveReport, resolve_flows
from netpolgen.sources import expand_inputs, open_source
from netpolgen.sources.base import SourceOptions, SourceStats


@dataclass
class FileSummary:
    """What the summary needs of a source that was read on a worker."""

    path: str
    format_name: str
    stats: SourceStats


@dataclass
class DaskEdges:
    edges: pd.DataFrame
    sources: list[FileSummary]
    report: ResolveReport
    inventory: Inventory  # the given one, completed from flow-log metadata as the workers did


def _batch_edges(paths: list[str], fmt: str | None, options: SourceOptions, inventory: Inventory | None) -> tuple:
    """Read a batch of files, resolve them together, and group them into partial edges."""
    from netpolgen.k8snames import screen_names
    chunks: list[pd.DataFrame] = []
    summaries: list[FileSummary] = []
    for path in paths:
        src = open_source(path, fmt, options)
        chunks.extend(screen_names(c, src.stats.skipped, path) for c in src.chunks())
        summaries.append(FileSummary(path, src.format_name, src.stats))
    flows = concat_flows(chunks)
    # Flow logs that name namespaces and labels complete the inventory, batch by batch.
    res = resolve_flows(flows, inventory_for(flows, inventory), since=options.since, until=options.until)
    return aggregate_edges(res.flows), summaries, res.report, metadata_digest(flows)


def metadata_digest(flows: pd.DataFrame) -> pd.DataFrame:
    """The little of a flow table that ``inventory_from_flows`` reads: one row per distinct
    endpoint description (pod, namespace, address, labels, workload) with its time span, as
    flow rows whose other side is blank. Synthesis needs the same inventory the batches
    resolved with, and this is what comes back from the workers to rebuild it."""
    parts = []
    for side in ("src", "dst"):
        cols = [f"{side}_pod", f"{side}_namespace", f"{side}_ip", f"{side}_labels", f"{side}_owner"]
        # reserved identities too: an address a record gives a node identity is a node in every batch
        sub = flows[(flows[f"{side}_namespace"] != "") | (flows[f"{side}_pod"] != "")
                    | flows[f"{side}_owner"].str.startswith("reserved:")]
        if sub.empty:
            continue
        g = sub.groupby(cols, sort=False).agg(first_seen=("first_seen", "min"), last_seen=("last_seen", "max")).reset_index()
        parts.append(g.rename(columns={c: "src" + c[len(side):] for c in cols}))
    if not parts:
        return empty_flows()
    return normalize_flows(pd.concat(parts, ignore_index=True))


def batches(paths: list[str], workers: int, per_worker: int = 4) -> list[list[str]]:
    """Split the files into about ``per_worker`` tasks per worker: one task per file costs more
    in scheduling than a small flow-log file costs to read (10,000 files → 10,000 tasks)."""
    n_tasks = max(1, min(len(paths), workers * per_worker))
    size = -(-len(paths) // n_tasks)
    return [paths[i : i + size] for i in range(0, len(paths), size)]


def _edge_meta() -> pd.DataFrame:
    return aggregate_edges(pd.DataFrame(columns=RESOLVED_COLUMNS))


def edges_on_dask(
    inputs: list[str],
    inventory: Inventory | None,
    fmt: str | None = None,
    options: SourceOptions | None = None,
    scheduler: str | None = None,
    n_workers: int = 2,
) -> DaskEdges:
    """Read, resolve and aggregate ``inputs`` on a Dask cluster: the one at ``scheduler``
    (``tcp://host:8786``), or a ``LocalCluster`` of ``n_workers`` processes started for the run."""
    try:
        import dask
        import dask.dataframe as dd
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise UsageError(None, "--engine dask", "needs the dask extra: pip install 'netpolgen[dask]'") from e
    opts = options or SourceOptions()
    opts = SourceOptions(**{**opts.__dict__, "show_progress": False})  # no terminal on workers
    paths = expand_inputs(inputs)
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="10s")
        else:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=40)
            client = Client(cluster)
    except (OSError, TimeoutError) as e:
        raise UsageError(None, "--scheduler", f"cannot reach the Dask scheduler {scheduler!r}: {e}") from e
    try:
        with client:
            inv = client.scatter(inventory, broadcast=True) if inventory is not None else None
            # One task per batch of files; its three results stay on the workers as futures, and
            # the dataframe part feeds the group-by without a round trip through this process.
            workers = max(1, len(client.scheduler_info().get("workers", {})))
            parts = [client.submit(_batch_edges, b, fmt, opts, inv, pure=False) for b in batches(paths, workers)]
            frames = [client.submit(operator.getitem, f, 0) for f in parts]
            ddf = dd.from_delayed(frames, meta=_edge_meta(), verify_meta=False)
            combined = ddf.groupby(EDGE_KEYS, dropna=False).agg(EDGE_AGGREGATES)
            names = ddf[EDGE_KEYS + ["dst_names"]][ddf["dst_names"] != ""].drop_duplicates()
            edges, names_df = dask.compute(combined, names)
            summaries = [s for batch in client.gather([client.submit(operator.getitem, f, 1) for f in parts]) for s in batch]
            reports = client.gather([client.submit(operator.getitem, f, 2) for f in parts])
            digests = client.gather([client.submit(operator.getitem, f, 3) for f in parts])
    finally:
        if cluster is not None:
            cluster.close()
    digest = concat_flows(digests)
    return DaskEdges(_finish(edges.reset_index(), names_df), list(summaries), _merge_reports(reports),
                     inventory_for(digest, inventory))


def _finish(edges: pd.DataFrame, names: pd.DataFrame) -> pd.DataFrame:
    """Join the DNS names back and give the edges the in-process engine's order and dtypes."""
    if not names.empty:
        edges = edges.merge(joined_names(names), on=EDGE_KEYS, how="left")
    edges["dst_names"] = edges.get("dst_names", pd.Series("", index=edges.index)).fillna("")
    edges = edges.sort_values(EDGE_KEYS, kind="stable").reset_index(drop=True)
    return with_edge_dtypes(edges)


def _merge_reports(reports: list[ResolveReport]) -> ResolveReport:
    total = ResolveReport()
    for r in reports:
        total.merge(r)
    return total


__all__ = ["DaskEdges", "FileSummary", "edges_on_dask"]


