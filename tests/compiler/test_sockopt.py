"""bpf_setsockopt / bpf_getsockopt in the DSL: the helper kinds `sock`, `optval`, `optout` (target/helpers.py), the
option table (target/sockopts.py) checked at compile time with located errors, the code they compile to, and
their simulation in pybpfgen.testing. The kernel tests: tests/loader/test_sockopt_kernel.py and the gallery's
tcp_tuning (tests/examples/test_tcp_tuning.py)."""
import pytest

from kernel_loader.elf import parse_object
from pybpfgen import lang, testing
from pybpfgen.target import constants as K
from pybpfgen.target import sockopts as SO
from pybpfgen.target.helpers import DOCS, HELPERS, UNSUPPORTED

TUNE = """
    PORT = 9000


    @sock_ops
    def tune(ctx: SockOps) -> int:
        if ctx.op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB and ctx.op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
            return 1
        if ctx.local_port != PORT and ctx.remote_port != PORT:
            return 1
        bpf_setsockopt(ctx, SOL_TCP, TCP_NODELAY, 1)
        bpf_setsockopt(ctx, SOL_TCP, TCP_CONGESTION, "reno")
        rc = bpf_setsockopt(ctx, SOL_SOCKET, SO_SNDBUF, u32(ctx.local_port) * 64)
        if rc != 0:
            return 1
        nd = bpf_getsockopt(ctx, SOL_TCP, TCP_NODELAY)
        if nd is not None and nd.value == 1:
            ctx.reply = 7
        cc = bpf_getsockopt(ctx, SOL_TCP, TCP_CONGESTION)
        if cc is not None and cc.value[0] == 114:
            ctx.reply += 1
        return 1
    """


def test_the_helpers_are_supported_with_their_kinds():
    assert "setsockopt" not in UNSUPPORTED and "getsockopt" not in UNSUPPORTED
    assert HELPERS["setsockopt"].params == ("bpf_socket", "u64", "u64", "optval")
    assert (HELPERS["getsockopt"].params, HELPERS["getsockopt"].ret) == (("bpf_socket", "u64", "u64", "optout"), "optref")
    assert "sock_ops" in HELPERS["setsockopt"].progtypes and "sk_msg" not in HELPERS["setsockopt"].progtypes
    assert lang.bpf_setsockopt.__bpf_helper__ == "setsockopt" and "bpf_getsockopt" in lang.__all__
    assert DOCS["setsockopt"].reason is None


def test_compiles_and_runs_in_testing(compile_src):
    c = compile_src(TUNE, name="tune")
    assert c.result.output and not c.errors, [d.format() for d in c.result.diagnostics]
    assert [p.name for p in parse_object(c.result.output).programs] == ["tune"]
    mod = testing.load(c.path)
    ctx = testing.sock_ops(op=K.BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, local_port=9000, remote_port=40000)
    assert mod.run("tune", ctx) == 1
    assert ctx.sockopts == {(K.SOL_TCP, K.TCP_NODELAY): 1, (K.SOL_TCP, K.TCP_CONGESTION): "reno",
                            (K.SOL_SOCKET, K.SO_SNDBUF): 9000 * 64}
    assert ctx.field("reply") == 8  # both values read back
    other = testing.sock_ops(op=K.BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, local_port=9001, remote_port=40000)
    assert mod.run("tune", other) == 1 and other.sockopts == {}


def test_getsockopt_of_an_option_the_test_did_not_give_is_one_clear_line(compile_src):
    c = compile_src("""
        @sock_ops
        def read(ctx: SockOps) -> int:
            v = bpf_getsockopt(ctx, SOL_TCP, TCP_MAXSEG)
            if v is None:
                return 0
            return v.value
        """, name="read")
    mod = testing.load(c.path)
    with pytest.raises(testing.SimulationError) as e:
        mod.run("read", testing.sock_ops())
    msg = str(e.value)
    assert "\n" not in msg and "TCP_MAXSEG" in msg and "sockopts={(SOL_TCP, TCP_MAXSEG): 1}" in msg
    assert mod.run("read", testing.sock_ops(sockopts={(K.SOL_TCP, K.TCP_MAXSEG): 1400})) == 1400


def _one_error(c):
    assert len(c.errors) == 1, [d.format() for d in c.result.diagnostics]
    return c.errors[0]


def _call(compile_src, call: str, progtype: str = "sock_ops", ctx: str = "SockOps"):
    return compile_src(f"""
        N = 3


        @{progtype}
        def p(ctx: {ctx}) -> int:
            x: u32 = 5
            {call}
            return 1
        """)


def test_the_old_cannot_be_called_message_is_gone(compile_src):
    c = _call(compile_src, "bpf_setsockopt(ctx, SOL_TCP, TCP_NODELAY, 1)")
    assert not c.errors, [d.format() for d in c.result.diagnostics]
    assert not any("cannot be called in a BPF program" in d.message for d in c.result.diagnostics)


