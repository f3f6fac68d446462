"""cgroup sock_addr programs (connect4 .. bind6) and cgroup sockopt programs (getsockopt, setsockopt): their entries in
target/progtypes.py, decorators and sections, the compile-time check of their return values (the 6.18 verifier's
range per attach type), which context fields each may read and write (located errors otherwise), the stores
those writes compile to, and pybpfgen.testing's contexts. The kernel tests: tests/loader/test_sock_addr_kernel.py
and tests/examples/test_service_vip.py."""
import pytest

from kernel_loader.elf import parse_object
from pybpfgen import disasm, lang, testing
from pybpfgen.target import contexts
from pybpfgen.target.progtypes import PROG_TYPES, by_name, by_section

# program type -> (ELF section, BPF_PROG_TYPE_*, attach type, accepted return values)
EXPECTED = {
    "cgroup_connect4": ("cgroup/connect4", 18, 10, (0, 1)), "cgroup_connect6": ("cgroup/connect6", 18, 11, (0, 1)),
    "cgroup_sendmsg4": ("cgroup/sendmsg4", 18, 14, (0, 1)), "cgroup_sendmsg6": ("cgroup/sendmsg6", 18, 15, (0, 1)),
    "cgroup_recvmsg4": ("cgroup/recvmsg4", 18, 19, (1, 1)), "cgroup_recvmsg6": ("cgroup/recvmsg6", 18, 20, (1, 1)),
    "cgroup_getpeername4": ("cgroup/getpeername4", 18, 29, (1, 1)),
    "cgroup_getpeername6": ("cgroup/getpeername6", 18, 30, (1, 1)),
    "cgroup_getsockname4": ("cgroup/getsockname4", 18, 31, (1, 1)),
    "cgroup_getsockname6": ("cgroup/getsockname6", 18, 32, (1, 1)),
    "cgroup_bind4": ("cgroup/bind4", 18, 8, (0, 3)), "cgroup_bind6": ("cgroup/bind6", 18, 9, (0, 3)),
    "cgroup_getsockopt": ("cgroup/getsockopt", 25, 21, (0, 1)),
    "cgroup_setsockopt": ("cgroup/setsockopt", 25, 22, (0, 1)),
}
IP4 = 0x01C812C6  # 198.18.200.1 as the kernel's u32 (network byte order)
LOCAL = 0x0100007F  # 127.0.0.1


def field(ctx: contexts.Context, name: str) -> contexts.Field:
    return next(f for f in ctx.fields if f.name == name)


def ctx_class(progtype: str) -> str:
    return "SockOpt" if "sockopt" in progtype else "SockAddr"


def test_the_table_entries():
    for name, (section, prog_type, attach_type, returns) in EXPECTED.items():
        pt = PROG_TYPES[name]
        assert (pt.section, pt.prog_type, pt.attach_type, pt.attach, pt.returns) == \
            (section, prog_type, attach_type, "cgroup", returns)
        assert pt.ctx_class == ctx_class(name) and pt.returns_hint
        assert by_section(section) is pt and by_name(name) is pt and by_section(section + "/vip") is pt
        assert getattr(lang, name).__name__ == name and name in lang.__all__
    assert PROG_TYPES["cgroup_connect4"].c_struct == "bpf_sock_addr"
    assert PROG_TYPES["cgroup_getsockopt"].c_struct == "bpf_sockopt"


def test_every_hook_compiles_to_its_section(compile_src):
    src = "\n\n".join(f"@{name}\ndef p_{name}(ctx: {ctx_class(name)}) -> int:\n    return 1\n" for name in EXPECTED)
    c = compile_src(src)
    assert c.result.output and not c.errors, [d.format() for d in c.result.diagnostics]
    got = {p.name: (p.section, p.kind, p.prog_type, p.expected_attach_type)
           for p in parse_object(c.result.output).programs}
    assert got == {f"p_{n}": (s, n, t, a) for n, (s, t, a, _r) in EXPECTED.items()}


