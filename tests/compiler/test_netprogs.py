"""XDP, tc (tcx) and sk_skb programs: their target/progtypes.py entries, decorators, contexts (what each may read
and write), the compile-time check of their return values and their object sections. The kernel tests are
tests/loader/test_netprogs_kernel.py and the gallery's (tests/examples/test_xdp_drop_counter.py,
tests/examples/test_sk_skb_verdict.py)."""
import os

import pytest

from kernel_loader.elf import parse_object
from pybpfgen import lang
from pybpfgen.target.progtypes import PROG_TYPES, by_name, by_section

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ALL = """
    socks = SockMap(max_entries=8)


    @xdp
    def x(ctx: XdpMd) -> int:
        if ctx.ingress_ifindex == 0 or ctx.rx_queue_index > 64:
            return XDP_DROP
        return XDP_PASS


    @tc_ingress
    def ti(ctx: SkBuff) -> int:
        ctx.mark = 7
        ctx.priority = ctx.tc_index
        return TC_ACT_OK


    @tc_egress
    def te(ctx: SkBuff) -> int:
        if ctx.len > 5000:
            return TC_ACT_SHOT
        return TCX_NEXT


    @sk_skb_stream_parser(socks)
    def parser(ctx: SkBuff) -> int:
        return i32(ctx.len)


    @sk_skb_stream_verdict(socks)
    def verdict(ctx: SkBuff) -> int:
        if ctx.local_port == 7:
            return SK_DROP
        ctx.priority = 3
        return SK_PASS
    """


def test_the_table_entries():
    want = {"xdp": ("xdp", 6, 37, "netdev", (0, 4), "XdpMd"),
            "tc_ingress": ("tcx/ingress", 3, 46, "netdev", (-1, 8), "SkBuff"),
            "tc_egress": ("tcx/egress", 3, 47, "netdev", (-1, 8), "SkBuff"),
            "sk_skb_stream_parser": ("sk_skb/stream_parser", 14, 4, "map", None, "SkBuff"),
            "sk_skb_stream_verdict": ("sk_skb/stream_verdict", 14, 5, "map", (0, 1), "SkBuff")}
    for name, row in want.items():
        pt = PROG_TYPES[name]
        assert (pt.section, pt.prog_type, pt.attach_type, pt.attach, pt.returns, pt.ctx_class) == row, name
        assert pt.needs_map == (pt.attach == "map")
        assert by_section(pt.section) is pt and by_name(pt.name) is pt
        assert getattr(lang, name).__name__ == name
    assert (lang.XDP_ABORTED, lang.XDP_DROP, lang.XDP_PASS, lang.XDP_TX, lang.XDP_REDIRECT) == (0, 1, 2, 3, 4)
    assert (lang.TC_ACT_UNSPEC, lang.TC_ACT_OK, lang.TC_ACT_SHOT, lang.TC_ACT_REDIRECT) == (-1, 0, 2, 7)
    assert (lang.TCX_NEXT, lang.TCX_PASS, lang.TCX_DROP, lang.TCX_REDIRECT) == (-1, 0, 2, 7)


def test_contexts_follow_the_kernel():
    tc, skskb, cg = PROG_TYPES["tc_ingress"].fields, PROG_TYPES["sk_skb_stream_verdict"].fields, \
        PROG_TYPES["cgroup_skb_egress"].fields
    # tc programs see the packet, not its socket; sk_skb programs the socket, not the mark
    assert "family" not in tc and "remote_port" not in tc and "tc_classid" in tc and "wire_len" in tc
    assert "family" in skskb and "remote_ip6" in skskb and "mark" not in skskb
    # writable per program type: mark in tc and cgroup_skb, not sk_skb; tc_classid in tc only
    assert tc["mark"].writable and cg["mark"].writable and tc["tc_classid"].writable
    assert skskb["priority"].writable and skskb["tc_index"].writable and not skskb["queue_mapping"].writable
    # packet pointers are not integer fields
    for pt in ("xdp", "tc_ingress", "sk_skb_stream_verdict"):
        assert not {"data", "data_end", "data_meta"} & set(PROG_TYPES[pt].fields), pt
    assert "egress_ifindex" not in PROG_TYPES["xdp"].fields  # devmap programs only


def test_every_type_compiles_to_its_section(compile_src):
    c = compile_src(ALL, name="all")
    assert c.result.output and not c.errors, [d.format() for d in c.result.diagnostics]
    obj = parse_object(c.result.output)
    got = {p.name: (p.section, p.kind, p.prog_type, p.expected_attach_type, p.attach_map) for p in obj.programs}
    assert got == {"x": ("xdp", "xdp", 6, 37, None),
                   "ti": ("tcx/ingress", "tc_ingress", 3, 46, None),
                   "te": ("tcx/egress", "tc_egress", 3, 47, None),
                   "parser": ("sk_skb/stream_parser", "sk_skb_stream_parser", 14, 4, "socks"),
                   "verdict": ("sk_skb/stream_verdict", "sk_skb_stream_verdict", 14, 5, "socks")}


