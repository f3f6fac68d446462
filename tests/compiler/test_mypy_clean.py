"""pybpfgen type-checks clean: ``python -m mypy pybpfgen`` (configured by ``[tool.mypy]`` in pyproject.toml, with
the DSL plugin) reports no error. The loader is checked on its own."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_mypy_pybpfgen_clean():
    proc = subprocess.run([sys.executable, "-m", "mypy", "pybpfgen"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"mypy pybpfgen failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
