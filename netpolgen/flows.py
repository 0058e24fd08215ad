"""The flow table: the one schema every source produces and every later stage consumes.

One row is one observed connection (or one flow record) *before* resolution against the
inventory. ``src`` is the client side when ``direction_known`` is true; otherwise it is the
source's best guess and the resolver may swap the row using the port rules (DESIGN.md,
"Direction"). Replies never become rows of their own: a source folds them into their connection.

IPs are kept as text in canonical form (``ipaddress`` normal form: lower-case, compressed IPv6),
so that equal addresses compare equal as strings across sources.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

# Protocol names as they appear in policies (NetworkPolicy knows TCP, UDP, SCTP; the others are
# carried so that they can be counted and reported, never turned into rules).
PROTOCOLS_WITH_PORTS = ("TCP", "UDP", "SCTP")
IP_PROTO_NAMES = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMP", 58: "ICMPv6"}
# Every spelling of a protocol name the sources meet (CSV, Calico; IANA's keyword for ICMPv6 is
# ipv6-icmp): one table, so that every format accepts and names them alike.
_PROTOCOL_SPELLINGS = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP", "icmp": "ICMP", "icmpv4": "ICMP",
                       "icmp6": "ICMPv6", "icmpv6": "ICMPv6", "ipv6-icmp": "ICMPv6"}


def host_cidr(address: str) -> str:
    """The CIDR of one address (``/32``, or ``/128`` for IPv6): how policies name a single host."""
    return f"{address}/{128 if ':' in address else 32}"


def protocol_name(value: object) -> str | None:
    """The flow table's name for a protocol given by name (any case) or IP protocol number;
    ``IP/<n>`` for other numbers; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) or str(value).strip().isdigit():
        try:
            num = int(value) if isinstance(value, (int, float)) else int(str(value))
        except (OverflowError, ValueError):
            return None
        return IP_PROTO_NAMES.get(num, f"IP/{num}") if 0 <= num <= 255 else None
    return _PROTOCOL_SPELLINGS.get(str(value).strip().lower())

# Verdicts normalised across sources.
VERDICT_ALLOWED = "allowed"
VERDICT_DENIED = "denied"
_OBJECT = np.dtype(object)
VERDICT_UNKNOWN = "unknown"

# The core columns every source fills.
CORE_COLUMNS: dict[str, str] = {
    "src_ip": "str",
    "dst_ip": "str",
    "src_port": "int32",  # 0 when the protocol has no ports; -1 when the source does not say
    "dst_port": "int32",
    "proto": "str",  # TCP, UDP, SCTP, ICMP, ICMPv6, or "IP/<n>" for anything else
    "packets": "int64",
    "bytes": "int64",
    "connections": "int64",  # how many connections the row stands for (1 for a pcap 5-tuple)
    "first_seen": "float64",  # unix seconds; NaN when unknown
    "last_seen": "float64",
    "direction_known": "bool",  # the client side is certain (SYN, is_reply:false, Calico...)
    "verdict": "str",  # allowed / denied / unknown
    "source": "str",  # where the row came from (file path), for per-source reporting
}

# Metadata some sources carry (Hubble, Calico). Empty string when absent. Labels are canonical
# JSON of a sorted dict (see ``labels_to_text``) so that the column stays a plain string.
META_COLUMNS: dict[str, str] = {
    "src_namespace": "str",
    "src_pod": "str",
    "src_labels": "str",
    "src_owner": "str",  # what the source says of the owner: "Kind/name", or "reserved:<identity>"
    "dst_namespace": "str",
    "dst_pod": "str",
    "dst_labels": "str",
    "dst_owner": "str",
    "dst_names": "str",  # DNS names seen resolving to dst_ip, comma-joined
    "node": "str",  # node or capture point that saw the row, when known
}

FLOW_COLUMNS: dict[str, str] = {**CORE_COLUMNS, **META_COLUMNS}

_DEFAULTS: dict[str, object] = {
    "str": "",
    "int32": 0,
    "int64": 0,
    "float64": np.nan,
    "bool": False,
}


def empty_flows() -> pd.DataFrame:
    """A flow table with no rows and every column at its dtype."""
    return pd.DataFrame({c: pd.Series(dtype=_pandas_dtype(t)) for c, t in FLOW_COLUMNS.items()})


