"""`pip install .` gives a working pybpfgen: build the wheel, install it into a fresh venv, run the CLI.

No network: the wheel is built without build isolation (setuptools and wheel from this venv, both in the
`test` extra), installed with --no-deps, and the new venv finds the dependencies (llvmlite, cffi)
through a .pth file pointing at this venv's site-packages. Runs in CI (no root needed); about 30 s.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "pybpfgen", "pybpfgen_accel", "kernel_loader")


def source_version() -> str:
    m = re.search(r'^__version__ = "([^"]+)"', (REPO / "pybpfgen" / "__init__.py").read_text(), re.M)
    assert m, "pybpfgen/__init__.py must define __version__ (the one version source)"
    return m.group(1)


def run(argv, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, argv))}: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "src"  # a copy: building in the checkout would leave build/lib and *.egg-info behind
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        p = REPO / name
        (shutil.copytree(p, src / name, ignore=ignore) if p.is_dir() else shutil.copy2(p, src / name))
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, src])
    (whl,) = dist.glob("pybpfgen-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("venv") / "v"
    run([sys.executable, "-m", "venv", "--without-pip", env])
    site = Path(run([env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                    ).stdout.strip())
    # the dependencies, from this venv (a plain path: .pth files there, such as the editable install's,
    # are not processed, so this checkout's pybpfgen stays invisible)
    (site / "_pybpfgen_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", env / "bin" / "python", "install", "-q", "--no-deps",
         "--no-index", wheel] if _pip_has_python_option() else
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", site, wheel])
    if not (env / "bin" / "pybpfgen").exists():  # --target does not write console scripts: make the same one
        (env / "bin" / "pybpfgen").write_text(
            f"#!{env / 'bin' / 'python'}\nimport sys\nfrom pybpfgen.cli import main\nsys.exit(main())\n")
        (env / "bin" / "pybpfgen").chmod(0o755)
    return env


def _pip_has_python_option() -> bool:
    r = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    m = re.search(r"pip (\d+)\.", r.stdout)
    return bool(m) and int(m.group(1)) >= 22


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("pybpfgen/__init__.py", "pybpfgen/cli.py", "pybpfgen/lang.py", "pybpfgen/lang_helpers.py",
                   "pybpfgen/target/helpers_table.py", "pybpfgen/testing.py", "kernel_loader/__init__.py",
                   "kernel_loader/_bpf_cffi.py", "kernel_loader/cli.py", "kernel_loader/plugins.py",
                   "pybpfgen_accel/plugin.py", "pybpfgen_accel/conformance/stress.py"):
        assert needed in names, f"{needed} missing from {wheel.name}"
    assert not any(n.startswith(("tests/", "programs/", "bench/")) for n in names)
    meta = zipfile.ZipFile(wheel).read(f"pybpfgen-{source_version()}.dist-info/METADATA").decode()
    assert f"Version: {source_version()}" in meta
    eps = zipfile.ZipFile(wheel).read(f"pybpfgen-{source_version()}.dist-info/entry_points.txt").decode()
    assert "pybpfgen = pybpfgen.cli:main" in eps
    assert "[pybpfgen.plugins]\naccel = pybpfgen_accel.plugin" in eps, eps   # the accelerator plugs in as any app


def test_installed_cli(venv, tmp_path):
    py, pbg = venv / "bin" / "python", venv / "bin" / "pybpfgen"
    where = run([py, "-c", "import pybpfgen, kernel_loader; print(pybpfgen.__file__); print(kernel_loader.__file__)"],
                cwd=tmp_path).stdout.split()
    assert all(w.startswith(str(venv)) for w in where), f"not the installed copy: {where}"
    assert run([pbg, "--version"], cwd=tmp_path).stdout.strip() == f"pybpfgen {source_version()}"
    # the compiler works from the installed package, on the accelerator and on the tutorial's example
    out = tmp_path / "out"
    r = run([pbg, "compile", REPO / "programs" / "accel.py", REPO / "examples" / "webapp_redis.py", "-o", out],
            cwd=tmp_path)
    assert (out / "accel.bpf.o").read_bytes()[:4] == b"\x7fELF", r.stdout
    assert (out / "webapp_redis.bpf.o").is_file()
    assert "accel_redirect" in run([pbg, "disasm", out / "accel.bpf.o"], cwd=tmp_path).stdout
    # the loader's commands are registered (running them needs root: tests/kernel)
    helptext = run([pbg, "--help"], cwd=tmp_path).stdout
    for cmd in ("compile", "load", "unload", "status", "policy", "doctor"):
        assert cmd in helptext
    run([py, "-m", "pybpfgen", "--version"], cwd=tmp_path)
    run([py, "-c", "from pybpfgen import testing; testing.load(r'%s')" % (REPO / "programs" / "accel.py")],
        cwd=tmp_path)


OUR_PACKAGES = ("pybpfgen", "pybpfgen_accel", "kernel_loader")
# top-level modules that are imported by pybpfgen/, pybpfgen_accel/ or kernel_loader/ -> the distribution that provides them
_DIST_OF_MODULE = {"llvmlite": "llvmlite", "cffi": "cffi", "_cffi_backend": "cffi", "prometheus_client": "prometheus_client"}
# imported, but not at run time of the installed command: mypy imports our plugin (pybpfgen/mypy_plugin.py)
_NOT_RUNTIME = {"mypy"}


def _all_imports() -> dict[str, set[str]]:
    """Every top-level module the packages import (absolute imports), with the files importing it."""
    import ast
    found: dict[str, set[str]] = {}
    for pkg in OUR_PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def _third_party_imports() -> dict[str, set[str]]:
    return {m: p for m, p in _all_imports().items() if m not in sys.stdlib_module_names and m not in OUR_PACKAGES}


def _declared(extra: str | None = None) -> set[str]:
    import tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in deps}


def test_runtime_dependencies_are_what_the_packages_import():
    """Every third-party module the packages import is a declared runtime dependency, and every runtime
    dependency is imported (what only tests or benchmarks use belongs to the `test`/`bench` extras)."""
    imported = _third_party_imports()
    unknown = {m: sorted(p) for m, p in imported.items() if m not in _DIST_OF_MODULE and m not in _NOT_RUNTIME}
    assert not unknown, f"imports of undeclared third-party modules: {unknown} (add them to pyproject.toml)"
    used = {_DIST_OF_MODULE[m] for m in imported if m in _DIST_OF_MODULE}
    assert _declared() == used, (f"pyproject.toml [project] dependencies {sorted(_declared())} != what pybpfgen/ "
                                 f"and kernel_loader/ import {sorted(used)}")


def test_no_private_cpython_modules():
    """The packages use no private CPython module (``_sha256``, ``_sha2``, ...): they differ between versions."""
    private = {m: sorted(p) for m, p in _all_imports().items() if m.startswith("_") and m != "__future__" and m not in _DIST_OF_MODULE}
    assert not private, f"imports of private CPython modules: {private}"


def test_test_extra_has_what_the_tests_import():
    """pyelftools (the independent ELF reader of the tests) is in the `test` extra, not a runtime dependency."""
    uses = [p for p in (REPO / "tests").rglob("*.py") if "elftools" in p.read_text()]
    assert uses and "pyelftools" in _declared("test") and "pyelftools" not in _declared()
