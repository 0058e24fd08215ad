"""Format detection by content: every flow-log sample is recognised as its own format, by
exactly one flow-log sniffer, whatever its name; other files are refused with one error."""

from __future__ import annotations

import gzip
import json
import shutil

import pandas as pd
import pytest

from netpolgen.errors import SourceError
from netpolgen.sources import detect_format, open_source
from netpolgen.sources.base import read_head
from netpolgen.sources.calico import CalicoSource
from netpolgen.sources.hubble import HubbleSource
from netpolgen.sources.table import CsvSource, ParquetSource
from netpolgen.sources.vpc import VpcFlowLogSource

FLOW_LOG_SOURCES = [HubbleSource, CalicoSource, VpcFlowLogSource, ParquetSource, CsvSource]

SAMPLES = [
    ("hubble-flows/basic-sample-10-flows.json", "hubble"),
    ("hubble-flows/basic-sample-330-dns-flows.json", "hubble"),
    ("hubble-flows/basic-sample-400-icmpv4-flows.json", "hubble"),
    ("hubble-flows/basic-sample-400-tcp-flows.json", "hubble"),
    ("hubble-flows/basic-sample-400-udp-flows.json", "hubble"),
    ("hubble-flows/basic-sample-5-dns-flows.json", "hubble"),
    ("hubble-flows/basic-sample-5-http-flows.json", "hubble"),
    ("hubble-flows/cilium-docs-export-dropped.jsonl", "hubble"),
    ("aws-vpc-flow-logs/default-format-v2.log", "vpc"),
    ("aws-vpc-flow-logs/custom-v3-tcp-flags.log", "vpc"),
    ("aws-vpc-flow-logs/custom-v3-transit-gateway.log", "vpc"),
    ("aws-vpc-flow-logs/custom-v5-service-traffic-path.log", "vpc"),
]


def claims(head: bytes) -> list[str]:
    return [cls.format_name for cls in FLOW_LOG_SOURCES if cls.sniff(head)]


@pytest.mark.parametrize("rel, fmt", SAMPLES)
def test_every_flow_log_sample_is_detected(samples, tmp_path, rel, fmt):
    """Detection reads content, not names: the sample, renamed and gzipped, is still its format,
    and no other flow-log sniffer claims it."""
    path = samples / rel
    assert detect_format(str(path)) == fmt
    assert claims(read_head(str(path))) == [fmt]
    renamed = tmp_path / "capture.bin.gz"
    renamed.write_bytes(gzip.compress(path.read_bytes()))
    assert detect_format(str(renamed)) == fmt
    assert open_source(str(renamed)).format_name == fmt


def test_vpc_default_format_without_header_is_detected(samples, tmp_path):
    """Real default-format files have no header line: the records themselves are recognised."""
    lines = (samples / "aws-vpc-flow-logs" / "default-format-v2.log").read_text().splitlines()
    for skip in (1, 3):  # from an ACCEPT record, and from a NODATA one
        path = tmp_path / f"v2-{skip}.log"
        path.write_text("\n".join(lines[skip:]) + "\n")
        assert detect_format(str(path)) == "vpc"


def test_hubble_comment_header_and_bare_flows(samples, tmp_path):
    """// comment lines before bare flow objects: still Hubble."""
    first = json.loads((samples / "hubble-flows" / "basic-sample-10-flows.json").read_text().splitlines()[0])
    path = tmp_path / "x.json"
    path.write_text("// SPDX-License-Identifier: Apache-2.0\n\n" + json.dumps(first["flow"]) + "\n")
    assert detect_format(str(path)) == "hubble"


def test_calico_table_and_parquet_are_detected(tmp_path):
    """Calico JSON, an Elasticsearch document, the Calico text layout, a CSV and a Parquet flow
    table are each recognised by their own sniffer only."""
    calico = {"start_time": 1, "end_time": 2, "source_ip": "10.0.0.1", "source_name": "a", "source_name_aggr": "a-*",
              "source_namespace": "ns", "source_type": "wep", "dest_ip": "10.0.0.2", "dest_name": "b",
              "dest_name_aggr": "b-*", "dest_namespace": "ns", "dest_type": "wep", "dest_port": 80,
              "proto": "tcp", "action": "allow", "reporter": "src", "num_flows": 1}
    cases = {
        "calico.log": json.dumps(calico) + "\n",
        "es.json": json.dumps({"_index": "flows", "_source": calico}) + "\n",
        "calico.txt": "1 2 wep ns a - wep ns b - 10.0.0.1 10.0.0.2 tcp 40000 80 1 1 0 src 1 1 60 60 allow -\n",
        "flows.csv": "src_ip,dst_ip,dst_port,protocol\n10.0.0.1,10.0.0.2,80,tcp\n",
    }
    expected = {"calico.log": "calico", "es.json": "calico", "calico.txt": "calico", "flows.csv": "csv"}
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        assert detect_format(str(path)) == expected[name]
        assert claims(read_head(str(path))) == [expected[name]]
    pq = tmp_path / "flows.parquet"
    pd.DataFrame({"src_ip": ["10.0.0.1"], "dst_ip": ["10.0.0.2"], "dst_port": [80], "protocol": ["tcp"]}).to_parquet(pq)
    assert detect_format(str(pq)) == "parquet"


def test_captures_are_not_claimed_by_flow_log_sniffers(samples):
    """pcap and pcapng samples belong to the capture reader: no flow-log sniffer claims them."""
    pcaps = sorted((samples / "pcaps").rglob("*.pcap*"))
    assert pcaps
    for p in pcaps:
        assert claims(read_head(str(p))) == [], p


@pytest.mark.parametrize("name, content", [
    ("junk.bin", bytes(range(256)) * 4),
    ("manifest.yaml", b"apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n"),
    ("notes.txt", b"hello world\nthis is not a flow log\n"),
    ("pods.json", b'{"apiVersion": "v1", "kind": "List", "items": []}\n'),
])
def test_other_files_are_refused(tmp_path, name, content):
    """Anything else: one SourceError naming the file, saying it is not a recognised format."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError) as e:
        detect_format(str(path))
    assert e.value.file == str(path)
    assert "not a recognised" in e.value.what


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.log"
    path.touch()
    with pytest.raises(SourceError) as e:
        detect_format(str(path))
    assert e.value.what == "empty file"


def test_forced_format_on_the_wrong_file_fails_at_line_1(samples, tmp_path):
    """--format names a reader; a file of another format fails there with the file and line."""
    vpc = samples / "aws-vpc-flow-logs" / "default-format-v2.log"
    hubble = samples / "hubble-flows" / "basic-sample-10-flows.json"
    for fmt, path in (("hubble", vpc), ("calico", vpc), ("vpc", hubble), ("csv", hubble)):
        copy = tmp_path / f"{fmt}-{path.name}"
        shutil.copy(path, copy)
        with pytest.raises(SourceError) as e:
            list(open_source(str(copy), fmt).chunks())
        assert e.value.file == str(copy) and e.value.where == "line 1", (fmt, e.value.line())
