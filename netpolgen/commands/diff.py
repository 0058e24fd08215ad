"""`netpolgen diff`: observed traffic vs existing policies, or one policy set vs another.

- ``netpolgen diff SOURCE... --inventory FILE --existing DIR``: what the existing policies would
  deny of the observed traffic, which rules nothing observed used, what they allow that was never
  observed. Exit 0 when nothing observed would be denied, 1 when something would, 2 on error.
- ``netpolgen diff --existing DIR --proposed DIR2 --inventory FILE``: the connectivity difference
  per workload pair. Exit 0 when equivalent, 1 when different, 2 on error.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from netpolgen.commands.options import FORMAT_HELP, input_format, output_format
from netpolgen.errors import UsageError

if TYPE_CHECKING:
    from netpolgen.pipeline import ClusterOptions



def diff_command(
    sources: Annotated[Optional[list[str]], typer.Argument(help="Captures or flow logs (observed-traffic mode): files, directories, globs.")] = None,
    inventory: Annotated[Optional[list[str]], typer.Option("--inventory", "-i", help="kubectl -o json output or manifests (repeatable).")] = None,
    existing: Annotated[Optional[list[str]], typer.Option("--existing", help="Existing NetworkPolicies: files or directories (repeatable). Default in observed mode: the NetworkPolicies in the inventory.")] = None,
    proposed: Annotated[Optional[list[str]], typer.Option("--proposed", help="A second policy set to compare with --existing (repeatable).")] = None,
    out_format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "text",
    input_fmt: Annotated[Optional[str], typer.Option("--input-format", help="Force the input format of SOURCE.")] = None,
    source_format: Annotated[Optional[str], typer.Option("--source-format", hidden=True, help="Deprecated: --input-format.")] = None,
    cluster_cidr: Annotated[Optional[list[str]], typer.Option("--cluster-cidr", help="Pod or Service range (repeatable), for telling cluster addresses from external ones.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="The first malformed input record is fatal.")] = False,
    from_cluster: Annotated[bool, typer.Option("--from-cluster", help="Read the inventory (and, without --existing, its NetworkPolicies) from the live cluster of the current kubeconfig context.")] = False,
    kubeconfig: Annotated[Optional[str], typer.Option("--kubeconfig", help="Kubeconfig for the live cluster (implies --from-cluster).")] = None,
    context: Annotated[Optional[str], typer.Option("--context", help="Kubeconfig context (implies --from-cluster).")] = None,
) -> None:
    """Diff observed traffic against existing policies, or two policy sets against each other.

    With SOURCE: which observed connections the existing policies would deny, which rules nothing
    observed used, what they allow that was never observed (exit 0: nothing denied, 1: something
    would be denied). With --proposed: the connectivity difference per workload pair (exit 0:
    equivalent, 1: different). Errors exit 2.
    """
    out_format = output_format(out_format)
    from netpolgen.pipeline import ClusterOptions
    from netpolgen.sources import SOURCE_CLASSES

    in_fmt = input_format(input_fmt, source_format, tuple(SOURCE_CLASSES))

    cluster = ClusterOptions(kubeconfig, context) if (from_cluster or kubeconfig or context) else None
    if proposed:
        code = _policy_sets(sources or [], inventory or [], existing or [], proposed, out_format, cluster)
    else:
        code = _observed(sources or [], inventory or [], existing, out_format, in_fmt, cluster_cidr or [],
                         strict, cluster)
    raise typer.Exit(code)


def _policy_sets(sources: list[str], inventory: list[str], existing: list[str], proposed: list[str], output_format: str,
                 cluster: ClusterOptions | None) -> int:
    from netpolgen.diff import diff_policy_sets, format_policy_set_diff, policy_set_diff_json
    from netpolgen.pipeline import load_inventory_from
    from netpolgen.policy import load_policies

    if sources:
        raise UsageError(None, "SOURCE", "traffic sources cannot be combined with --proposed (that compares two policy sets)")
    if not existing:
        raise UsageError(None, "--existing", "needed with --proposed: the policy set to compare against")
    if not inventory and cluster is None:
        raise UsageError(None, "--inventory", "needed: the workloads the two policy sets are compared on")
    inv = load_inventory_from(inventory, cluster)
    assert inv is not None  # files or a cluster were given (checked above)
    from netpolgen.policy.load import load_cilium_policies

    result = diff_policy_sets(inv, load_policies(existing) + load_cilium_policies(existing, inv),
                              load_policies(proposed) + load_cilium_policies(proposed, inv))
    if output_format == "markdown":
        from netpolgen.report.diffs import policy_set_diff_markdown

        sys.stdout.write(policy_set_diff_markdown(result))
    elif output_format == "junit":
        from netpolgen.report.diffs import policy_set_diff_cases
        from netpolgen.report.junit import render_junit

        sys.stdout.write(render_junit("netpolgen diff: policy sets", policy_set_diff_cases(result)))
    else:
        sys.stdout.write(policy_set_diff_json(result) if output_format == "json" else format_policy_set_diff(result))
    return 0 if result.equivalent else 1


def _observed(
    sources: list[str], inventory: list[str], existing: list[str] | None, output_format: str,
    source_format: str | None, cluster_cidr: list[str], strict: bool, cluster: ClusterOptions | None,
) -> int:
    from netpolgen.diff import diff_observed, format_observed_diff, observed_diff_json
    from netpolgen.pipeline import load_inventory_from, read_and_resolve
    from netpolgen.policy import load_policies, policies_from_inventory
    from netpolgen.sources.base import SourceOptions

    if not sources:
        raise UsageError(None, "SOURCE", "give captures or flow logs to compare with --existing, or --proposed DIR to compare two policy sets")
    inv = load_inventory_from(inventory, cluster)
    if inv is not None:
        for cidr in cluster_cidr:
            inv.add_cluster_network(cidr)
    if existing is not None:
        policies = load_policies(existing)
    elif inv is not None and inv.policies:
        policies = policies_from_inventory(inv)
    else:
        raise UsageError(None, "--existing", "no existing policies: give --existing DIR, or an inventory that holds NetworkPolicies")
    from netpolgen.live import wants_stream

    if wants_stream(sources, False):  # a pipe: denied connections printed as they appear (netpolgen/live)
        from netpolgen.live.diff import stream_diff

        flows, inventory_now = stream_diff(sources, inv, policies, source_format, SourceOptions(strict=strict),
                                           sys.stderr if output_format in ("json", "junit") else sys.stdout)
        result = diff_observed(flows, inventory_now, policies)
    else:
        resolved = read_and_resolve(sources, inv, source_format, SourceOptions(strict=strict))
        if existing is not None:
            from netpolgen.policy.load import load_cilium_policies
            from netpolgen.selfcheck import cilium_context

            context = cilium_context(resolved.flows, resolved.inventory, resolved.report.entities)
            policies = policies + load_cilium_policies(existing, resolved.inventory, context)
        result = diff_observed(resolved.flows, resolved.inventory, policies)
    if output_format == "markdown":
        from netpolgen.report.diffs import observed_diff_markdown

        sys.stdout.write(observed_diff_markdown(result))
    elif output_format == "junit":
        from netpolgen.report.diffs import observed_diff_cases
        from netpolgen.report.junit import render_junit

        sys.stdout.write(render_junit("netpolgen diff: observed traffic", observed_diff_cases(result)))
    else:
        sys.stdout.write(observed_diff_json(result) if output_format == "json" else format_observed_diff(result))
    return 1 if result.has_denied else 0
