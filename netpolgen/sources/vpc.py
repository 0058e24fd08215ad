"""AWS VPC Flow Logs: the default version-2 format and custom formats described by a header.

Records are space-separated fields, one record per line. Which field is where:

- a first line naming the fields (``version account-id interface-id srcaddr ...``, the custom
  format's ``${field}`` list without the ``${}``, or Athena-style ``log_status``) gives the order:
  any order, any fields up to version 5 and later ones (unknown names are carried and ignored);
- otherwise the file is the default format, version 2:
  ``version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start
  end action log-status``. Real S3 files of the default format have no header line; a custom
  format without one cannot be read, since nothing says where its fields are.

What a record contributes:

- addresses: ``pkt-srcaddr``/``pkt-dstaddr`` where present and not ``-`` (the packet's real
  addresses: EKS pod IPs on secondary ENI addresses, traffic through NAT and transit gateways),
  else ``srcaddr``/``dstaddr``; ports; ``protocol`` number → TCP/UDP/SCTP/ICMP/ICMPv6 (others
  ``IP/<n>``); ``packets``, ``bytes``; ``start``/``end`` as first/last seen; ``interface-id`` as the
  capture point (``node``);
- verdict: ACCEPT is ``allowed``, REJECT ``denied`` (``allowed`` with ``--include-dropped``);
  a format without ``action`` gives ``unknown``;
- the client side, from ``tcp-flags``: it is the OR of the flags of every packet of that
  direction in the aggregation window (FIN 1, SYN 2, RST 4, SYN-ACK 18 i.e. SYN|ACK). SYN without
  the ACK bit marks the record's source as the client (2, or 3 for SYN+FIN in a short
  connection); SYN with it marks the server's reply direction (18, 19). Anything else, and every
  non-TCP record, says nothing: the port rule orients the row (``direction_known=False``).
  ``flow-direction`` (ingress/egress) is relative to the interface, not the connection, and is
  not used.

NODATA and SKIPDATA records (no traffic, or records AWS could not capture) are skipped and
counted. Each direction of a connection is its own record, often on two interfaces: the records
are folded into one row per connection (``netpolgen.sources.fold``).

Reading is in blocks of whole lines. Arrow's multithreaded CSV reader parses a block of clean
records (one space between fields, the column types given up front, unused fields left
unconverted); a block it cannot read as such (blank lines, a double space, as in a record of the
AWS documentation itself, a record with too many or too few fields, a value that is not a
number) is read by pandas' whitespace-separated C parser, which reports each bad line. Text
columns stay in Arrow and are compared and dictionary-encoded by pyarrow, so that no Python
object is made per value.
"""

from __future__ import annotations

import io
import re
import warnings
import zlib
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from netpolgen.errors import SourceError
from netpolgen.flows import (
    IP_PROTO_NAMES,
    VERDICT_ALLOWED,
    VERDICT_DENIED,
    VERDICT_UNKNOWN,
    flow_frame,
    iter_chunks,
    repeated,
)
from netpolgen.sources.base import open_text
from netpolgen.sources.flowlog import FlowLogSource
from netpolgen.sources.fold import ROLE_CLIENT, ROLE_SERVER, ROLE_UNKNOWN, ConnectionLedger, fold_connections
from netpolgen.sources.lineblocks import line_count
from netpolgen.sources.records import Addresses, first_line

DEFAULT_V2_FIELDS = (
    "version", "account-id", "interface-id", "srcaddr", "dstaddr", "srcport", "dstport", "protocol",
    "packets", "bytes", "start", "end", "action", "log-status",
)

# Every field AWS documents (versions 2 to 8). A header line is recognised by these names.
KNOWN_FIELDS = frozenset(DEFAULT_V2_FIELDS) | {
    "vpc-id", "subnet-id", "instance-id", "tcp-flags", "type", "pkt-srcaddr", "pkt-dstaddr",
    "region", "az-id", "sublocation-type", "sublocation-id", "pkt-src-aws-service",
    "pkt-dst-aws-service", "flow-direction", "traffic-path", "ecs-cluster-arn", "ecs-cluster-name",
    "ecs-container-instance-arn", "ecs-container-instance-id", "ecs-container-id",
    "ecs-second-container-id", "ecs-service-name", "ecs-task-definition-arn", "ecs-task-arn",
    "ecs-task-id", "reject-reason",
}
_REQUIRED = ("srcport", "dstport", "protocol")

