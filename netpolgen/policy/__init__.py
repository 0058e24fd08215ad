"""The NetworkPolicy layer: model, parsing, the engine, and workload-level connectivity."""

from netpolgen.policy.conns import ConnSet
from netpolgen.policy.engine import Engine
from netpolgen.policy.model import (
    EGRESS,
    INGRESS,
    IPBlock,
    NetworkPolicy,
    PolicyPeer,
    PolicyRule,
    PortSpec,
    RuleRef,
)
from netpolgen.policy.parse import load_policies, parse_policies, parse_policy, policies_from_inventory
from netpolgen.policy.verdict import DirectionVerdict, Endpoint, Verdict, format_verdict

__all__ = [
    "ConnSet", "DirectionVerdict", "EGRESS", "Endpoint", "Engine", "INGRESS", "IPBlock", "NetworkPolicy",
    "PolicyPeer", "PolicyRule", "PortSpec", "RuleRef", "Verdict", "format_verdict", "load_policies",
    "parse_policies", "parse_policy", "policies_from_inventory",
]
