"""CsvSource and ParquetSource: the documented columns, their defaults, and what bad rows do.

The Parquet tests write the same table with pyarrow and check that both readers agree, so the
two code paths cross-check each other.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from netpolgen.errors import SourceError
from netpolgen.flows import FLOW_COLUMNS, concat_flows
from netpolgen.sources.base import SourceOptions
from netpolgen.sources.table import CsvSource, ParquetSource

CSV = """src_ip,dst_ip,src_port,dst_port,protocol,count,packets,bytes,first_seen,last_seen,verdict
10.0.0.1,10.0.0.2,40000,80,tcp,3,30,3000,2024-01-01T00:00:00Z,1704067300,allowed
10.0.0.1,10.0.0.3,,53,17,1,,,,,deny
2001:DB8::1,2001:db8::2,,443,TCP,,,,2024-01-01T00:00:00+01:00,,
10.0.0.4,10.0.0.2,,0,icmp,2,,,,,
"""


def read(cls, path: Path, **options):
    src = cls(str(path), SourceOptions(**options))
    return src, concat_flows(src.chunks())


def test_documented_columns_and_defaults(tmp_path):
    """Required columns with optional ones given or left empty: counts default to 1 connection,
    0 packets/bytes; an empty verdict is allowed; src_port absent is -1; times are ISO 8601 or
    unix seconds; IPv6 is canonical; rows say the client side unless told otherwise."""
    path = tmp_path / "t.csv"
    path.write_text(CSV)
    src, df = read(CsvSource, path)
    assert list(df.columns) == list(FLOW_COLUMNS)
    assert src.stats.records == 4 and src.stats.skipped.total == 0
    r = df.iloc[0]
    assert (r.src_ip, r.dst_ip, r.src_port, r.dst_port, r.proto) == ("10.0.0.1", "10.0.0.2", 40000, 80, "TCP")
    assert (r.connections, r.packets, r.bytes, r.verdict) == (3, 30, 3000, "allowed")
    assert r.first_seen == datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp() and r.last_seen == 1704067300
    dns = df.iloc[1]
    assert (dns.proto, dns.src_port, dns.verdict, dns.connections, dns.packets) == ("UDP", -1, "denied", 1, 0)
    v6 = df.iloc[2]
    assert (v6.src_ip, v6.dst_ip, v6.verdict) == ("2001:db8::1", "2001:db8::2", "allowed")
    assert v6.first_seen == v6.last_seen == datetime(2023, 12, 31, 23, tzinfo=timezone.utc).timestamp()
    icmp = df.iloc[3]
    assert (icmp.proto, icmp.dst_port, icmp.src_port) == ("ICMP", 0, 0)
    assert df["direction_known"].all()
    _, dropped = read(CsvSource, path, include_dropped=True)
    assert set(dropped["verdict"]) == {"allowed"}


def test_parquet_reads_like_csv(tmp_path):
    """The same table as Parquet (typed columns, NaN for empty numbers) gives the same rows."""
    csv = tmp_path / "t.csv"
    csv.write_text(CSV)
    pq = tmp_path / "t.parquet"
    pd.read_csv(csv).to_parquet(pq)
    _, a = read(CsvSource, csv)
    _, b = read(ParquetSource, pq)
    cols = [c for c in a.columns if c != "source"]
    assert a[cols].equals(b[cols])


def test_missing_required_column_names_it(tmp_path):
    """A table without dst_port cannot give rules: SourceError naming the file and column."""
    path = tmp_path / "t.csv"
    path.write_text("src_ip,dst_ip,protocol\n10.0.0.1,10.0.0.2,tcp\n")
    with pytest.raises(SourceError) as e:
        read(CsvSource, path)
    assert e.value.file == str(path) and "'dst_port'" in e.value.what
    pq = tmp_path / "t.parquet"
    pd.DataFrame({"src_ip": ["10.0.0.1"], "dst_ip": ["10.0.0.2"], "dst_port": [80]}).to_parquet(pq)
    with pytest.raises(SourceError) as e:
        read(ParquetSource, pq)
    assert "'protocol'" in e.value.what


def test_bad_rows_are_skipped_with_line_numbers(tmp_path):
    """Each invalid value skips its row, counted with its line (header = line 1); --strict
    makes the first fatal; Parquet says row numbers."""
    path = tmp_path / "t.csv"
    path.write_text(
        "src_ip,dst_ip,dst_port,protocol,first_seen,verdict,count\n"
        "10.0.0.1,10.0.0.2,80,tcp,,,\n"         # 2 good
        "10.0.0.1,10.0.0.x,80,tcp,,,\n"         # 3 bad address
        "10.0.0.1,10.0.0.2,99999,tcp,,,\n"      # 4 bad port
        "10.0.0.1,10.0.0.2,80,gre-ish,,,\n"     # 5 unknown protocol
        "10.0.0.1,10.0.0.2,80,tcp,yesterday,,\n"  # 6 bad time
        "10.0.0.1,10.0.0.2,80,tcp,,maybe,\n"    # 7 bad verdict
        "10.0.0.1,10.0.0.2,80,tcp,,,-3\n"       # 8 bad count
        "10.0.0.1,10.0.0.2,81,tcp,,,\n"         # 9 good
        "10.0.0.1,10.0.0.2,82,tcp,,,1,extra\n"  # 10 too many fields
        "10.0.0.1,10.0.0.2,83,tcp,,,\n"         # 11 good
    )
    src, df = read(CsvSource, path)
    assert len(df) == 3 and src.stats.records == 10
    lines = sorted(int(e.split(": line ")[1].split(":")[0]) for e in src.stats.skipped.examples)
    assert lines == [3, 4, 5, 6, 7, 8, 10]
    with pytest.raises(SourceError) as e:
        read(CsvSource, path, strict=True)
    assert e.value.where == "line 3"
    pq = tmp_path / "t.parquet"
    pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip").to_parquet(pq)
    src, _ = read(ParquetSource, pq)
    assert sorted(int(e.split(": row ")[1].split(":")[0]) for e in src.stats.skipped.examples) == [2, 3, 4, 5, 6, 7]


def test_direction_unknown_rows_follow_the_port_rule(tmp_path):
    """direction_known=false with both ports: the low/well-known port is the server's."""
    path = tmp_path / "t.csv"
    path.write_text("src_ip,dst_ip,src_port,dst_port,protocol,direction_known,src_namespace,dst_namespace\n"
                    "10.0.0.2,10.0.0.1,53,41000,udp,false,kube-system,shop\n"
                    "10.0.0.5,10.0.0.6,41000,443,tcp,false,a,b\n")
    _, df = read(CsvSource, path)
    rows = {(r.src_ip, r.dst_ip, r.dst_port, r.src_namespace, r.direction_known) for r in df.itertuples()}
    assert rows == {("10.0.0.1", "10.0.0.2", 53, "shop", False), ("10.0.0.5", "10.0.0.6", 443, "a", False)}


