"""A verifier rejection of a DSL program is reported on the Python line it comes from."""
import os
import struct

import pytest

import kernel_loader as kl
from kernel_loader.elf import parse_object
from pybpfgen.driver import compile_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCEL = os.path.join(REPO, "programs", "accel.py")


def corrupt_first_ctx_load(obj_path: str, section: str) -> int:
    """Point the first context load of ``section`` at an offset past the context struct."""
    obj = parse_object(obj_path)
    sec = obj.sections[section]
    data = bytearray(open(obj_path, "rb").read())
    # file offset of the section: find its bytes (unique enough: the whole section)
    base = bytes(data).index(sec.data)
    ctx_regs = {1}  # registers holding the context pointer (the compiler may copy r1 to a callee-saved one)
    for i in range(0, len(sec.data), 8):
        op, regs, off, imm = struct.unpack_from("<BBhi", sec.data, i)
        dst, src = regs & 0xF, regs >> 4
        if op == 0xBF and src in ctx_regs:  # rD = rS
            ctx_regs.add(dst)
        elif op == 0x61 and src in ctx_regs:  # r? = *(u32 *)(ctx + off)
            struct.pack_into("<h", data, base + i + 2, 0x200)
            open(obj_path, "wb").write(data)
            return i // 8
    raise AssertionError("no ctx load found")


@pytest.mark.kernel
def test_verifier_error_points_at_the_python_line(tmp_path, pin_root, test_cgroup):
    bad = compile_file(ACCEL, str(tmp_path)).output
    insn = corrupt_first_ctx_load(bad, "sk_msg")
    with pytest.raises(kl.VerifierError) as ei:
        kl.load(bad, cgroup=test_cgroup, pin_root=pin_root)
    e = ei.value
    # the line the compiler recorded for the corrupted instruction (read straight from .BTF.ext)
    obj = parse_object(bad)
    recs = [r for r in obj.btf_ext.line_info["sk_msg"] if r.insn_off // 8 <= insn]
    want = max(recs, key=lambda r: r.insn_off)
    src = open(ACCEL).read().splitlines()
    assert "msg." in src[want.line - 1]  # a statement that reads the sk_msg context
    assert e.source_file.endswith("accel.py") and e.source_line == want.line, str(e)
    text = str(e)
    assert "invalid bpf_context access" in text
    assert f"accel.py:{want.line}" in text and src[want.line - 1].strip() in text
    assert not os.path.exists(os.path.join(pin_root, "accel"))
