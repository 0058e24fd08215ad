"""Renderers: the rule model (``netpolgen.model``) as documents of one output kind.

Each renderer says which document kinds it writes (``kinds``) and which peer kinds of the model
it can express (``peer_kinds``); the self-check evaluates only kinds the policy engine knows,
and refuses the others rather than passing them unchecked. A new output kind (Cilium,
cluster-wide policies) is a new module here implementing ``Renderer``; aggregation and the model
do not change.
"""

from __future__ import annotations

from typing import Protocol

from netpolgen.model import PolicyModel


class Renderer(Protocol):
    """Turns a PolicyModel into Kubernetes documents (plain dicts, as ``kubectl`` reads them)."""

    kinds: tuple[str, ...]  # the ``kind`` of every document it writes
    peer_kinds: tuple[type, ...]  # the model's peer classes it can express

    def render(self, model: PolicyModel) -> list[dict]: ...
