"""The accelerator's decisions, unit-tested in Python with pybpfgen.testing (no root, no kernel).

The same program runs in the kernel in tests/kernel and tests/conformance; pybpfgen.testing interprets it with
the kernel's semantics (tests/compiler/test_differential.py checks that the two agree). Each simulated socket is a
``testing.Socket`` whose cookie is what ``bpf_get_socket_cookie`` returns and which carries its ``sk_state``."""
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
MODE_REDIRECT, MODE_TCP, MODE_SETTLED = 2, 3, 4
INBOX_OPEN, INBOX_FED, INBOX_SEALED = 0, 1, 2
PENDING_WITHDRAWN = 2


@pytest.fixture
def mod():
    m = testing.load(ACCEL)
    m.map("policy_ports").update(6379, 1)
    return m


class Conn:
    """One TCP connection's two simulated sockets and the contexts their programs see."""

    def __init__(self, port=40000, sport=6379, netns=1, isn=1000, peer_isn=5000, ip=LO, rip=LO):
        self.port, self.sport, self.netns, self.isn, self.peer_isn, self.ip, self.rip = \
            port, sport, netns, isn, peer_isn, ip, rip
        self.c, self.s = testing.Socket(), testing.Socket()

    def _ops(self, sock, **kw):
        return testing.sock_ops(family=AF_INET, netns_cookie=self.netns, cookie=sock.cookie, socket=sock, **kw)

    def client(self, **kw):
        return self._ops(self.c, op=ACTIVE, local_ip4=self.ip, remote_ip4=self.rip, local_port=self.port,
                         remote_port=self.sport, snd_nxt=self.isn + 1, rcv_nxt=self.peer_isn + 1, **kw)

    def server(self, isn=None, **kw):
        isn = self.isn if isn is None else isn
        return self._ops(self.s, op=PASSIVE, local_ip4=self.rip, remote_ip4=self.ip, local_port=self.sport,
                         remote_port=self.port, snd_nxt=self.peer_isn + 1, rcv_nxt=isn + 1, **kw)

    def rtt(self, sock):
        return self._ops(sock, op=RTT, **self._tuple(sock))

    def close(self, sock):
        return self._ops(sock, op=STATE, args1=7, **self._tuple(sock))  # BPF_TCP_CLOSE

    def _tuple(self, sock):
        if sock is self.c:
            return dict(local_ip4=self.ip, remote_ip4=self.rip, local_port=self.port, remote_port=self.sport)
        return dict(local_ip4=self.rip, remote_ip4=self.ip, local_port=self.sport, remote_port=self.port)

    def tuple_of(self, sock):
        """The `pending` key as ``sock`` sees its connection (v4-mapped addresses)."""
        t = self._tuple(sock)
        return {"local_ip": V4MAPPED + [t["local_ip4"]], "remote_ip": V4MAPPED + [t["remote_ip4"]],
                "local_port": t["local_port"], "remote_port": t["remote_port"]}

    def msg(self, sock, size=64):
        return testing.sk_msg(family=AF_INET, size=size, netns_cookie=self.netns, cookie=sock.cookie, socket=sock,
                              **self._tuple(sock))

    def establish(self, mod):
        mod.run("accel_sockops", self.client())
        mod.run("accel_sockops", self.server())
        return self


def stats(mod):
    return mod.map("stats").lookup(0)


def target_of(mod, m):
    """The socket a redirected message went to (what sock_hash_update stored), or None."""
    if m.redirect is None:
        return None
    return mod.map("socks").data[m.redirect[1]]


def send(mod, conn, sock, size=64):
    m = conn.msg(sock, size)
    assert mod.run("accel_redirect", m) == SK_PASS  # whatever happens
    return m


def in_socks(mod, sock):
    return any(v is sock for v in mod.map("socks").data.values())


def state(mod, sock):
    return mod.map("sk_state").lookup(sock)