@pytest.mark.parametrize("deco, ctx, value, allowed, hint", [
    ("@xdp", "XdpMd", "5", "0..4", "return XDP_PASS, XDP_DROP"),
    ("@xdp", "XdpMd", "-1", "0..4", "return XDP_PASS, XDP_DROP"),
    ("@tc_ingress", "SkBuff", "9", "-1..8", "return TC_ACT_OK to let the packet through, TC_ACT_SHOT to drop it"),
    ("@tc_egress", "SkBuff", "-2", "-1..8", "return TC_ACT_OK"),
    ("@sk_skb_stream_verdict(socks)", "SkBuff", "SK_PASS + 1", "0 or 1", "return SK_PASS to deliver the data"),
])
def test_a_constant_return_value_out_of_range_is_a_located_error(compile_src, deco, ctx, value, allowed, hint):
    c = compile_src(f"""
        socks = SockHash(key=u32, max_entries=8)


        {deco}
        def p(ctx: {ctx}) -> int:
            if ctx.len == 0:
                return {value}
            return 0
        """.replace("ctx.len", "ctx.rx_queue_index" if ctx == "XdpMd" else "ctx.len"))
    assert not c.result.output
    [e] = c.errors
    assert (e.loc.line, e.loc.col) == (9, 15)
    progtype = deco[1:].split("(")[0]
    assert e.message.startswith(f"a {progtype} program returns {allowed}, not ")
    assert e.hint.startswith(hint)


def test_in_range_returns_compile(compile_src):
    c = compile_src("""
        socks = SockMap(max_entries=8)


        @tc_ingress
        def a(ctx: SkBuff) -> int:
            if ctx.len == 0:
                return TC_ACT_UNSPEC
            if ctx.len == 1:
                return TC_ACT_TRAP
            return TC_ACT_SHOT


        @xdp
        def b(ctx: XdpMd) -> int:
            if ctx.rx_queue_index == 0:
                return XDP_ABORTED
            return XDP_REDIRECT


        @sk_skb_stream_parser(socks)
        def c(ctx: SkBuff) -> int:
            return -22
        """)
    assert c.result.output and not c.errors, [d.format() for d in c.result.diagnostics]


@pytest.mark.parametrize("deco, ctx, body, message", [
    ("@tc_ingress", "SkBuff", "return i32(ctx.family)",
     "a tc_ingress program cannot read `SkBuff.family`: the verifier lets socket_filter and tc programs read the "
     "packet, not its socket"),
    ("@sk_skb_stream_verdict(socks)", "SkBuff", "return i32(ctx.mark)",
     "a sk_skb_stream_verdict program cannot read `SkBuff.mark`: sk_skb programs cannot read the mark"),
    ("@xdp", "XdpMd", "return i32(ctx.egress_ifindex)",
     "a xdp program cannot read `XdpMd.egress_ifindex`: only XDP programs run from a devmap"),
    ("@xdp", "XdpMd", "return i32(ctx.data_end - ctx.data)", "`XdpMd.data_end` is a packet pointer, not an integer"),
    ("@tc_egress", "SkBuff", "return i32(ctx.data)", "`SkBuff.data` is a packet pointer, not an integer"),
    ("@sk_skb_stream_verdict(socks)", "SkBuff", "ctx.queue_mapping = 1\n            return SK_PASS",
     "a sk_skb_stream_verdict program cannot write `SkBuff.queue_mapping`: only tc_ingress, tc_egress programs may"),
    ("@xdp", "XdpMd", "ctx.rx_queue_index = 1\n            return XDP_PASS",
     "context field `XdpMd.rx_queue_index` is read-only"),
])
def test_what_a_program_type_may_not_read_or_write_is_a_located_error(compile_src, deco, ctx, body, message):
    c = compile_src(f"""
        socks = SockHash(key=u32, max_entries=8)


        {deco}
        def p(ctx: {ctx}) -> int:
            {body}
        """)
    assert not c.result.output
    assert c.errors and c.errors[0].message.startswith(message), c.messages
    assert c.errors[0].loc.line == 8


@pytest.mark.parametrize("deco, message", [
    ("@sk_skb_stream_verdict", "@sk_skb_stream_verdict needs the sock map (a SockHash or SockMap) it attaches to"),
    ("@sk_skb_stream_parser(counts)", "@sk_skb_stream_parser must name a SockHash or SockMap declared above"),
    ("@xdp(counts)", "@xdp takes no arguments"),
])
def test_decorator_arguments(compile_src, deco, message):
    c = compile_src(f"""
        counts = Hash(key=u32, value=u64, max_entries=8)


        {deco}
        def p(ctx: SkBuff) -> int:
            return 1
        """)
    assert c.messages[:1] == [message]


