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
