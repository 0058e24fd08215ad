"""The Dask engine (a real LocalCluster with 2 worker processes) gives the same edges and the
same policies as the in-process engine on a multi-file input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from scapy.all import IP, TCP, UDP, Ether, wrpcap

from netpolgen.pipeline import generate
from tests import kube, shop

pytest.importorskip("distributed")


def _capture(path: Path, conns: list[tuple], t0: float) -> None:
    frames = []
    for i, (src, sport, dst, dport, proto, _known) in enumerate(conns):
        t = t0 + i
        if proto == "TCP":
            pkts = [IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S"),
                    IP(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="SA"),
                    IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="A")]
        else:
            pkts = [IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / b"q",
                    IP(src=dst, dst=src) / UDP(sport=dport, dport=sport) / b"a"]
        for j, p in enumerate(pkts):
            f = Ether() / p
            f.time = t + j * 0.001
            frames.append(f)
    wrpcap(str(path), frames)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], str]:
    d = tmp_path_factory.mktemp("multi")
    conns = shop.CONNECTIONS
    files = []
    for k in range(4):
        # Each file its own connections: the Dask engine merges sightings within a batch only
        # (see netpolgen/scaleout.py), so files that share connections would count them twice.
        part = conns[k::4]
        path = d / f"node-{k}.pcap"
        _capture(path, part, 1_700_000_000.0 + 100 * k)
        files.append(str(path))
    inv = d / "inventory.json"
    inv.write_text(json.dumps(kube.as_list(shop.objects())))
    return files, str(inv)


def test_dask_and_pandas_engines_agree(inputs: tuple[list[str], str]) -> None:
    files, inv = inputs
    local = generate(files, [inv])
    dist = generate(files, [inv], engine="dask")
    pd.testing.assert_frame_equal(local.edges.reset_index(drop=True), dist.edges.reset_index(drop=True),
                                  check_dtype=False)
    assert local.policies == dist.policies
    assert dist.self_check.denied == [] and dist.self_check.checked == local.self_check.checked
    assert sorted(s.path for s in dist.sources) == sorted(files)
    assert sum(s.stats.records for s in dist.sources) == sum(s.stats.records for s in local.sources)
    assert dist.report.unresolved == local.report.unresolved


def test_an_existing_cluster_is_used_through_its_scheduler_address(inputs: tuple[list[str], str]) -> None:
    from distributed import Client, LocalCluster

    files, inv = inputs
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = generate(files, [inv], engine="dask", scheduler=cluster.scheduler_address)
        with Client(cluster) as client:  # the work ran on that cluster's workers
            assert len(client.scheduler_info()["workers"]) == 2
            prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
            assert "batch_edges" in prefixes, prefixes
    assert result.policies == generate(files, [inv]).policies


def test_an_unreachable_scheduler_is_a_clean_error(inputs: tuple[list[str], str]) -> None:
    from netpolgen.errors import UsageError

    files, inv = inputs
    with pytest.raises(UsageError, match="cannot reach the Dask scheduler"):
        generate(files, [inv], engine="dask", scheduler="tcp://127.0.0.1:1")


def test_files_are_batched_about_four_tasks_per_worker_and_none_is_lost() -> None:
    from netpolgen.scaleout import batches

    paths = [f"f{i}" for i in range(10_000)]
    got = batches(paths, workers=2)
    assert len(got) == 8 and [p for b in got for p in b] == paths
    assert batches(["a", "b"], workers=4) == [["a"], ["b"]]


def test_flow_logs_without_an_inventory_give_the_same_policies_on_dask(samples: Path, tmp_path: Path) -> None:
    """Hubble records name their pods: with no --inventory both engines build the inventory from
    them (the workers' view must reach synthesis too), so the policies agree."""
    lines = (samples / "hubble-flows" / "basic-sample-400-tcp-flows.json").read_text().splitlines(keepends=True)
    files = []
    for k in range(4):
        f = tmp_path / f"part-{k}.json"
        f.write_text("".join(lines[k * len(lines) // 4 : (k + 1) * len(lines) // 4]))
        files.append(str(f))
    local = generate(files, [])
    dist = generate(files, [], engine="dask")
    assert local.policies and local.policies == dist.policies
