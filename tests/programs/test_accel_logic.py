"""The accelerator's decisions, unit-tested in Python with pybpfgen.testing (no root, no kernel).

The same program runs in the kernel in tests/kernel and tests/conformance; pybpfgen.testing interprets it with
the kernel's semantics (tests/compiler/test_differential.py checks that the two agree)."""
import os

import pytest

from pybpfgen import testing

ACCEL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "programs", "accel.py")
LO = 0x0100007F  # 127.0.0.1 as the kernel's u32 (network byte order)
ACTIVE, PASSIVE, STATE, RTT = 4, 5, 10, 12
STATE_CB_FLAG, RTT_CB_FLAG = 4, 8
AF_INET, AF_INET6 = 2, 10
SK_PASS = 1
V4MAPPED = [0, 0, 0xFFFF0000]


@pytest.fixture
def mod():
    m = testing.load(ACCEL)
    m.map("policy_ports").update(6379, 1)
    return m


def client(port=40000, sport=6379, netns=1, isn=1000, peer_isn=5000, ip=LO, rip=LO, **kw):
    return testing.sock_ops(op=ACTIVE, family=AF_INET, local_ip4=ip, remote_ip4=rip, local_port=port,
                            remote_port=sport, snd_nxt=isn + 1, rcv_nxt=peer_isn + 1, netns_cookie=netns,
                            socket=("client", netns, port), **kw)


def server(port=40000, sport=6379, netns=1, isn=1000, peer_isn=5000, ip=LO, rip=LO, **kw):
    return testing.sock_ops(op=PASSIVE, family=AF_INET, local_ip4=rip, remote_ip4=ip, local_port=sport,
                            remote_port=port, snd_nxt=peer_isn + 1, rcv_nxt=isn + 1, netns_cookie=netns,
                            socket=("server", netns, sport), **kw)


def msg_from_client(port=40000, sport=6379, netns=1, size=64):
    return testing.sk_msg(family=AF_INET, local_ip4=LO, remote_ip4=LO, local_port=port, remote_port=sport,
                          size=size, netns_cookie=netns)


def msg_from_server(port=40000, sport=6379, netns=1, size=64):
    return testing.sk_msg(family=AF_INET, local_ip4=LO, remote_ip4=LO, local_port=sport, remote_port=port,
                          size=size, netns_cookie=netns)


def stats(mod):
    return mod.map("stats").lookup(0)


def target_of(mod, m):
    """The socket a redirected message went to (what sock_hash_update stored), or None."""
    if m.redirect is None:
        return None
    return mod.map("socks").data[m.redirect[1]]


def test_pairing_and_redirect_both_ways(mod):
    assert mod.run("accel_sockops", client()) == 1
    assert mod.run("accel_sockops", server()) == 1
    assert len(mod.map("socks")) == 2 and stats(mod)["paired"] == 1
    m = msg_from_client()
    assert mod.run("accel_redirect", m) == SK_PASS
    assert target_of(mod, m) == ("server", 1, 6379) and m.redirect[2] == 1  # BPF_F_INGRESS
    r = msg_from_server()
    mod.run("accel_redirect", r)
    assert target_of(mod, r) == ("client", 1, 40000)
    assert stats(mod)["redirected"] == 2 and stats(mod)["missed"] == 0


def test_ports_outside_the_policy_are_left_alone(mod):
    mod.run("accel_sockops", client(sport=8080))
    mod.run("accel_sockops", server(sport=8080))
    assert len(mod.map("socks")) == 0 and len(mod.map("pending")) == 0


def test_server_with_mismatched_sequence_numbers_is_not_paired(mod):
    mod.run("accel_sockops", client())
    mod.run("accel_sockops", server(isn=999))  # not the client's peer
    assert stats(mod)["paired"] == 0 and stats(mod)["refused"] == 1
    assert len(mod.map("socks")) == 1  # the client only


def test_identical_tuples_in_two_namespaces_never_cross(mod):
    # namespace 1: both ends; namespace 2: the client only (its server is outside the cgroup)
    mod.run("accel_sockops", client(netns=1, isn=1000))
    mod.run("accel_sockops", server(netns=1, isn=1000))
    mod.run("accel_sockops", client(netns=2, isn=7777, peer_isn=8888))
    m2 = msg_from_client(netns=2)
    mod.run("accel_redirect", m2)
    assert m2.redirect is None  # namespace 2's client is never redirected into namespace 1's server
    m1 = msg_from_client(netns=1)
    mod.run("accel_redirect", m1)
    assert target_of(mod, m1) == ("server", 1, 6379)


def test_two_clients_waiting_under_one_tuple_pair_with_nobody(mod):
    mod.run("accel_sockops", client(netns=1, isn=1000))
    mod.run("accel_sockops", client(netns=2, isn=2000))  # same 4-tuple from another namespace
    mod.run("accel_sockops", server(netns=1, isn=1000))
    assert stats(mod)["paired"] == 0 and stats(mod)["refused"] == 2


