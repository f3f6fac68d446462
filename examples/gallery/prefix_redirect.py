"""A redirect chosen by the message's first bytes: requests that start with ``PRIO`` go to a priority service.

The cgroup's clients talk to a front service (``front_port``). Every message a client sends to it is looked at by
an sk_msg program before it leaves: one that starts with the 4 bytes ``PRIO`` is redirected into the socket of the
priority service's connection (``prio_port``: the server side of the connection a priority worker opened), as if
its client had sent it there; one that starts with ``DROP`` is refused (the client's ``send()`` fails with EACCES;
on Linux 6.18 the kernel keeps that verdict for the socket: its later sends fail too, without the program running
again); the others take the normal TCP path to the front service. ``stats`` counts the three outcomes.

sock_ops puts two kinds of sockets into the sockhash ``socks``: the clients' connections to the front service
(key: their local port, so that the sk_msg program runs on what they send) and the priority service's side of its
connection (key 0: the redirect's target). The message's bytes are read through a checked view:
``msg.bytes(0, 4)`` is None for a message shorter than 4 bytes (or whose first piece is), which takes the normal
path.

    pybpfgen compile examples/gallery/prefix_redirect.py -o build/
    pybpfgen load build/prefix_redirect.bpf.o --cgroup /sys/fs/cgroup/unified/app --set front_port=8080 \\
        --set prio_port=8081
    pybpfgen map dump prefix_redirect stats                 # [redirected, dropped, passed]
"""
from pybpfgen.lang import *

PRIO = 0x5052494F  # b"PRIO" read as a big-endian u32
DROP = 0x44524F50  # b"DROP"
PRIO_KEY = 0  # the priority service's socket in `socks` (clients are keyed by their local port, never 0)
REDIRECTED = 0  # stats: messages redirected, refused, let through
DROPPED = 1
PASSED = 2

front_port = Config(u32, 0)
prio_port = Config(u32, 0)

socks = SockHash(key=u32, max_entries=1024)
stats = Array(value=u64, max_entries=3)


def count(i: u32) -> None:
    c = stats.lookup(i)
    if c is not None:
        atomic_add(c.value, 1)


@sock_ops
def track(ctx: SockOps) -> int:
    op = ctx.op
    if op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB and ctx.local_port == prio_port.value:
        socks.update(ctx, u32(PRIO_KEY))
    elif op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB and ctx.remote_port == front_port.value:
        socks.update(ctx, ctx.local_port)
    return 1


@sk_msg(socks)
def by_prefix(msg: SkMsg) -> int:
    if msg.remote_port != front_port.value:
        return SK_PASS  # the priority service's own traffic
    head = msg.bytes(0, 4)
    if head is not None:
        word = head.u32be(0)
        if word == PRIO:
            count(REDIRECTED)
            return socks.redirect(msg, u32(PRIO_KEY), BPF_F_INGRESS)
        if word == DROP:
            count(DROPPED)
            return SK_DROP
    count(PASSED)
    return SK_PASS
