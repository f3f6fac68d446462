"""bench/twin/sockhash_floor.py, the yardstick of `bench/iperf_bench.py --modes ...,floor`, does what the bench says
it does: both ends of a connection to the selected port sit in its sockhash (so their sends and reads go through
tcp_bpf) while every byte takes the TCP path intact, and a connection to another port is left alone."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader import mapapi
from pybpfgen.driver import compile_file

pytestmark = pytest.mark.kernel
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOOR = os.path.join(ROOT, "bench", "twin", "sockhash_floor.py")

# joins the cgroup, listens on two ports (printed), connects to both once told "go", says "connected", then on a
# second "go" moves 1 MiB each way over the connection to the first port and checks every byte
CLIENT = textwrap.dedent("""
    import json, os, socket, sys, threading
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
    pairs = []
    for srv in servers:
        c = socket.create_connection(srv.getsockname(), timeout=30)
        a, _ = srv.accept()
        pairs.append((c, a))
    print("connected", flush=True)
    assert sys.stdin.readline().strip() == "go"
    c, a = pairs[0]
    data = bytes(i * 7 % 251 for i in range(1 << 20))

    def pump(src, dst, out):
        t = threading.Thread(target=src.sendall, args=(data,))
        t.start()
        got = bytearray()
        while len(got) < len(data):
            chunk = dst.recv(65536)
            assert chunk, "connection closed early"
            got += chunk
        t.join()
        out.append(bytes(got) == data)

    ok = []
    pump(c, a, ok)
    pump(a, c, ok)
    print(json.dumps(ok), flush=True)
""")


def test_the_floor_keeps_both_ends_in_its_sockhash_and_passes_every_byte(tmp_path, pin_root, child_cgroup):
    obj = compile_file(FLOOR, str(tmp_path)).output
    assert obj
    [res] = kl.load(obj, cgroup=child_cgroup, pin_root=pin_root)
    p = subprocess.Popen([sys.executable, "-c", CLIENT, child_cgroup], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port, _other = json.loads(p.stdout.readline())
        mapapi.map_set(res.name, "floor_ports", port, 1, pin_root=pin_root)
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "connected"
        # the selected connection's two sockets, nothing of the other one
        assert len(mapapi.map_dump(res.name, "floor_socks", pin_root=pin_root)) == 2
        out, err = p.communicate("go\n", timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == [True, True]


# The kernel fact the floor rests on (docs/accel-design.md, "Why no program-side design does better"): a socket's
# psock keeps the sk_msg program of a map it was in after it leaves that map, for as long as it stays in any
# sockmap; only leaving the last one (which drops the psock, and with it any queued redirected bytes) takes the
# program off its sends.
BOTH_MAPS = textwrap.dedent("""
    from pybpfgen.lang import *


    class Runs(Struct):
        n: u64


    with_prog = SockHash(key=u64, value=u64, max_entries=16)
    plain = SockHash(key=u64, value=u64, max_entries=16)
    ports = Hash(key=u32, value=u32, max_entries=4)
    runs = Array(value=Runs, max_entries=1)


    @sock_ops
    def both_maps(ctx: SockOps) -> int:
        op = ctx.op
        if op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB and op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
            return 1
        if ctx.local_port not in ports and ctx.remote_port not in ports:
            return 1
        cookie = bpf_get_socket_cookie(ctx)
        with_prog.update(ctx, cookie, BPF_ANY)
        plain.update(ctx, cookie, BPF_ANY)
        return 1


    @sk_msg(with_prog)
    def count_runs(msg: SkMsg) -> int:
        r = runs.lookup(0)
        if r is not None:
            r.value.n += 1
        return SK_PASS
""")

# joins the cgroup and listens (port printed); on "go" connects and prints the client's cookie; on each "send"
# moves one 64-byte message client -> server and prints whether it arrived intact
STEPS = textwrap.dedent("""
    import json, os, socket, struct, sys
    with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    print(srv.getsockname()[1], flush=True)
    assert sys.stdin.readline().strip() == "go"
    c = socket.create_connection(srv.getsockname(), timeout=30)
    a, _ = srv.accept()
    a.settimeout(10)
    print(struct.unpack("Q", c.getsockopt(socket.SOL_SOCKET, 57, 8))[0], flush=True)  # SO_COOKIE
    i = 0
    for line in sys.stdin:
        if line.strip() != "send":
            break
        msg = (b"m%d" % i).ljust(64, b".")
        c.sendall(msg)
        got = b""
        while len(got) < len(msg):
            got += a.recv(len(msg) - len(got))
        print(json.dumps(got == msg), flush=True)
        i += 1
""")


def test_a_socket_keeps_the_sk_msg_program_of_a_map_it_left_until_it_leaves_every_map(tmp_path, pin_root,
                                                                                        child_cgroup):
    src = tmp_path / "both_maps.py"
    src.write_text(BOTH_MAPS)
    obj = compile_file(str(src), str(tmp_path)).output
    assert obj
    [res] = kl.load(obj, cgroup=child_cgroup, pin_root=pin_root)

    def runs():
        return mapapi.map_get(res.name, "runs", 0, pin_root=pin_root)["n"]

    p = subprocess.Popen([sys.executable, "-c", STEPS, child_cgroup], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def send() -> bool:
        p.stdin.write("send\n")
        p.stdin.flush()
        return json.loads(p.stdout.readline())

    try:
        mapapi.map_set(res.name, "ports", int(p.stdout.readline()), 1, pin_root=pin_root)
        p.stdin.write("go\n")
        p.stdin.flush()
        cookie = int(p.stdout.readline())
        assert len(mapapi.map_dump(res.name, "with_prog", pin_root=pin_root)) == 2
        assert send() and runs() == 1  # in both maps: the program runs on its send
        assert mapapi.map_delete(res.name, "with_prog", cookie, pin_root=pin_root)
        assert send() and runs() == 2, "out of the program's map, still in the other: the program still runs"
        assert mapapi.map_delete(res.name, "plain", cookie, pin_root=pin_root)
        assert send() and runs() == 2, "out of every map: the psock is gone and the program with it"
        out, err = p.communicate("end\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