def test_a_connection_that_sends_before_pairing_keeps_the_tcp_path(mod):
    mod.run("accel_sockops", client())
    early = msg_from_client()
    mod.run("accel_redirect", early)
    assert early.redirect is None and stats(mod)["missed"] == 1
    mod.run("accel_sockops", server())  # would pair now, but the client already chose the TCP path
    later = msg_from_client()
    mod.run("accel_redirect", later)
    assert later.redirect is None  # sticky: never TCP first and redirect after
    # nobody ever redirects to either end, so both left the sockhash (and its slower send path)
    assert len(mod.map("socks")) == 0
    assert stats(mod)["paired"] == 0 and stats(mod)["released"] == 2
    back = msg_from_server()
    mod.run("accel_redirect", back)
    assert back.redirect is None


def test_unanswered_budget_moves_a_one_way_stream_to_tcp_for_good(mod):
    mod.run("accel_sockops", client())
    mod.run("accel_sockops", server())
    for _ in range(256):
        m = msg_from_client()
        mod.run("accel_redirect", m)
        assert m.redirect is not None
    m = msg_from_client()
    mod.run("accel_redirect", m)
    assert m.redirect is None and stats(mod)["demoted"] == 1
    back = msg_from_server()
    mod.run("accel_redirect", back)  # the server had never redirected: it was fixed on the TCP path
    assert back.redirect is None
    m = msg_from_client()
    mod.run("accel_redirect", m)
    assert m.redirect is None  # an answer does not bring it back
    assert len(mod.map("socks")) == 2
    rtt = rtt_sample(port=40000, sport=6379)  # the client's TCP-path data is acknowledged
    mod.run("accel_sockops", rtt)
    assert len(mod.map("socks")) == 1 and stats(mod)["released"] == 1
    assert ("client", 1, 40000) not in mod.map("socks").data.values()
    assert rtt.cb_flags == STATE_CB_FLAG  # settled: no more RTT callbacks


def rtt_sample(port, sport, netns=1):
    return testing.sock_ops(op=RTT, family=AF_INET, local_ip4=LO, remote_ip4=LO, local_port=port,
                            remote_port=sport, netns_cookie=netns)


def test_a_client_whose_server_never_pairs_leaves_the_sockhash_after_it_spoke(mod):
    """Its server is outside the cgroup or the policy (or on another host): once the client has sent on the TCP
    path, it stops waiting and leaves the sockhash; a server that shows up later stays unpaired."""
    mod.run("accel_sockops", client())
    assert len(mod.map("socks")) == 1 and len(mod.map("pending")) == 1
    early = msg_from_client()
    mod.run("accel_redirect", early)
    assert early.redirect is None
    rtt = rtt_sample(port=40000, sport=6379)
    mod.run("accel_sockops", rtt)
    assert len(mod.map("socks")) == 0 and len(mod.map("pending")) == 0
    assert stats(mod)["released"] == 1 and rtt.cb_flags == STATE_CB_FLAG
    mod.run("accel_sockops", server())  # too late: nothing to pair with
    assert len(mod.map("socks")) == 0 and stats(mod)["paired"] == 0
    back = msg_from_server()
    mod.run("accel_redirect", back)
    assert back.redirect is None


def test_a_paired_client_whose_entry_was_evicted_stays(mod):
    """A paired client's conns entry evicted and re-created (MODE_UNPAIRED): it is no longer in `pending`, and
    its server may have redirected to it, so it must stay in the sockhash."""
    mod.run("accel_sockops", client())
    mod.run("accel_sockops", server())
    back = msg_from_server()
    mod.run("accel_redirect", back)
    assert target_of(mod, back) == ("client", 1, 40000)
    ckey = next(k for k, v in mod.map("socks").data.items() if v == ("client", 1, 40000))
    mod.map("conns").data.pop(ckey)  # the LRU evicts the client's entry
    mod.run("accel_redirect", msg_from_client())  # re-created as MODE_UNPAIRED, TCP path
    mod.run("accel_sockops", rtt_sample(port=40000, sport=6379))
    assert ("client", 1, 40000) in mod.map("socks").data.values() and stats(mod)["released"] == 0


def test_a_demoted_sender_whose_peer_redirected_stays_in_the_sockhash(mod):
    """The peer's redirected messages may still sit in this socket's sockmap queue: removing it would drop
    them, so it stays (and keeps tcp_bpf's send path)."""
    mod.run("accel_sockops", client())
    mod.run("accel_sockops", server())
    first = msg_from_server()
    mod.run("accel_redirect", first)
    assert first.redirect is not None
    for _ in range(257):
        mod.run("accel_redirect", msg_from_client())
    assert stats(mod)["demoted"] == 1
    rtt = rtt_sample(port=40000, sport=6379)
    mod.run("accel_sockops", rtt)
    assert len(mod.map("socks")) == 2 and stats(mod)["released"] == 0
    assert rtt.cb_flags == STATE_CB_FLAG
    back = msg_from_server()
    mod.run("accel_redirect", back)  # the server keeps redirecting
    assert target_of(mod, back) == ("client", 1, 40000)


