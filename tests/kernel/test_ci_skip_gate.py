"""Self-test of the skip gate in tests/conftest.py: under CI=true as root any
skipped test (kernel or not, in its body, by marker or a whole module at
collection) must be reported as a failure; otherwise it stays a skip.

Runs a throw-away pytest session (subprocess) on a copy of our conftest.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CONFTEST = HERE.parent / "conftest.py"

INNER_TESTS = textwrap.dedent('''
    import pytest

    @pytest.mark.kernel
    def test_kernel_skips_in_body():
        pytest.skip("pretend the kernel lacks something")

    @pytest.mark.kernel
    @pytest.mark.skip(reason="skip marker")
    def test_kernel_skip_marker():
        pass

    def test_kernel_fixture_skips(kernel_env):
        pytest.skip("skip from a test that uses a kernel fixture")

    def test_plain_skip():
        pytest.skip("not a kernel test: clang-19 missing (apt-get install clang-19)")

    @pytest.mark.kernel
    @pytest.mark.xfail(reason="xfail is not a skip")
    def test_kernel_xfail():
        assert False
''')


INNER_MODULE_SKIP = textwrap.dedent('''
    import pytest

    pytest.importorskip("no_such_module_pybpfgen", reason="no_such_module_pybpfgen missing: pip install it")

    def test_never_collected():
        pass
''')


def _run_inner(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    proj = tmp_path / ("ci" if ci else "noci")
    (proj / "kernel").mkdir(parents=True)
    shutil.copy(CONFTEST, proj / "conftest.py")
    shutil.copy(HERE / "kharness.py", proj / "kernel" / "kharness.py")
    (proj / "test_inner.py").write_text(INNER_TESTS)
    (proj / "test_inner_module.py").write_text(INNER_MODULE_SKIP)
    (proj / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-v", "-rA", "-p", "no:cacheprovider",
                           "--continue-on-collection-errors", str(proj)],
                          capture_output=True, text=True, env=env, cwd=proj, timeout=120)


def _outcomes(out: str) -> dict[str, str]:
    """test name -> PASSED/FAILED/ERROR/SKIPPED/XFAIL from ``pytest -v`` lines."""
    res = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("ERROR test_inner_module.py"):  # -rA summary: the module's collection failed
            res["<module>"] = "FAILED"
        elif re.match(r"SKIPPED \[\d+\] test_inner_module.py", line):  # ... or was skipped whole
            res["<module>"] = "SKIPPED"
        elif len(parts) >= 2 and parts[0].startswith("test_inner.py::"):
            name = parts[0].split("::", 1)[1]
            # a setup-phase failure is reported as ERROR; a later line wins (setup ERROR after PASSED is impossible)
            res[name] = "FAILED" if parts[1] == "ERROR" else parts[1]
    return res


def test_skips_become_failures_under_ci_as_root(tmp_path):
    r = _run_inner(tmp_path, "true")
    got = _outcomes(r.stdout)
    if os.geteuid() == 0:
        assert got == {"test_kernel_skips_in_body": "FAILED", "test_kernel_skip_marker": "FAILED",
                       "test_kernel_fixture_skips": "FAILED", "test_plain_skip": "FAILED",
                       "test_kernel_xfail": "XFAIL", "<module>": "FAILED"}, r.stdout
        assert r.returncode == 1, r.stdout
        assert "skips are failures here" in r.stdout
        assert "apt-get install clang-19" in r.stdout  # the skip's reason (what to install) is in the failure
        assert "pip install it" in r.stdout
    else:  # not root: the strict mode does not apply
        assert set(got.values()) <= {"SKIPPED", "XFAIL"}, r.stdout
        assert r.returncode == 0, r.stdout


def test_skips_stay_skips_without_ci(tmp_path):
    r = _run_inner(tmp_path, None)
    got = _outcomes(r.stdout)
    assert got["test_kernel_skip_marker"] == "SKIPPED", r.stdout
    assert got["test_plain_skip"] == "SKIPPED", r.stdout
    assert got["<module>"] == "SKIPPED", r.stdout
    assert got["test_kernel_xfail"] == "XFAIL", r.stdout
    assert "FAILED" not in got.values(), r.stdout
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize("value", ["false", "0", ""])
def test_ci_other_values_do_not_turn_skips_into_failures(tmp_path, value):
    r = _run_inner(tmp_path, value)
    assert "FAILED" not in _outcomes(r.stdout).values(), r.stdout
