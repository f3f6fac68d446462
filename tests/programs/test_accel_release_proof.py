"""Review of "leaving the sockhash": the release proof holds whatever order the two ends' programs run in
(pybpfgen.testing, no kernel).

A socket may leave the sockhash only when its inbox (``links.inbox[side]``) is SEALED: nothing was and nothing will
be redirected into it. The peer marks the inbox FED by compare-and-swap before its first redirect; the socket
seals it by compare-and-swap when it settles on the TCP path. Whichever runs first wins, and the loser takes the
safe branch (the peer keeps the TCP path, or the socket stays). The slot is never evicted and never re-created
for a connection (its owner word holds a generation and two references), so no stale state can stand in for the
proof — the hazard of the previous design's LRU ``conns`` entries (tests/kernel/test_accel_release_review.py)."""
import pytest

from test_accel_logic import (ACCEL, INBOX_FED, INBOX_SEALED, MODE_TCP, Conn, in_socks, send, state,  # noqa: F401
                              stats, target_of, testing)


@pytest.fixture
def mod():
    m = testing.load(ACCEL)
    m.map("policy_ports").update(6379, 1)
    return m


def demote_client(mod, k):
    while send(mod, k, k.c).redirect is not None:
        pass
    assert stats(mod)["demoted"] == 1


def link(mod, k):
    return mod.map("links").lookup(state(mod, k.s)["link"])


def test_seal_first_then_the_peers_first_message_takes_the_tcp_path(mod):
    k = Conn().establish(mod)
    demote_client(mod, k)  # seals the client's inbox: the server had not redirected
    assert link(mod, k)["inbox"][0] == INBOX_SEALED
    first = send(mod, k, k.s)
    assert first.redirect is None and state(mod, k.s)["mode"] == MODE_TCP
    mod.run("accel_sockops", k.rtt(k.c))
    assert not in_socks(mod, k.c)


def test_peer_first_then_no_seal_and_the_socket_stays(mod):
    k = Conn().establish(mod)
    send(mod, k, k.c)
    assert target_of(mod, send(mod, k, k.s)) is k.c  # FED before its first byte went there
    assert link(mod, k)["inbox"][0] == INBOX_FED
    demote_client(mod, k)
    assert link(mod, k)["inbox"][0] == INBOX_FED  # the seal lost: it stays
    mod.run("accel_sockops", k.rtt(k.c))
    assert in_socks(mod, k.c) and stats(mod)["released"] == 0


def test_a_stale_link_slot_of_another_connection_is_not_joined(mod):
    """A slot whose owner generation or client cookie is another connection's is not this client's, even at the
    index its own cookie points to."""
    k = Conn()
    mod.run("accel_sockops", k.client())
    idx = k.c.cookie & 32767
    gen = ((k.c.cookie + 1) & 0xFFFFFFFF | 1) << 32  # another client's generation
    mod.map("links").update(idx, {"owner": gen | 1, "client": k.c.cookie + 1, "server": 999})
    assert send(mod, k, k.c).redirect is None and state(mod, k.c)["joined"] == 0
