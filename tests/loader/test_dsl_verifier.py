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
    for i in range(0, len(sec.data), 8):
        op, regs, off, imm = struct.unpack_from("<BBhi", sec.data, i)
        if op == 0x61 and (regs >> 4) == 1:  # r? = *(u32 *)(r1 + off)
            struct.pack_into("<h", data, base + i + 2, 0x200)
            open(obj_path, "wb").write(data)
            return i // 8
    raise AssertionError("no ctx load found")


@pytest.mark.kernel
def test_verifier_error_points_at_the_python_line(tmp_path, pin_root, test_cgroup):
    bad = compile_file(ACCEL, str(tmp_path)).output
    corrupt_first_ctx_load(bad, "sk_msg")
    with pytest.raises(kl.VerifierError) as ei:
        kl.load(bad, cgroup=test_cgroup, pin_root=pin_root)
    e = ei.value
    src = open(ACCEL).read().splitlines()
    want = next(i + 1 for i, ln in enumerate(src) if "if msg.family != AF_INET:" in ln)
    assert e.source_file.endswith("accel.py") and e.source_line == want, str(e)
    text = str(e)
    assert "invalid bpf_context access" in text
    assert f"accel.py:{want}" in text and "if msg.family != AF_INET:" in text
    assert not os.path.exists(os.path.join(pin_root, "accel"))
