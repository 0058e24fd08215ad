"""Calico flow logs: JSON records (``flows.log``, Elasticsearch documents) and the node text format.

Accepted layouts, one record per line:

- JSON objects with the documented flow-log fields (Calico Enterprise/Cloud ``flows.log`` on the
  node, or what is indexed in Elasticsearch), bare or as Elasticsearch documents
  (``{"_index": ..., "_source": {...}}``);
- space-separated text. Its field order is given by a header line naming the fields (the
  documented names, or the camelCase ones), or else assumed to be
  ``start_time end_time source_type source_namespace source_name source_labels dest_type
  dest_namespace dest_name dest_labels source_ip dest_ip proto source_port dest_port num_flows
  num_flows_started num_flows_completed reporter packets_in packets_out bytes_in bytes_out action
  [policies]``: the order of Calico Enterprise's text export (one name per side; an aggregated
  name ends in ``*``). Tigera's "Filter flow logs" page (docs.tigera.io, Calico Cloud and
  Enterprise) lists the space-delimited fields in this order as far as ``packetsOut``; the rest
  follows the JSON field list. No real file of this format was available to check it against,
  hence the header line that overrides it.

Fields used: ``start_time``/``end_time`` (unix seconds or ISO 8601), ``source_ip``,
``source_name``, ``source_name_aggr``, ``source_namespace``, ``source_type`` (wep: pod, hep: host
endpoint, ns: network set, net: a network, ``pub``/``pvt``), ``source_labels``, the same for
``dest_``, ``dest_port``, ``source_port``, ``proto``, ``action``, ``reporter``, ``num_flows``,
``packets_in/out``, ``bytes_in/out``, ``host`` (the node). ``-`` or null means absent.

What a record becomes:

- one row per distinct flow (endpoints, port, protocol, verdict); Calico's ``source`` is the side
  that opened the connection, so ``direction_known`` is always true;
- a flow reported by both ends (``reporter`` src and dst) counts once: connections, packets and
  bytes are the larger of the two reporters' sums, not their total;
- verdict: ``allow`` is ``allowed``, ``deny`` is ``denied`` (``allowed`` with
  ``--include-dropped``);
- endpoint metadata: namespace; pod = ``namespace/name`` for ``wep`` endpoints, where the name is
  ``name_aggr`` (e.g. ``frontend-7d4899b484-*``) when the record is aggregated and has no IP, so
  that the resolver can find the aggregated endpoint in the inventory built from the flows;
  labels (``{"labels": ["k=v"]}``, a list, a map, or ``k=v,k=v``); a host endpoint with an
  address is marked ``reserved:host`` (a node). Networks and network sets resolve by address.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator, Optional, Union

import msgspec
import numpy as np
import pandas as pd

from netpolgen.flows import VERDICT_ALLOWED, VERDICT_DENIED, flow_frame, labels_to_text, protocol_name, repeated
from netpolgen.sources.base import SourceOptions, read_head
from netpolgen.sources.flowlog import FlowLogSource
from netpolgen.sources.lineblocks import BlockParser, ParsedBlock, RecordLines
from netpolgen.sources.records import Addresses, BadRecord, first_line

_Num = Union[int, float, str, None]

TEXT_FIELDS = (
    "start_time", "end_time", "source_type", "source_namespace", "source_name", "source_labels",
    "dest_type", "dest_namespace", "dest_name", "dest_labels", "source_ip", "dest_ip", "proto",
    "source_port", "dest_port", "num_flows", "num_flows_started", "num_flows_completed", "reporter",
    "packets_in", "packets_out", "bytes_in", "bytes_out", "action", "policies",
)
_CAMEL = {
    "starttime": "start_time", "endtime": "end_time", "srctype": "source_type",
    "srcnamespace": "source_namespace", "srcname": "source_name", "srcnameaggr": "source_name_aggr",
    "srclabels": "source_labels", "dsttype": "dest_type", "dstnamespace": "dest_namespace",
    "dstname": "dest_name", "dstnameaggr": "dest_name_aggr", "dstlabels": "dest_labels",
    "srcip": "source_ip", "dstip": "dest_ip", "srcport": "source_port", "dstport": "dest_port",
    "numflows": "num_flows", "numflowsstarted": "num_flows_started",
    "numflowscompleted": "num_flows_completed", "packetsin": "packets_in",
    "packetsout": "packets_out", "bytesin": "bytes_in", "bytesout": "bytes_out",
}
_ENDPOINT_TYPES = frozenset({"wep", "hep", "ns", "net"})
_WITH_PORTS = frozenset({"TCP", "UDP", "SCTP"})
_ACTIONS: dict[str | None, str] = {"allow": VERDICT_ALLOWED, "deny": VERDICT_DENIED}  # looked up with rec.action as is


class _Record(msgspec.Struct, gc=False):
    start_time: _Num = None
    end_time: _Num = None
    startTime: _Num = None  # noqa: N815 - some exporters write camelCase times
    endTime: _Num = None  # noqa: N815
    source_ip: Optional[str] = None
    source_name: Optional[str] = None
    source_name_aggr: Optional[str] = None
    source_namespace: Optional[str] = None
    source_type: Optional[str] = None
    source_labels: msgspec.Raw = msgspec.Raw(b"")
    source_port: _Num = None
    dest_ip: Optional[str] = None
    dest_name: Optional[str] = None
    dest_name_aggr: Optional[str] = None
    dest_namespace: Optional[str] = None
    dest_type: Optional[str] = None
    dest_labels: msgspec.Raw = msgspec.Raw(b"")
    dest_port: _Num = None
    proto: _Num = None
    action: Optional[str] = None
    reporter: Optional[str] = None
    num_flows: _Num = None
    packets_in: _Num = None
    packets_out: _Num = None
    bytes_in: _Num = None
    bytes_out: _Num = None
    host: Optional[str] = None


class _Document(_Record):
    """A bare record, or an Elasticsearch document holding one in ``_source``."""

    _source: Optional[_Record] = None


_DECODER = msgspec.json.Decoder(_Document)
_MSGSPEC_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)  # RecursionError: nested too deep


def _absent(v: object) -> bool:
    return v is None or v == "-" or v == ""


def _int(v: _Num, what: str) -> int:
    if v is None or _absent(v):
        return 0
    try:
        return int(v) if not isinstance(v, str) else int(float(v))
    except (TypeError, ValueError, OverflowError) as e:
        raise BadRecord(f"invalid {what}", f"invalid {what}: {v!r}") from e


def _time(v: _Num) -> float:
    if v is None or _absent(v):
        return np.nan
    if isinstance(v, (int, float)):
        return float(v) / 1000.0 if v > 1e11 else float(v)  # milliseconds from some exporters
    try:
        return float(v)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError as e:
        raise BadRecord("invalid time", f"invalid time {v!r}") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def parse_labels(raw: bytes) -> dict[str, str]:
    """Calico's label field in any of its spellings → a dict (see module doc)."""
    text = raw.strip()
    if not text or text in (b"-", b"null", b"{}", b"[]", b'""'):
        return {}
    value: Any
    try:
        value = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        value = text.decode("utf-8", "replace")
    if isinstance(value, dict) and "labels" in value and isinstance(value["labels"], (list, dict)):
        value = value["labels"]
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, str):
        if value == "-":
            return {}
        value = value.strip("[]").split(",")
    if isinstance(value, list):
        out: dict[str, str] = {}
        for item in value:
            k, sep, v = str(item).strip().partition("=")
            if k and sep:
                out[k] = v
        return out
    raise ValueError(f"unreadable labels {raw[:60]!r}")