_TCP_SYN, _TCP_ACK = 0x02, 0x10
_EXTRA = "\x00extra"  # a column name no header can have
_VPC_BLOCK = 16 << 20  # bytes of records parsed at a time
# The fields read, as numbers or as text (Arrow leaves the others unconverted).
_NUMERIC_FIELDS = frozenset({"srcport", "dstport", "protocol", "packets", "bytes", "start", "end", "tcp-flags"})
_TEXT_FIELDS = frozenset({"interface-id", "srcaddr", "dstaddr", "pkt-srcaddr", "pkt-dstaddr", "action", "log-status"})
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def _header_fields(line: str) -> list[str] | None:
    """The field names if ``line`` is a header line, else None."""
    tokens = line.split()
    names = [t.strip().removeprefix("${").removesuffix("}").replace("_", "-").lower() for t in tokens]
    if len(names) < 2 or not all(_FIELD_NAME.match(n) for n in names):
        return None
    known = [n for n in names if n in KNOWN_FIELDS]
    has_addresses = ("srcaddr" in names or "pkt-srcaddr" in names) and ("dstaddr" in names or "pkt-dstaddr" in names)
    return names if len(known) >= 2 and has_addresses else None


def _looks_like_v2_record(line: str) -> bool:
    t = line.split()
    return (
        len(t) == len(DEFAULT_V2_FIELDS)
        and t[0] == "2"
        and t[12] in ("ACCEPT", "REJECT", "-")
        and t[13] in ("OK", "NODATA", "SKIPDATA")
    )


