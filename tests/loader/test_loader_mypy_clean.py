"""The loader's modules (and the packages) listed here type-check and lint clean: ``python -m mypy FILES``
(configured by ``[tool.mypy]`` in pyproject.toml) and ``python -m ruff check FILES`` (``[tool.ruff]``) report nothing.

An explicit list of files: a module joins it once it is clean (the ones not listed yet are still reported by
``mypy kernel_loader``). mypy reports only the files given; the loader modules they import are analysed
silently (``follow_imports = "silent"`` for ``kernel_loader.*``).

``CLEAN_PACKAGES``: packages clean as a whole (every module in them, new ones included, is checked)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CLEAN_MODULES: list[str] = []   # every module is in a clean package now

CLEAN_PACKAGES = [
    "kernel_loader",       # the loader, its agent and its plugin extension point
    "pybpfgen_accel",      # the accelerator's control plane, conformance suite and stress mode
]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args, *CLEAN_MODULES, *CLEAN_PACKAGES], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_clean_modules_exist():
    missing = [m for m in CLEAN_MODULES if not os.path.isfile(os.path.join(ROOT, m))]
    assert not missing, f"listed as clean but missing (moved? update CLEAN_MODULES): {missing}"
    missing = [p for p in CLEAN_PACKAGES if not os.path.isfile(os.path.join(ROOT, p, "__init__.py"))]
    assert not missing, f"listed as clean but missing (moved? update CLEAN_PACKAGES): {missing}"


def test_mypy_loader_clean():
    proc = _run("mypy")
    assert proc.returncode == 0, f"mypy failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"


def test_ruff_loader_clean():
    proc = _run("ruff", "check")
    assert proc.returncode == 0, f"ruff check failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
