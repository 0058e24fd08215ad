"""Engine.rule_rows: the rows each rule admits, kept per row, agree with rule_usage's counts and
with the one-connection evaluate() path's admitting rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from netpolgen.pipeline import generate
from netpolgen.policy import Engine, load_policies

REPO = Path(__file__).resolve().parents[2]


def test_rule_rows_agree_with_rule_usage_and_evaluate() -> None:
    result = generate([str(REPO / "captures" / "demo.pcap")], [str(REPO / "captures" / "demo-inventory.json")])
    inv = result.inventory
    engine = Engine(inv, load_policies([str(REPO / "tests" / "golden" / "demo")]))
    # Every pod-to-pod pair of the demo on every port seen, plus a port nothing listens on.
    pods = [p for p in inv.pods if p.ips and not p.host_network]
    ports = sorted({(r.proto, int(r.dst_port)) for r in result.edges.itertuples()} | {("TCP", 22)})
    rows = [(a.key, b.key, port, proto) for a in pods for b in pods if a.key != b.key for proto, port in ports]
    df = pd.DataFrame({"src_pod": [r[0] for r in rows], "src_ip": "", "dst_pod": [r[1] for r in rows], "dst_ip": "",
                       "dst_port": [r[2] for r in rows], "proto": [r[3] for r in rows]})
    hits = engine.rule_rows(df)
    usage = engine.rule_usage(df)
    assert {ref: len(ix) for ref, ix in hits.items()} == {ref: n for ref, n in usage.items() if n}
    assert any(len(ix) for ix in hits.values())
    by_row: dict[int, set] = {}
    for ref, ix in hits.items():
        assert np.all(np.diff(ix) > 0)
        for i in ix:
            by_row.setdefault(int(i), set()).add(ref)
    for i, (src, dst, port, proto) in enumerate(rows):
        v = engine.evaluate(src, dst, port, proto)
        want = set(v.egress.rules) | set(v.ingress.rules)
        assert by_row.get(i, set()) == want, rows[i]
