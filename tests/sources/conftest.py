"""Fixtures shared by the source tests: where the public sample data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"


@pytest.fixture(scope="session")
def samples() -> Path:
    """../shared/samples beside the repository; tests that need it skip when it is absent."""
    if not SAMPLES.is_dir():
        pytest.skip(f"sample data not found at {SAMPLES}")
    return SAMPLES.resolve()