def test_pairing_and_redirect_both_ways(mod):
    k = Conn()
    c, s = k.client(), k.server()
    assert mod.run("accel_sockops", c) == 1 and mod.run("accel_sockops", s) == 1
    assert len(mod.map("socks")) == 2 and stats(mod)["paired"] == 1
    assert len(mod.map("pending")) == 0  # the handshake's entry is consumed
    assert state(mod, k.s)["peer"] == k.c.cookie  # the server knows its peer at once; the client at its first message
    m = send(mod, k, k.c)
    assert target_of(mod, m) is k.s and m.redirect[2] == 1  # BPF_F_INGRESS
    assert state(mod, k.c)["peer"] == k.s.cookie and state(mod, k.c)["joined"] == 1
    r = send(mod, k, k.s)
    assert target_of(mod, r) is k.c
    assert stats(mod)["redirected"] == 2 and stats(mod)["missed"] == 0
    link = mod.map("links").lookup(state(mod, k.s)["link"])
    assert link["inbox"] == [INBOX_FED, INBOX_FED] and link["owner"] & 0xFFFFFFFF == 2  # two references


def test_ports_outside_the_policy_are_left_alone(mod):
    Conn(sport=8080).establish(mod)
    assert len(mod.map("socks")) == 0 and len(mod.map("pending")) == 0


def test_server_with_mismatched_sequence_numbers_is_not_paired(mod):
    k = Conn()
    mod.run("accel_sockops", k.client())
    mod.run("accel_sockops", k.server(isn=999))  # not the client's peer
    assert stats(mod)["paired"] == 0 and stats(mod)["refused"] == 1
    assert len(mod.map("socks")) == 1  # the client only
    assert send(mod, k, k.c).redirect is None


def test_identical_tuples_in_two_namespaces_never_cross(mod):
    # namespace 1: both ends; namespace 2: the client only (its server is outside the cgroup)
    a = Conn(netns=1, isn=1000).establish(mod)
    b = Conn(netns=2, isn=7777, peer_isn=8888)
    mod.run("accel_sockops", b.client())  # same tuple: a's entry was consumed by a's pairing, so b waits
    m2 = send(mod, b, b.c)
    assert m2.redirect is None  # namespace 2's client is never redirected into namespace 1's server
    m1 = send(mod, a, a.c)
    assert target_of(mod, m1) is a.s


def test_two_clients_waiting_under_one_tuple_pair_with_nobody(mod):
    a, b = Conn(netns=1, isn=1000), Conn(netns=2, isn=2000)
    mod.run("accel_sockops", a.client())
    mod.run("accel_sockops", b.client())  # same 4-tuple from another namespace: refused, not inserted
    mod.run("accel_sockops", a.server())  # the waiting entry is ambiguous now
    assert stats(mod)["paired"] == 0 and stats(mod)["refused"] == 2
    assert not in_socks(mod, b.c) and not in_socks(mod, a.s)
    assert send(mod, a, a.c).redirect is None


def test_a_connection_that_sends_before_pairing_keeps_the_tcp_path(mod):
    k = Conn()
    mod.run("accel_sockops", k.client())
    early = send(mod, k, k.c)
    assert early.redirect is None and stats(mod)["missed"] == 1
    # it withdrew from `pending`: its server, established now, is not paired and never inserted
    assert mod.map("pending").lookup({"local_ip": V4MAPPED + [LO], "remote_ip": V4MAPPED + [LO],
                                      "local_port": 40000, "remote_port": 6379})["word"] & 3 == 2  # WITHDRAWN
    mod.run("accel_sockops", k.server())
    assert stats(mod)["paired"] == 0 and not in_socks(mod, k.s)
    later = send(mod, k, k.c)
    assert later.redirect is None  # sticky: never TCP first and redirect after
    rtt = k.rtt(k.c)
    mod.run("accel_sockops", rtt)  # nothing was ever redirected to it: it leaves the sockhash
    assert len(mod.map("socks")) == 0 and len(mod.map("pending")) == 0
    assert stats(mod)["released"] == 1 and rtt.cb_flags == STATE_CB_FLAG


