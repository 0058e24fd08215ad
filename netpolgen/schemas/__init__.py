"""JSON Schemas (draft 2020-12) of every ``--format json`` output, one file per document kind:

- ``generate.schema.json``: ``generate`` and ``report`` (the review report as data);
- ``diff-observed.schema.json``: ``diff SOURCE...``;
- ``diff-policy-sets.schema.json``: ``diff --existing --proposed``;
- ``explain.schema.json``: ``explain``.
"""

from __future__ import annotations

import json
from importlib import resources

NAMES = ("generate", "diff-observed", "diff-policy-sets", "explain")


def load_schema(name: str) -> dict:
    """The schema of one output kind (see ``NAMES``)."""
    if name not in NAMES:
        raise KeyError(f"no schema {name!r}; known: {', '.join(NAMES)}")
    return json.loads(resources.files(__package__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8"))
