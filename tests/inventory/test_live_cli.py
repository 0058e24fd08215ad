"""`generate --kubeconfig`: the inventory read from a (fake, local) API server gives the same
policies as the same objects in a file, and skipped kinds are reported in the summary."""

from __future__ import annotations

import json
from pathlib import Path

from tests import kube, shop
from tests.inventory.test_live import FakeApiServer, cluster_objects, write_kubeconfig
from tests.test_cli_errors import run_cli
from tests.test_dask_engine import _capture


def test_generate_from_a_live_cluster_matches_the_file_inventory(tmp_path: Path) -> None:
    capture = tmp_path / "shop.pcap"
    _capture(capture, shop.CONNECTIONS, 1_700_000_000.0)
    objs = cluster_objects()
    inv_file = tmp_path / "inv.json"
    inv_file.write_text(json.dumps(kube.as_list([o for o in objs if o["kind"] != "CronJob"])))
    with FakeApiServer(objs, forbidden={"cronjobs"}) as api:
        kc = write_kubeconfig(tmp_path / "kubeconfig", api.url)
        live = run_cli("generate", str(capture), "--kubeconfig", kc, "--output", str(tmp_path / "live"))
    from_file = run_cli("generate", str(capture), "--inventory", str(inv_file), "--output", str(tmp_path / "file"))
    assert live.returncode == 0 and from_file.returncode == 0, live.stderr + from_file.stderr
    live_files = sorted(p.relative_to(tmp_path / "live") for p in (tmp_path / "live").rglob("*.yaml"))
    file_files = sorted(p.relative_to(tmp_path / "file") for p in (tmp_path / "file").rglob("*.yaml"))
    assert live_files == file_files and live_files
    for rel in live_files:
        assert (tmp_path / "live" / rel).read_text() == (tmp_path / "file" / rel).read_text()
    assert "CronJob skipped: 403" in live.stderr


def test_an_unreachable_cluster_is_one_error_line(tmp_path: Path) -> None:
    capture = tmp_path / "shop.pcap"
    _capture(capture, shop.CONNECTIONS[:1], 1_700_000_000.0)
    kc = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    proc = run_cli("generate", str(capture), "--kubeconfig", kc, "--output", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "cannot reach the API server" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_diff_uses_the_live_clusters_own_networkpolicies(tmp_path: Path) -> None:
    """Without --existing, observed traffic is diffed against the policies the cluster has:
    a deny-all in ``shop`` breaks every observed connection that touches shop."""
    capture = tmp_path / "shop.pcap"
    _capture(capture, shop.CONNECTIONS, 1_700_000_000.0)
    deny_all = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "deny-all", "namespace": "shop"},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    objs = [o for o in cluster_objects() if o["kind"] != "NetworkPolicy"] + [deny_all]
    with FakeApiServer(objs) as api:
        kc = write_kubeconfig(tmp_path / "kubeconfig", api.url)
        proc = run_cli("diff", str(capture), "--kubeconfig", kc)
    assert proc.returncode == 1, proc.stderr
    assert "shop/deny-all" in proc.stdout
    assert "shop/frontend[Deployment] -> shop/api[Deployment] TCP/5000" in proc.stdout
