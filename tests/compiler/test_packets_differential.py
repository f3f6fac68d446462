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


def _agree(tmp_path, name: str, program: str, payloads: list[bytes], slots: int = 16) -> list[list[int]]:
    """Run ``views`` of ``program`` (a cgroup_skb_ingress program recording into ``out``) in the kernel and in
    pybpfgen.testing on each payload; both must record the same values. Returns the records."""
    import kharness
    from pybpfgen.driver import compile_file

    src = tmp_path / f"{name}.py"
    src.write_text(program)
    res = compile_file(str(src), str(tmp_path))
    assert res.output, [d.format() for d in res.diagnostics]
    mod = testing.load(str(src))
    records = []
    with kharness.child_cgroup("pybpfgen-pktdiff") as cg, kharness.private_pin_root("pybpfgen-pktdiff") as root:
        kl.load(res.output, cgroup=str(cg), pin_root=str(root))
        sc = Syscall()
        fd = sc.obj_get(f"{root}/{name}/progs/views")
        try:
            with kl.open_pinned(name, pin_root=str(root)) as obj:
                kmap = obj.map("out")
                for payload in payloads:
                    # Ethernet, with the local experimental EtherType (the kernel wants a whole IP header after
                    # 0x0800): the program sees the payload
                    frame = bytes(12) + b"\x88\xb5" + payload
                    rv, _ = sc.prog_test_run(fd, data=frame)
                    assert rv == 1
                    kernel = [int.from_bytes(bytes(kmap.lookup(i.to_bytes(4, "little"))), "little")
                              for i in range(slots)]
                    assert mod.run("views", testing.cgroup_skb("ingress", data=payload)) == 1
                    sim = [mod.map("out").lookup(i) for i in range(slots)]
                    assert kernel == sim, f"payload {payload.hex()}\n{program}"
                    records.append(sim)
        finally:
            os.close(fd)
            kl.unload(name, pin_root=str(root))
    return records


@pytest.mark.kernel
def test_kernel_and_pybpfgen_testing_agree_on_packet_bytes(tmp_path, kernel_env):
    rng = random.Random(int(os.environ.get("PYBPFGEN_PKT_SEED", "14")))
    sizes = [0, 1, 2, 3, 7, 8, 9, 11, 12, 25, 26, 40, 64] + [rng.randrange(1, 80) for _ in range(20)]
    payloads = [bytes(rng.randrange(256) for _ in range(n)) for n in sizes]
    seen = {(r[1] not in (0xAAAA, 1), r[7], r[8] == 0) for r in _agree(tmp_path, "pktdiff", PROGRAM, payloads)}
    # both sides of every check were taken: views found and not, load_bytes done and refused
    assert {s[0] for s in seen} == {True, False} and {s[1] for s in seen} == {1, 2}
    assert {s[2] for s in seen} == {True, False}


LOADS = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "u16be": 2, "u32be": 4, "u64be": 8}


def random_program(rng: random.Random, views: int = 6) -> str:
    """A cgroup_skb program with random views (constant or bounded variable offsets, sizes 1..12) and random reads
    inside each, recorded in ``out`` (slot 2k: whether view k was None, 2k+1: what it read)."""
    lines = ["from pybpfgen.lang import *", "", "out = Array(value=u64, max_entries=16)", "", "",
             "def put(i: u32, v: u64) -> None:", "    out.update(i, v)", "", "",
             "@cgroup_skb_ingress", "def views(skb: SkBuff) -> int:",
             "    for i in range(16):", "        put(i, 0xAAAA)",
             "    base: u32 = 0", "    a = skb.bytes(0, 1)", "    if a is not None:", "        base = u32(a[0])"]
    for k in range(views):
        n = rng.randrange(1, 13)
        off = str(rng.randrange(0, 40)) if rng.random() < 0.5 else f"base & {rng.choice([1, 3, 7, 15, 31])}"
        reads = []
        for _ in range(rng.randrange(1, 4)):
            fits = [m for m, size in LOADS.items() if size <= n]
            m = rng.choice(fits + ["[]"])
            if m == "[]":
                reads.append(f"u64(v{k}[{rng.randrange(0, n)}])")
            else:
                reads.append(f"u64(v{k}.{m}({rng.randrange(0, n - LOADS[m] + 1)}))")
        lines += [f"    v{k} = skb.bytes({off}, {n})", f"    if v{k} is None:", f"        put({2 * k}, 1)",
                  "    else:", f"        put({2 * k}, 2)", f"        put({2 * k + 1}, {' ^ '.join(reads)})"]
    lines.append("    return 1")
    return "\n".join(lines) + "\n"


@pytest.mark.kernel
@pytest.mark.parametrize("seed", range(int(os.environ.get("PYBPFGEN_PKT_FUZZ", "4"))))
def test_random_views_agree_with_the_kernel(tmp_path, kernel_env, seed):
    """Random view programs (sizes, constant and masked offsets, every load width and byte order) on random
    packets: the kernel's verifier accepts each and its results are pybpfgen.testing's."""
    rng = random.Random(1000 + seed)
    program = random_program(rng)
    payloads = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60))) for _ in range(16)]
    payloads += [bytes(rng.randrange(256) for _ in range(n)) for n in (0, 1, 12, 40, 60)]
    records = _agree(tmp_path, f"fuzz{seed}", program, payloads)
    assert any(r[0] == 2 for r in records) and any(r[0] == 1 for r in records)  # found and not found