def test_the_context_class_is_checked(compile_src):
    c = compile_src("""
        @xdp
        def p(ctx: SkBuff) -> int:
            return XDP_PASS
        """)
    assert c.messages == ["the context of a xdp program is XdpMd"]


# ==================================================================== pybpfgen.testing
def _udp_frame(dport: int, payload: bytes = b"x" * 10, proto: int = 17, frag: int = 0, ihl: int = 5) -> bytes:
    import struct
    eth = b"\xff" * 12 + b"\x08\x00"
    ip = bytes([0x40 | ihl, 0]) + struct.pack("!HHHBBH", 4 * ihl + 8 + len(payload), 1, frag, 64, proto, 0)
    ip += b"\x7f\x00\x00\x01" * 2 + b"\x01" * (4 * ihl - 20)
    return eth + ip + struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload


def test_testing_runs_the_xdp_gallery_example_on_frames():
    from pybpfgen import testing
    mod = testing.load(f"{ROOT}/examples/gallery/xdp_drop_counter.py")
    mod.map("blocked").update(6379, {"packets": 0, "bytes": 0})
    xdp_pass, xdp_drop = lang.XDP_PASS, lang.XDP_DROP
    runs = [(_udp_frame(6379), xdp_drop), (_udp_frame(6379, proto=6), xdp_drop), (_udp_frame(80), xdp_pass),
            (_udp_frame(6379, proto=1), xdp_pass), (_udp_frame(6379, frag=8), xdp_pass),
            (_udp_frame(6379, ihl=6), xdp_drop), (_udp_frame(6379)[:36], xdp_pass), (b"", xdp_pass)]
    for frame, want in runs:
        assert mod.run("drop_blocked_ports", testing.xdp(data=frame)) == want, frame
    drops = [f for f, want in runs if want == xdp_drop]
    assert mod.map("blocked").lookup(6379) == {"packets": len(drops), "bytes": sum(map(len, drops))}


def test_testing_tc_and_sk_skb_contexts():
    from pybpfgen import testing
    path = f"{ROOT}/examples/gallery/sk_skb_verdict.py"
    mod = testing.load(path)
    mod.map("echo_ports").update(7007, 0)
    lo = 0x0100007F
    conn = dict(family=2, local_ip4=lo, remote_ip4=lo, local_port=7007, remote_port=40000)
    assert mod.run("add_echo_sockets", testing.sock_ops(op=5, **conn)) == 1 and len(mod.map("socks")) == 1
    skb = testing.sk_skb(data=b"hello", **conn)
    assert mod.run("echo", skb) == lang.SK_PASS and skb.redirect is not None and skb.redirect[0] == "socks"
    assert mod.map("echo_ports").lookup(7007) == 5
    quit_ = testing.sk_skb(data=b"QUIT now", **conn)
    assert mod.run("echo", quit_) == lang.SK_DROP and quit_.redirect is None
    assert mod.map("echo_ports").lookup(7007) == 5
    # data not in the skb's head (linear=0, as TCP over loopback gives it): bpf_skb_pull_data brings it in
    nonlinear = testing.sk_skb(data=b"QUIT now", linear=0, **conn)
    assert mod.run("echo", nonlinear) == lang.SK_DROP
    other = testing.sk_skb(data=b"hello", **{**conn, "remote_port": 40001})   # not in the sockhash
    assert mod.run("echo", other) == lang.SK_DROP and other.redirect is None
    with pytest.raises(ValueError, match="kind is 'verdict' or 'parser'"):
        testing.sk_skb("verdit")


TC_MARK = """
@tc_egress
def mark_big(skb: SkBuff) -> int:
    if skb.protocol == 0x0008 and skb.len > 100:
        skb.mark = 7
        return TC_ACT_SHOT
    return TC_ACT_OK
"""


def test_testing_tc_context_writes_and_len(tmp_path):
    from pybpfgen import testing
    path = tmp_path / "tcmark.py"
    path.write_text("from pybpfgen.lang import *\n" + TC_MARK)
    mod = testing.load(str(path))
    big = testing.tc("egress", data=b"\0" * 200, protocol=0x0008)
    assert mod.run("mark_big", big) == lang.TC_ACT_SHOT and big.field("mark") == 7 and big.field("len") == 200
    small = testing.tc("egress", data=b"\0" * 50, protocol=0x0008)
    assert mod.run("mark_big", small) == lang.TC_ACT_OK and small.field("mark") == 0
    with pytest.raises(ValueError, match="direction is 'ingress' or 'egress'"):
        testing.tc("sideways")