def test_unanswered_budget_moves_a_one_way_stream_to_tcp_for_good(mod):
    k = Conn().establish(mod)
    sent = 0
    while send(mod, k, k.c).redirect is not None:
        sent += 1
        assert sent <= 256
    # 7 windows of 32 in a row with no answer: between 7/8 of the budget and the budget
    assert sent == 224 and stats(mod)["demoted"] == 1 and state(mod, k.c)["mode"] == MODE_TCP
    back = send(mod, k, k.s)  # the server never redirected: the client sealed its own inbox when it was demoted
    assert back.redirect is None and state(mod, k.s)["mode"] == MODE_TCP
    assert send(mod, k, k.c).redirect is None  # an answer does not bring it back
    assert len(mod.map("socks")) == 2
    rtt = k.rtt(k.c)  # the client's TCP-path data is acknowledged
    mod.run("accel_sockops", rtt)
    assert len(mod.map("socks")) == 1 and stats(mod)["released"] == 1 and not in_socks(mod, k.c)
    assert rtt.cb_flags == STATE_CB_FLAG  # settled: no more RTT callbacks
    mod.run("accel_sockops", k.rtt(k.s))  # the server's inbox was fed: it stays, its queue may hold bytes
    assert in_socks(mod, k.s) and stats(mod)["released"] == 1 and state(mod, k.s)["mode"] == MODE_SETTLED


def test_a_client_whose_server_never_pairs_leaves_the_sockhash_after_it_spoke(mod):
    """Its server is outside the cgroup or the policy (or on another host): once the client has sent on the TCP
    path, it stops waiting and leaves the sockhash; a server that shows up later stays unpaired."""
    k = Conn()
    mod.run("accel_sockops", k.client())
    assert len(mod.map("socks")) == 1 and len(mod.map("pending")) == 1
    assert send(mod, k, k.c).redirect is None
    rtt = k.rtt(k.c)
    mod.run("accel_sockops", rtt)
    assert len(mod.map("socks")) == 0 and len(mod.map("pending")) == 0
    assert stats(mod)["released"] == 1 and rtt.cb_flags == STATE_CB_FLAG
    mod.run("accel_sockops", k.server())  # too late: nothing to pair with
    assert len(mod.map("socks")) == 0 and stats(mod)["paired"] == 0
    assert send(mod, k, k.s).redirect is None


def test_a_client_whose_server_redirected_and_closed_before_it_joined_stays(mod):
    """The server redirected into the client and closed before the client's first message: the slot is freed, the
    client joins nothing and takes the TCP path, and `pending` no longer proves anything (claimed and consumed):
    its sockmap queue may hold the server's bytes, so it stays in the sockhash."""
    k = Conn().establish(mod)
    back = send(mod, k, k.s)
    assert target_of(mod, back) is k.c
    mod.run("accel_sockops", k.close(k.s))
    idx = state(mod, k.s)["link"]
    assert mod.map("links").lookup(idx)["owner"] == 0  # the last reference dropped: free
    assert send(mod, k, k.c).redirect is None
    mod.run("accel_sockops", k.rtt(k.c))
    assert in_socks(mod, k.c) and stats(mod)["released"] == 0


def test_a_demoted_sender_whose_peer_redirected_stays_in_the_sockhash(mod):
    """The peer's redirected messages may still sit in this socket's sockmap queue: removing it would drop
    them, so it stays (and keeps tcp_bpf's send path)."""
    k = Conn().establish(mod)
    assert send(mod, k, k.s).redirect is not None
    for _ in range(257):
        send(mod, k, k.c)
    assert stats(mod)["demoted"] == 1
    rtt = k.rtt(k.c)
    mod.run("accel_sockops", rtt)
    assert len(mod.map("socks")) == 2 and stats(mod)["released"] == 0
    assert rtt.cb_flags == STATE_CB_FLAG
    back = send(mod, k, k.s)  # the server keeps redirecting
    assert target_of(mod, back) is k.c


def test_a_peer_that_left_turns_a_first_message_to_tcp(mod):
    """A socket whose inbox was sealed (its peer settled on the TCP path first) is never redirected into."""
    k = Conn().establish(mod)
    for _ in range(225):
        send(mod, k, k.c)
    assert stats(mod)["demoted"] == 1
    mod.run("accel_sockops", k.rtt(k.c))
    assert not in_socks(mod, k.c)
    first = send(mod, k, k.s)
    assert first.redirect is None and state(mod, k.s)["mode"] == MODE_TCP


