"""Packet views in the program types that declare only the table facts (target/progtypes.py ``packet="write"``):
XDP, tc (tcx) and sk_skb programs with views, writes and bounded variable offsets load on the running kernel, and
XDP and tc programs run by the kernel (BPF_PROG_TEST_RUN on random frames) and by pybpfgen.testing return the
same values."""
import os
import random

import pytest

from kernel_loader.elf import parse_object
from kernel_loader.errors import BpfSyscallError
from kernel_loader.syscall import Syscall
from pybpfgen import testing
from pybpfgen.driver import compile_file
from pybpfgen.target.progtypes import PROG_TYPES

pytestmark = pytest.mark.kernel

BODY = """
    r: u32 = 0xAAAA
    eth = {ctx}.bytes(0, 14)
    if eth is None:
        return i32(r)
    r = u32(eth.u16be(12)) << 8
    eth[0] = eth[13]                                   # written, then read back
    eth.set_u16be(2, u16(eth.u16(12) + 1))
    eth.set_u32(6, r)
    r += u32(eth.u8(0)) + u32(eth.u16be(2)) + eth.u32be(4)
    v = {ctx}.bytes(u32(eth[13]) & 15, 4)               # a bounded variable offset
    if v is not None:
        r ^= v.u32be(0)
    else:
        r |= 0x40000000
    w = {ctx}.bytes(20, 8)
    if w is None:
        r |= 0x20000000
    else:
        r ^= u32(w.u64(0) >> 32)
    return i32(r & 0x7FFFFFFF)
"""

PROGRAM = f"""from pybpfgen.lang import *

sockets = SockMap(max_entries=2)


@xdp
def x(ctx: XdpMd) -> int:
{BODY.format(ctx="ctx")}

@tc_ingress
def t(skb: SkBuff) -> int:
{BODY.format(ctx="skb")}

@sk_skb_stream_verdict(sockets)
def s(skb: SkBuff) -> int:
    v = skb.bytes(0, 4)
    if v is None:
        return SK_PASS
    v[0] = 0x2A
    if v.u16be(2) == 0x0D0A:
        return SK_DROP
    return SK_PASS
"""


def test_xdp_tc_and_sk_skb_views_load_and_agree_with_pybpfgen_testing(tmp_path):
    src = tmp_path / "netviews.py"
    src.write_text(PROGRAM)
    res = compile_file(str(src), str(tmp_path))
    assert res.output, [d.format() for d in res.diagnostics]
    obj = parse_object(res.output)
    sc = Syscall()
    fds = {}
    try:
        for p in obj.programs:
            pt = PROG_TYPES[p.kind]
            assert pt.packet == "write"
            try:  # no map relocations: the programs read only their packet
                fds[p.name] = sc.prog_load(pt.prog_type, p.insns, "GPL", p.name, pt.attach_type, log_level=1,
                                           log_size=1 << 20)
            except BpfSyscallError as e:
                raise AssertionError(f"{p.name} ({pt.name}): {e}\n{e.log}") from None
        assert set(fds) == {"x", "t", "s"}
        mod = testing.load(str(src))
        rng = random.Random(int(os.environ.get("PYBPFGEN_PKT_SEED", "14")))
        sizes = [14, 15, 17, 18, 27, 28, 29, 40, 64] + [rng.randrange(14, 90) for _ in range(15)]
        for n in sizes:
            frame = bytes(rng.randrange(256) for _ in range(n))
            frame = frame[:12] + b"\x88\xb5" + frame[14:]  # a local EtherType: nothing in the kernel parses it
            for name, progtype in (("x", "xdp"), ("t", "tc_ingress")):
                k_rv, _ = sc.prog_test_run(fds[name], data=frame)
                s_rv = mod.run(name, testing.context(progtype, data=frame)) & 0xFFFFFFFF
                assert k_rv == s_rv, f"{name} on {frame.hex()}: kernel {k_rv:#x}, pybpfgen.testing {s_rv:#x}"
    finally:
        for fd in fds.values():
            os.close(fd)
