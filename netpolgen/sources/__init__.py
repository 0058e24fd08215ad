"""Traffic sources: format registry, content-based detection, and input expansion.

Each format lives in its own module and registers by name here. Detection reads the first bytes
of the (decompressed) file and asks each source in turn; ``--format`` skips detection.
"""

from __future__ import annotations

import glob
import importlib
import os
from typing import TYPE_CHECKING, Any, Iterable

from netpolgen.errors import SourceError

if TYPE_CHECKING:
    from netpolgen.sources.base import Source, SourceOptions

# format name -> "module:Class". Order matters for detection: binary formats with magic numbers
# first, then the structured text formats, CSV last (it accepts the most).
SOURCE_CLASSES: dict[str, str] = {
    "pcap": "netpolgen.sources.pcap:PcapSource",
    "hubble": "netpolgen.sources.hubble:HubbleSource",
    "calico": "netpolgen.sources.calico:CalicoSource",
    "vpc": "netpolgen.sources.vpc:VpcFlowLogSource",
    "parquet": "netpolgen.sources.table:ParquetSource",
    "csv": "netpolgen.sources.table:CsvSource",
}


def source_class(name: str) -> type[Source]:
    try:
        target = SOURCE_CLASSES[name]
    except KeyError:
        raise SourceError(None, None, f"unknown format {name!r}; known: {', '.join(SOURCE_CLASSES)}") from None
    module_name, _, cls_name = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)


def detect_format(path: str) -> str:
    """The format of ``path`` by content. Raises SourceError when nothing recognises it."""
    from netpolgen.sources.base import read_head

    head = read_head(path)
    if not head:
        raise SourceError(path, None, "empty file")
    for name in SOURCE_CLASSES:
        cls = source_class(name)
        if cls.sniff(head):
            return name
    raise SourceError(
        path, None, "not a recognised capture or flow log (pcap, pcapng, Hubble, Calico, VPC, CSV)"
    )


def open_source(path: str, fmt: str | None = None, options: SourceOptions | None = None) -> Source:
    """A Source for ``path``, detecting the format by content unless ``fmt`` is given."""
    name = fmt or detect_format(path)
    return source_class(name)(path, options)


def expand_inputs(patterns: Iterable[str]) -> list[str]:
    """Files named by paths, directories (recursive) and globs, sorted, without duplicates.

    A pattern that matches nothing is an error: silently reading less traffic than the user
    meant would produce policies that break production.
    """
    out: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        if os.path.isdir(pattern):
            matches = sorted(
                os.path.join(root, f)
                for root, _dirs, files in os.walk(pattern)
                for f in files
                if not f.startswith(".")
            )
        elif any(ch in pattern for ch in "*?["):
            matches = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
            if not matches:
                raise SourceError(pattern, None, "no files match")
        else:
            if not os.path.exists(pattern):
                raise SourceError(pattern, None, "no such file")
            matches = [pattern]
        for m in matches:
            if m not in seen:
                seen.add(m)
                out.append(m)
    return out


def __getattr__(name: str) -> Any:
    # Source and SourceOptions are re-exported lazily: the format names above are read by the
    # CLI's --help, which must not pay for pandas (imported by sources.base).
    if name in ("Source", "SourceOptions"):
        from netpolgen.sources import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Source", "SourceOptions", "detect_format", "expand_inputs", "open_source", "source_class"]
