"""Packet and message bytes (pybpfgen/frontend/packets.py): checked views, the verifier's range rule as compile
errors, the table facts they follow, the code they compile to, pybpfgen.testing's payloads, and the kernel's
verifier accepting the accepted forms (sk_msg and cgroup_skb)."""
import os

import pytest

import kernel_loader as kl
from kernel_loader.elf import parse_object
from pybpfgen import disasm, testing
from pybpfgen.target import contexts, packets
from pybpfgen.target.helpers import HELPERS
from pybpfgen.target.progtypes import PROG_TYPES

SOCKS = "socks = SockHash(key=u32, max_entries=4)\n"

# ==================================================================== the table facts


def test_packet_facts_are_table_entries():
    assert contexts.SK_MSG.packet.data == 0 and contexts.SK_MSG.packet.data_end == 8
    assert contexts.SK_MSG.packet.bits == 64
    assert (contexts.SK_BUFF.packet.data, contexts.SK_BUFF.packet.data_end, contexts.SK_BUFF.packet.bits) == (76, 80, 32)
    assert contexts.SOCK_OPS.packet is None
    assert PROG_TYPES["sk_msg"].packet == "write"
    assert PROG_TYPES["cgroup_skb_egress"].packet == PROG_TYPES["cgroup_skb_ingress"].packet == "read"
    assert PROG_TYPES["socket_filter"].packet is None
    assert {"msg_pull_data", "msg_push_data", "msg_pop_data", "skb_pull_data"} <= packets.CHANGES_PACKET_DATA
    assert HELPERS["skb_load_bytes"].params == ("ctx", "u64", "buf", "len")


