"""Fixtures shared by the accelerator's kernel tests."""
from pathlib import Path

import pytest

import kharness as kh


@pytest.fixture(scope="session")
def accel_obj(tmp_path_factory) -> Path:
    """``pybpfgen compile programs -o <tmp>`` via the CLI, once per run."""
    return kh.PybpfgenCLI().compile(kh.REPO_ROOT / "programs", tmp_path_factory.mktemp("build"))
