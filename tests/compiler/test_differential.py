"""Differential testing: random programs run in the kernel (BPF_PROG_TEST_RUN) and in
pybpfgen.testing must produce the same return values, context bytes and map contents."""
import os
import tempfile
import uuid

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

import kernel_loader as kl
from kernel_loader.syscall import Syscall
from pybpfgen import testing
from pybpfgen.diagnostics import CompileError
from pybpfgen.driver import compile_file
from pybpfgen.frontend.module import parse_module

import difftest as D  # noqa: E402  (tests/compiler is on sys.path via conftest)

EXAMPLES = int(os.environ.get("PYBPFGEN_DIFF_EXAMPLES", "25"))
PROGS = 3


@pytest.fixture(scope="module")
def pins():
    root = f"/sys/fs/bpf/pybpfgen-diff-{uuid.uuid4().hex[:8]}"
    yield root
    kl.unload(None, pin_root=root)


@pytest.mark.kernel
@settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("CI") == "true",
          phases=[Phase.explicit, Phase.reuse, Phase.generate] + ([] if os.environ.get("CI") == "true" else [Phase.shrink]),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(data=st.data())
def test_kernel_and_interpreter_agree(pins, data):
    src = D.HEADER + "".join(data.draw(D.program(f"p{i}"), label=f"p{i}") for i in range(PROGS))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "diff.py")
        with open(path, "w") as f:
            f.write(src)
        try:
            ir = parse_module(path, src)
        except CompileError as e:
            assume(not any("division by zero" in d.message or "does not fit" in d.message for d in e.diagnostics))
            raise AssertionError(f"generated program rejected:\n{e}\n{src}")
        res = compile_file(path, tmp)
        assert res.output, [d.format() for d in res.diagnostics]
        kl.load(res.output, pin_root=pins)
    sc = Syscall()
    sim = testing.Module(ir)
    args_t = next(s for s in ir.structs if s.name == "Args")
    try:
        fds = {f"p{i}": sc.obj_get(f"{pins}/diff/progs/p{i}") for i in range(PROGS)}
        kmap = kl.open_pinned("diff", pin_root=pins).map("m")
        for _ in range(3):
            vals = data.draw(D.inputs, label="inputs")
            ctx = testing.encode(args_t, vals)
            for name, fd in fds.items():
                k_rv, k_out = sc.prog_test_run(fd, ctx=ctx)
                s_rv = sim.run(name, ctx) & 0xFFFFFFFF  # the kernel reports retval as a u32
                s_out = bytes(sim.last_context.mem)
                assert (k_rv, testing.decode(args_t, k_out)) == (s_rv, testing.decode(args_t, s_out)), \
                    f"{name} differs for inputs {vals}\n{src}"
        for k in range(8):
            kb = k.to_bytes(4, "little")
            kv = kmap.lookup(kb)
            sv = sim.map("m").data.get(kb)
            assert (bytes(kv) if kv is not None else None) == (bytes(sv) if sv is not None else None), f"map key {k}"
    finally:
        for fd in locals().get("fds", {}).values():
            os.close(fd)
        kl.unload("diff", pin_root=pins)
