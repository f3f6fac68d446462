"""The socket-option table (pybpfgen/target/sockopts.py) against the running kernel: a sock_ops program, generated
from the table, sets every option on a real loopback connection (IPv4, and IPv6 for the SOL_IPV6 options) with
bpf_setsockopt and reads every readable one back with bpf_getsockopt; the kernel must accept each as listed."""
import socket
import subprocess
import sys
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader import mapapi
from pybpfgen.driver import compile_file
from pybpfgen.target import sockopts as SO

pytestmark = pytest.mark.kernel

# a value the kernel accepts for each option on an established loopback connection
VALUES = {
    "SO_REUSEADDR": 1, "SO_SNDBUF": 65536, "SO_RCVBUF": 65536, "SO_KEEPALIVE": 1, "SO_PRIORITY": 3,
    "SO_REUSEPORT": 1, "SO_RCVLOWAT": 1, "SO_MARK": 42, "SO_MAX_PACING_RATE": 1000000, "SO_BINDTOIFINDEX": 1,
    "SO_TXREHASH": 1, "SO_BINDTODEVICE": '"lo"',
    "TCP_NODELAY": 1, "TCP_MAXSEG": 1200, "TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 5,
    "TCP_SYNCNT": 3, "TCP_WINDOW_CLAMP": 65535, "TCP_THIN_LINEAR_TIMEOUTS": 1, "TCP_USER_TIMEOUT": 30000,
    "TCP_NOTSENT_LOWAT": 16384, "TCP_SAVE_SYN": 1, "TCP_BPF_SOCK_OPS_CB_FLAGS": 0, "TCP_BPF_IW": 10,
    "TCP_BPF_SNDCWND_CLAMP": 100, "TCP_BPF_DELACK_MAX": 40000, "TCP_BPF_RTO_MIN": 100000,
    "TCP_CONGESTION": '"reno"', "IP_TOS": 16, "IPV6_TCLASS": 16, "IPV6_AUTOFLOWLABEL": 1,
}
OPTS = list(SO.OPTIONS.values())


def _family(o: SO.SockOpt) -> str:
    return {"SOL_IP": "AF_INET", "SOL_IPV6": "AF_INET6"}.get(SO.LEVELS[o.level], "AF_INET")


def _program(chunk: int = 6) -> str:
    """Several programs of ``chunk`` options each (all attached: each connection runs them all), so that each stays
    within BPF's 512 bytes of stack."""
    lines = ["from pybpfgen.lang import *", "", f"results = Array(value=i64, max_entries={2 * len(OPTS)})"]
    for first in range(0, len(OPTS), chunk):
        lines += ["", "", "@sock_ops", f"def options_{first}(ctx: SockOps) -> int:",
                  "    if ctx.op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:", "        return 1"]
        for i in range(first, min(first + chunk, len(OPTS))):
            o = OPTS[i]
            level = SO.LEVELS[o.level]
            lines.append(f"    if ctx.family == {_family(o)}:")
            lines.append(f"        results.update({2 * i}, bpf_setsockopt(ctx, {level}, {o.name}, {VALUES[o.name]}) + 1000)")
            if o.can_get:
                lines.append(f"        g{i} = bpf_getsockopt(ctx, {level}, {o.name})")
                lines += [f"        if g{i} is not None:", f"            results.update({2 * i + 1}, 1)",
                          "        else:", f"            results.update({2 * i + 1}, 2)"]
        lines.append("    return 1")
    return "\n".join(lines) + "\n"


CONNECT = textwrap.dedent("""
    import os, socket, sys
    with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        srv = socket.socket(family, socket.SOCK_STREAM)
        srv.bind((addr, 0))
        srv.listen(1)
        c = socket.create_connection(srv.getsockname()[:2], timeout=30)
        a, _ = srv.accept()
        c.sendall(b"x")
        assert a.recv(1) == b"x"
""")


def test_every_option_of_the_table_is_accepted_by_the_kernel(tmp_path, pin_root, child_cgroup):
    assert set(VALUES) == {o.name for o in OPTS}, "give a value for each option of the table"
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError as e:
        pytest.fail(f"IPv6 is needed for the SOL_IPV6 options: {e}")
    src = tmp_path / "every_option.py"
    src.write_text(_program())
    r = compile_file(str(src), str(tmp_path / "out"))
    assert r.output, [d.format() for d in r.diagnostics]
    [res] = kl.load(r.output, cgroup=child_cgroup, pin_root=pin_root)
    p = subprocess.run([sys.executable, "-c", CONNECT, child_cgroup], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    got = {e["key"]: e["value"] for e in mapapi.map_dump(res.name, "results", pin_root=pin_root)}
    refused = {}
    for i, o in enumerate(OPTS):
        if got[2 * i] != 1000:  # bpf_setsockopt's result + 1000: 0 for "not run"
            refused[f"set {o.name}"] = got[2 * i] - 1000 if got[2 * i] else "not run"
        if o.can_get and got[2 * i + 1] != 1:
            refused[f"get {o.name}"] = {0: "not run", 2: "None"}.get(got[2 * i + 1], got[2 * i + 1])
    assert not refused, refused


def _allowed_cgroup_types():
    from pybpfgen.target.helpers import HELPERS
    from pybpfgen.target.progtypes import PROG_TYPES

    return sorted(p for p in HELPERS["setsockopt"].progtypes if PROG_TYPES[p].attach == "cgroup")


@pytest.mark.parametrize("progtype", _allowed_cgroup_types())
def test_every_program_type_the_table_allows_loads_and_attaches(tmp_path, pin_root, child_cgroup, progtype):
    """The socket argument is the program's context in every program type the helper table lets call the
    helpers (sock_ops, the cgroup sock_addr hooks), or its socket ``ctx.sk`` where the table says so
    (cgroup_setsockopt: SOCKET_ARG): the verifier agrees."""
    from pybpfgen.target.helpers import SOCKET_ARG
    from pybpfgen.target.progtypes import PROG_TYPES

    sk = "ctx.sk" if progtype in SOCKET_ARG["setsockopt"] else "ctx"

    pt = PROG_TYPES[progtype]
    ret = pt.returns[1] if pt.returns else 1
    src = tmp_path / "one.py"
    src.write_text(textwrap.dedent(f"""
        from pybpfgen.lang import *


        @{progtype}
        def one(ctx: {pt.ctx_class}) -> int:
            bpf_setsockopt({sk}, SOL_SOCKET, SO_MARK, 7)
            m = bpf_getsockopt({sk}, SOL_SOCKET, SO_MARK)
            if m is None:
                return {ret}
            return {ret}
        """))
    r = compile_file(str(src), str(tmp_path / "out"))
    assert r.output, [d.format() for d in r.diagnostics]
    [res] = kl.load(r.output, cgroup=child_cgroup, pin_root=pin_root)
    assert {p.attach_mode for p in res.programs.values()} == {"link"}
