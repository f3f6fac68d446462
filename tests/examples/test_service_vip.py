"""examples/gallery/service_vip.py on the real kernel: a client in a private cgroup connects to a service VIP that
nothing listens on (198.18.200.1:80), reaches the local backend the services map names, exchanges bytes with it,
and getpeername() still says the VIP; a process outside the cgroup is not redirected.

Everything runs in a private network namespace that has only its loopback: the VIP is unroutable there, so a
connect() that is not redirected fails at once (ENETUNREACH) and no packet can leave the host.
"""
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader import mapapi
from kernel_loader.elf import parse_object
from pybpfgen import testing
from pybpfgen.driver import compile_file

pytestmark = pytest.mark.kernel
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "gallery", "service_vip.py")
VIP, VIP_PORT = "198.18.200.1", 80


def ip4(addr: str) -> int:
    """The kernel's u32 of an IPv4 address (network byte order), as programs and maps hold it."""
    return int.from_bytes(socket.inet_aton(addr), "little")


# the backend: outside the cgroup, in the namespace; answers each connection with what it read and the peer it saw
BACKEND = textwrap.dedent("""
    import json, socket, sys
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    print(srv.getsockname()[1], flush=True)
    srv.settimeout(60)
    while True:
        c, peer = srv.accept()
        data = c.recv(1024)
        c.sendall(json.dumps({"got": data.decode(), "peer": list(peer)}).encode())
        c.close()
""")

# a client: connect to the VIP, send a line, read the answer; report getpeername() and what happened
CLIENT = textwrap.dedent("""
    import json, socket, sys
    vip, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket()
    s.settimeout(30)
    try:
        s.connect((vip, port))
    except OSError as e:
        print(json.dumps({"errno": e.errno}))
        sys.exit(0)
    s.sendall(b"hello vip")
    answer = b""
    while True:
        chunk = s.recv(1024)
        if not chunk:
            break
        answer += chunk
    print(json.dumps({"peer": list(s.getpeername()), "local": list(s.getsockname()), "answer": json.loads(answer)}))
""")


# a connected UDP socket: connect() to the VIP, then to the backend's own address (connect() again is allowed)
UDP_CLIENT = textwrap.dedent("""
    import json, socket, sys
    vip, port, backend = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((vip, port))
    first = list(s.getpeername())
    s.connect(("127.0.0.1", backend))
    print(json.dumps({"vip": first, "direct": list(s.getpeername())}))
""")


@pytest.fixture
def netns(kernel_env):
    import kharness
    ns = f"pbg-vip-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, capture_output=True)
        yield ns
    finally:
        kharness.destroy_netns(ns)


def run_client(netns: str, cgroup=None, script: str = CLIENT, extra: tuple | list = ()) -> dict:
    import kharness
    argv = kharness.wrap_cmd([sys.executable, "-c", script, VIP, str(VIP_PORT), *extra], cgroup=cgroup, netns=netns)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_sections_and_attach_types(tmp_path):
    obj = parse_object(compile_file(EXAMPLE, str(tmp_path)).output)
    got = {p.name: (p.section, p.kind, p.prog_type, p.expected_attach_type) for p in obj.programs}
    assert got == {"to_backend": ("cgroup/connect4", "cgroup_connect4", 18, 10),
                   "show_vip": ("cgroup/getpeername4", "cgroup_getpeername4", 18, 29)}


def test_the_policy_in_pybpfgen_testing():
    mod = testing.load(EXAMPLE)
    mod.map("services").update({"ip4": ip4(VIP), "port": VIP_PORT}, {"ip4": ip4("127.0.0.1"), "port": 8080})
    sock = testing.Socket()
    ctx = testing.connect4(user_ip4=ip4(VIP), user_port=VIP_PORT, sk=sock)
    assert mod.run("to_backend", ctx) == 1
    assert (ctx.user_ip4, ctx.user_port) == (ip4("127.0.0.1"), 8080)
    peer = testing.getpeername4(user_ip4=ip4("127.0.0.1"), user_port=8080, sk=sock)
    assert mod.run("show_vip", peer) == 1 and (peer.user_ip4, peer.user_port) == (ip4(VIP), VIP_PORT)
    # the same (UDP) socket connects again, not to a service: untouched, and its peer is its peer again
    other = testing.connect4(user_ip4=ip4(VIP), user_port=443, sk=sock)
    assert mod.run("to_backend", other) == 1 and (other.user_ip4, other.user_port) == (ip4(VIP), 443)
    peer = testing.getpeername4(user_ip4=ip4(VIP), user_port=443, sk=sock)
    assert mod.run("show_vip", peer) == 1 and (peer.user_ip4, peer.user_port) == (ip4(VIP), 443)
    assert sock.storage == {}


def test_a_client_in_the_cgroup_reaches_the_backend_and_sees_the_vip(tmp_path, pin_root, child_cgroup, netns):
    import kharness
    obj = compile_file(EXAMPLE, str(tmp_path)).output
    [res] = kl.load(obj, cgroup=str(child_cgroup), pin_root=str(pin_root))
    assert {p.attach_mode for p in res.programs.values()} == {"link"}
    assert {p.attach_target for p in res.programs.values()} == {f"cgroup:{child_cgroup}"}

    backend = kharness.spawn([sys.executable, "-c", BACKEND], netns=netns, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        port = int(backend.stdout.readline())
        mapapi.map_set(res.name, "services", {"ip4": ip4(VIP), "port": VIP_PORT},
                       {"ip4": ip4("127.0.0.1"), "port": port}, pin_root=str(pin_root))

        inside = run_client(netns, cgroup=child_cgroup)
        assert "errno" not in inside, f"connect() to the VIP failed in the cgroup: {inside}"
        # the bytes went to the backend and back; the backend saw the client's real loopback address
        assert inside["answer"]["got"] == "hello vip"
        assert inside["answer"]["peer"] == inside["local"] and inside["local"][0] == "127.0.0.1"
        # the application cannot tell: its peer is the VIP it connected to
        assert inside["peer"] == [VIP, VIP_PORT]
        # a UDP socket connected to the VIP, then to the backend's own address: its peer is the VIP, then that
        udp = run_client(netns, cgroup=child_cgroup, script=UDP_CLIENT, extra=[str(port)])
        assert udp == {"vip": [VIP, VIP_PORT], "direct": ["127.0.0.1", port]}, udp

        # outside the cgroup nothing is rewritten: the VIP is unroutable in the namespace
        outside = run_client(netns)
        assert outside == {"errno": 101}, outside  # ENETUNREACH
    finally:
        kharness.kill_proc(backend)
        with contextlib.suppress(Exception):
            kl.unload(res.name, pin_root=str(pin_root))

    # unloaded: the client in the cgroup is not redirected any more
    assert run_client(netns, cgroup=child_cgroup) == {"errno": 101}