@pytest.mark.parametrize("call, message, hint, col", [
    # an option unknown for the level (TCP_INFO: a real option that bpf_setsockopt refuses)
    ("bpf_setsockopt(ctx, SOL_TCP, 11, 1)", "`11` is not a SOL_TCP option bpf_setsockopt accepts",
     "SOL_TCP options it accepts: TCP_NODELAY", 34),
    # an option of another level: SO_SNDBUF (7) would silently be TCP_SYNCNT (7)
    ("bpf_setsockopt(ctx, SOL_TCP, SO_SNDBUF, 1)", "SO_SNDBUF is a SOL_SOCKET option, not a SOL_TCP one",
     "pass SOL_SOCKET as the level", 34),
    ("bpf_getsockopt(ctx, SOL_SOCKET, TCP_NODELAY)", "TCP_NODELAY is a SOL_TCP option, not a SOL_SOCKET one",
     "pass SOL_TCP as the level", 37),
    ("bpf_setsockopt(ctx, 99, TCP_NODELAY, 1)", "`99` is not a socket option level bpf_setsockopt accepts",
     "SOL_SOCKET, SOL_TCP, SOL_IP or SOL_IPV6", 25),
    # typed values
    ('bpf_setsockopt(ctx, SOL_TCP, TCP_NODELAY, "1")', "TCP_NODELAY takes an integer, not a string",
     "bpf_setsockopt(ctx, SOL_TCP, TCP_NODELAY, 1)", 47),
    ("bpf_setsockopt(ctx, SOL_TCP, TCP_CONGESTION, 1)", "TCP_CONGESTION takes a name as a constant string, "
     "not an integer", '"cubic"', 50),
    ('bpf_setsockopt(ctx, SOL_TCP, TCP_CONGESTION, "a-very-long-name")', "TCP_CONGESTION takes a name of 1 to 15 "
     "ASCII characters", None, 50),
    ('bpf_setsockopt(ctx, SOL_TCP, TCP_CONGESTION, "cdg")', "the kernel refuses to switch to cdg from BPF",
     "tcp_available_congestion_control", 50),
    ("bpf_setsockopt(ctx, SOL_SOCKET, SO_MARK, ctx)", "SO_MARK takes an integer, not", None, 46),
    ("bpf_setsockopt(ctx, SOL_SOCKET, SO_MARK, u64(x))", "u64", "i32(", 46),
    # set-only and get-only
    ("bpf_getsockopt(ctx, SOL_TCP, TCP_BPF_IW)", "TCP_BPF_IW can only be set: the kernel's bpf_getsockopt refuses it",
     "TCP_NODELAY", 34),
    # constants required
    ("bpf_setsockopt(ctx, SOL_TCP, x, 1)", "argument `optname` of `bpf_setsockopt()` must be a constant", None, 34),
    ("bpf_setsockopt(ctx, x, TCP_NODELAY, 1)", "argument `level` of `bpf_setsockopt()` must be a constant", None, 25),
    # the socket
    ("bpf_setsockopt(x, SOL_TCP, TCP_NODELAY, 1)", "argument `bpf_socket` of `bpf_setsockopt()` is the socket", None, 20),
])
def test_typed_option_errors_are_located(compile_src, call, message, hint, col):
    d = _one_error(_call(compile_src, call))
    assert message in d.message, d.format()
    assert hint is None or hint in (d.hint or "") or hint in d.message, d.format()
    assert (d.loc.line, d.loc.col + 1) == (9, col), d.format()


def test_a_program_type_that_cannot_call_it(compile_src):
    d = _one_error(_call(compile_src, "bpf_setsockopt(ctx, SOL_TCP, TCP_NODELAY, 1)", "socket_filter", "SkBuff"))
    assert "cannot be called from a socket_filter program" in d.message, d.format()
    assert "sock_ops" in (d.hint or "")
    assert "cannot be called in a BPF program" not in d.message


def test_the_result_of_getsockopt_must_be_checked(compile_src):
    d = _one_error(_call(compile_src, "y = bpf_getsockopt(ctx, SOL_TCP, TCP_NODELAY).value"))
    assert "may be None here: bpf_getsockopt fails" in d.message, d.format()


def test_the_option_table_is_consistent():
    for (level, optname), o in SO.OPTIONS.items():
        assert level in SO.LEVELS and K.VALUES[o.name] == optname
        assert o.kind in ("int", "str") and (o.size == 4) == (o.kind == "int")
        assert o.can_set or o.can_get
    assert SO.lookup(K.SOL_TCP, K.TCP_CONGESTION).size == K.TCP_CA_NAME_MAX
    # every SO_/TCP_/IP_/IPV6_ option constant is in the table (TCP_CA_NAME_MAX is a size, not an option)
    names = {o.name for o in SO.OPTIONS.values()}
    assert {n for n in K.GROUPS["SOL_SOCKET options"] + K.GROUPS["SOL_TCP options"]
            + K.GROUPS["SOL_IP and SOL_IPV6 options"]} - names == {"TCP_CA_NAME_MAX"}


