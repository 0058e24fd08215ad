"""`netpolgen explain SRC DST PORT/PROTO`: is one connection allowed, and by which rules.

SRC and DST are pods (``namespace/name``), workloads (``namespace/name`` of a Deployment etc.,
evaluated on one of its pods) or IP addresses. Exit 0 when allowed, 1 when denied, 2 on error.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from netpolgen.commands.options import FORMAT_HELP
from netpolgen.commands.options import output_format as check_format
from netpolgen.errors import UsageError

PROTOCOLS = ("TCP", "UDP", "SCTP")


def parse_port_proto(text: str) -> tuple[int, str]:
    """``8080/TCP``, ``53/udp`` or ``8080`` (TCP); ``TCP/8080`` is accepted too."""
    a, _, b = text.strip().partition("/")
    port_text, proto = (a, b or "TCP") if a.isdigit() else (b, a)
    proto = proto.upper()
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535 or proto not in PROTOCOLS:
        raise UsageError(None, "PORT/PROTO", f"{text!r} is not PORT/PROTO (e.g. 8080/TCP, 53/UDP)")
    return int(port_text), proto


def resolve_endpoint(inventory, text: str) -> str:
    """A pod key or address as given, or a workload named ``namespace/name`` (or with its
    ``[Kind]``) replaced by its first pod."""
    if inventory.pod(text) is not None or "/" not in text:
        return text
    refs = [r for r in inventory.workload_refs() if text in (f"{r.namespace}/{r.name}", str(r))]
    if len(refs) > 1:
        kinds = ", ".join(str(r) for r in refs)
        raise UsageError(None, text, f"names several workloads ({kinds}); add the kind, e.g. {refs[0]}")
    if refs:
        pods = sorted(inventory.pods_of(refs[0]), key=lambda p: p.key)
        if pods:
            return pods[0].key
    return text


def explain_command(
    src: Annotated[str, typer.Argument(help="Source: namespace/pod, namespace/workload, or an IP address.")],
    dst: Annotated[str, typer.Argument(help="Destination: namespace/pod, namespace/workload, or an IP address.")],
    port_proto: Annotated[str, typer.Argument(metavar="PORT/PROTO", help="Destination port and protocol, e.g. 8080/TCP.")],
    policies: Annotated[Optional[list[str]], typer.Option(
        "--policies", "-p", help="NetworkPolicy files or directories (repeatable). Default: those in the inventory.")] = None,
    inventory: Annotated[Optional[list[str]], typer.Option("--inventory", "-i", help="kubectl -o json output or manifests (repeatable).")] = None,
    flows: Annotated[Optional[list[str]], typer.Option(
        "--flows", help="Flow logs (Hubble, Calico) whose identities complete the inventory, as generate reads them (repeatable).")] = None,
    output_format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "text",
) -> None:
    """Explain whether the policies allow one connection, naming the policies and rules that decide.

    Exit 0 when allowed, 1 when denied, 2 on error.
    """
    from netpolgen.inventory import load_inventory
    from netpolgen.policy import Engine, format_verdict, load_policies, policies_from_inventory
    from netpolgen.resolve import describe_address

    output_format = check_format(output_format)
    if not inventory and not flows:
        raise UsageError(None, "--inventory", "needed (or --flows): the pods and namespaces the policies select")
    port, proto = parse_port_proto(port_proto)
    inv = load_inventory(inventory) if inventory else None
    if flows:
        from netpolgen.inventory.from_flows import inventory_for
        from netpolgen.pipeline import read_flows

        inv = inventory_for(read_flows(flows).flows, inv)
    assert inv is not None
    pols = load_policies(policies) if policies else policies_from_inventory(inv)
    if policies:
        from netpolgen.policy.load import load_cilium_policies

        pols += load_cilium_policies(policies, inv)
    engine = Engine(inv, pols)
    src_key, dst_key = resolve_endpoint(inv, src), resolve_endpoint(inv, dst)
    verdict = engine.evaluate(src_key, dst_key, port, proto)
    if output_format == "json":
        doc = verdict.to_json()
        texts = engine.rule_text()
        for side in ("egress", "ingress"):
            d = getattr(verdict, side)
            doc[side]["rule_text"] = {str(r): texts[r] for r in d.rules}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif output_format == "markdown":
        from netpolgen.report.diffs import verdict_markdown

        sys.stdout.write(verdict_markdown(verdict, engine.rule_text()))
    elif output_format == "junit":
        from netpolgen.report.diffs import verdict_cases
        from netpolgen.report.junit import render_junit

        sys.stdout.write(render_junit("netpolgen explain", verdict_cases(verdict)))
    else:
        # what each end is, told as generate's summary and policies tell it (one story per address)
        sys.stdout.write(f"source {src}: {describe_address(inv, src_key)}\n"
                         f"destination {dst}: {describe_address(inv, dst_key)}\n")
        sys.stdout.write(format_verdict(verdict, engine.rule_text()))
    raise typer.Exit(0 if verdict.allowed else 1)
