"""examples/gallery/sk_skb_verdict.py on the kernel: loaded into a private child cgroup and pin root, its sock_ops
program puts the server side of connections to an echo port into the sockhash, and the stream verdict program
echoes what the client sends from inside the kernel (the server process, in the cgroup, never reads it) and counts
the bytes, drops data starting with QUIT; a connection to another port reaches the application. Over loopback."""
import os
import socket
import subprocess
import sys
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader import mapapi
from kernel_loader.elf import parse_object
from pybpfgen.driver import compile_file

pytestmark = pytest.mark.kernel
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "gallery", "sk_skb_verdict.py")

# in the cgroup: listens on two ports; on the plain port it answers "got:<data>", on the echo port it only holds
# the connection (what comes back there is the kernel's echo); prints the ports, then "accepted <client port>" for
# each connection; exits when stdin closes
SERVER = textwrap.dedent("""
    import os, socket, sys, threading
    with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    held = []
    def serve(ls, plain):
        while True:
            c, peer = ls.accept()
            held.append(c)
            print("accepted", peer[1], flush=True)
            if plain:
                c.sendall(b"got:" + c.recv(100))
    ports = []
    for plain in (False, True):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(8)
        ports.append(ls.getsockname()[1])
        threading.Thread(target=serve, args=(ls, plain), daemon=True).start()
    print(*ports, flush=True)
    sys.stdin.read()
""")


def _compile(tmp_path) -> str:
    res = compile_file(EXAMPLE, str(tmp_path))
    assert res.output, [d.format() for d in res.diagnostics]
    return res.output


def test_sections(tmp_path):
    obj = parse_object(_compile(tmp_path))
    assert {p.name: (p.section, p.attach_map) for p in obj.programs} == {
        "add_echo_sockets": ("sockops", None), "echo": ("sk_skb/stream_verdict", "socks")}


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _wait_accepted(server: subprocess.Popen, client: socket.socket) -> None:
    """Until the server has accepted this connection: the kernel runs the verdict program from the socket's
    data-ready callback, which needs the accepted socket; bytes that arrive before accept() wait in the receive
    queue until more data arrives (examples/gallery/sk_skb_verdict.py's docstring)."""
    assert server.stdout.readline().split() == ["accepted", str(client.getsockname()[1])]


def test_echo_port_is_answered_in_the_kernel(tmp_path, pin_root, child_cgroup):
    obj = _compile(tmp_path)
    [res] = kl.load(obj, cgroup=str(child_cgroup), pin_root=pin_root)
    assert res.programs["echo"].attach_target == "map:socks" and res.programs["echo"].attach_mode == "link"
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(child_cgroup)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        echo_port, plain_port = (int(x) for x in server.stdout.readline().split())
        mapapi.map_set(res.name, "echo_ports", echo_port, 0, pin_root=pin_root)
        messages = [b"hello", b"x" * 3000, b"bye"]
        with socket.create_connection(("127.0.0.1", echo_port), timeout=10) as c:
            _wait_accepted(server, c)
            for m in messages:
                c.sendall(m)
                assert _recv_exactly(c, len(m)) == m
            c.sendall(b"QUIT now")             # dropped by the verdict: nothing comes back, nothing counted
            c.settimeout(0.5)
            with pytest.raises(socket.timeout):
                c.recv(100)
            c.settimeout(10)
            c.sendall(b"still here")           # the connection goes on
            assert _recv_exactly(c, 10) == b"still here"
        messages.append(b"still here")
        assert mapapi.map_get(res.name, "echo_ports", echo_port, pin_root=pin_root) == sum(map(len, messages))
        keys = mapapi.map_dump(res.name, "echo_ports", pin_root=pin_root)
        assert [e["key"] for e in keys] == [echo_port]
        # another port: the application reads the data itself
        with socket.create_connection(("127.0.0.1", plain_port), timeout=10) as c:
            _wait_accepted(server, c)
            c.sendall(b"ping")
            assert _recv_exactly(c, 8) == b"got:ping"
        assert mapapi.map_get(res.name, "echo_ports", echo_port, pin_root=pin_root) == sum(map(len, messages))
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    assert kl.unload(res.name, pin_root=pin_root) == [res.name]
