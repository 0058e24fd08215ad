"""Flow tables in CSV or Parquet: the simple way in for anything netpolgen has no reader for.

One row per connection (or per group of connections), client → server. Columns, by header name
(case-insensitive; order free; unknown columns ignored):

required
  ``src_ip``, ``dst_ip``   IPv4 or IPv6 addresses (the client and the server)
  ``dst_port``             0-65535 (0 for protocols without ports)
  ``protocol``             TCP, UDP, SCTP, ICMP, ICMPv6 (any case) or an IP protocol number;
                           ``proto`` is accepted as the same column
optional
  ``src_port``             the client's port; absent or empty: unknown (-1)
  ``count``                how many connections the row stands for (default 1); also ``connections``
  ``packets``, ``bytes``   totals (default 0)
  ``first_seen``, ``last_seen``  ISO 8601 (naive means UTC) or unix seconds
  ``verdict``              allowed/allow/accept/forwarded or denied/deny/reject/dropped, or unknown;
                           empty or absent: allowed (the row says the connection happened).
                           Denied rows are reported, not allowed, unless ``--include-dropped``.
  ``direction_known``      true/false (default true: the table says which side is the client);
                           false rows with both ports are oriented by the shared port rule
  metadata                 ``src_namespace``, ``src_pod`` (``namespace/name``), ``src_labels``
                           (``k=v,k=v``), ``src_owner`` (``Kind/name``; ``src_workload`` is read too), the same for ``dst_``,
                           ``dst_names``, ``node``: as in the flow table, for Hubble-like sources

A missing required column makes the file unusable (``SourceError`` naming the column). A row
with an invalid value is skipped and counted with its line (CSV; line 1 is the header, and a
quoted field spanning lines shifts the count) or row number (Parquet); ``--strict`` makes the
first one fatal. CSV is read with pandas' chunked reader, Parquet by record batches.
"""

from __future__ import annotations

import csv
import zlib
from functools import partial
from typing import Iterator

import numpy as np
import pandas as pd

from netpolgen.errors import SourceError
from netpolgen.flows import (
    META_COLUMNS,
    VERDICT_ALLOWED,
    VERDICT_DENIED,
    VERDICT_UNKNOWN,
    normalize_flows,
    protocol_name,
)
from netpolgen.sources.base import open_binary, open_text
from netpolgen.sources.flowlog import FlowLogSource
from netpolgen.sources.fold import orient_unknown
from netpolgen.sources.records import Addresses, first_line, parser_error

REQUIRED_COLUMNS = ("src_ip", "dst_ip", "dst_port", "protocol")
# other names of columns; src_/dst_workload were the owner columns' names before they said what they hold
ALIASES = {"proto": "protocol", "connections": "count", "src_workload": "src_owner", "dst_workload": "dst_owner"}
_VERDICTS = {
    "": VERDICT_ALLOWED, "allowed": VERDICT_ALLOWED, "allow": VERDICT_ALLOWED, "accept": VERDICT_ALLOWED,
    "accepted": VERDICT_ALLOWED, "forwarded": VERDICT_ALLOWED, "audit": VERDICT_ALLOWED,
    "redirected": VERDICT_ALLOWED, "denied": VERDICT_DENIED, "deny": VERDICT_DENIED,
    "reject": VERDICT_DENIED, "rejected": VERDICT_DENIED, "dropped": VERDICT_DENIED,
    "drop": VERDICT_DENIED, "unknown": VERDICT_UNKNOWN,
}
_BOOLS = {"": True, "true": True, "1": True, "yes": True, "t": True,
          "false": False, "0": False, "no": False, "f": False}


def _header_names(columns: list[str]) -> list[str]:
    names = [str(c).strip().strip('"').lower() for c in columns]
    return [ALIASES.get(n, n) for n in names]