def test_paired_sockets_ask_for_rtt_samples_and_keep_them_while_redirecting(mod):
    k = Conn()
    c, s = k.client(), k.server()
    mod.run("accel_sockops", c)
    mod.run("accel_sockops", s)
    assert c.cb_flags == s.cb_flags == STATE_CB_FLAG | RTT_CB_FLAG
    send(mod, k, k.c)
    rtt = k.rtt(k.c)
    mod.run("accel_sockops", rtt)
    assert rtt.cb_flags is None and len(mod.map("socks")) == 2


def test_answers_reset_the_budget(mod):
    k = Conn().establish(mod)
    for _ in range(1000):  # ping-pong stays accelerated however long it runs
        a, b = send(mod, k, k.c), send(mod, k, k.s)
        assert a.redirect is not None and b.redirect is not None
    for _ in range(20):  # and so do 200 messages answered by one, however often
        for _ in range(200):
            assert send(mod, k, k.c).redirect is not None
        assert send(mod, k, k.s).redirect is not None
    assert stats(mod)["demoted"] == 0


def test_byte_budget_and_settings(mod):
    mod.map("settings").update(0, {"max_unanswered_msgs": 0, "max_unanswered_kib": 64})
    k = Conn().establish(mod)
    for _ in range(4):  # 64 KiB: each 16 KiB message spends two 8 KiB windows
        assert send(mod, k, k.c, size=16384).redirect is not None
    assert send(mod, k, k.c, size=1).redirect is None and stats(mod)["demoted"] == 1


def test_a_budget_under_eight_messages(mod):
    mod.map("settings").update(0, {"max_unanswered_msgs": 4, "max_unanswered_kib": 0})
    k = Conn().establish(mod)
    sent = 0
    while send(mod, k, k.c).redirect is not None:
        sent += 1
    assert sent == 3 and stats(mod)["demoted"] == 1  # windows of one message: budget - 1 .. budget


def test_the_link_is_freed_by_the_last_close(mod):
    k = Conn().establish(mod)
    send(mod, k, k.c)  # the client joins
    idx = state(mod, k.c)["link"]
    assert mod.map("links").lookup(idx)["owner"] & 0xFFFFFFFF == 2
    mod.run("accel_sockops", k.close(k.c))
    assert mod.map("links").lookup(idx)["owner"] & 0xFFFFFFFF == 1
    assert send(mod, k, k.s).redirect is not None  # the server's slot is still its own
    mod.run("accel_sockops", k.close(k.s))
    assert mod.map("links").lookup(idx)["owner"] == 0
    # the next connection may claim it: slots are found from the client's cookie
    n = Conn(port=40001, isn=3000).establish(mod)
    assert target_of(mod, send(mod, n, n.c)) is n.s


def test_a_waiting_client_that_closes_withdraws(mod):
    k = Conn()
    mod.run("accel_sockops", k.client())
    mod.run("accel_sockops", k.close(k.c))
    assert len(mod.map("pending")) == 0
    mod.run("accel_sockops", k.server())
    assert stats(mod)["paired"] == 0


def test_no_free_slot_leaves_the_connection_on_the_tcp_path(mod):
    k = Conn()
    # every slot a pairing may try (8 from the client's cookie) is taken
    for i in range(8):
        mod.map("links").update((k.c.cookie + i) & 32767, {"owner": 5 << 32 | 1})
    k.establish(mod)
    assert stats(mod)["paired"] == 0 and stats(mod)["refused"] == 1 and not in_socks(mod, k.s)
    # the entry says that no server will redirect into the client: it may leave at its first RTT sample
    assert mod.map("pending").lookup(k.tuple_of(k.c))["word"] == k.c.cookie << 2 | PENDING_WITHDRAWN
    assert send(mod, k, k.c).redirect is None
    mod.run("accel_sockops", k.rtt(k.c))
    assert not in_socks(mod, k.c) and stats(mod)["released"] == 1 and len(mod.map("pending")) == 0