def repeated(value: object, n: int) -> np.ndarray:
    """An object array holding ``value`` n times: the same object, not n copies of it (which
    is what ``np.full`` makes of a str: a million rows of a file name would be ~100 MB)."""
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def object_frame(columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """A DataFrame keeping object arrays as object columns.

    pandas 3 turns an object array of strings into its Arrow string dtype on construction, and
    the flow table wants plain object columns back: both conversions are skipped this way. The
    arrays are used as they are, not copied: they are the caller's to hand over.
    """
    return pd.DataFrame({
        k: pd.Series(v, dtype=object, copy=False) if getattr(v, "dtype", None) == _OBJECT else v
        for k, v in columns.items()
    }, copy=False)


def _pandas_dtype(name: str) -> object:
    return object if name == "str" else name


def normalize_flows(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with every schema column present, in schema order, at its dtype.

    Missing columns get their default (empty string, 0, NaN, False). Extra columns are dropped:
    the schema is the contract between stages.
    """
    return flow_frame({c: df[c] for c in df.columns if c in FLOW_COLUMNS}, len(df))


def flow_frame(columns: Mapping[str, object], n: int) -> pd.DataFrame:
    """A flow table from ``n``-long columns (arrays, Categoricals or Series), as
    ``normalize_flows`` makes it. Columns are converted as arrays and the frame is built once:
    a source of many small files makes one small table per file, and pandas' per-Series work
    (index alignment, dtype inference) would cost more than parsing them."""
    out: dict[str, np.ndarray] = {}
    for col, typ in FLOW_COLUMNS.items():
        given = columns.get(col)
        if given is None:
            default = _DEFAULTS[typ]
            out[col] = repeated(default, n) if typ == "str" else np.full(n, default, dtype=typ)
            continue
        values = given if isinstance(given, np.ndarray) else np.asarray(given)
        if typ == "str":
            # Plain Python strings already: taken as they are (converting through pandas'
            # string dtype and back costs more than a source's whole parse of the rows).
            if not (values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty")):
                values = pd.Series(given).astype(object).fillna("").astype(str).to_numpy(dtype=object)
        elif values.dtype != np.dtype(typ):
            series = pd.Series(given)
            if typ == "float64":
                values = series.astype("float64").to_numpy()
            elif typ == "bool":
                values = series.fillna(False).astype(bool).to_numpy()
            else:
                values = series.fillna(0).astype(typ).to_numpy()
        out[col] = values
    return object_frame(out)


_SCHEMA_COLUMNS = list(FLOW_COLUMNS)
_SCHEMA_DTYPES = [np.dtype(object) if t == "str" else np.dtype(t) for t in FLOW_COLUMNS.values()]


def _has_schema(df: pd.DataFrame) -> bool:
    """Columns and dtypes exactly the schema's (what ``normalize_flows`` returns)."""
    return list(df.columns) == _SCHEMA_COLUMNS and list(df.dtypes) == _SCHEMA_DTYPES


def concat_flows(chunks: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate flow-table chunks, or an empty table when there are none.

    Sources yield normalised chunks; those are taken as they are (normalising again costs a few
    milliseconds a chunk, which is most of the cost of a small file when there are thousands).
    """
    return take_flows(list(chunks))


#: Up to this many chunks, ``take_flows`` assembles the table column by column and lets each
#: column of the chunks go once copied (large captures come in a few large chunks). Beyond it
#: (thousands of small files), reaching into every chunk per column costs more than holding the
#: small chunks twice, and pandas' own concatenation is used.
_RELEASE_MAX_PARTS = 64


def take_flows(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    """``concat_flows`` that consumes ``chunks``: the list is emptied, and (for a few large
    chunks) each of their columns is let go as soon as it is copied into the table. When the
    caller holds the chunks nowhere else, the table exists about once instead of twice (a
    capture of gigabytes makes a table of hundreds of megabytes)."""
    parts = [c if _has_schema(c) else normalize_flows(c) for c in chunks if len(c)]
    chunks.clear()
    if not parts:
        return empty_flows()
    if len(parts) == 1:
        return parts[0].reset_index(drop=True)
    if len(parts) > _RELEASE_MAX_PARTS:
        return pd.concat(parts, ignore_index=True)
    n = sum(len(p) for p in parts)
    arrays = [{c: p[c].to_numpy() for c in _SCHEMA_COLUMNS} for p in parts]
    parts.clear()
    return flow_frame({c: np.concatenate([a.pop(c) for a in arrays]) for c in _SCHEMA_COLUMNS}, n)


def labels_to_text(labels: dict[str, str] | None) -> str:
    """Canonical text form of a label dict for the flow table: sorted ``k=v`` joined by commas."""
    if not labels:
        return ""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def text_to_labels(text: str) -> dict[str, str]:
    """Inverse of :func:`labels_to_text`. Label values cannot contain ',' or '=' (k8s forbids it)."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for item in text.split(","):
        k, _, v = item.partition("=")
        out[k] = v
    return out


@dataclass
class SkippedRecords:
    """Records a source could not use: counted per reason, with the first few places kept."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    max_examples: int = 20

    def add(self, reason: str, where: str = "", n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n
        if where and len(self.examples) < self.max_examples:
            self.examples.append(f"{where}: {reason}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: "SkippedRecords") -> None:
        for reason, n in other.counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + n
        room = self.max_examples - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])


def iter_chunks(df: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    """Split a table into chunks of at most ``size`` rows (for sources that build a table)."""
    for start in range(0, len(df), size):
        yield df.iloc[start : start + size]