@pytest.mark.parametrize("progtype,value,message", [
    ("cgroup_connect4", "2", "a cgroup_connect4 program returns 0 or 1, not 2"),
    ("cgroup_sendmsg6", "-1", "a cgroup_sendmsg6 program returns 0 or 1, not -1"),
    ("cgroup_getpeername4", "0", "a cgroup_getpeername4 program returns 1, not 0"),
    ("cgroup_recvmsg6", "0", "a cgroup_recvmsg6 program returns 1, not 0"),
    ("cgroup_bind4", "4", "a cgroup_bind4 program returns 0..3, not 4"),
    ("cgroup_getsockopt", "2", "a cgroup_getsockopt program returns 0 or 1, not 2"),
])
def test_a_constant_return_value_the_hook_refuses_is_a_located_error(compile_src, progtype, value, message):
    c = compile_src(f"""
        @{progtype}
        def p(ctx: {ctx_class(progtype)}) -> int:
            return {value}
        """)
    assert [(d.loc.line, d.loc.col, d.message) for d in c.errors] == [(5, 11, message)]
    assert c.errors[0].hint == PROG_TYPES[progtype].returns_hint


def test_bind_may_return_3(compile_src):
    c = compile_src("""
        @cgroup_bind4
        def p(ctx: SockAddr) -> int:
            return 3
        """)
    assert not c.errors, [d.format() for d in c.result.diagnostics]


def test_the_context_class_is_checked(compile_src):
    c = compile_src("""
        @cgroup_connect4
        def p(ctx: SockOps) -> int:
            return 1
        """)
    assert c.messages == ["the context of a cgroup_connect4 program is SockAddr"]


# ----------------------------------------------------------------- which fields, read and written
def errors_of(compile_src, progtype: str, body: str) -> list[tuple[int, int, str, str | None]]:
    c = compile_src(f"@{progtype}\ndef p(ctx: {ctx_class(progtype)}) -> int:\n" +
                    "".join(f"    {line}\n" for line in body.strip().splitlines()) + "    return 1\n")
    return [(d.loc.line, d.loc.col, d.message, d.hint) for d in c.errors]


def test_an_ipv4_hook_cannot_touch_the_ipv6_address(compile_src):
    why = field(contexts.SOCK_ADDR, "user_ip6").unreadable_in["cgroup_connect4"]
    got = errors_of(compile_src, "cgroup_connect4", "ctx.user_ip6[0] = 1\nx = ctx.user_ip6[1]")
    assert [g[:3] for g in got] == [(4, 4, f"a cgroup_connect4 program cannot read `SockAddr.user_ip6`: {why}"),
                                    (5, 8, f"a cgroup_connect4 program cannot read `SockAddr.user_ip6`: {why}")]
    assert "an IPv4 hook has no IPv6 address" in why
    got = errors_of(compile_src, "cgroup_connect6", "ctx.user_ip4 = 1")
    assert got[0][2].startswith("a cgroup_connect6 program cannot read `SockAddr.user_ip4`: an IPv6 hook")


def test_read_only_fields_are_located_errors_naming_what_can_be_written(compile_src):
    got = errors_of(compile_src, "cgroup_connect4", "ctx.family = AF_INET6")
    assert got == [(4, 4, "context field `SockAddr.family` is read-only", "fields it can write: user_ip4, user_port")]
    got = errors_of(compile_src, "cgroup_sendmsg4", "ctx.protocol = 17")
    assert got[0][2:] == ("context field `SockAddr.protocol` is read-only",
                          "fields it can write: msg_src_ip4, user_ip4, user_port")


def test_only_sendmsg_has_a_source_address(compile_src):
    assert not errors_of(compile_src, "cgroup_sendmsg4", "ctx.msg_src_ip4 = ctx.user_ip4")
    assert not errors_of(compile_src, "cgroup_sendmsg6", "ctx.msg_src_ip6[3] = u32(1)")
    got = errors_of(compile_src, "cgroup_connect4", "ctx.msg_src_ip4 = 1")
    assert got[0][2] == "a cgroup_connect4 program cannot read `SockAddr.msg_src_ip4`: only sendmsg4 sets a source"