def test_a_client_that_withdrew_and_closes_before_its_rtt_sample_takes_its_entry_along(mod):
    """Its first message found no slot (it withdrew); it closes before an ACK brings an RTT sample: its `pending`
    entry goes with it instead of waiting for LRU eviction."""
    k = Conn()
    mod.run("accel_sockops", k.client())
    assert send(mod, k, k.c).redirect is None
    assert mod.map("pending").lookup(k.tuple_of(k.c))["word"] == k.c.cookie << 2 | PENDING_WITHDRAWN
    mod.run("accel_sockops", k.close(k.c))
    assert len(mod.map("pending")) == 0


def test_a_closing_client_never_takes_another_namespaces_entry(mod):
    """Two clients under one 4-tuple in two namespaces: the first waits, the second is refused (ambiguous); the
    refused one closing leaves the waiting one's entry alone (the entry names its client's cookie)."""
    a, b = Conn(netns=1), Conn(netns=2)
    mod.run("accel_sockops", a.client())
    mod.run("accel_sockops", b.client())
    assert len(mod.map("pending")) == 1
    assert send(mod, b, b.c).redirect is None
    mod.run("accel_sockops", b.close(b.c))
    assert mod.map("pending").lookup(a.tuple_of(a.c))["word"] >> 2 == a.c.cookie


def test_ipv6_and_v4_mapped_pair(mod):
    v6lo = [0, 0, 0, 0x01000000]  # ::1
    c6, s6 = testing.Socket(), testing.Socket()
    c = testing.sock_ops(op=ACTIVE, family=AF_INET6, local_ip6=v6lo, remote_ip6=v6lo, local_port=40000,
                         remote_port=6379, snd_nxt=11, rcv_nxt=21, cookie=c6.cookie, socket=c6)
    s = testing.sock_ops(op=PASSIVE, family=AF_INET6, local_ip6=v6lo, remote_ip6=v6lo, local_port=6379,
                         remote_port=40000, snd_nxt=21, rcv_nxt=11, cookie=s6.cookie, socket=s6)
    mod.run("accel_sockops", c)
    mod.run("accel_sockops", s)
    assert stats(mod)["paired"] == 1
    # an IPv4 client and a dual-stack (AF_INET6, v4-mapped) server
    k = Conn(port=40001, isn=3000, peer_isn=4000)
    dual = testing.sock_ops(op=PASSIVE, family=AF_INET6, local_ip6=V4MAPPED + [LO], remote_ip6=V4MAPPED + [LO],
                            local_port=6379, remote_port=40001, snd_nxt=4001, rcv_nxt=3001, cookie=k.s.cookie,
                            socket=k.s)
    mod.run("accel_sockops", k.client())
    mod.run("accel_sockops", dual)
    assert stats(mod)["paired"] == 2
    assert target_of(mod, send(mod, k, k.c)) is k.s


def test_cidr_policy_sides():
    mod = testing.load(ACCEL)
    other = 0x0200007F  # 127.0.0.2
    # 127.0.0.2/32 as the *remote* address only
    mod.map("policy_cidrs").update({"prefixlen": 128, "addr": V4MAPPED + [other]}, 2)
    mod.run("accel_sockops", Conn(rip=other).client())  # client -> 127.0.0.2: remote matches
    assert len(mod.map("socks")) == 1
    mod2 = testing.load(ACCEL)
    mod2.map("policy_cidrs").update({"prefixlen": 128, "addr": V4MAPPED + [other]}, 1)  # local side only
    mod2.run("accel_sockops", Conn(rip=other).client())
    assert len(mod2.map("socks")) == 0


def test_tuple_policy_selects_one_connection_both_ends():
    mod = testing.load(ACCEL)
    tup = {"local_ip": V4MAPPED + [LO], "remote_ip": V4MAPPED + [LO], "local_port": 40000, "remote_port": 6379}
    mod.map("policy_tuples").update(tup, 1)
    Conn(port=40000).establish(mod)
    assert stats(mod)["paired"] == 1
    mod.run("accel_sockops", Conn(port=40002, isn=50).client())  # another connection to the same server: not listed
    assert len(mod.map("pending")) == 0 and len(mod.map("socks")) == 2
