"""After synthesis: evidence, annotations, the merge with ``--existing``, the files, the report.

``prepare`` decides what the output is (no writing); ``write_files`` writes it, touching only
the files that change when it builds on an existing directory; ``report_of`` is the report
model of the run. ``generate`` and ``report`` (the subcommands) are thin over these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from netpolgen.annotations import annotate, strip
from netpolgen.evidence import Evidence, gather_evidence
from netpolgen.merge import CHANGED, NEW, REMOVED, UNCHANGED, MergeResult, merge_policies, read_existing


@dataclass
class Published:
    policies: list[dict]  # the policy set as written (annotated unless asked not to)
    _evidence: Evidence | Callable[[], Evidence]  # of ``policies`` over the observed edges
    merge: MergeResult | None = None
    existing_dir: str | None = None
    baseline: list[dict] | None = None
    baseline_evidence: Evidence | None = None
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def evidence(self) -> Evidence:
        """Gathered on first use: a plain run without annotations or report never pays for it."""
        if callable(self._evidence):
            self._evidence = self._evidence()
        return self._evidence

    def status(self, key: str) -> str:
        return self.merge.status.get(key, NEW) if self.merge else NEW


def _key(p: dict) -> str:
    m = p.get("metadata") or {}
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


def prepare(result, *, existing_dir: str | None = None, prune: bool = False, annotations: bool = True,
            with_files: bool = False, bounds: tuple[float | None, float | None] = (None, None)) -> Published:
    """The output of a generate run (``pipeline.GenerateResult``). ``with_files`` makes every
    edge name its input files (for the report; it reads the resolved rows once more); ``bounds``
    are ``--since``/``--until``, which cut the observation window."""
    flows = result.resolved_flows if with_files else None
    if existing_dir is None:
        def gather() -> Evidence:
            return gather_evidence(result.policies, result.edges, result.inventory, result.sources, flows, bounds)

        if not annotations:
            return Published(list(result.policies), gather)
        ev = gather()
        return Published(annotate(result.policies, ev), ev)
    existing = read_existing(existing_dir)
    baseline = [e.policy for e in existing]
    base_ev = gather_evidence(baseline, result.edges, result.inventory, result.sources, None, bounds)
    merged = merge_policies(result.policies, existing, base_ev, prune)
    ev = gather_evidence(merged.policies, result.edges, result.inventory, result.sources, flows, bounds)
    fresh = annotate(merged.policies, ev) if annotations else strip(merged.policies)
    final = [p if merged.status[_key(p)] in (NEW, CHANGED) else m for p, m in zip(fresh, merged.policies, strict=True)]
    return Published(final, ev, merged, existing_dir, baseline, base_ev)


def _same_dir(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def write_files(pub: Published, out_dir: str) -> Published:
    """Write the policy files. Building on ``--existing`` in place, unchanged files are left
    alone (byte-identical, same inode: the staging directory links them in), changed ones are
    rewritten, pruned ones removed; into another directory, the whole merged tree is written.
    Either way the output is replaced whole or not at all (``outdir.staged``)."""
    from netpolgen.outdir import staged
    from netpolgen.render import _write_new, policy_path, to_yaml, write_policy_files

    if pub.merge is None:
        pub.written = write_policy_files(pub.policies, out_dir)
        return pub
    in_place = pub.existing_dir is not None and os.path.isdir(out_dir) and _same_dir(out_dir, pub.existing_dir)
    plan: list[tuple[str, str]] = []  # (path relative to out_dir, text)
    for p in pub.policies:
        key = _key(p)
        old = pub.merge.existing.get(key)
        rel = os.path.relpath(old.path, out_dir) if (old is not None and in_place) else policy_path(p)
        if pub.status(key) == UNCHANGED and old is not None:
            if in_place:
                pub.unchanged.append(os.path.join(out_dir, rel))
                continue
            plan.append((rel, old.text))
        else:
            plan.append((rel, to_yaml(p)))
    removed = [os.path.relpath(pub.merge.existing[key].path, out_dir)
               for key, status in sorted(pub.merge.status.items()) if status == REMOVED] if in_place else []
    with staged(out_dir) as stage:
        for rel, text in plan:
            _write_new(os.path.join(stage, rel), os.path.join(out_dir, rel), text)
            pub.written.append(os.path.join(out_dir, rel))
        for rel in removed:
            os.unlink(os.path.join(stage, rel))
            pub.removed.append(os.path.join(out_dir, rel))
    return pub


def merge_summary(pub: Published) -> str:
    """Lines for the text summary: what the merge kept, added and found unused."""
    if pub.merge is None:
        return ""
    counts = {s: sum(1 for v in pub.merge.status.values() if v == s) for s in (UNCHANGED, CHANGED, NEW, REMOVED)}
    lines = [f"existing {pub.existing_dir}: {counts[UNCHANGED]} policies unchanged, {counts[CHANGED]} changed, "
             f"{counts[NEW]} new, {counts[REMOVED]} removed"]
    if pub.unchanged:
        lines.append(f"  files not rewritten (unchanged): {len(pub.unchanged)}")
    if pub.merge.unused:
        pruned = pub.merge.unused[0].pruned
        lines.append(f"rules nothing used over the window ({'removed: --prune' if pruned else 'kept; --prune removes them'}):")
        lines += [f"    {u.policy} {u.direction}[{u.index}]: {u.text}" for u in pub.merge.unused[:20]]
        if len(pub.merge.unused) > 20:
            lines.append(f"    ... and {len(pub.merge.unused) - 20} more")
    return "\n".join(lines) + "\n"


def report_of(pub: Published, result, title: str = "netpolgen report", out_dir: str | None = None):
    from netpolgen.report import build_report

    paths = {}
    # The report reads NetworkPolicy documents (its evidence is the NetworkPolicy engine's rule
    # references); the other kinds are summarised by their self-check.
    shown = [p for p in pub.policies if p.get("kind", "NetworkPolicy") == "NetworkPolicy"]
    for p in shown:
        key = _key(p)
        old = pub.merge.existing.get(key) if pub.merge else None
        paths[key] = old.path if old is not None else os.path.join(out_dir or "", f"{key}.yaml")
    return build_report(
        shown, pub.evidence, result.inventory, sources=result.sources, resolve_report=result.report,
        problems=result.synthesis.problems, self_check=result.self_check, baseline=pub.baseline,
        baseline_evidence=pub.baseline_evidence,
        baseline_label=f"--existing {pub.existing_dir}" if pub.existing_dir else "", title=title, paths=paths,
    )