class VpcFlowLogSource(FlowLogSource):
    """AWS VPC Flow Log records → flow-table chunks (one row per connection)."""

    format_name = "vpc"
    format_title = "AWS VPC flow log"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        line = first_line(head)
        if line is None:
            return False
        text = line.decode("utf-8", "replace")
        return _header_fields(text) is not None or _looks_like_v2_record(text)

    def __init__(self, path: str, options=None) -> None:
        super().__init__(path, options)
        self._ledger = ConnectionLedger()
        self._canon = Addresses()

    # ----- layout -----------------------------------------------------------------------------

    def _layout(self) -> tuple[list[str], int]:
        """(field names, number of lines before the records: blank lines and the header)."""
        try:
            return self._read_layout()
        except (OSError, EOFError, zlib.error) as e:  # a compressed file cut short or corrupt (found by fuzzing)
            raise SourceError(self.path, None, f"cannot read: {e}") from e

    def _read_layout(self) -> tuple[list[str], int]:
        with open_text(self.path, self.options, lambda line: None) as f:  # chunks() reports long lines
            n = 0
            for line in f:
                n += 1
                if not line.strip():
                    continue
                fields = _header_fields(line)
                if fields is not None:
                    header_line = n
                    self._check_fields(fields, n)
                    # the first record after the header must have as many fields
                    for rec in f:
                        n += 1
                        if rec.strip():
                            self._check_width(rec, fields, n)
                            break
                    return fields, header_line
                self._check_width(line, list(DEFAULT_V2_FIELDS), n)
                return list(DEFAULT_V2_FIELDS), n - 1
        raise SourceError(self.path, None, "empty file: no flow log records")

    def _check_fields(self, fields: list[str], n: int) -> None:
        missing = [f for f in _REQUIRED if f not in fields]
        if missing:
            raise SourceError(self.path, f"line {n}", f"the format has no {', '.join(missing)} field: ports and protocol are needed for rules")

    def _check_width(self, line: str, fields: list[str], n: int) -> None:
        width = len(line.split())
        if width != len(fields):
            what = "VPC default format v2" if fields == list(DEFAULT_V2_FIELDS) else "the header"
            raise SourceError(
                self.path, f"line {n}",
                f"not a {self.format_title}: expected {len(fields)} space-separated fields ({what}), found {width}",
            )

    # ----- reading ----------------------------------------------------------------------------

    def chunks(self) -> Iterator[pd.DataFrame]:
        fields, skip = self._layout()
        if len(set(fields)) != len(fields):
            raise SourceError(self.path, f"line {skip}", "the header names a field twice")
        size = max(int(self.options.chunk_size), 1)
        self.accept()
        reader = _ArrowReader(fields)
        for data in self.read_blocks(_VPC_BLOCK):
            count = line_count(data)
            first_line = self.lines_done + 1
            self.lines_done += count
            while first_line <= skip and data:  # blank lines and the header before the records
                cut = data.find(b"\n")
                data = data[cut + 1:] if cut >= 0 else b""
                first_line += 1
                count -= 1
            if not data:
                continue
            table = reader.read(data, count)
            if table is not None:
                out = self._chunk(table, np.arange(first_line, first_line + count, dtype=np.int64), fields)
            else:
                out = self._pandas_block(data, first_line, fields)
            if out is not None:
                yield from iter_chunks(out, size)
        self.finish_file()

    def _pandas_block(self, data: bytes, first_line: int, fields: list[str]) -> pd.DataFrame | None:
        """A block Arrow could not read as clean records (blank lines, a record with too many or
        too few fields, a value that is not a number, a double space): pandas' whitespace
        parser reads it, and the bad lines are reported with their line."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                chunk = pd.read_csv(
                    io.BytesIO(data), sep=r"\s+", header=None, names=[*fields, _EXTRA],
                    na_values=["-"], keep_default_na=False, skip_blank_lines=False,
                    on_bad_lines="warn", engine="c", encoding_errors="replace",
                )
            except pd.errors.EmptyDataError:
                return None
            except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as e:
                raise SourceError(self.path, f"line {first_line}", f"cannot parse: {e}") from e
        dropped = [(n + first_line - 1, what) for n, what in self.dropped_lines(caught)]
        lines = self.line_numbers(len(chunk), 0, first_line - 1, np.asarray(sorted(n for n, _ in dropped), dtype=np.int64))
        try:
            table = pa.Table.from_pandas(chunk, preserve_index=False)
        except (OverflowError, pa.ArrowException):
            # a number beyond 64 bits leaves pandas a column of Python ints (found by fuzzing):
            # as floats it is still a number, and out of range wherever a range is checked
            for col in chunk.columns[chunk.dtypes == np.dtype(object)]:
                chunk[col] = chunk[col].map(lambda v: float(v) if isinstance(v, int) else v)
            table = pa.Table.from_pandas(chunk, preserve_index=False)
        return self.with_dropped(dropped, lambda: self._chunk(table, lines, fields))

    def _chunk(self, chunk: pa.Table, lines: np.ndarray, fields: list[str]) -> pd.DataFrame | None:
        """Rows of one block (an Arrow table with the fields as columns; from pandas, also the
        sentinel column that is set on a record with too many fields) → folded connections."""
        first, last = fields[0], fields[-1]
        # A blank line reads as empty strings ("-" reads as missing): the first field of any
        # other line is never empty, whitespace being the separator.
        blank = _equals(chunk, first, "")
        if blank.all():
            return None
        if blank.any():
            chunk, lines = chunk.filter(pa.array(~blank)), lines[~blank]
        self.stats.records += len(chunk)

        extra = _present(chunk, _EXTRA)
        short = _equals(chunk, last, "")
        self._bad_rows(extra, lines, "too many fields")
        self._bad_rows(short & ~extra, lines, "too few fields")
        keep = ~(extra | short)
        if "log-status" in chunk.column_names:
            for value in ("NODATA", "SKIPDATA"):
                hit = keep & _equals(chunk, "log-status", value)
                if hit.any():
                    what = "no traffic in the interval" if value == "NODATA" else "records AWS could not capture"
                    self._ignore_rows(lines[hit], f"{value} record ({what})")
                    keep &= ~hit

        src_code, dst_code, addresses, missing, invalid = self._addresses(chunk)
        no_addr = keep & missing & ~invalid
        if no_addr.any():  # a format without log-status: NODATA records show "-" addresses
            self._ignore_rows(lines[no_addr], "record without addresses (no traffic)")
            keep &= ~no_addr
        self._bad_rows(keep & invalid, lines, "invalid IP address")
        keep &= ~invalid

        proto_num = _numeric(chunk, "protocol")
        bad_proto = np.isnan(proto_num) | (proto_num < 0) | (proto_num > 255)
        self._bad_rows(keep & bad_proto, lines, "invalid protocol number")
        keep &= ~bad_proto
        proto_num = np.where(bad_proto, 0, proto_num).astype(np.int64)
        has_ports = np.isin(proto_num, (6, 17, 132))
        sport = _numeric(chunk, "srcport")
        dport = _numeric(chunk, "dstport")
        bad_port = has_ports & (np.isnan(sport) | np.isnan(dport) | (sport < 0) | (sport > 65535) | (dport < 0) | (dport > 65535))
        self._bad_rows(keep & bad_port, lines, "invalid port")
        keep &= ~bad_port
        sport = np.where(has_ports & ~np.isnan(sport), sport, 0).astype(np.int64)
        dport = np.where(has_ports & ~np.isnan(dport), dport, 0).astype(np.int64)

        if "action" in chunk.column_names:
            accepted = _equals(chunk, "action", "ACCEPT")
            rejected = _equals(chunk, "action", "REJECT")
            self._bad_rows(keep & ~(accepted | rejected), lines, "action is neither ACCEPT nor REJECT")
            keep &= accepted | rejected
            denied = 0 if self.options.include_dropped else 1
            verdict_codes = np.where(rejected, denied, 0).astype(np.int8)
        else:
            verdict_codes = np.full(len(chunk), 2, dtype=np.int8)

        role = np.full(len(chunk), ROLE_UNKNOWN, dtype=np.int8)
        if "tcp-flags" in chunk.column_names:
            flags = _numeric(chunk, "tcp-flags")
            flags = np.where(np.isnan(flags), 0, flags).astype(np.int64)
            syn = (proto_num == 6) & ((flags & _TCP_SYN) != 0)
            role = np.where(syn & ((flags & _TCP_ACK) == 0), ROLE_CLIENT, np.where(syn, ROLE_SERVER, ROLE_UNKNOWN)).astype(np.int8)

        first_seen = _numeric(chunk, "start")
        last_seen = _numeric(chunk, "end")
        last_seen = np.where(np.isnan(last_seen), first_seen, last_seen)
        window = self.in_window(first_seen, last_seen)
        if window is not None:
            keep &= window
        if not keep.any():
            return None

        if "interface-id" in chunk.column_names:
            node_codes, node_names = _dictionary(_text(chunk, "interface-id"))
            node = pd.Categorical.from_codes(node_codes[keep], node_names)
        else:
            node = pd.Categorical.from_codes(np.zeros(int(keep.sum()), dtype=np.int64), [""])
        records = {
            "src_port": sport[keep], "dst_port": dport[keep],
            "proto": pd.Categorical.from_codes(proto_num[keep], _PROTO_NAMES),
            "verdict": pd.Categorical.from_codes(verdict_codes[keep], _VERDICTS),
            "role": role[keep],
            "packets": _count(chunk, "packets")[keep], "bytes": _count(chunk, "bytes")[keep],
            "first_seen": first_seen[keep], "last_seen": last_seen[keep],
            "node": node,
        }
        rows = fold_connections(records, self._ledger, common_columns=[("node", "")],
                                ip_codes=(src_code[keep], dst_code[keep], addresses))
        n = len(rows["src_ip"])
        rows["source"] = repeated(self.path, n)
        return self.finish_chunk(flow_frame(rows, n))

    # ----- column helpers ---------------------------------------------------------------------

    def _ignore_rows(self, lines: np.ndarray, reason: str) -> None:
        if len(lines):
            self.ignore(f"line {int(lines[0])}", reason, n=len(lines))

    def _bad_rows(self, mask: np.ndarray, lines: np.ndarray, reason: str) -> None:
        """Malformed rows: the first is reported with its line (fatal under --strict), all counted."""
        if mask.any():
            where = lines[mask]
            self.bad(f"line {int(where[0])}", reason)
            if len(where) > 1:
                self.stats.skipped.add(reason, "", len(where) - 1)

    def _addresses(self, chunk: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(src codes, dst codes, canonical addresses, missing, invalid) for the chunk's rows.

        The packet-level address is taken where the record has one. Codes index the canonical
        addresses (-1: missing or invalid), for the fold to group on without re-hashing text.
        """
        src = self._address_column(chunk, "pkt-srcaddr", "srcaddr")
        dst = self._address_column(chunk, "pkt-dstaddr", "dstaddr")
        n = len(src)
        codes, uniques = _dictionary(pa.chunked_array(src.chunks + dst.chunks, type=pa.string()))
        known = self._canon.known
        canon = [known.get(u, "") for u in uniques]
        for i, c in enumerate(canon):
            if c == "":
                canon[i] = self._canon.canonical(uniques[i])
        valid = np.fromiter((c is not None for c in canon), dtype=bool, count=len(canon))
        # two spellings of one IPv6 address must be one address
        c2, u2 = pd.factorize(np.asarray(canon, dtype=object)[valid])
        remap = np.full(len(canon) + 1, -1, dtype=np.int64)  # last slot: code -1 (missing)
        remap[np.flatnonzero(valid)] = c2
        final = remap[codes]
        missing = codes == -1
        invalid = ~missing & (final == -1)
        return (final[:n], final[n:], np.asarray(u2, dtype=object),
                missing[:n] | missing[n:], invalid[:n] | invalid[n:])

    def _address_column(self, chunk: pa.Table, preferred: str, fallback: str) -> pa.ChunkedArray:
        cols = [_text(chunk, c) for c in (preferred, fallback) if c in chunk.column_names]
        if not cols:
            raise SourceError(self.path, None, f"the format has neither {preferred} nor {fallback}")
        return pc.coalesce(*cols) if len(cols) > 1 else cols[0]


