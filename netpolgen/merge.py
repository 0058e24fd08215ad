"""Incremental runs: merge freshly generated policies into an existing policy directory.

``generate --existing DIR`` treats DIR (a netpolgen output tree, or any directory of
NetworkPolicy files, one policy per file) as the state to build on:

- a rule already in DIR stays as it is written, with the policy's annotations;
- an observed connection no rule of DIR allows adds a rule: the generated rules' (peer, port)
  pairs that DIR does not already hold, grouped as synthesis groups them (peers with the same
  ports share a rule);
- a rule of DIR that admitted nothing observed over the window is listed as unused, and removed
  only with ``prune`` (a policy whose rules are all pruned is removed; a default-deny never is);
- a policy whose merged form equals what DIR holds is *unchanged*: its file is not rewritten,
  so it stays byte-identical (evidence annotations included, from the run that wrote it).

Policies are matched by namespace/name. Pure: dicts in, dicts out; reading and writing are the
two small functions at the end.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import yaml

from netpolgen.annotations import EVIDENCE_KEYS, PREFIX
from netpolgen.errors import PolicyError
from netpolgen.evidence import Evidence
from netpolgen.policy.model import RuleRef

NEW, CHANGED, UNCHANGED, REMOVED = "new", "changed", "unchanged", "removed"
_PEERS = {"ingress": "from", "egress": "to"}
_TYPES = {"ingress": "Ingress", "egress": "Egress"}


@dataclass(frozen=True)
class ExistingPolicy:
    path: str
    text: str
    policy: dict

    @property
    def key(self) -> str:
        return _key(self.policy)


@dataclass(frozen=True)
class UnusedRule:
    policy: str  # namespace/name
    direction: str
    index: int
    text: str
    pruned: bool


@dataclass
class MergeResult:
    policies: list[dict]  # the merged set, sorted by namespace/name (removed ones left out)
    status: dict[str, str]  # key -> new / changed / unchanged / removed
    unused: list[UnusedRule] = field(default_factory=list)
    existing: dict[str, ExistingPolicy] = field(default_factory=dict)


def _key(p: dict) -> str:
    m = p.get("metadata") or {}
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


def _canon(obj: object) -> str:
    return json.dumps(obj, sort_keys=True)


def _atoms(rule: dict, direction: str) -> set[tuple[str, str]] | None:
    """The (peer, port) pairs a rule lists; None for a rule that allows every peer or port
    (it cannot be split into pairs, and stays as written)."""
    peers, ports = rule.get(_PEERS[direction]), rule.get("ports")
    if not peers or not ports:
        return None
    return {(_canon(p), _canon(q)) for p in peers for q in ports}


def _group(atoms: set[tuple[str, str]], direction: str) -> list[dict]:
    """Pairs back into rules: peers with the same port set share one rule (as synthesis does)."""
    ports_of: dict[str, set[str]] = {}
    for peer, port in atoms:
        ports_of.setdefault(peer, set()).add(port)
    by_ports: dict[tuple[str, ...], list[str]] = {}
    for peer, port_set in ports_of.items():
        by_ports.setdefault(tuple(sorted(port_set, key=_port_key)), []).append(peer)
    keyed = []
    for ports, peer_list in by_ports.items():
        peers = sorted(peer_list)
        rule = {_PEERS[direction]: [json.loads(p) for p in peers], "ports": [json.loads(q) for q in ports]}
        keyed.append(((tuple(_port_key(q) for q in ports), peers[0]), rule))
    return [r for _, r in sorted(keyed, key=lambda kr: kr[0])]


def _port_key(port_json: str) -> tuple:
    p = json.loads(port_json)
    port = p.get("port")
    return (isinstance(port, str), port if isinstance(port, int) else 0, str(port), p.get("protocol", "TCP"), p.get("endPort", 0))


def _merge_one(old: dict, new: dict | None, unused: set[tuple[str, int]], prune: bool) -> dict:
    """``old`` with ``new``'s pairs added that ``old`` lacks, and with ``prune`` its unused rules
    (``(direction, index)``) dropped."""
    out = json.loads(json.dumps(old))  # a deep copy that stays plain data
    spec = out.setdefault("spec", {})
    nspec = (new or {}).get("spec") or {}
    types = list(spec.get("policyTypes") or [])
    for direction in ("ingress", "egress"):
        rules = list(spec.get(direction) or [])
        if prune:
            rules = [r for i, r in enumerate(rules) if (direction, i) not in unused]
        have: set[tuple[str, str]] = set()
        for r in rules:
            have |= _atoms(r, direction) or set()
        wanted: set[tuple[str, str]] = set()
        for r in nspec.get(direction) or []:
            atoms = _atoms(r, direction)
            if atoms is None:
                if r not in rules:
                    rules.append(r)
                continue
            wanted |= atoms
        rules += _group(wanted - have, direction)
        if rules:
            spec[direction] = rules
            if _TYPES[direction] not in types:
                types.append(_TYPES[direction])
        else:
            spec.pop(direction, None)
    if new is not None:
        for t in nspec.get("policyTypes") or []:
            if t not in types:
                types.append(t)
    spec["policyTypes"] = [t for t in ("Ingress", "Egress") if t in types]
    if new is not None:
        # What names the workload and its DNS peers follows the latest run; evidence keys are
        # recomputed by the caller for the policies that change.
        fresh = {k: v for k, v in ((new.get("metadata") or {}).get("annotations") or {}).items()
                 if k.startswith(PREFIX) and k not in EVIDENCE_KEYS}
        if fresh:
            meta = out.setdefault("metadata", {})
            meta["annotations"] = {**(meta.get("annotations") or {}), **fresh}
    return out


def _unused_rules(existing: dict[str, ExistingPolicy], evidence: Evidence, generated: dict[str, dict]
                  ) -> dict[str, set[tuple[str, int]]]:
    """Rules of DIR that admitted no observed edge. A rule whose every pair the generated set
    holds again (the TCP twin of a DNS rule: allowed, never itself observed) is not unused."""
    out: dict[str, set[tuple[str, int]]] = {}
    for r in evidence.rules:
        if r.edges:
            continue
        old = existing.get(r.ref.policy)
        if old is None:
            continue
        rules = (old.policy.get("spec") or {}).get(r.ref.direction) or []
        if r.ref.index >= len(rules):
            continue
        atoms = _atoms(rules[r.ref.index], r.ref.direction)
        gen_atoms: set[tuple[str, str]] = set()
        for g in ((generated.get(r.ref.policy) or {}).get("spec") or {}).get(r.ref.direction) or []:
            gen_atoms |= _atoms(g, r.ref.direction) or set()
        if atoms is not None and atoms <= gen_atoms:
            continue
        out.setdefault(r.ref.policy, set()).add((r.ref.direction, r.ref.index))
    return out


def merge_policies(generated: list[dict], existing: list[ExistingPolicy], existing_evidence: Evidence,
                   prune: bool = False) -> MergeResult:
    """Merge ``generated`` into ``existing``; ``existing_evidence`` is the evidence of the
    existing policies over this run's traffic (``evidence.gather_evidence``)."""
    old = {e.key: e for e in existing}
    gen = {_key(p): p for p in generated}
    unused = _unused_rules(old, existing_evidence, gen)
    result = MergeResult(policies=[], status={}, existing=old)
    for key in sorted(set(old) | set(gen)):
        o, g = old.get(key), gen.get(key)
        dropped = unused.get(key, set())
        for direction, index in sorted(dropped):
            result.unused.append(UnusedRule(key, direction, index,
                                            existing_evidence.rule_text(RuleRef(key, direction, index)), prune))
        if o is None:
            result.policies.append(g)  # type: ignore[arg-type]
            result.status[key] = NEW
            continue
        merged = _merge_one(o.policy, g, dropped, prune)
        spec = merged.get("spec") or {}
        had_rules = bool((o.policy.get("spec") or {}).get("ingress") or (o.policy.get("spec") or {}).get("egress"))
        if prune and had_rules and not spec.get("ingress") and not spec.get("egress"):
            result.status[key] = REMOVED
            continue
        result.policies.append(merged)
        result.status[key] = UNCHANGED if merged == o.policy else CHANGED
    return result


def read_existing(directory: str) -> list[ExistingPolicy]:
    """Every NetworkPolicy document in the YAML/JSON files under ``directory`` (one per file:
    a file holding several is read, but only as a whole can it be rewritten, so it is refused)."""
    if not os.path.isdir(directory):
        if os.path.exists(directory):
            raise PolicyError(directory, None, "--existing must be a directory (the output of an earlier run)")
        return []
    out = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not name.endswith((".yaml", ".yml", ".json")):
                continue
            path = os.path.join(root, name)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") == "NetworkPolicy"]
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
                raise PolicyError(path, None, f"cannot read it as YAML ({e.__class__.__name__})") from e
            if len(docs) > 1:
                raise PolicyError(path, None, f"holds {len(docs)} NetworkPolicies; --existing needs one policy per file")
            if docs:
                out.append(ExistingPolicy(path, text, docs[0]))
    return out