def test_sockopt_fields_per_hook(compile_src):
    # getsockopt: the result is writable, the option is not; setsockopt: the other way round, and has no result
    assert not errors_of(compile_src, "cgroup_getsockopt", "ctx.retval = 0\nctx.optlen = 4")
    assert not errors_of(compile_src, "cgroup_setsockopt", "ctx.level = 6\nctx.optname = 1\nctx.optlen = -1")
    got = errors_of(compile_src, "cgroup_getsockopt", "ctx.optname = 1")
    assert got == [(4, 4, "a cgroup_getsockopt program cannot write `SockOpt.optname`: only cgroup_setsockopt "
                          "programs may", "fields it can write: optlen, retval")]
    got = errors_of(compile_src, "cgroup_setsockopt", "if ctx.retval < 0:\n    return 0")
    assert got[0][:3] == (4, 7, "a cgroup_setsockopt program cannot read `SockOpt.retval`: "
                                + field(contexts.SOCKOPT, "retval").unreadable_in["cgroup_setsockopt"])


def test_sockopt_fields_are_signed(compile_src):
    """level .. retval are the kernel's __s32: a negative errno compares as one."""
    c = compile_src("""
        @cgroup_getsockopt
        def p(ctx: SockOpt) -> int:
            if ctx.retval < 0:
                ctx.retval = 0
            return 1
        """)
    assert not c.errors, [d.format() for d in c.result.diagnostics]
    assert PROG_TYPES["cgroup_getsockopt"].fields["retval"].type.signed
    mod_ctx = testing.getsockopt(level=1, optname=7, retval=-13, optval=b"\0" * 4)
    assert mod_ctx.retval == -13 and mod_ctx.optlen == 4


# ----------------------------------------------------------------- what the stores compile to
def stores_and_swaps(c) -> tuple[list[tuple[int, int]], int]:
    obj = parse_object(c.result.output)
    (f,) = obj.functions
    insns = disasm.decode(obj.sections[f.section].data[f.offset:f.end])
    width = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
    stores = [(i.off, width[i.code & 0x18]) for i in insns if i.cls == disasm.STX and i.code & 0xE0 == 0x60
              and i.dst != 10]  # not the stack: the context
    swaps = sum(1 for i in insns if i.code == 0xDC and i.imm == 16)  # be16
    return stores, swaps


def test_writes_are_full_width_stores_at_the_field_offsets(compile_src):
    c = compile_src("""
        @cgroup_connect6
        def p(ctx: SockAddr) -> int:
            a: u32[4] = [u32(0), u32(0), u32(0), u32(0x01000000)]
            ctx.user_ip6 = a
            ctx.user_ip6[2] = u32(7)
            ctx.user_port = 8080
            return 1
        """)
    assert c.result.output, [d.format() for d in c.result.diagnostics]
    stores, swaps = stores_and_swaps(c)
    assert sorted(stores) == [(8, 4), (12, 4), (16, 4), (16, 4), (20, 4), (24, 4)]
    assert swaps == 0  # a constant port is swapped at compile time


def test_a_port_is_written_and_read_in_host_byte_order(compile_src):
    c = compile_src("""
        @cgroup_connect4
        def p(ctx: SockAddr) -> int:
            if ctx.user_port == 80:
                ctx.user_port = ctx.user_port + 8000
            return 1
        """)
    stores, swaps = stores_and_swaps(c)
    assert stores == [(24, 4)] and swaps == 2  # be16 after the load, be16 before the store
    obj = parse_object(c.result.output)
    (f,) = obj.functions
    insns = disasm.decode(obj.sections[f.section].data[f.offset:f.end])
    # 80 in the program is the kernel's 0x5000 (network byte order in the low 16 bits)
    assert any(i.imm in (80, 0x5000) for i in insns if i.cls in (disasm.JMP, disasm.JMP32))


