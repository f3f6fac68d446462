"""Fixtures shared by the conformance and stress tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def accel_object(tmp_path_factory) -> Path:
    """``pybpfgen compile programs -o <tmp>`` once per session (or $PYBPFGEN_CONFORMANCE_OBJECT)."""
    if os.environ.get("PYBPFGEN_CONFORMANCE_OBJECT"):
        return Path(os.environ["PYBPFGEN_CONFORMANCE_OBJECT"])
    import kharness
    return kharness.PybpfgenCLI().compile(REPO / "programs", tmp_path_factory.mktemp("build"))