def test_paired_sockets_ask_for_rtt_samples_and_keep_them_while_redirecting(mod):
    c, s = client(), server()
    mod.run("accel_sockops", c)
    mod.run("accel_sockops", s)
    assert c.cb_flags == s.cb_flags == STATE_CB_FLAG | RTT_CB_FLAG
    mod.run("accel_redirect", msg_from_client())
    rtt = rtt_sample(port=40000, sport=6379)
    mod.run("accel_sockops", rtt)
    assert rtt.cb_flags is None and len(mod.map("socks")) == 2


def test_answers_reset_the_budget(mod):
    mod.run("accel_sockops", client())
    mod.run("accel_sockops", server())
    for _ in range(1000):  # ping-pong stays accelerated however long it runs
        a, b = msg_from_client(), msg_from_server()
        mod.run("accel_redirect", a)
        mod.run("accel_redirect", b)
        assert a.redirect is not None and b.redirect is not None
    assert stats(mod)["demoted"] == 0


def test_byte_budget_and_settings(mod):
    mod.map("settings").update(0, {"max_unanswered_msgs": 0, "max_unanswered_kib": 64})
    mod.run("accel_sockops", client())
    mod.run("accel_sockops", server())
    for _ in range(4):
        m = msg_from_client(size=16384)
        mod.run("accel_redirect", m)
        assert m.redirect is not None
    m = msg_from_client(size=1)
    mod.run("accel_redirect", m)
    assert m.redirect is None and stats(mod)["demoted"] == 1


def test_state_is_forgotten_on_close(mod):
    mod.run("accel_sockops", client())
    mod.run("accel_sockops", server())
    assert len(mod.map("conns")) == 2
    close = testing.sock_ops(op=STATE, family=AF_INET, local_ip4=LO, remote_ip4=LO, local_port=40000,
                             remote_port=6379, args1=7, netns_cookie=1)  # BPF_TCP_CLOSE
    mod.run("accel_sockops", close)
    assert len(mod.map("conns")) == 1


def test_ipv6_and_v4_mapped_pair(mod):
    v6lo = [0, 0, 0, 0x01000000]  # ::1
    c = testing.sock_ops(op=ACTIVE, family=AF_INET6, local_ip6=v6lo, remote_ip6=v6lo, local_port=40000,
                         remote_port=6379, snd_nxt=11, rcv_nxt=21, netns_cookie=1, socket="c6")
    s = testing.sock_ops(op=PASSIVE, family=AF_INET6, local_ip6=v6lo, remote_ip6=v6lo, local_port=6379,
                         remote_port=40000, snd_nxt=21, rcv_nxt=11, netns_cookie=1, socket="s6")
    mod.run("accel_sockops", c)
    mod.run("accel_sockops", s)
    assert stats(mod)["paired"] == 1
    # an IPv4 client and a dual-stack (AF_INET6, v4-mapped) server
    c4 = client(port=40001, isn=3000, peer_isn=4000)
    s6 = testing.sock_ops(op=PASSIVE, family=AF_INET6, local_ip6=V4MAPPED + [LO], remote_ip6=V4MAPPED + [LO],
                          local_port=6379, remote_port=40001, snd_nxt=4001, rcv_nxt=3001, netns_cookie=1,
                          socket="dual")
    mod.run("accel_sockops", c4)
    mod.run("accel_sockops", s6)
    assert stats(mod)["paired"] == 2
    m = msg_from_client(port=40001)
    mod.run("accel_redirect", m)
    assert target_of(mod, m) == "dual"


def test_cidr_policy_sides():
    mod = testing.load(ACCEL)
    other = 0x0200007F  # 127.0.0.2
    # 127.0.0.2/32 as the *remote* address only
    mod.map("policy_cidrs").update({"prefixlen": 128, "addr": V4MAPPED + [other]}, 2)
    mod.run("accel_sockops", client(rip=other))  # client -> 127.0.0.2: remote matches
    assert len(mod.map("socks")) == 1
    mod2 = testing.load(ACCEL)
    mod2.map("policy_cidrs").update({"prefixlen": 128, "addr": V4MAPPED + [other]}, 1)  # local side only
    mod2.run("accel_sockops", client(rip=other))
    assert len(mod2.map("socks")) == 0


def test_tuple_policy_selects_one_connection_both_ends():
    mod = testing.load(ACCEL)
    tup = {"local_ip": V4MAPPED + [LO], "remote_ip": V4MAPPED + [LO], "local_port": 40000, "remote_port": 6379}
    mod.map("policy_tuples").update(tup, 1)
    mod.run("accel_sockops", client(port=40000))
    mod.run("accel_sockops", server(port=40000))
    assert stats(mod)["paired"] == 1
    mod.run("accel_sockops", client(port=40002, isn=50))  # another connection to the same server: not listed
    assert len(mod.map("pending")) == 0 and len(mod.map("socks")) == 2
