"""Packet views and bpf_skb_load_bytes, differentially: a cgroup_skb program run by the kernel (BPF_PROG_TEST_RUN
on random packets: the program sees them from after the 14-byte Ethernet header, as cgroup_skb sees the IP header)
and by pybpfgen.testing on the same bytes must record the same values (None or not, every width and byte order,
bounded variable offsets, a short load_bytes' -EFAULT and zeroed buffer)."""
import os
import random

import pytest

import kernel_loader as kl
from kernel_loader.syscall import Syscall
from pybpfgen import testing

PROGRAM = """from pybpfgen.lang import *

out = Array(value=u64, max_entries=16)


def put(i: u32, v: u64) -> None:
    out.update(i, v)


@cgroup_skb_ingress
def views(skb: SkBuff) -> int:
    for i in range(16):
        put(i, 0xAAAA)
    a = skb.bytes(0, 1)
    if a is not None:
        put(0, u64(a[0]) + 0x100)
        b = skb.bytes(u32(a[0]) & 31, 8)
        if b is not None:
            put(1, b.u64be(0))
            put(2, b.u64(0))
            put(3, u64(b.u32be(4)))
            put(4, u64(b.u16(6)))
        else:
            put(1, 1)
    c = skb.bytes(3, 4)
    if c is not None:
        put(5, u64(c.u32(0)))
        put(6, u64(c.u16be(1)) + u64(c.u8(3)))
    d = skb.bytes(24, 2)
    if d is None:
        put(7, 1)
    else:
        put(7, 2)
    buf: u8[6] = []
    put(8, u64(bpf_skb_load_bytes(skb, 2, buf, 6)))
    put(9, u64(buf[0]) | u64(buf[5]) << 8)
    word: u32 = 0
    put(10, u64(bpf_skb_load_bytes(skb, 9, word, 3)))
    put(11, u64(word))
    return 1
"""


@pytest.mark.kernel
def test_kernel_and_pybpfgen_testing_agree_on_packet_bytes(tmp_path, kernel_env):
    import kharness
    from pybpfgen.driver import compile_file

    src = tmp_path / "pktdiff.py"
    src.write_text(PROGRAM)
    res = compile_file(str(src), str(tmp_path))
    assert res.output, [d.format() for d in res.diagnostics]
    mod = testing.load(str(src))
    rng = random.Random(int(os.environ.get("PYBPFGEN_PKT_SEED", "14")))
    sizes = [0, 1, 2, 3, 7, 8, 9, 11, 12, 25, 26, 40, 64] + [rng.randrange(1, 80) for _ in range(20)]
    with kharness.child_cgroup("pybpfgen-pktdiff") as cg, kharness.private_pin_root("pybpfgen-pktdiff") as root:
        kl.load(res.output, cgroup=str(cg), pin_root=str(root))
        sc = Syscall()
        fd = sc.obj_get(f"{root}/pktdiff/progs/views")
        try:
            with kl.open_pinned("pktdiff", pin_root=str(root)) as obj:
                kmap = obj.map("out")
                seen = set()
                for n in sizes:
                    payload = bytes(rng.randrange(256) for _ in range(n))
                    # Ethernet, with the local experimental EtherType (the kernel wants a whole IP header after
                    # 0x0800): the program sees the payload
                    frame = bytes(12) + b"\x88\xb5" + payload
                    rv, _ = sc.prog_test_run(fd, data=frame)
                    assert rv == 1
                    kernel = [int.from_bytes(bytes(kmap.lookup(i.to_bytes(4, "little"))), "little") for i in range(16)]
                    assert mod.run("views", testing.cgroup_skb("ingress", data=payload)) == 1
                    sim = [mod.map("out").lookup(i) for i in range(16)]
                    assert kernel == sim, f"payload {payload.hex()}"
                    seen.add((sim[1] not in (0xAAAA, 1), sim[7], sim[8] == 0))
                # both sides of every check were taken: views found and not, load_bytes done and refused
                assert {s[0] for s in seen} == {True, False} and {s[1] for s in seen} == {1, 2}
                assert {s[2] for s in seen} == {True, False}
        finally:
            os.close(fd)
            kl.unload("pktdiff", pin_root=str(root))