# ----------------------------------------------------------------- pybpfgen.testing
REWRITE = """
@cgroup_connect4
def to_local(ctx: SockAddr) -> int:
    if ctx.user_ip4 == 0x01C812C6 and ctx.user_port == 80:
        ctx.user_ip4 = 0x0100007F
        ctx.user_port = 8080
        return 1
    if ctx.user_port == 23:
        return 0
    return 1


@cgroup_sendmsg6
def source(ctx: SockAddr) -> int:
    a: u32[4] = [u32(0), u32(0), u32(0), u32(0x01000000)]
    ctx.msg_src_ip6 = a
    ctx.user_ip6[3] = ctx.user_ip6[3] + u32(1)
    return 1


@cgroup_setsockopt
def ignore(ctx: SockOpt) -> int:
    if ctx.level == 1 and ctx.optname == 8:
        ctx.optlen = -1
    return 1
"""


@pytest.fixture
def rewrite(tmp_path):
    p = tmp_path / "rewrite.py"
    p.write_text("from pybpfgen.lang import *\n" + REWRITE)
    return testing.load(str(p))


def test_testing_sees_what_the_program_wrote(rewrite):
    ctx = testing.connect4(user_ip4=IP4, user_port=80)
    assert rewrite.run("to_local", ctx) == 1
    assert (ctx.user_ip4, ctx.user_port, ctx.field("user_port")) == (LOCAL, 8080, 8080)
    assert ctx.mem[24:26] == (8080).to_bytes(2, "big")  # the kernel's layout: network byte order
    assert (ctx.user_family, ctx.family) == (2, 2)
    refused = testing.connect4(user_ip4=IP4, user_port=23)
    assert rewrite.run("to_local", refused) == 0 and refused.user_port == 23

    ctx6 = testing.sendmsg6(user_ip6=[0, 0, 0, 5], user_port=53)
    assert rewrite.run("source", ctx6) == 1
    assert ctx6.msg_src_ip6 == [0, 0, 0, 0x01000000] and ctx6.user_ip6 == [0, 0, 0, 6] and ctx6.family == 10

    so = testing.setsockopt(level=1, optname=8, optval=(4096).to_bytes(4, "little"))
    assert rewrite.run("ignore", so) == 1 and so.optlen == -1
    other = testing.setsockopt(level=6, optname=1, optval=b"\1\0\0\0")
    assert rewrite.run("ignore", other) == 1 and other.optlen == 4


def test_testing_contexts_refuse_unknown_and_unreadable_fields():
    with pytest.raises(TypeError, match="SockAddr has no field 'user_prot'"):
        testing.connect4(user_prot=80)
    with pytest.raises(TypeError, match="a cgroup_connect4 program cannot read SockAddr.user_ip6"):
        testing.connect4(user_ip6=[0, 0, 0, 1])
    with pytest.raises(TypeError, match="a cgroup_setsockopt program cannot read SockOpt.retval"):
        testing.setsockopt(level=1, optname=8, retval=0)
    ctx = testing.getpeername4(user_ip4=LOCAL)
    with pytest.raises(AttributeError):
        _ = ctx.msg_src_ip4


# ----------------------------------------------------------------- the option's bytes: packet views of optval
SOCKOPT_BYTES = """
@cgroup_getsockopt
def fake_rcvbuf(ctx: SockOpt) -> int:
    if ctx.level != SOL_SOCKET or ctx.optname != SO_RCVBUF or ctx.retval != 0:
        return 1
    v = ctx.bytes(0, 4)
    if v is None:
        return 1
    v[0] = 0x00
    v[1] = 0x10
    v[2] = 0
    v[3] = 0
    return 1


@cgroup_setsockopt
def cap_sndbuf(ctx: SockOpt) -> int:
    if ctx.level == SOL_SOCKET and ctx.optname == SO_SNDBUF:
        v = ctx.bytes(0, 4)
        if v is not None and v.u32(0) > 65536:
            return 0
    return 1
"""


