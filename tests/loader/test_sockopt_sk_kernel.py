"""bpf_setsockopt / bpf_getsockopt from the cgroup setsockopt hook, where the kernel (bpf_sk_setsockopt) takes the
context's socket ``ctx.sk`` rather than the context: a program that, when the application sets SO_SNDBUF on a TCP
socket, also turns TCP_NODELAY on (and reads it back), checked from user space with getsockopt on a real loopback
socket of a process in a private cgroup; the same socket outside the cgroup is left alone."""
import subprocess
import sys
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader import mapapi
from pybpfgen.driver import compile_file

pytestmark = pytest.mark.kernel

PROGRAM = """
from pybpfgen.lang import *

seen = Array(value=i64, max_entries=2)


@cgroup_setsockopt
def nodelay_with_sndbuf(ctx: SockOpt) -> int:
    if ctx.level == SOL_SOCKET and ctx.optname == SO_SNDBUF:
        seen.update(0, bpf_setsockopt(ctx.sk, SOL_TCP, TCP_NODELAY, 1) + 1000)
        nd = bpf_getsockopt(ctx.sk, SOL_TCP, TCP_NODELAY)
        if nd is not None:
            seen.update(1, nd.value + 1000)
    return 1
"""

# prints TCP_NODELAY of a fresh loopback TCP socket before and after setsockopt(SO_SNDBUF), and the SO_SNDBUF
# the kernel then reports (the hook lets the call proceed with the application's value)
CHILD = textwrap.dedent("""
    import os, socket, sys
    if sys.argv[1]:
        with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname()[:2], timeout=30)
    a, _ = srv.accept()
    before = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    after = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    c.sendall(b"x")
    assert a.recv(1) == b"x"
    print(before, after, c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
""")


def _child(cgroup: str) -> list[int]:
    p = subprocess.run([sys.executable, "-c", CHILD, cgroup], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return [int(x) for x in p.stdout.split()]


def test_setsockopt_hook_sets_an_option_on_the_contexts_socket(tmp_path, pin_root, child_cgroup):
    src = tmp_path / "nodelay.py"
    src.write_text(PROGRAM)
    r = compile_file(str(src), str(tmp_path / "out"))
    assert r.output, [d.format() for d in r.diagnostics]
    [res] = kl.load(r.output, cgroup=child_cgroup, pin_root=pin_root)
    before, after, sndbuf = _child(child_cgroup)
    assert (before, after) == (0, 1)
    assert sndbuf == 2 * 65536  # the application's setsockopt went through (the kernel doubles SO_SNDBUF)
    got = {e["key"]: e["value"] for e in mapapi.map_dump(res.name, "seen", pin_root=pin_root)}
    assert got == {0: 1000, 1: 1001}  # bpf_setsockopt returned 0, bpf_getsockopt read 1
    # outside the cgroup the hook does not run: TCP_NODELAY stays off
    assert _child("")[:2] == [0, 0]