def test_packet_offsets_match_the_kernel_btf():
    from kernel_loader.btf import STRUCT, UNION, Btf
    path = "/sys/kernel/btf/vmlinux"
    if not os.path.exists(path):
        pytest.skip(f"{path} is absent (a kernel without CONFIG_DEBUG_INFO_BTF)")
    with open(path, "rb") as f:
        btf = Btf.parse(f.read())

    def members(tid, base=0):
        out = {}
        for m in btf.members(tid):
            if m.name:
                out[m.name] = (base + m.bit_offset // 8, btf.size_of(m.type_id))
            elif btf[btf.resolve(m.type_id)].kind in (STRUCT, UNION):
                out.update(members(m.type_id, base + m.bit_offset // 8))
        return out

    for ctx in contexts.CONTEXTS.values():
        if ctx.packet is None:
            continue
        m = members(btf.find(ctx.c_struct, STRUCT).id)
        assert m[ctx.packet.c_data] == (ctx.packet.data, ctx.packet.bits // 8), ctx
        assert m[ctx.packet.c_data_end] == (ctx.packet.data_end, ctx.packet.bits // 8), ctx


# ==================================================================== compile errors, located
def errors(compile_src, body):
    """(line, the source text from the error's column on, message, hint) of each error."""
    c = compile_src(body)
    assert not c.result.output
    lines = open(c.path).read().splitlines()
    return [(d.loc.line, lines[d.loc.line - 1][d.loc.col:], d.message, d.hint) for d in c.errors]


def one_error(compile_src, body):
    got = errors(compile_src, body)
    assert len(got) == 1, got
    return got[0]


def test_reading_before_the_check(compile_src):
    line, col, msg, hint = one_error(compile_src, SOCKS + """
@sk_msg(socks)
def p(msg: SkMsg) -> int:
    hdr = msg.bytes(0, 4)
    if hdr[0] == 1:
        return SK_DROP
    return SK_PASS
""")
    assert line == 7 and col.startswith("hdr[0] == 1")
    assert msg.startswith("`hdr` may be None here: the range check of its `bytes()` call has not been made")
    assert hint == "check it first: `if hdr is None: return ...` (or `if hdr is not None:`)"


def test_the_check_on_one_path_only(compile_src):
    line, col, msg, _ = one_error(compile_src, SOCKS + """
@sk_msg(socks)
def p(msg: SkMsg) -> int:
    hdr = msg.bytes(0, 4)
    if msg.size > 100:
        if hdr is None:
            return SK_PASS
    return i32(hdr.u32be(0))
""")
    assert line == 10 and col.startswith("hdr.u32be(0))") and "`hdr` may be None here" in msg


@pytest.mark.parametrize("use, col, what", [
    ("hdr[4]", "4])", "byte 4 is outside the 4 bytes `hdr` was checked for (0..3)"),
    ("hdr.u16be(3)", "3))", "bytes 3..4 are outside the 4 bytes `hdr` was checked for (0..3)"),
    ("hdr.u32(1)", "1))", "bytes 1..4 are outside the 4 bytes `hdr` was checked for (0..3)"),
    ("hdr.u64be(0)", "0))", "bytes 0..7 are outside the 4 bytes `hdr` was checked for (0..3)"),
])
def test_reading_outside_the_checked_range(compile_src, use, col, what):
    line, c, msg, hint = one_error(compile_src, SOCKS + f"""
@sk_msg(socks)
def p(msg: SkMsg) -> int:
    hdr = msg.bytes(0, 4)
    if hdr is None:
        return SK_PASS
    return i32({use})
""")
    assert (line, c, msg) == (9, col, what)
    assert hint.startswith("ask for at least ") and hint.endswith(" bytes in its `bytes()` call")


def test_a_variable_index_into_a_view(compile_src):
    line, col, msg, hint = one_error(compile_src, SOCKS + """
@sk_msg(socks)
def p(msg: SkMsg) -> int:
    hdr = msg.bytes(0, 4)
    if hdr is None:
        return SK_PASS
    i = msg.size & 3
    return i32(hdr[i])
""")
    assert line == 10 and col == "i])"
    assert "indexed with a constant" in msg and "msg.bytes(offset + (i), 1)" in hint


def test_an_unbounded_offset(compile_src):
    got = errors(compile_src, SOCKS + """
@sk_msg(socks)
def p(msg: SkMsg) -> int:
    hdr = msg.bytes(msg.size, 4)
    if hdr is None:
        return SK_PASS
    return i32(hdr[0])
""")
    # one error: the view still exists for what follows (no follow-on "hdr is not defined")
    assert [(line, col) for line, col, _, _ in got] == [(6, "msg.size, 4)")]
    assert "must be a constant or provably below 65532" in got[0][2] and "& 0x3ff" in got[0][3]


@pytest.mark.parametrize("offset", ["msg.size & 0xff", "u8(msg.size)", "u8(msg.size) + 4", "(msg.size & 7) * 4",
                                    "msg.size % 1000", "(msg.size >> 20) & 0xfff"])
def test_bounded_offsets_are_accepted(compile_src, offset):
    c = compile_src(SOCKS + f"""
@sk_msg(socks)
def p(msg: SkMsg) -> int:
    hdr = msg.bytes({offset}, 4)
    if hdr is None:
        return SK_PASS
    return i32(hdr[3])
""")
    assert c.result.output, [d.format() for d in c.result.diagnostics]


def test_a_view_made_stale_by_pull_data(compile_src):
    line, col, msg, hint = one_error(compile_src, SOCKS + """
@sk_msg(socks)
def p(msg: SkMsg) -> int:
    hdr = msg.bytes(0, 4)
    if hdr is None:
        return SK_PASS
    if bpf_msg_pull_data(msg, 0, 8) != 0:
        return SK_PASS
    return i32(hdr[0])
""")
    assert line == 11 and col == "hdr[0])"
    assert msg.startswith("`hdr` is no longer valid: `bpf_msg_pull_data()` (line 9) may have moved the data")
    assert hint == "ask for the bytes again after that call: `hdr = msg.bytes(...)`, then check it"


def test_stale_through_a_function_and_in_a_loop(compile_src):
    got = errors(compile_src, SOCKS + """
def pull(m: SkMsg) -> None:
    bpf_msg_push_data(m, 0, 4)


@sk_msg(socks)
def p(msg: SkMsg) -> int:
    hdr = msg.bytes(0, 4)
    if hdr is None:
        return SK_PASS
    pull(msg)
    if hdr[0] == 1:
        return SK_DROP
    return SK_PASS


@sk_msg(socks)
def q(msg: SkMsg) -> int:
    hdr = msg.bytes(0, 4)
    for i in range(2):
        if hdr is not None and hdr[0] == 1:
            return SK_DROP
        bpf_msg_pop_data(msg, 0, 1)
    return SK_PASS
""")
    assert [(line, col) for line, col, _, _ in got] == [(14, "hdr[0] == 1:"), (23, "hdr is not None and hdr[0] == 1:")]
    assert "`bpf_msg_push_data()` (line 5, called through `pull()`)" in got[0][2]
    assert "`bpf_msg_pop_data()` (line 25, in a loop around this use)" in got[1][2]


def test_asking_again_after_the_call_is_fine(compile_src):
    c = compile_src(SOCKS + """
@sk_msg(socks)
def p(msg: SkMsg) -> int:
    hdr = msg.bytes(0, 4)
    if hdr is None:
        return SK_PASS
    first = hdr[0]
    if bpf_msg_pull_data(msg, 0, 8) != 0:
        return SK_PASS
    hdr = msg.bytes(0, 4)
    if hdr is None:
        return SK_PASS
    return i32(hdr[3] + first)
""")
    assert c.result.output, [d.format() for d in c.result.diagnostics]


def test_multi_byte_writes(compile_src):
    got = errors(compile_src, """
@cgroup_skb_egress
def p(skb: SkBuff) -> int:
    ip = skb.bytes(0, 20)
    if ip is not None:
        ip.set_u16be(10, 0)
    return 1


@tc_ingress
def t(skb: SkBuff) -> int:
    eth = skb.bytes(0, 14)
    if eth is None:
        return TC_ACT_OK
    eth.set_u32be(12, 1)
    eth.set_u16be(12, 0x10000)
    eth.set_u16be(12, skb.len)
    eth.set_u16be(12, u16(skb.len))
    return TC_ACT_OK
""")
    assert [(line, col) for line, col, _, _ in got] == [(7, "ip.set_u16be(10, 0)"), (16, "12, 1)"),
                                                        (17, "0x10000)"), (18, "skb.len)")]
    assert got[0][2].startswith("a cgroup_skb_egress program can only read the packet")
    assert got[1][2] == "bytes 12..15 are outside the 14 bytes `eth` was checked for (0..13)"
    assert got[2][2] == "constant 65536 does not fit in u16"
    assert got[3][2] == "cannot implicitly convert u32 to u16: values may be lost"


def test_writes_where_the_program_type_may_only_read(compile_src):
    line, col, msg, _ = one_error(compile_src, """
@cgroup_skb_egress
def p(skb: SkBuff) -> int:
    ip = skb.bytes(0, 20)
    if ip is not None:
        ip[8] = 1
    return 1
""")
    assert line == 7 and col == "ip[8] = 1"
    assert msg == "a cgroup_skb_egress program can only read the packet: the verifier refuses writes to its packet data"


def test_program_types_without_direct_access(compile_src):
    got = errors(compile_src, """
@socket_filter
def f(skb: SkBuff) -> int:
    ip = skb.bytes(0, 20)
    return 0


@sock_ops
def o(ctx: SockOps) -> int:
    x = ctx.bytes(0, 4)
    return 1
""")
    assert [(line, col) for line, col, _, _ in got] == [(5, "skb.bytes(0, 20)"), (11, "ctx.bytes(0, 4)")]
    assert got[0][2] == ("a socket_filter program cannot read the packet directly: the verifier refuses "
                         "`__sk_buff->data` there")
    assert got[0][3] == "copy the bytes into a buffer: `bpf_skb_load_bytes(skb, offset, buf, len)`"
    assert got[1][2].startswith("SockOps has no packet data")


def test_view_misuse(compile_src):
    got = errors(compile_src, SOCKS + """
@sk_msg(socks)
def p(msg: SkMsg) -> int:
    hdr = msg.bytes(0, msg.size)
    v = msg.bytes(0, 4)
    if v is None:
        return SK_PASS
    x = v.u24(0)
    y = v.first
    z = msg.size2(1)
    return SK_PASS
""")
    assert [(line, col) for line, col, _, _ in got] == [(6, "msg.size)"), (10, "v.u24(0)"), (11, "v.first"),
                                                        (12, "msg.size2(1)")]
    assert got[0][2] == "the size of a view is a constant number of bytes"
    assert got[1][2] == "a view has no method `u24`"
    assert got[2][2] == "a view has no attribute `first`"


def test_load_bytes_length_checked_against_the_buffer(compile_src):
    got = errors(compile_src, """
@cgroup_skb_egress
def p(skb: SkBuff) -> int:
    buf: u8[4] = []
    n: u32 = 4
    bpf_skb_load_bytes(skb, 0, buf, 8)
    bpf_skb_load_bytes(skb, 0, buf, 0)
    bpf_skb_load_bytes(skb, 0, buf, n)
    bpf_skb_load_bytes(skb, 0, u32(5), 4)
    return 1
""")
    assert [(line, col) for line, col, _, _ in got] == [(7, "8)"), (8, "0)"), (9, "n)"), (10, "u32(5), 4)")]
    assert got[0][2] == "`bpf_skb_load_bytes()` would write 8 bytes into a buffer of 4 (u8[4])"
    assert got[1][2] == "argument `len` of `bpf_skb_load_bytes()` must be at least 1"
    assert got[2][2] == "argument `len` of `bpf_skb_load_bytes()` is a constant number of bytes"
    assert got[3][2].startswith("argument `to` of `bpf_skb_load_bytes()` is the buffer it fills")


def test_message_helper_arguments(compile_src):
    got = errors(compile_src, SOCKS + """
@sk_msg(socks)
def p(msg: SkMsg) -> int:
    bpf_msg_pull_data(msg, 8, 8)
    bpf_msg_push_data(msg, 0, 0)
    bpf_msg_pop_data(msg, 0, 4, 1)
    bpf_msg_cork_bytes(msg, -1)
    bpf_msg_pull_data(msg, 0)
    return SK_PASS
""")
    assert [(line, col) for line, col, _, _ in got] == [(6, "8, 8)"), (7, "0)"), (8, "1)"), (9, "-1)"),
                                                        (10, "bpf_msg_pull_data(msg, 0)")]
    assert got[0][2] == "argument `start` of `bpf_msg_pull_data()` is 8: start must be before end (else -EINVAL)"
    assert got[1][2] == "argument `len` of `bpf_msg_push_data()` is 0: pushing 0 bytes does nothing"
    assert got[2][2].startswith("argument `flags` of `bpf_msg_pop_data()` is 1: the kernel reserves flags")
    assert got[3][2].startswith("argument `bytes` of `bpf_msg_cork_bytes()` is ")
    assert got[4][2] == "`bpf_msg_pull_data()` is missing argument `end`"


# ==================================================================== the code
PREFIX = SOCKS + """
@sk_msg(socks)
def p(msg: SkMsg) -> int:
    hdr = msg.bytes(0, 8)
    if hdr is None:
        return SK_PASS
    if hdr.u32be(0) == 0x47455420 and hdr[4] == 0x2F:
        return SK_DROP
    return SK_PASS
"""


def test_the_check_is_one_comparison_of_packet_pointers(compile_src):
    """data and data_end loaded from the context, data + 8 compared with data_end, reads from data: what clang makes
    of `if (data + 8 > data_end)`, and no test of the view against null."""
    c = compile_src(PREFIX)
    obj = parse_object(c.result.output)
    (f,) = obj.functions
    insns = disasm.decode(obj.sections[f.section].data[f.offset:f.end])
    text = [disasm.format_insn(i) for i in insns]
    loads = [(i.off, i.code & 0x18) for i in insns if i.cls == disasm.LDX and i.src == 1]
    assert sorted((off, size) for off, size in loads if size == 0x18) == [(0, 0x18), (8, 0x18)], text  # data, end
    jumps = [i for i in insns if i.cls == disasm.JMP and (i.code & 0xF0) not in (0x80, 0x90, 0x00)]
    reg_reg = [i for i in jumps if i.code & 0x08]  # BPF_X: a comparison of two registers
    assert len(reg_reg) == 1 and reg_reg[0].code & 0xF0 == 0x20, text  # one `if rA > rB` (JGT)
    assert len(insns) <= 13, text


# ==================================================================== pybpfgen.testing
def sim(compile_src, body):
    c = compile_src(body)
    assert c.result.output, [d.format() for d in c.result.diagnostics]
    return testing.load(c.path)


@pytest.mark.parametrize("data, want", [(b"GET /index.html", 0), (b"GET ", 1), (b"PUT /x   ", 1), (b"", 1),
                                        (b"GET /", 1)])
def test_views_in_pybpfgen_testing(compile_src, data, want):
    mod = sim(compile_src, PREFIX)
    assert mod.run("p", testing.sk_msg(data=data)) == want


def test_linear_and_pull_data(compile_src):
    mod = sim(compile_src, SOCKS + """
out = Array(value=u64, max_entries=4)


@sk_msg(socks)
def p(msg: SkMsg) -> int:
    v = msg.bytes(0, 4)
    if v is not None:
        out.update(0, u64(v.u32be(0)))
    rc = bpf_msg_pull_data(msg, 2, 6)
    out.update(1, u64(rc))
    if rc == 0:
        w = msg.bytes(0, 4)
        if w is not None:
            out.update(2, u64(w.u32be(0)))
        w5 = msg.bytes(0, 5)
        if w5 is None:
            out.update(3, 1)
    return SK_PASS
""")
    m = testing.sk_msg(data=b"abcdefgh", linear=2)
    mod.run("p", m)
    assert mod.map("out").lookup(0) == 0  # only 2 bytes between data and data_end
    assert mod.map("out").lookup(1) == 0
    assert mod.map("out").lookup(2) == int.from_bytes(b"cdef", "big")  # data is byte 2 after the pull
    assert mod.map("out").lookup(3) == 1  # data_end is exactly `end`
    short = testing.sk_msg(data=b"abc")
    mod.run("p", short)
    assert mod.map("out").lookup(1) == (-22) & (2 ** 64 - 1)  # end beyond the message: -EINVAL


def test_push_pop_and_writes(compile_src):
    mod = sim(compile_src, SOCKS + """
@sk_msg(socks)
def p(msg: SkMsg) -> int:
    if bpf_msg_push_data(msg, 1, 2) != 0:
        return SK_DROP
    v = msg.bytes(0, 4)
    if v is None:
        return SK_DROP
    v[1] = 0x58
    v[2] = 0x59
    if bpf_msg_pop_data(msg, 3, 1) != 0:
        return SK_DROP
    return i32(msg.size)
""")
    m = testing.sk_msg(data=b"abcd")
    assert mod.run("p", m) == 5
    assert bytes(m.payload.buf) == b"aXYcd"  # a, 2 pushed bytes written, b popped
    assert m.field("size") == 5


def test_skb_views_and_load_bytes(compile_src):
    mod = sim(compile_src, """
out = Array(value=u64, max_entries=4)


@cgroup_skb_egress
def p(skb: SkBuff) -> int:
    ip = skb.bytes(0, 20)
    if ip is None:
        return 1
    out.update(0, u64(ip.u16be(2)))
    ports: u16[2] = []
    rc = bpf_skb_load_bytes(skb, 20, ports, 4)
    out.update(1, u64(rc))
    out.update(2, u64(ports[1]))
    if ip[9] == 17:
        return 0
    return 1
""")
    ip = bytes([0x45, 0, 0, 28]) + bytes(5) + bytes([17]) + bytes(10)
    udp = (5353).to_bytes(2, "big") + (53).to_bytes(2, "big") + bytes(4)
    assert mod.run("p", testing.cgroup_skb("egress", data=ip + udp)) == 0
    assert mod.map("out").lookup(0) == 28 and mod.map("out").lookup(1) == 0
    assert mod.map("out").lookup(2) == int.from_bytes((53).to_bytes(2, "big"), "little")
    # too short for the ports: -EFAULT and a zeroed buffer; the view is still there
    assert mod.run("p", testing.cgroup_skb("egress", data=ip)) == 0
    assert mod.map("out").lookup(1) == (-14) & (2 ** 64 - 1) and mod.map("out").lookup(2) == 0
    assert mod.run("p", testing.cgroup_skb("egress", data=ip[:19])) == 1  # no 20 bytes: None


# ==================================================================== the kernel's verifier
ACCEPTED = SOCKS + """
out = Array(value=u64, max_entries=8)


def first_word(m: SkMsg) -> u32:
    w = m.bytes(0, 4)
    if w is None:
        return 0
    return w.u32be(0)


@sk_msg(socks)
def msg_views(msg: SkMsg) -> int:
    size = msg.size
    if size > 16:
        size = 16
    if size < 2:
        return SK_PASS
    if bpf_msg_pull_data(msg, 0, size) != 0:
        return SK_PASS
    hdr = msg.bytes(0, 2)
    if hdr is None:
        return SK_PASS
    hdr[0] = hdr[1]
    hdr.set_u16be(0, 0x4142)
    v = msg.bytes(hdr[1] & 7, 2)
    if v is not None:
        out.update(0, u64(v.u16be(0)))
    for i in range(4):
        b = msg.bytes(i + 2, 1)
        if b is not None and b[0] == 0:
            return SK_DROP
    out.update(1, u64(first_word(msg)))
    if bpf_msg_push_data(msg, 0, 4) == 0:
        w = msg.bytes(0, 8)
        if w is not None:
            out.update(2, w.u64be(0))
    bpf_msg_pop_data(msg, 0, 4)
    bpf_msg_cork_bytes(msg, 0)
    return SK_PASS


@cgroup_skb_ingress
def skb_views(skb: SkBuff) -> int:
    ip = skb.bytes(0, 20)
    if ip is None:
        return 1
    hl = (ip[0] & 15) * 4
    ports = skb.bytes(u32(hl) & 63, 4)
    if ports is not None:
        out.update(3, u64(ports.u16be(2)))
    buf: u8[8] = []
    if bpf_skb_load_bytes(skb, 0, buf, 8) == 0:
        out.update(4, u64(buf[7]))
    word: u32 = 0
    if bpf_skb_load_bytes_relative(skb, 0, word, 4, 1) == 0:
        out.update(5, u64(word))
    return 1


@cgroup_skb_egress
def skb_egress(skb: SkBuff) -> int:
    ip = skb.bytes(0, 1)
    if ip is not None and ip.u8(0) == 0:
        return 0
    return 1
"""


@pytest.mark.kernel
def test_the_verifier_accepts_the_accepted_forms(compile_src, kernel_env):
    """Every form above (views at constant and bounded offsets, writes, pull/push/pop/cork, views through a function,
    in a loop, after a call that moved the data, skb views and load_bytes) loads on the running kernel."""
    c = compile_src(ACCEPTED, name="views")
    assert c.result.output, [d.format() for d in c.result.diagnostics]
    import kharness
    with kharness.child_cgroup("pybpfgen-pkt") as cg, kharness.private_pin_root("pybpfgen-pkt") as root:
        kl.load(c.result.output, cgroup=str(cg), pin_root=str(root))
        kl.unload("views", pin_root=str(root))


@pytest.mark.kernel
def test_a_short_check_is_what_the_verifier_refuses(compile_src, kernel_env, tmp_path):
    """The compile-time rule is the verifier's: the same program with its range check shortened to the 4 bytes below
    the byte it reads (hdr[4]) is refused by the kernel with the log the compiler's error replaces."""
    c = compile_src(PREFIX, name="short")
    path = c.result.output
    data = bytearray(open(path, "rb").read())
    obj = parse_object(path)
    sec = obj.sections["sk_msg"]
    base = bytes(data).index(sec.data)
    for i in range(0, len(sec.data), 8):
        if sec.data[i] == 0x07 and int.from_bytes(sec.data[i + 4:i + 8], "little") == 8:  # rX += 8
            data[base + i + 4:base + i + 8] = (4).to_bytes(4, "little")
            break
    else:
        raise AssertionError("no `+= 8` in the range check")
    bad = tmp_path / "short.bpf.o"
    bad.write_bytes(data)
    import kharness
    with kharness.child_cgroup("pybpfgen-pkt") as cg, kharness.private_pin_root("pybpfgen-pkt") as root:
        with pytest.raises(kl.VerifierError) as ei:
            kl.load(str(bad), cgroup=str(cg), pin_root=str(root))
    assert "invalid access to packet" in str(ei.value)