_PROTO_NAMES = [IP_PROTO_NAMES.get(p, f"IP/{p}") for p in range(256)]
_VERDICTS = [VERDICT_ALLOWED, VERDICT_DENIED, VERDICT_UNKNOWN]


class _ArrowReader:
    """Blocks of clean records → Arrow tables, parsed by Arrow's multithreaded CSV reader with
    the column types given up front and the fields netpolgen does not use left unconverted.

    Anything unusual (a quote, a blank line, a double space, a record with too many or too few
    fields, a value that is not a number) makes ``read`` return None: pandas' whitespace parser
    then reads the block and reports each bad line (``VpcFlowLogSource._pandas_block``)."""

    def __init__(self, fields: list[str]) -> None:
        used = [f for f in fields if f in _NUMERIC_FIELDS or f in _TEXT_FIELDS]
        types = {f: pa.int64() if f in _NUMERIC_FIELDS else pa.string() for f in used}
        self.read_options = pacsv.ReadOptions(column_names=fields, use_threads=True, block_size=1 << 20)
        self.parse_options = pacsv.ParseOptions(delimiter=" ", quote_char=False)
        self.convert_options = pacsv.ConvertOptions(
            column_types=types, include_columns=used, null_values=["-"], strings_can_be_null=True)

    def read(self, data: bytes, lines: int) -> pa.Table | None:
        if b'"' in data:
            return None
        try:
            table = pacsv.read_csv(pa.py_buffer(data), read_options=self.read_options,
                                   parse_options=self.parse_options, convert_options=self.convert_options)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return None
        return table if table.num_rows == lines else None  # a blank line was dropped


