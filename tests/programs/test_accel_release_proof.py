"""Review of "leaving the sockhash": the release proof must survive LRU eviction (pybpfgen.testing, no kernel).

``MODE_TCP_ONLY`` is read by a demoted sender as proof that its peer never redirected; only the
compare-and-swap writes it. ``conns`` is an LRU hash, so a socket that did redirect can lose its entry
(eviction) and get a fresh one with its next message: that entry is ``MODE_UNPAIRED`` (it used to be
``TCP_ONLY``, and the peer then released itself with the redirected bytes still unread in its sockmap queue,
which the kernel purges when a socket leaves the sockhash). The kernel reproduction is
tests/kernel/test_accel_release_review.py.
"""
import struct

import pytest

from test_accel_logic import (ACCEL, client, msg_from_client, msg_from_server, rtt_sample, server,  # noqa: F401
                              stats, target_of, testing)

MODE_REDIRECT = 1


@pytest.fixture
def mod():
    m = testing.load(ACCEL)
    m.map("policy_ports").update(6379, 1)
    return m


def conns_key(mod, local_port, remote_port):
    for k in mod.map("conns").data:
        if struct.unpack_from("II", k, 40) == (local_port, remote_port):
            return k
    return None


def mode(mod, key):
    return struct.unpack_from("I", mod.map("conns").data[key], 48)[0]


def test_an_evicted_redirecting_peer_is_not_taken_for_one_that_never_redirected(mod):
    mod.run("accel_sockops", client())
    mod.run("accel_sockops", server())
    first = msg_from_server()  # the server redirects: it may sit unread in the client's sockmap queue
    mod.run("accel_redirect", first)
    assert target_of(mod, first) == ("client", 1, 40000)
    srv_key = conns_key(mod, 6379, 40000)
    assert mode(mod, srv_key) == MODE_REDIRECT
    mod.map("conns").data.pop(srv_key)  # the LRU evicts the server's entry
    again = msg_from_server()
    mod.run("accel_redirect", again)  # no entry: a fresh one, on the TCP path
    assert again.redirect is None  # (a fresh MODE_UNPAIRED entry: proves nothing)
    for _ in range(257):  # the client's one-way stream outruns the budget
        mod.run("accel_redirect", msg_from_client())
    assert stats(mod)["demoted"] == 1
    mod.run("accel_sockops", rtt_sample(port=40000, sport=6379))
    # the server's first message may still be in the client's sockmap queue: the client must stay
    assert ("client", 1, 40000) in mod.map("socks").data.values(), \
        f"the client left the sockhash (released={stats(mod)['released']}) with the server's message unread"
