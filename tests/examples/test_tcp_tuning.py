"""examples/gallery/tcp_tuning.py on the real kernel: attached to a private child cgroup, it tunes the loopback
connections of a process in that cgroup to a selected port (TCP_NODELAY, cubic, TCP_NOTSENT_LOWAT, SO_SNDBUF, read
back with getsockopt(2) from user space on both ends), and leaves a connection to another port alone."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader import mapapi
from pybpfgen import testing
from pybpfgen.driver import compile_file
from pybpfgen.target import constants as K

pytestmark = pytest.mark.kernel
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "gallery", "tcp_tuning.py")
CC = "cubic"
LOWAT, SNDBUF = 16384, 1 << 18

# joins the cgroup, listens on two ports (printed), waits for "go", then connects to each and reports, for the
# client and the accepted socket of each, the options as getsockopt(2) sees them
CLIENT = textwrap.dedent("""
    import json, os, socket, sys
    with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    servers = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        servers.append(s)
    print(json.dumps([s.getsockname()[1] for s in servers]), flush=True)
    assert sys.stdin.readline().strip() == "go"

    def opts(s):
        return {"nodelay": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                "cc": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\\0").decode(),
                "lowat": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT),
                "sndbuf": s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)}

    out = {}
    for name, srv in zip(("tuned", "other"), servers):
        c = socket.create_connection(srv.getsockname(), timeout=30)
        a, _ = srv.accept()
        c.sendall(b"ping")
        assert a.recv(4) == b"ping"
        out[name] = {"client": opts(c), "server": opts(a)}
    print(json.dumps(out), flush=True)
""")


def _sysctl(name: str) -> str:
    with open(f"/proc/sys/net/ipv4/{name}") as f:
        return f.read().strip()


def test_the_policy_in_pybpfgen_testing():
    mod = testing.load(EXAMPLE)
    mod.map("tuned_ports").update(6379, {"nodelay": 1, "notsent_lowat": LOWAT, "sndbuf": 0})
    ctx = testing.sock_ops(op=K.BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, local_port=40000, remote_port=6379)
    assert mod.run("tcp_tuning", ctx) == 1
    assert ctx.sockopts == {(K.SOL_TCP, K.TCP_NODELAY): 1, (K.SOL_TCP, K.TCP_CONGESTION): CC,
                            (K.SOL_TCP, K.TCP_NOTSENT_LOWAT): LOWAT}
    other = testing.sock_ops(op=K.BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, local_port=40001, remote_port=6380)
    assert mod.run("tcp_tuning", other) == 1 and other.sockopts == {}
    assert mod.map("stats").lookup(0) == {"tuned": 1, "refused": 0}


def test_tcp_tuning_sets_the_options_of_the_selected_port_only(tmp_path, pin_root, child_cgroup):
    available = _sysctl("tcp_available_congestion_control").split()
    assert CC in available, f"the example sets {CC}: load it first (modprobe tcp_{CC}); available: {available}"
    default_cc = _sysctl("tcp_congestion_control")
    assert default_cc != CC, f"the default congestion control is already {CC}: the test could not tell"
    obj = compile_file(EXAMPLE, str(tmp_path)).output
    assert obj
    [res] = kl.load(obj, cgroup=child_cgroup, pin_root=pin_root)
    assert {p.attach_mode for p in res.programs.values()} == {"link"}

    p = subprocess.Popen([sys.executable, "-c", CLIENT, child_cgroup], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        tuned_port, _other_port = json.loads(p.stdout.readline())
        mapapi.map_set(res.name, "tuned_ports", tuned_port, {"nodelay": 1, "notsent_lowat": LOWAT, "sndbuf": SNDBUF},
                       pin_root=pin_root)
        out, err = p.communicate("go\n", timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    got = json.loads(out.splitlines()[-1])
    # both ends of the connection to the selected port: the server (PASSIVE_ESTABLISHED, its local port) and the
    # client (ACTIVE_ESTABLISHED, its remote port)
    for end in ("client", "server"):
        t = got["tuned"][end]
        assert (t["nodelay"], t["cc"], t["lowat"]) == (1, CC, LOWAT), (end, t)
        assert t["sndbuf"] == 2 * SNDBUF, (end, t)  # the kernel doubles what setsockopt gives it
        o = got["other"][end]
        assert (o["nodelay"], o["cc"]) == (0, default_cc), (end, o)
        assert o["lowat"] != LOWAT and o["sndbuf"] != 2 * SNDBUF, (end, o)
    assert mapapi.map_get(res.name, "stats", 0, pin_root=pin_root) == {"tuned": 2, "refused": 0}