def _text(t: pa.Table, col: str) -> pa.ChunkedArray:
    """A column as Arrow strings (a column pandas read as numbers, e.g. all ``-``, is cast)."""
    arr = t[col]
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def _equals(t: pa.Table, col: str, value: str) -> np.ndarray:
    """Row-wise ``t[col] == value`` as a numpy bool array (missing: False)."""
    if col not in t.column_names or not (pa.types.is_string(t[col].type) or pa.types.is_large_string(t[col].type)):
        return np.zeros(t.num_rows, dtype=bool)
    return pc.fill_null(pc.equal(t[col], value), False).to_numpy(zero_copy_only=False)


def _present(t: pa.Table, col: str) -> np.ndarray:
    """Rows where ``col`` holds something (not missing, not empty)."""
    if col not in t.column_names:
        return np.zeros(t.num_rows, dtype=bool)
    return pc.is_valid(t[col]).to_numpy(zero_copy_only=False) & ~_equals(t, col, "")


def _numeric(t: pa.Table, col: str) -> np.ndarray:
    """A column as float64, NaN where missing or not a number."""
    if col not in t.column_names:
        return np.full(t.num_rows, np.nan)
    arr = t[col]
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_null(arr.type):
        # unsafe: an integer beyond 2**53 (a hostile record, found by fuzzing) loses precision
        # instead of failing the cast; ranges are checked on the result
        return pc.cast(arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return pd.to_numeric(pd.Series(arr.to_numpy(zero_copy_only=False), dtype=object), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan)


def _count(t: pa.Table, col: str) -> np.ndarray:
    v = _numeric(t, col)
    # counts beyond 2**62 are not real; clipped, so that the cast is defined and sums do not wrap
    return np.clip(np.where(np.isnan(v) | (v < 0), 0, v), 0, 2.0 ** 62).astype(np.int64)


def _dictionary(arr: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """(codes with -1 for missing, distinct values) of a text column, computed in Arrow."""
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    enc = pc.dictionary_encode(arr.combine_chunks())
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, enc.dictionary.to_pylist()
