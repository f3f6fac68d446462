"""ruff (configured in pyproject.toml) stays clean on the packages: CI runs this (docs/architecture.md, CONTRIBUTING)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLEAN = ["pybpfgen", "pybpfgen_accel", "kernel_loader"]


def test_ruff_is_clean_on_the_packages():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", *CLEAN], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"ruff check {' '.join(CLEAN)}:\n{r.stdout}{r.stderr}"