class CalicoSource(FlowLogSource):
    """Calico flow-log records → flow-table chunks (one row per flow, reporters merged)."""

    format_name = "calico"
    format_title = "Calico flow log"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        line = first_line(head)
        if line is None:
            return False
        if line.startswith(b"{"):
            compact = line.replace(b" ", b"")
            return (b'"source_name_aggr":' in compact or b'"dest_name_aggr":' in compact) or (
                b'"reporter":' in compact and b'"dest_port":' in compact and b'"source_type":' in compact
            )
        text = line.decode("utf-8", "replace")
        return _text_header(text) is not None or _looks_like_text_record(text.split())

    # ----- reading ----------------------------------------------------------------------------

    def chunks(self) -> Iterator[pd.DataFrame]:
        """Blocks of records (parsed here or by a pool of processes) are merged per flow
        (reporters too) until they hold chunk_size flows, and turned into rows in pieces of at
        most chunk_size flows."""
        size = max(int(self.options.chunk_size), 1)
        # (address, namespace, pod, marker) endpoints, protocols, verdicts -> this reader's codes
        self._endpoint_ids: dict[tuple[str, str, str, str], int] = {}
        self._proto_ids: dict[str, int] = {}
        self._verdict_ids: dict[str, int] = {}
        head = first_line(read_head(self.path), comment=b"#")
        if head is not None and not head.startswith(b"{"):
            # text: the first line may be a header that every block must know: read here
            blocks = self.parsed_blocks(_CalicoParser, None, pool=False)
        else:
            # JSON: a stray text line is read in the default field order
            blocks = self.parsed_blocks(_CalicoParser, TEXT_FIELDS)
        # Blocks are merged as they come (while a pool parses the next ones), into one table of
        # flows that is turned into rows when it holds chunk_size flows, and at the end.
        merged: dict[str, np.ndarray] | None = None
        pending: list[dict[str, np.ndarray]] = []
        rows = 0
        for block in blocks:
            if block.data is None:
                continue
            pending.append(self._global_codes(block.data))
            rows += len(block.data["sport"])
            if rows >= min(size, _MERGE_ROWS):
                merged = _group(([merged] if merged is not None else []) + pending)
                pending, rows = [], 0
                if len(merged["sport"]) >= size:
                    yield from self._pieces(merged, size)
                    merged = None
        if pending or merged is not None:
            yield from self._pieces(_group(([merged] if merged is not None else []) + pending), size)
        self.finish_file()

    def _global_codes(self, data: dict[str, Any]) -> dict[str, np.ndarray]:
        """A block's columns with its table codes replaced by this reader's."""
        tables = data.pop("tables")
        for col, table in (("src", self._endpoint_ids), ("proto", self._proto_ids), ("verdict", self._verdict_ids)):
            remap = np.array([table.setdefault(x, len(table)) for x in tables[col]], dtype=np.int64)
            data[col] = remap[data[col]]
            if col == "src":
                data["dst"] = remap[data["dst"]]
        return data

    def _pieces(self, merged: dict[str, np.ndarray], size: int) -> Iterator[pd.DataFrame]:
        for start in range(0, len(merged["sport"]), size):
            yield self._rows({c: v[start:start + size] for c, v in merged.items()})

    def _rows(self, m: dict[str, np.ndarray]) -> pd.DataFrame:
        n = len(m["sport"])
        endpoints = np.empty((len(self._endpoint_ids), 4), dtype=object)
        endpoints[:] = list(self._endpoint_ids) or np.empty((0, 4), dtype=object)
        src, dst = endpoints[m["src"]], endpoints[m["dst"]]
        cols = {
            "src_ip": src[:, 0], "src_namespace": src[:, 1], "src_pod": src[:, 2], "src_owner": src[:, 3],
            "dst_ip": dst[:, 0], "dst_namespace": dst[:, 1], "dst_pod": dst[:, 2], "dst_owner": dst[:, 3],
            "src_port": m["sport"].astype(np.int32), "dst_port": m["dport"].astype(np.int32),
            "proto": np.array(list(self._proto_ids), dtype=object)[m["proto"]],
            "verdict": np.array(list(self._verdict_ids), dtype=object)[m["verdict"]],
            # a flow reported by both ends counts once: the larger reporter's numbers
            "connections": np.maximum(m["flows_src"], m["flows_dst"]),
            "packets": np.maximum(m["packets_src"], m["packets_dst"]),
            "bytes": np.maximum(m["bytes_src"], m["bytes_dst"]),
            "first_seen": m["first"], "last_seen": m["last"],
            "direction_known": np.ones(n, dtype=bool),
            "src_labels": m["src_labels"], "dst_labels": m["dst_labels"], "node": m["node"],
            "source": repeated(self.path, n),
        }
        return self.finish_chunk(flow_frame(cols, n))