def test_a_helper_pybpfgen_cannot_call_says_why(compile_src):
    """The old message for bpf_setsockopt ("cannot be called in a BPF program", with a hint to call a bpf_* helper)
    is gone for the helpers still unsupported too: they are named as kernel helpers, with the reason."""
    d = _one_error(_call(compile_src, "bpf_sk_release(ctx)"))
    assert d.message == ("`bpf_sk_release` is a kernel helper that pybpfgen cannot call yet: "
                         f"{UNSUPPORTED['sk_release']}"), d.format()
    assert "cannot be called in a BPF program" not in d.message


def test_without_a_full_socket_both_fail_as_in_the_kernel(compile_src):
    c = compile_src(TUNE, name="tune")
    mod = testing.load(c.path)
    ctx = testing.sock_ops(op=K.BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, local_port=9000, remote_port=40000, sk=None)
    assert mod.run("tune", ctx) == 1  # bpf_setsockopt returns -EINVAL: the program returns early
    assert ctx.sockopts == {} and ctx.field("reply") == 0


# cgroup_setsockopt: the kernel's bpf_sk_setsockopt / bpf_sk_getsockopt take the context's socket (ctx.sk), not
# the context (helpers_table.SOCKET_ARG, probed); the kernel test: tests/loader/test_sockopt_sk_kernel.py
NODELAY_ON_SNDBUF = """
    @cgroup_setsockopt
    def p(ctx: SockOpt) -> int:
        if ctx.level == SOL_SOCKET and ctx.optname == SO_SNDBUF:
            rc = bpf_setsockopt(ctx.sk, SOL_TCP, TCP_NODELAY, 1)
            nd = bpf_getsockopt(ctx.sk, SOL_TCP, TCP_NODELAY)
            if rc == 0 and nd is not None and nd.value == 1:
                ctx.optname = SO_SNDBUF
        return 1
    """


def test_the_setsockopt_hook_takes_the_contexts_socket(compile_src):
    from pybpfgen.target.helpers import SOCKET_ARG
    assert SOCKET_ARG["setsockopt"] == ("cgroup_setsockopt",) and SOCKET_ARG["getsockopt"] == ("cgroup_setsockopt",)
    assert "cgroup_setsockopt" in HELPERS["setsockopt"].progtypes
    c = compile_src(NODELAY_ON_SNDBUF)
    assert c.result.output and not c.errors, [d.format() for d in c.result.diagnostics]
    mod = testing.load(c.path)
    ctx = testing.setsockopt(level=K.SOL_SOCKET, optname=K.SO_SNDBUF, optlen=4)
    assert mod.run("p", ctx) == 1
    assert ctx.sk.sockopts == {(K.SOL_TCP, K.TCP_NODELAY): 1}
    other = testing.setsockopt(level=K.SOL_TCP, optname=K.TCP_NODELAY, optlen=4)
    assert mod.run("p", other) == 1 and other.sk.sockopts == {}


@pytest.mark.parametrize("call, progtype, ctx, message, hint, col", [
    ("bpf_setsockopt(ctx, SOL_TCP, TCP_NODELAY, 1)", "cgroup_setsockopt", "SockOpt",
     "takes a socket, not the program's context", "`ctx.sk`", 20),
    ("bpf_getsockopt(ctx, SOL_TCP, TCP_NODELAY)", "cgroup_setsockopt", "SockOpt",
     "takes a socket, not the program's context", "`ctx.sk`", 20),
    ("bpf_setsockopt(ctx.sk, SOL_TCP, TCP_NODELAY, 1)", "cgroup_connect4", "SockAddr",
     "the kernel takes the program's context, not its socket", "pass the program's context", 20),
    ("bpf_setsockopt(ctx.sk, SOL_TCP, 11, 1)", "cgroup_setsockopt", "SockOpt",
     "`11` is not a SOL_TCP option bpf_setsockopt accepts", "TCP_NODELAY", 37),
    ('bpf_setsockopt(ctx.sk, SOL_TCP, TCP_NODELAY, "1")', "cgroup_setsockopt", "SockOpt",
     "TCP_NODELAY takes an integer, not a string", None, 50),
    ("bpf_setsockopt(ctx.sk, SOL_TCP, TCP_NODELAY, 1)", "cgroup_getsockopt", "SockOpt",
     "cannot be called from a cgroup_getsockopt program", "cgroup_setsockopt", 5),
])
def test_which_socket_argument_errors_are_located(compile_src, call, progtype, ctx, message, hint, col):
    d = _one_error(_call(compile_src, call, progtype, ctx))
    assert message in d.message, d.format()
    assert hint is None or hint in (d.hint or "") or hint in d.message, d.format()
    assert (d.loc.line, d.loc.col + 1) == (9, col), d.format()
