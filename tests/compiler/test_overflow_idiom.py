"""`x > C // y`, the overflow check of `x * y`, compiles and runs: LLVM rewrites it to umul.with.overflow, a
128-bit multiply the BPF backend lowers to a `__multi3` call BPF has not ("A call to built-in function
'__multi3' is not supported", found by tests/compiler/test_differential.py); the quotient is kept opaque."""
import os


import pytest

from pybpfgen import testing
from pybpfgen.driver import compile_file

import difftest as D  # noqa: E402  (tests/compiler is on sys.path via conftest)

# the program test_differential drew (tests/compiler/difftest.py's header declares Args and the map m)
SRC = D.HEADER + """
@syscall
def p(ctx: Args) -> int:
    x = u64(0)
    acc: u64 = 0
    arr = ctx.arr
    for i in range(6):
        if u64(arr[i]) == x:
            continue
        acc = acc + u64(arr[i])
        if acc > u64(u64((u64(u64(-1)) // u64(ctx.arr[1])))):
            break
    ctx.r[2] = acc
    return i32(u64((u64(u64(-1)) // u64(ctx.arr[1]))))
"""


def _ctx(args, arr: list[int]) -> bytes:
    vals = {n: 0 for n, _t in D.INPUTS}
    vals.update(arr=(arr + [0] * D.ARR)[:D.ARR], r=[0] * D.N_OUT)
    return testing.encode(args, vals)


def test_constant_divided_by_a_variable_in_a_comparison_compiles(tmp_path):
    src = tmp_path / "ovf.py"
    src.write_text(SRC)
    res = compile_file(str(src), str(tmp_path))
    assert res.output, [d.format() for d in res.diagnostics]
    mod = testing.load(str(src))
    args = next(s for s in mod.ir.structs if s.name == "Args")
    for arr1, want in ((0, 0), (1, 0xFFFFFFFF), (3, 0x55555555)):
        assert mod.run("p", _ctx(args, [1, arr1, 2])) & 0xFFFFFFFF == want


@pytest.mark.kernel
def test_and_the_kernel_agrees(tmp_path, pin_root):
    import kernel_loader as kl
    from kernel_loader.syscall import Syscall

    src = tmp_path / "ovf.py"
    src.write_text(SRC)
    obj = compile_file(str(src), str(tmp_path)).output
    kl.load(obj, pin_root=str(pin_root))
    mod = testing.load(str(src))
    args = next(s for s in mod.ir.structs if s.name == "Args")
    sc = Syscall()
    fd = sc.obj_get(os.path.join(str(pin_root), "ovf", "progs", "p"))
    try:
        for arr in ([1, 3, 2], [5, 1, 7, 9], [0]):
            ctx = _ctx(args, arr)
            k_rv, k_out = sc.prog_test_run(fd, ctx=ctx)
            s_rv = mod.run("p", ctx) & 0xFFFFFFFF
            assert (k_rv, testing.decode(args, k_out)) == (s_rv, testing.decode(args, bytes(mod.last_context.mem)))
    finally:
        os.close(fd)
        kl.unload("ovf", pin_root=str(pin_root))