class _TableSource(FlowLogSource):
    """Validation shared by CSV and Parquet: a chunk of rows → flow-table rows."""

    place = "line"

    def __init__(self, path: str, options=None) -> None:
        super().__init__(path, options)
        self._canon = Addresses()

    def _check_columns(self, names: list[str], where: str) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise SourceError(
                self.path, where,
                f"not a {self.format_title}: missing required column {missing[0]!r} "
                f"(required: {', '.join(REQUIRED_COLUMNS)})",
            )
        seen: set[str] = set()
        for name in names:  # found by fuzzing: pandas refuses a header that repeats a name
            if name in seen:
                raise SourceError(self.path, where, f"not a {self.format_title}: column {name!r} appears twice")
            seen.add(name)
        self.accept()

    def _text(self, df: pd.DataFrame, col: str) -> np.ndarray:
        if col not in df:
            return np.full(len(df), "", dtype=object)
        s = df[col]
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            out = s.astype("float64").to_numpy()
            text = np.array([("" if v != v else str(int(v)) if float(v).is_integer() else str(v)) for v in out], dtype=object)
            return text
        return s.astype(object).where(s.notna(), "").astype(str).str.strip().to_numpy(dtype=object)

    def _numeric(self, df: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
        """(values as float, given): NaN where empty or invalid; ``given`` false where empty."""
        if col not in df:
            return np.full(len(df), np.nan), np.zeros(len(df), dtype=bool)
        s = df[col]
        if pd.api.types.is_bool_dtype(s.dtype):
            s = s.astype("float64")
        if pd.api.types.is_numeric_dtype(s.dtype):
            v = s.to_numpy(dtype="float64", na_value=np.nan)
            return v, ~np.isnan(v)
        text = self._text(df, col)
        given = text != ""
        v = pd.to_numeric(pd.Series(text, dtype=object), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        return v, given

    def _times(self, df: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
        """(unix seconds or NaN, invalid) from ISO 8601 or unix-seconds text."""
        values, given = self._numeric(df, col)
        invalid = np.zeros(len(df), dtype=bool)
        iso = given & np.isnan(values)
        if iso.any():
            text = self._text(df, col)[iso]
            parsed = pd.to_datetime(pd.Series(text, dtype=object), utc=True, format="ISO8601", errors="coerce")
            secs = (parsed - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan)
            values = values.copy()
            values[iso] = secs
            invalid[iso] = np.isnan(secs)
        return values, invalid

    def _bad_rows(self, mask: np.ndarray, places: np.ndarray, reason: str) -> None:
        if mask.any():
            where = places[mask]
            self.bad(f"{self.place} {int(where[0])}", reason)
            if len(where) > 1:
                self.stats.skipped.add(reason, "", len(where) - 1)

    def _rows(self, df: pd.DataFrame, places: np.ndarray) -> pd.DataFrame | None:
        """Validate one chunk of table rows; ``places`` are their line (or row) numbers."""
        src_text, dst_text = self._text(df, "src_ip"), self._text(df, "dst_ip")
        blank = np.ones(len(df), dtype=bool)
        for col in df.columns:
            blank &= self._text(df, col) == ""
        if blank.all():
            return None
        if blank.any():
            df, places = df[~blank].reset_index(drop=True), places[~blank]
            src_text, dst_text = src_text[~blank], dst_text[~blank]
        self.stats.records += len(df)

        src = np.array([self._canon.canonical(t) for t in src_text], dtype=object)
        dst = np.array([self._canon.canonical(t) for t in dst_text], dtype=object)
        bad_ip = pd.isna(src) | pd.isna(dst)
        self._bad_rows(bad_ip, places, "invalid IP address")
        keep = ~bad_ip

        proto_text = self._text(df, "protocol")
        proto = np.array([_protocol(p) for p in proto_text], dtype=object)
        bad_proto = pd.isna(proto)
        self._bad_rows(keep & bad_proto, places, "unknown protocol")
        keep &= ~bad_proto
        with_ports = np.isin(proto, ("TCP", "UDP", "SCTP"))

        dport, _ = self._numeric(df, "dst_port")
        sport, sport_given = self._numeric(df, "src_port")
        bad_dport = np.isnan(dport) | (dport < 0) | (dport > 65535) | (dport != np.floor(dport))
        bad_sport = sport_given & (np.isnan(sport) | (sport < 0) | (sport > 65535))
        self._bad_rows(keep & with_ports & (bad_dport | bad_sport), places, "invalid port")
        keep &= ~(with_ports & (bad_dport | bad_sport))
        dport = np.where(with_ports & ~np.isnan(dport), dport, 0)
        sport = np.where(~with_ports, 0, np.where(sport_given & ~np.isnan(sport), sport, -1))

        counts = {}
        for col, default in (("count", 1), ("packets", 0), ("bytes", 0)):
            v, given = self._numeric(df, col)
            bad = given & (np.isnan(v) | (v < 0))
            self._bad_rows(keep & bad, places, f"invalid {col}")
            keep &= ~bad
            # clipped: a count beyond 2**62 is not real, and the cast of a larger float is undefined
            counts[col] = np.clip(np.where(given & ~np.isnan(v), v, default), 0, 2.0 ** 62).astype(np.int64)

        first, bad_first = self._times(df, "first_seen")
        last, bad_last = self._times(df, "last_seen")
        self._bad_rows(keep & (bad_first | bad_last), places, "invalid time")
        keep &= ~(bad_first | bad_last)
        first = np.where(np.isnan(first), last, first)
        last = np.where(np.isnan(last), first, last)

        verdict_text = self._text(df, "verdict")
        verdict = np.array([_VERDICTS.get(v.lower()) for v in verdict_text], dtype=object)
        bad_verdict = pd.isna(verdict)
        self._bad_rows(keep & bad_verdict, places, "unknown verdict")
        keep &= ~bad_verdict
        if self.options.include_dropped:
            verdict = np.where(verdict == VERDICT_DENIED, VERDICT_ALLOWED, verdict)

        known_text = self._text(df, "direction_known")
        known = np.array([_BOOLS.get(v.lower()) for v in known_text], dtype=object)
        bad_known = pd.isna(known)
        self._bad_rows(keep & bad_known, places, "invalid direction_known")
        keep &= ~bad_known

        window = self.in_window(first, last)
        if window is not None:
            keep &= window
        if not keep.any():
            return None
        out = {
            "src_ip": src[keep], "dst_ip": dst[keep],
            "src_port": sport[keep].astype(np.int32), "dst_port": dport[keep].astype(np.int32),
            "proto": proto[keep], "packets": counts["packets"][keep], "bytes": counts["bytes"][keep],
            "connections": counts["count"][keep], "first_seen": first[keep], "last_seen": last[keep],
            "direction_known": known[keep].astype(bool), "verdict": verdict[keep],
        }
        for col in META_COLUMNS:
            if col in df:
                out[col] = self._text(df, col)[keep]
        flows = orient_unknown(pd.DataFrame({k: pd.Series(v, dtype=object, copy=False) if v.dtype == object else v for k, v in out.items()}))
        flows["source"] = self.path
        return self.finish_chunk(normalize_flows(flows))


class CsvSource(_TableSource):
    """A CSV flow table (see module doc for the columns)."""

    format_name = "csv"
    format_title = "CSV flow table"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        line = first_line(head)
        if line is None:
            return False
        names = set(_header_names(line.decode("utf-8", "replace").split(",")))
        return {"src_ip", "dst_ip"} <= names

    def _header(self) -> tuple[list[str], int]:
        """(column names, line number of the header): the first non-blank line."""
        try:
            return self._read_header()
        except (OSError, EOFError, zlib.error) as e:  # a compressed file cut short or corrupt (found by fuzzing)
            raise SourceError(self.path, None, f"cannot read: {e}") from e

    def _read_header(self) -> tuple[list[str], int]:
        with open_text(self.path, self.options, lambda line: None) as f:  # chunks() reports long lines
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        names = next(csv.reader([line]))
                    except csv.Error as e:
                        raise SourceError(self.path, f"line {n}", f"not a {self.format_title}: {e}") from e
                    names = _header_names(names)
                    self._check_columns(names, f"line {n}")
                    return names, n
        raise SourceError(self.path, None, "empty file: no header line")

    def chunks(self) -> Iterator[pd.DataFrame]:
        size = max(int(self.options.chunk_size), 1)
        names, header_line = self._header()
        try:
            with open_text(self.path, self.options, self.oversized) as text:
                reader = pd.read_csv(
                    text, header=None, names=names, skiprows=header_line, dtype=str, keep_default_na=False,
                    chunksize=size, skip_blank_lines=False, skipinitialspace=True, on_bad_lines="warn", engine="c",
                )
                for chunk, lines, dropped in self.pandas_chunks(reader, header_line):
                    rows = self.with_dropped(dropped, partial(self._rows, chunk, lines))
                    if rows is not None and len(rows):
                        yield rows
        except pd.errors.ParserError as e:  # e.g. a quote never closed (found by fuzzing)
            raise parser_error(self.path, e, header_line) from e
        self.finish_file()


class ParquetSource(_TableSource):
    """A Parquet flow table (same columns as the CSV one)."""

    format_name = "parquet"
    format_title = "Parquet flow table"
    place = "row"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:4] == b"PAR1"

    def chunks(self) -> Iterator[pd.DataFrame]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        size = max(int(self.options.chunk_size), 1)
        with open_binary(self.path, self.options) as f:
            try:
                pf = pq.ParquetFile(f)
            except (pa.ArrowException, OSError, ValueError) as e:
                raise SourceError(self.path, None, f"not a {self.format_title}: {e}") from e
            names = _header_names(pf.schema_arrow.names)
            self._check_columns(names, "schema")
            done = 0
            try:
                for batch in pf.iter_batches(batch_size=size):
                    df = batch.to_pandas()
                    df.columns = names
                    rows = np.arange(done, done + len(df), dtype=np.int64) + 1
                    done += len(df)
                    out = self._rows(df, rows)
                    if out is not None and len(out):
                        yield out
            except (pa.ArrowException, OSError) as e:
                raise SourceError(self.path, f"row {done + 1}", f"cannot read: {e}") from e
            except UnicodeDecodeError as e:  # a binary column that is not text (found by fuzzing)
                raise SourceError(self.path, f"row {done + 1}", f"a text column is not UTF-8: {e.reason}") from e
        self.finish_file()


def _protocol(text: str) -> str | None:
    return protocol_name(text)
