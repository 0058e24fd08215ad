"""Kubernetes name syntax, and the screen that keeps invalid names in flow records out.

Flow logs name namespaces, pods, workloads and labels, and those names end up in policy objects,
file names (``<namespace>/<name>.yaml``) and selectors. A record from a broken or hostile
exporter may say anything there (``../../etc``). Such a row is not traffic netpolgen can write a
rule for: ``screen_names`` drops it and counts it by reason with its place, as any skipped
record is; it is never fatal and the name never reaches a path.

The check runs once per chunk over the distinct values of each column (a log repeats a few
hundred names millions of times), not per row.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from netpolgen.flows import SkippedRecords

# https://kubernetes.io/docs/concepts/overview/working-with-objects/names/
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY = re.compile(rf"({DNS1123_SUBDOMAIN.pattern}/)?{_LABEL_NAME}")
LABEL_VALUE = re.compile(rf"({_LABEL_NAME})?")
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")
_RESERVED = re.compile(r"[a-z0-9][-a-z0-9_.]{0,62}")


def is_label_name(text: str) -> bool:
    """A namespace name (DNS-1123 label)."""
    return DNS1123_LABEL.fullmatch(text) is not None


def is_subdomain(text: str) -> bool:
    """A pod or object name (DNS-1123 subdomain)."""
    return len(text) <= 253 and DNS1123_SUBDOMAIN.fullmatch(text) is not None


def is_pod_ref(text: str) -> bool:
    """``namespace/name`` as the flow table's pod columns hold it; the name may end in ``*``
    (Calico's aggregated records name a pod prefix: ``frontend-7d4899b484-*``)."""
    ns, sep, name = text.partition("/")
    if name.endswith("*"):
        stem = name[:-1].rstrip("-.")
        return bool(sep) and is_label_name(ns) and (not stem or is_subdomain(stem))
    return bool(sep) and is_label_name(ns) and is_subdomain(name)


def is_workload(text: str) -> bool:
    """``Kind/name`` as the flow table's workload columns hold it, or ``reserved:<entity>``
    (Hubble's and Calico's names for the host, the world ...)."""
    if text.startswith("reserved:"):
        return _RESERVED.fullmatch(text[9:]) is not None
    kind, sep, name = text.partition("/")
    return bool(sep) and _KIND.fullmatch(kind) is not None and is_subdomain(name)


def is_label_text(text: str) -> bool:
    """The flow table's label text (``k=v,k=v``, see ``flows.labels_to_text``): valid keys and values."""
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or len(key) > 317 or LABEL_KEY.fullmatch(key) is None or LABEL_VALUE.fullmatch(value) is None:
            return False
    return True


# column -> (check, reason it is counted under, what the name should be)
_CHECKS = (
    ("src_namespace", is_label_name, "invalid namespace name", "a DNS-1123 label"),
    ("dst_namespace", is_label_name, "invalid namespace name", "a DNS-1123 label"),
    ("src_pod", is_pod_ref, "invalid pod name", "<DNS-1123 label>/<DNS-1123 subdomain>"),
    ("dst_pod", is_pod_ref, "invalid pod name", "<DNS-1123 label>/<DNS-1123 subdomain>"),
    ("src_owner", is_workload, "invalid workload name", "Kind/<DNS-1123 subdomain> or reserved:<entity>"),
    ("dst_owner", is_workload, "invalid workload name", "Kind/<DNS-1123 subdomain> or reserved:<entity>"),
    ("src_labels", is_label_text, "invalid label", "Kubernetes label keys and values"),
    ("dst_labels", is_label_text, "invalid label", "Kubernetes label keys and values"),
)


def screen_names(flows: pd.DataFrame, skipped: SkippedRecords, origin: str) -> pd.DataFrame:
    """``flows`` without the rows whose names are not valid Kubernetes names; each dropped row
    is counted in ``skipped`` under its reason, with its connection as the place."""
    bad = np.zeros(len(flows), dtype=bool)
    why = np.full(len(flows), None, dtype=object)
    for column, check, reason, should in _CHECKS:
        if column not in flows.columns or not len(flows):
            continue
        codes, uniques = pd.factorize(flows[column].to_numpy(dtype=object))
        invalid = np.fromiter((bool(u) and not check(str(u)) for u in uniques), dtype=bool, count=len(uniques))
        if not invalid.any():
            continue
        hit = (codes >= 0) & invalid[np.maximum(codes, 0)] & ~bad
        for i in np.flatnonzero(hit):
            why[i] = (reason, f"{column} {_shown(uniques[codes[i]])} is not {should}")
        bad |= hit
    if not bad.any():
        return flows
    idx = np.flatnonzero(bad)
    room = max(skipped.max_examples - len(skipped.examples), 0)
    for i in idx[:room]:  # the first few with their place; the rest only counted
        row = flows.iloc[i]
        reason, what = why[i]
        skipped.add(reason, f"{origin}: connection {row['src_ip']}:{row['src_port']} -> "
                            f"{row['dst_ip']}:{row['dst_port']}/{row['proto']}: {what}")
    if len(idx) > room:
        for (reason, _), n in pd.Series(list(why[idx[room:]]), dtype=object).value_counts().items():
            skipped.add(reason, "", int(n))
    return flows[~bad].reset_index(drop=True)


def _shown(value: object, width: int = 60) -> str:
    """A name from the data as it is safe to print: quoted, control characters escaped, cut."""
    text = repr(str(value))
    return text if len(text) <= width else text[: width - 4] + "...'"