def test_the_option_bytes_are_packet_data(compile_src, tmp_path):
    """optval .. optval_end are the context's packet pointers (64-bit loads, the verifier's bounds check); views read
    and write them, in the kernel and in pybpfgen.testing."""
    c = compile_src(SOCKOPT_BYTES)
    assert c.result.output and not c.errors, [d.format() for d in c.result.diagnostics]
    obj = parse_object(c.result.output)
    assert len(obj.programs) == 2
    for p in obj.programs:
        wide = {(i.off, i.code & 0x18) for i in disasm.decode(p.insns) if i.cls == disasm.LDX}
        assert (8, 0x18) in wide and (16, 0x18) in wide, p.name  # *(u64 *)(ctx + 8), *(u64 *)(ctx + 16)
    mod = testing.load(c.path)
    ctx = testing.getsockopt(level=1, optname=8, retval=0, optval=bytes(4))
    assert mod.run("fake_rcvbuf", ctx) == 1 and bytes(ctx.optval) == (4096).to_bytes(4, "little")
    short = testing.getsockopt(level=1, optname=8, retval=0, optval=b"\1\2")  # fewer bytes: the view is None
    assert mod.run("fake_rcvbuf", short) == 1 and bytes(short.optval) == b"\1\2"
    assert mod.run("cap_sndbuf", testing.setsockopt(level=1, optname=7, optval=(1 << 20).to_bytes(4, "little"))) == 0
    assert mod.run("cap_sndbuf", testing.setsockopt(level=1, optname=7, optval=(4096).to_bytes(4, "little"))) == 1


def test_reading_the_option_without_the_check_is_a_located_error(compile_src):
    c = compile_src("""
        @cgroup_setsockopt
        def p(ctx: SockOpt) -> int:
            v = ctx.bytes(0, 4)
            if v.u32(0) > 65536:
                return 0
            return 1
        """)
    assert len(c.errors) == 1 and c.errors[0].loc.line == 6, c.messages
    assert c.errors[0].message.startswith("`v` may be None here"), c.messages


HELPERS = """
class SockaddrIn(Struct):
    family: u16
    port: u16
    addr: u32
    zero: u64


@cgroup_connect4
def from_local3(ctx: SockAddr) -> int:
    if bpf_bind(ctx, SockaddrIn(AF_INET, 0, 0x0300007F)) != 0:
        return 0
    return 1


@cgroup_getsockopt
def hide_error(ctx: SockOpt) -> int:
    if bpf_get_retval() < 0:
        bpf_set_retval(0)
    return 1
"""


def test_bind_and_retval_helpers_in_testing(compile_src):
    """bpf_bind (connect hooks), bpf_get_retval/bpf_set_retval are callable where the kernel allows them and
    simulated by pybpfgen.testing."""
    c = compile_src(HELPERS)
    assert c.result.output and not c.errors, [d.format() for d in c.result.diagnostics]
    mod = testing.load(c.path)
    ctx = testing.connect4(user_ip4=LOCAL, user_port=80)
    assert mod.run("from_local3", ctx) == 1
    assert ctx.bound == (2).to_bytes(2, "little") + bytes(2) + (0x0300007F).to_bytes(4, "little") + bytes(8)
    failed = testing.getsockopt(level=1, optname=9999, retval=-92)
    assert mod.run("hide_error", failed) == 1 and failed.call_retval == 0
    c = compile_src("""
        @cgroup_getpeername4
        def p(ctx: SockAddr) -> int:
            bpf_bind(ctx, u64(0))
            return 1
        """)
    assert c.errors and "bpf_bind" in c.errors[0].message and "cgroup_getpeername4" in c.errors[0].message, c.messages
