"""Kubernetes label selectors: parsing and matching, shared by synthesis and the policy engine.

Semantics (k8s.io/apimachinery LabelSelector): every matchLabels pair and every
matchExpressions requirement must hold. ``In`` needs the key present with a listed value;
``NotIn`` holds when the key is absent or its value is not listed; ``Exists``/``DoesNotExist``
test the key only. An empty selector matches everything; a *missing* selector is the caller's
business (for a NetworkPolicy peer it means "no restriction on this axis").
"""

from __future__ import annotations

from collections.abc import Mapping  # not typing.Mapping: isinstance against it is far slower
from dataclasses import dataclass

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        raise ValueError(f"unknown operator {self.operator!r}")


@dataclass(frozen=True)
class LabelSelector:
    """A parsed selector; ``match_labels`` is a sorted tuple so the object is hashable."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        for k, v in self.match_labels:
            if labels.get(k) != v:
                return False
        return all(r.matches(labels) for r in self.match_expressions)

    def to_dict(self) -> dict:
        out: dict = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [
                {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values or r.operator in ("In", "NotIn") else {})}
                for r in self.match_expressions
            ]
        return out

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> "LabelSelector":
        return cls(match_labels=tuple(sorted(labels.items())))


def parse_selector(obj: object, where: str = "") -> LabelSelector:
    """Parse a LabelSelector mapping. Raises ValueError with a path-like message on bad shape."""
    if obj is None:
        return LabelSelector()
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where or 'selector'}: expected a mapping, got {type(obj).__name__}")
    ml = obj.get("matchLabels") or {}
    if not isinstance(ml, Mapping):
        raise ValueError(f"{where}.matchLabels: expected a mapping")
    labels = []
    for k, v in ml.items():
        if v is None:
            v = ""
        labels.append((str(k), str(v)))
    exprs = []
    raw_exprs = obj.get("matchExpressions") or []
    if not isinstance(raw_exprs, list):
        raise ValueError(f"{where}.matchExpressions: expected a list")
    for i, e in enumerate(raw_exprs):
        p = f"{where}.matchExpressions[{i}]"
        if not isinstance(e, Mapping) or "key" not in e or "operator" not in e:
            raise ValueError(f"{p}: needs key and operator")
        op = e["operator"]
        if op not in OPERATORS:
            raise ValueError(f"{p}.operator: {op!r} is not one of {', '.join(OPERATORS)}")
        values = e.get("values") or []
        if not isinstance(values, list):
            raise ValueError(f"{p}.values: expected a list")
        if op in ("In", "NotIn") and not values:
            raise ValueError(f"{p}.values: must be non-empty for {op}")
        if op in ("Exists", "DoesNotExist") and values:
            raise ValueError(f"{p}.values: must be empty for {op}")
        exprs.append(Requirement(str(e["key"]), op, tuple(str(v) for v in values)))
    return LabelSelector(tuple(sorted(labels)), tuple(exprs))