def test_chunked_reading(tmp_path):
    """Chunks never exceed chunk_size and line numbers continue across chunks."""
    body = "".join(f"10.0.0.1,10.0.0.2,{1000 + i},tcp\n" for i in range(25))
    path = tmp_path / "t.csv"
    path.write_text("src_ip,dst_ip,dst_port,protocol\n" + body + "10.0.0.1,bad,1,tcp\n")
    src = CsvSource(str(path), SourceOptions(chunk_size=4))
    parts = list(src.chunks())
    assert all(0 < len(p) <= 4 for p in parts)
    assert sum(len(p) for p in parts) == 25
    assert src.stats.skipped.examples == [f"{path}: line 27: invalid IP address"]


def test_protocol_spellings_are_one_table_for_csv_and_calico(tmp_path):
    """IANA's ipv6-icmp, icmp6, numbers: CSV names them exactly as Calico does (one normaliser)."""
    from netpolgen.flows import protocol_name
    from netpolgen.sources.calico import _proto

    for spelling in ("tcp", "UDP", "sctp", "icmp", "icmp6", "ICMPv6", "ipv6-icmp", "6", "17", "58", "47"):
        assert _proto(spelling) == protocol_name(spelling)
    path = tmp_path / "t.csv"
    path.write_text("src_ip,dst_ip,dst_port,protocol\nfd00::1,fd00::2,0,ipv6-icmp\n10.0.0.1,10.0.0.2,0,47\n")
    src = CsvSource(str(path))
    df = concat_flows(src.chunks())
    assert list(df["proto"]) == ["ICMPv6", "IP/47"] and not src.stats.skipped.total


def test_a_quote_never_closed_is_an_error_naming_its_line(tmp_path):
    """Found by the fuzz tests: pandas' tokenizer error reached the user as an internal error."""
    path = tmp_path / "t.csv"
    path.write_text('src_ip,dst_ip,dst_port,protocol\n10.0.0.1,10.0.0.2,80,TCP\n"10.0.0.1,10.0.0.2,80,TCP\n')
    with pytest.raises(SourceError) as e:
        concat_flows(CsvSource(str(path)).chunks())
    assert e.value.line() == f"{path}: line 3: not a flow table: EOF inside string starting at row 2"
