"""Evidence annotations on the written policies: what they count is the traffic each policy's
rules admit (checked against the edge table), they are the same on every run over the same
input whatever the row order, and --no-annotations leaves exactly them out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from netpolgen.annotations import EVIDENCE_KEYS, annotate
from netpolgen.evidence import gather_evidence, when
from netpolgen.pipeline import generate
from netpolgen.render import to_yaml_stream

REPO = Path(__file__).resolve().parents[1]
PCAP = str(REPO / "captures" / "demo.pcap")
INV = str(REPO / "captures" / "demo-inventory.json")


def test_flows_and_times_are_those_of_the_edges_the_policy_governs() -> None:
    result = generate([PCAP], [INV])
    ev = gather_evidence(result.policies, result.edges, result.inventory, result.sources)
    e = result.edges
    for p in annotate(result.policies, ev):
        notes = p["metadata"].get("annotations") or {}
        if p["metadata"]["name"] == "default-deny":
            assert not set(notes) & set(EVIDENCE_KEYS)
            continue
        wl = notes["netpolgen.io/workload"]
        # Every edge with the workload at either end is admitted by one of its rules (the demo's
        # self-check passes), and no other edge is.
        mine = e[(e["src_workload"] == wl) | (e["dst_workload"] == wl)]
        assert notes["netpolgen.io/flows"] == str(int(mine["connections"].sum()))
        assert notes["netpolgen.io/first-seen"] == when(float(mine["first_seen"].min()))
        assert notes["netpolgen.io/last-seen"] == when(float(mine["last_seen"].max()))
        st = result.sources[0].stats
        assert notes["netpolgen.io/window"] == f"{when(st.first_seen)}/{when(st.last_seen)}"
        per_rule = dict(x.split("=") for x in notes["netpolgen.io/rule-flows"].split())
        n_rules = len(p["spec"].get("ingress", [])) + len(p["spec"].get("egress", []))
        assert len(per_rule) == n_rules


def test_annotations_do_not_depend_on_row_order() -> None:
    result = generate([PCAP], [INV])
    a = annotate(result.policies, gather_evidence(result.policies, result.edges, result.inventory, result.sources))
    shuffled = result.edges.sample(frac=1.0, random_state=11).reset_index(drop=True)
    b = annotate(result.policies, gather_evidence(result.policies, shuffled, result.inventory, result.sources))
    assert to_yaml_stream(a) == to_yaml_stream(b)


def test_no_annotations_drops_the_evidence_keys_only(tmp_path: Path) -> None:
    for name, extra in (("with", []), ("without", ["--no-annotations"])):
        proc = subprocess.run([sys.executable, "-m", "netpolgen", "generate", PCAP, "-i", INV, "-o", str(tmp_path / name),
                               "-q", *extra], capture_output=True, text=True, cwd=REPO, timeout=300)
        assert proc.returncode == 0, proc.stderr
    for path in (tmp_path / "with").rglob("*.yaml"):
        with_doc = yaml.safe_load(path.read_text())
        without_doc = yaml.safe_load((tmp_path / "without" / path.relative_to(tmp_path / "with")).read_text())
        notes = with_doc["metadata"].pop("annotations", {})
        kept = {k: v for k, v in notes.items() if k not in EVIDENCE_KEYS}
        if kept:
            with_doc["metadata"]["annotations"] = kept
        assert with_doc == without_doc
        assert not set(without_doc["metadata"].get("annotations", {})) & set(EVIDENCE_KEYS)
