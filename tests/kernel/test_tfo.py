"""TCP Fast Open: data sent in the SYN never races redirected data.

With TFO the client's first bytes travel in the SYN, before any sock_ops callback could insert the client, and
the server's child socket (with its ``PASSIVE_ESTABLISHED`` callback) is created when the SYN arrives, before
the client waits in ``pending``. If such a connection were paired, the client's next message could be
redirected into the server's sockmap queue and read before the older SYN data still in the TCP receive queue.
The accelerator never pairs it: the server finds no client to pair with, and the client, which then sends on
the TCP path, leaves the sockhash at its first RTT sample. Checked on the kernel path and accelerated, in a
private network namespace (``net.ipv4.tcp_fastopen`` is per namespace) and a private cgroup.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import kharness as kh

pytestmark = pytest.mark.kernel

TFO_ALL = 0x207  # client + server enabled, no cookie needed (TFO_CLIENT_NO_COOKIE | TFO_SERVER_COOKIE_NOT_REQD)

WORKER = textwrap.dedent(r'''
    import json, socket, sys, time
    MSG_FASTOPEN = 0x20000000
    port = int(sys.argv[1])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    c = socket.socket()
    c.sendto(b"A" * 1000, MSG_FASTOPEN, ("127.0.0.1", port))   # in the SYN
    s, _ = srv.accept()
    time.sleep(0.2)                  # the server has not read the SYN data yet
    for i in range(20):              # then ping-pong-free messages: redirected if the pair were accelerated
        c.sendall(bytes([0x41 + 1 + i % 25]) * 100)
    s.sendall(b"z" * 10)
    time.sleep(0.2)
    s.settimeout(5)
    got = b""
    while len(got) < 3000:
        k = s.recv(3000 - len(got))
        if not k:
            break
        got += k
    expected = b"A" * 1000 + b"".join(bytes([0x41 + 1 + i % 25]) * 100 for i in range(20))
    c.settimeout(5)
    back = c.recv(10)
    info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    syn_data_acked = bool(info[5] & 0x20)   # tcpi_options & TCPI_OPT_SYN_DATA: the SYN's data was accepted
    print(json.dumps({"in_order": got == expected, "received": len(got), "back": len(back),
                      "syn_data_acked": syn_data_acked}))
''')


@pytest.fixture(scope="module")
def accel_obj(tmp_path_factory):
    return kh.PybpfgenCLI().compile(kh.REPO_ROOT / "programs", tmp_path_factory.mktemp("build"))


def test_tfo_connection_is_never_paired_and_stays_in_order(accel_obj, tmp_path):
    worker = tmp_path / "tfo_worker.py"
    worker.write_text(WORKER)
    with kh.netns_pair("tfo") as ns, kh.child_cgroup("pybpfgen-test") as cg, \
            kh.private_pin_root("pybpfgen-test") as pr:
        subprocess.run(["ip", "netns", "exec", ns.a, "sysctl", "-qw", f"net.ipv4.tcp_fastopen={TFO_ALL}"],
                       check=True)
        cli = kh.PybpfgenCLI(pin_root=pr)
        results = {}
        try:
            for mode in ("kernel", "accel"):
                port = kh.free_port()
                before = None
                if mode == "accel":
                    cli.load(accel_obj, cg)
                    cli.policy_add(port)
                    stats_id = kh.snapshot_accel(cg).map_ids["stats"]
                    before = kh.read_stats(stats_id)
                p = kh.spawn([sys.executable, str(worker), str(port)], cgroup=cg, netns=ns.a,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                try:
                    out, err = p.communicate(timeout=30)
                finally:
                    kh.kill_proc(p)
                assert p.returncode == 0, err
                results[mode] = json.loads(out.strip().splitlines()[-1])
                if before is not None:
                    after = kh.read_stats(stats_id)
                    results["delta"] = {k: after[k] - before[k] for k in after}
        finally:
            cli.unload("accel", check=False)
    for mode in ("kernel", "accel"):
        assert results[mode]["syn_data_acked"], f"TFO was not used: {results}"
        assert results[mode]["in_order"] and results[mode]["received"] == 3000, results
        assert results[mode]["back"] == 10, results
    d = results["delta"]
    assert d["paired"] == 0 and d["redirected"] == 0, d   # never paired: nothing can overtake the SYN data
    assert d["missed"] >= 1, d                              # the client was inserted and its writes passed
