"""Shared fixtures: where the public samples are, and the golden-file switch."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"
# Regenerate golden files with NETPOLGEN_UPDATE_GOLDEN=1 (then review the diff before committing).
UPDATE_GOLDEN = os.environ.get("NETPOLGEN_UPDATE_GOLDEN") == "1"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def samples() -> Path:
    """The public sample data beside the repository (skips when it is not there)."""
    if not SAMPLES.is_dir():
        pytest.skip("../shared/samples is not present")
    return SAMPLES
