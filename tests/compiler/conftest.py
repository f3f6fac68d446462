import os
import textwrap

import pytest

from pybpfgen.driver import compile_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HEADER = "from pybpfgen.lang import *\n"


class Compiled:
    def __init__(self, result, src_path):
        self.result = result
        self.path = src_path
        self.errors = [d for d in result.diagnostics if d.severity == "error"]
        self.warnings = [d for d in result.diagnostics if d.severity == "warning"]

    @property
    def messages(self):
        return [d.message for d in self.errors]


@pytest.fixture
def compile_src(tmp_path):
    """Compile DSL source text (the `from pybpfgen.lang import *` header is added) into tmp_path."""

    def run(body: str, name: str = "prog", header: bool = True) -> Compiled:
        src = (HEADER if header else "") + textwrap.dedent(body)
        path = tmp_path / f"{name}.py"
        path.write_text(src)
        return Compiled(compile_file(str(path), str(tmp_path / "out")), str(path))

    return run


@pytest.fixture(scope="session")
def accel_object(tmp_path_factory):
    out = tmp_path_factory.mktemp("accel")
    r = compile_file(os.path.join(ROOT, "programs", "accel.py"), str(out))
    assert r.output, r.diagnostics
    return r.output