_KEY_COLUMNS = ("src", "dst", "sport", "dport", "proto", "verdict")
_SUM_COLUMNS = ("flows_src", "flows_dst", "packets_src", "packets_dst", "bytes_src", "bytes_dst")
_MERGE_ROWS = 50_000  # block rows gathered before they are merged into the flows so far


def _group(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One row per flow of ``parts`` (in order): each reporter's sums added up, the earliest
    start, the latest end, the first labels and node seen. Merged tables merge again alike."""
    cols = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    n = len(cols["sport"])
    group = np.zeros(n, dtype=np.int64)
    for c in _KEY_COLUMNS:  # integer codes: each step hashes numbers only
        codes, uniques = pd.factorize(cols[c])
        group, _ = pd.factorize(group * max(len(uniques), 1) + codes)
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.concatenate(([True], group[order][1:] != group[order][:-1])))
    first_row = order[starts]
    merged = {c: cols[c][first_row] for c in _KEY_COLUMNS}
    for c in _SUM_COLUMNS:
        merged[c] = np.add.reduceat(cols[c][order], starts)
    merged["first"] = np.fmin.reduceat(cols["first"][order], starts)
    merged["last"] = np.fmax.reduceat(cols["last"][order], starts)
    for c in ("src_labels", "dst_labels", "node"):
        merged[c] = _first_nonempty(cols[c], order, starts)
    return merged


def _first_nonempty(values: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per group (rows ``order`` cut at ``starts``), its first non-empty value in row order, or ""."""
    out = np.full(len(starts), "", dtype=object)
    sorted_values = values[order]
    filled = np.flatnonzero(sorted_values != "")
    if len(filled):
        group_of = np.searchsorted(starts, filled, side="right") - 1
        first = np.concatenate(([True], group_of[1:] != group_of[:-1]))
        out[group_of[first]] = sorted_values[filled[first]]
    return out


class _CalicoParser(BlockParser):
    """Calico records → per-block flows with each reporter's sums (see ``CalicoSource``).

    ``text_fields``: the field order of text lines, or None to take it from the first text line
    (a header) or else assume the default one: only for a reader that parses every block."""

    def __init__(self, options: SourceOptions, text_fields: tuple[str, ...] | None) -> None:
        super().__init__(options)
        self._labels: dict[bytes, str] = {}
        self._endpoints: dict[tuple, tuple[str, str, str, str]] = {}
        self._protos: dict[object, str] = {}
        self._window = options.since is not None or options.until is not None
        self._canon = Addresses()
        self._text_fields: list[str] | None = list(text_fields) if text_fields is not None else None
        self._records = self._usable = 0

    def parse(self, data: bytes | bytearray, begin: int = 0, end: int | None = None) -> ParsedBlock:
        out = ParsedBlock()
        acc: dict[tuple, list] = {}
        decode = _DECODER.decode
        add = self._add
        self._records = self._usable = 0
        lines = RecordLines(data, begin, len(data) if end is None else end, b"#")
        rec: _Record | None
        for n, line in lines:
            try:
                if line[0] == 0x7B:
                    try:
                        doc = decode(line)
                    except _MSGSPEC_ERRORS as e:
                        raise BadRecord("invalid JSON", f"not a JSON flow-log record: {e}", structural=True) from e
                    rec = doc._source if doc._source is not None else doc
                    if rec.action is None and rec.dest_port is None and rec.source_type is None and rec.dest_type is None:
                        raise BadRecord("not a Calico record", "a JSON object without Calico flow-log fields", structural=True)
                    self._records += 1
                    self._usable += 1
                else:
                    rec = self._decode_text(bytes(line))
                    if rec is None:
                        continue
                add(rec, acc, out)
            except BadRecord as e:
                out.usable = self._usable
                out.bad(n, e)
        out.lines = lines.lines
        out.records = self._records
        out.usable = self._usable
        out.data = _columns(acc) if acc else None
        return out

    def _decode_text(self, line: bytes) -> _Record | None:
        """The record of a text line, or None for a header line. Raises BadRecord."""
        text = line.decode("utf-8", "replace")
        if self._text_fields is None:
            header = _text_header(text)
            if header is not None:
                self._text_fields = header
                self._usable += 1
                return None
            self._text_fields = list(TEXT_FIELDS)
        self._records += 1
        tokens = text.split()
        fields = self._text_fields
        if len(tokens) != len(fields) and not (fields is not None and fields[-1] == "policies" and len(tokens) == len(fields) - 1):
            raise BadRecord(
                "wrong number of fields",
                f"expected {len(fields)} space-separated fields, found {len(tokens)}",
                structural=True,
            )
        values: dict[str, Any] = {}
        for name, tok in zip(fields, tokens, strict=False):
            if name.endswith("_labels"):
                values[name] = msgspec.Raw(tok.encode())
            elif name in _RECORD_FIELDS:
                values[name] = None if tok == "-" else tok
        # The text export has one name per side: an aggregated one ends in "*".
        for side in ("source", "dest"):
            side_name = values.get(f"{side}_name")
            if side_name and "*" in side_name and not values.get(f"{side}_name_aggr"):
                values[f"{side}_name_aggr"] = side_name
                values[f"{side}_name"] = None
        try:
            rec = msgspec.convert(values, _Record, strict=False)
        except _MSGSPEC_ERRORS as e:
            raise BadRecord("invalid field", f"invalid field: {e}", structural=True) from e
        self._usable += 1
        return rec

    def _canonical_ip(self, text: str | None) -> str:
        """Canonical address, "" when absent. Raises BadRecord when invalid."""
        if _absent(text):
            return ""
        ip = self._canon.canonical(str(text))
        if ip is None:
            raise BadRecord("invalid IP address", f"invalid IP address {text!r}")
        return ip

    def _labels_text(self, raw: msgspec.Raw) -> str:
        key = bytes(raw)
        text = self._labels.get(key)
        if text is None:
            try:
                text = labels_to_text(parse_labels(key))
            except ValueError as e:
                raise BadRecord("invalid labels", str(e)) from e
            if len(self._labels) < 100_000:
                self._labels[key] = text
        return text

    def _endpoint(self, key: tuple) -> tuple[str, str, str, str]:
        """(address, namespace, pod key, workload marker) of one side, from (ip, namespace,
        name, name_aggr, type); cached."""
        ip, ns, name, aggr, typ = key
        addr = self._canonical_ip(ip)
        namespace = "" if _absent(ns) else str(ns)
        kind = "" if _absent(typ) else str(typ)
        pod = ""
        if kind == "wep" and namespace:
            pod_name = name if not _absent(name) else aggr
            if not _absent(pod_name):
                pod = f"{namespace}/{pod_name}"
        marker = "reserved:host" if kind == "hep" and addr else ""
        out = (addr, namespace, pod, marker)
        if len(self._endpoints) < 1_000_000:
            self._endpoints[key] = out
        return out

    def _add(self, rec: _Record, acc: dict[tuple, list], out: ParsedBlock) -> None:
        """Add one record to ``acc`` (flows keyed by endpoints, ports, protocol, verdict).

        The per-record hot path: values already of the right type (JSON numbers) skip the
        lenient conversions, and endpoints and protocols are looked up in caches."""
        verdict = _ACTIONS.get(rec.action)
        if verdict is None:
            verdict = _ACTIONS.get(str(rec.action or "").lower())
            if verdict is None:
                raise BadRecord("action is neither allow nor deny", f"action {rec.action!r} is neither allow nor deny")
        if verdict == VERDICT_DENIED and self.options.include_dropped:
            verdict = VERDICT_ALLOWED
        proto = self._protos.get(rec.proto)
        if proto is None:
            proto = _proto(rec.proto)
            self._protos[rec.proto] = proto
        if proto in _WITH_PORTS:
            dport = rec.dest_port
            if dport.__class__ is not int:
                dport = _int(dport, "destination port")
            sport = rec.source_port
            if sport is None:  # aggregated records (the default) drop the client port
                sport = -1
            elif sport.__class__ is not int:
                sport = -1 if _absent(sport) else _int(sport, "source port")
            if not (0 <= dport <= 65535 and -1 <= sport <= 65535):
                raise BadRecord("port out of range", f"port out of range: {sport} -> {dport}")
        else:
            sport = dport = 0
        skey = (rec.source_ip, rec.source_namespace, rec.source_name, rec.source_name_aggr, rec.source_type)
        src = self._endpoints.get(skey) or self._endpoint(skey)
        dkey = (rec.dest_ip, rec.dest_namespace, rec.dest_name, rec.dest_name_aggr, rec.dest_type)
        dst = self._endpoints.get(dkey) or self._endpoint(dkey)

        first = rec.start_time if rec.start_time is not None else rec.startTime
        first = first if first.__class__ is int and first < 100_000_000_000 else _time(first)
        last = rec.end_time if rec.end_time is not None else rec.endTime
        last = last if last.__class__ is int and last < 100_000_000_000 else _time(last)
        if last != last:
            last = first
        if self._window and not self._inside(first, last, out):
            return
        flows = rec.num_flows
        if flows.__class__ is not int:
            flows = 1 if _absent(flows) else _int(flows, "num_flows")
        # JSON numbers are ints already: the lenient conversions only for anything else
        p_in, p_out, b_in, b_out = rec.packets_in, rec.packets_out, rec.bytes_in, rec.bytes_out
        packets = (p_in if p_in.__class__ is int else _int(p_in, "packets_in")) + (
            p_out if p_out.__class__ is int else _int(p_out, "packets_out"))
        nbytes = (b_in if b_in.__class__ is int else _int(b_in, "bytes_in")) + (
            b_out if b_out.__class__ is int else _int(b_out, "bytes_out"))

        key = (src, dst, sport, dport, proto, verdict)
        a = acc.get(key)
        if a is None:
            a = acc[key] = [0, 0, 0, 0, 0, 0, first, last, "", "", ""]
        reporter = rec.reporter
        i = 0 if reporter == "src" else 1 if reporter == "dst" or (reporter or "").lower() == "dst" else 0
        a[i] += flows
        a[2 + i] += packets
        a[4 + i] += nbytes
        if first < a[6] or a[6] != a[6]:
            a[6] = first
        if last > a[7] or a[7] != a[7]:
            a[7] = last
        if not a[8] and len(rec.source_labels):
            a[8] = self._labels_text(rec.source_labels)
        if not a[9] and len(rec.dest_labels):
            a[9] = self._labels_text(rec.dest_labels)
        if not a[10] and rec.host:
            a[10] = rec.host

    def _inside(self, first: float, last: float, out: ParsedBlock) -> bool:
        since, until = self.options.since, self.options.until
        if (since is not None and last < since) or (until is not None and first > until):
            out.count("outside time window")
            return False
        return True


def _columns(acc: dict[tuple, list]) -> dict[str, Any]:
    """A block's flows as columns (names as in ``_KEY_COLUMNS``, ``_SUM_COLUMNS``). Endpoints
    (address, namespace, pod, marker), protocols and verdicts are codes into the block's own
    tables (``tables``): the reader maps them to its own, so that it groups on numbers."""
    src, dst, sport, dport, proto, verdict = zip(*acc.keys(), strict=True)
    v = list(zip(*acc.values(), strict=True))
    obj = lambda seq: np.array(seq, dtype=object)  # noqa: E731
    endpoints: dict[tuple, int] = {}
    protos: dict[str, int] = {}
    verdicts: dict[str, int] = {}
    cols: dict[str, Any] = {
        "src": np.array([endpoints.setdefault(e, len(endpoints)) for e in src], dtype=np.int64),
        "dst": np.array([endpoints.setdefault(e, len(endpoints)) for e in dst], dtype=np.int64),
        "sport": np.array(sport, dtype=np.int64),
        "dport": np.array(dport, dtype=np.int64),
        "proto": np.array([protos.setdefault(x, len(protos)) for x in proto], dtype=np.int64),
        "verdict": np.array([verdicts.setdefault(x, len(verdicts)) for x in verdict], dtype=np.int64),
    }
    for i, name in enumerate(_SUM_COLUMNS):
        cols[name] = np.array(v[i], dtype=np.int64)
    cols["first"] = np.array(v[6], dtype="float64")
    cols["last"] = np.array(v[7], dtype="float64")
    cols["src_labels"], cols["dst_labels"], cols["node"] = obj(v[8]), obj(v[9]), obj(v[10])
    cols["tables"] = {"src": list(endpoints), "proto": list(protos), "verdict": list(verdicts)}
    return cols


_RECORD_FIELDS = frozenset(_Record.__struct_fields__)


def _proto(v: _Num) -> str:
    if _absent(v):
        raise BadRecord("missing protocol", "no protocol")
    name = protocol_name(v)
    if name is None:
        raise BadRecord("unknown protocol", f"unknown protocol {v!r}")
    return name


def _normalise_field(name: str) -> str:
    low = name.strip().lower()
    if low in _RECORD_FIELDS or low in TEXT_FIELDS:
        return low
    return _CAMEL.get(low.replace("_", ""), low)


def _text_header(line: str) -> list[str] | None:
    """Field names if ``line`` is a header of the text format, else None."""
    tokens = line.lstrip("#").split()
    names = [_normalise_field(t) for t in tokens]
    known = [n for n in names if n in _RECORD_FIELDS or n in TEXT_FIELDS]
    if len(names) < 4 or len(known) < len(names) - 2:
        return None
    needed = {"reporter", "action"} | ({"dest_port"} if "dest_port" in names else {"proto"})
    return names if needed <= set(names) else None


def _looks_like_text_record(tokens: list[str]) -> bool:
    n = len(TEXT_FIELDS)
    if len(tokens) not in (n, n - 1):
        return False
    return (
        tokens[2] in _ENDPOINT_TYPES and tokens[6] in _ENDPOINT_TYPES
        and tokens[18] in ("src", "dst") and tokens[23] in ("allow", "deny")
    )
