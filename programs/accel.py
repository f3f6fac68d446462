"""Sockmap accelerator for same-host TCP (IPv4, IPv6 and v4-mapped IPv6).

When a TCP connection whose local or remote port is in ``policy_ports`` becomes
established, both of its sockets are paired and put into the ``socks`` sockhash;
``accel_redirect`` then moves each message a paired socket sends straight into its
peer's receive queue, skipping TCP/IP, routing and veth. Safety rules:

* **A socket is identified by its network namespace and its 4-tuple** (``SockId``;
  IPv4 addresses are stored v4-mapped, so IPv4 and dual-stack IPv6 sockets match).
  Identical 4-tuples in different namespaces never share a key.
* **Pairing needs proof.** The client (active side) waits in ``pending``; the server
  (passive side) pairs with it only if their TCP sequence numbers mirror each other
  (client snd_nxt == server rcv_nxt and client rcv_nxt == server snd_nxt): only the
  real peer can match. Two clients waiting under the same tuple pair with nobody.
* **A connection never switches from the TCP path to the redirect path.** Its first
  message decides: a socket that sends before it is paired keeps the TCP path for its
  whole life, so bytes never overtake each other.
* **Bounded memory.** Redirected messages bypass TCP's backpressure, so a sender may
  redirect at most 256 messages / 4 MiB (``settings``)
  while its peer sends nothing; past that (a one-way bulk stream, a slow reader) it
  falls back to the TCP path for good. That switch keeps order: the receiver reads
  its sockmap queue, which holds the older bytes, before its TCP queue.
* **Off the sockhash when nothing can reach it.** A socket in a sockhash sends through
  tcp_bpf, which costs a bulk stream 10-30% even on the TCP path. When a demoted sender's
  peer has never redirected (a one-way stream), the peer is fixed on the TCP path too
  (compare-and-swap, so the two never race) and the sender leaves the sockhash at its
  next RTT sample: its sockmap queue is provably empty, so removing it loses nothing.
  A client that spoke before its server paired leaves with its server unpaired; a client
  whose server never pairs leaves at its first RTT sample. Only the
  compare-and-swap proves "never redirected": a socket whose state was evicted from
  ``conns`` comes back as MODE_UNPAIRED, which proves nothing, and its peer stays.

**Remaining window (issue 11, a kernel bug).** A socket that stays in the sockhash after a demotion
(it may still hold redirected bytes) and sends on the TCP path exposes a concurrent blocking reader to a
spurious EAGAIN: tcp_bpf_recvmsg sleeps once, and the write-space wakeup of the socket's own writer ends that
sleep. The program cannot see when such a socket's sockmap queue is drained, so it cannot take it out earlier;
docs/hazards.md has the measured rates, ``pybpfgen doctor`` reports it (hazard:blocking-recv-eagain), and
docs/upstream-tcp_bpf_recvmsg.md the kernel fix.

A miss (peer gone, not paired) always falls back to the normal TCP path: the sk_msg
program returns SK_PASS whatever happens. Addresses are in network byte order,
ports in host byte order.
"""
from pybpfgen.lang import *

MODE_UNDECIDED = 0  # paired, no message sent yet
MODE_REDIRECT = 1  # messages go to the peer's receive queue
MODE_KERNEL = 2  # messages take the normal TCP path, for the rest of the connection (it has redirected)
MODE_TCP_ONLY = 3  # the TCP path for good, and it never redirected: its peer's sockmap queue stays empty
MODE_RELEASE = 4  # MODE_KERNEL with a MODE_TCP_ONLY peer: nothing can reach it, it leaves the sockhash
MODE_UNPAIRED = 5  # sent while it had no conns entry (before pairing, or after an LRU eviction): the TCP path
#                    for good. Unlike MODE_TCP_ONLY it proves nothing about what the socket redirected before

V4_MAPPED = 0xFFFF0000  # ::ffff:0:0/96, third word in network byte order


class SockId(Struct):
    """One socket: its network namespace and its 4-tuple as it sees it."""

    netns: u64
    local_ip: u32[4]
    remote_ip: u32[4]
    local_port: u32
    remote_port: u32


class Tuple(Struct):
    """A 4-tuple without namespace: how a server finds the client waiting for it."""

    local_ip: u32[4]
    remote_ip: u32[4]
    local_port: u32
    remote_port: u32


class Pending(Struct):
    client: SockId
    snd_nxt: u32
    rcv_nxt: u32
    ambiguous: u32  # another client waits under the same tuple: pair neither


class Conn(Struct):
    peer: SockId
    mode: u32
    unanswered_msgs: u32  # redirected since the peer last sent
    unanswered_bytes: u64


class AccelStats(Struct):
    """Per-CPU counters (``pybpfgen status`` sums them)."""

    redirected: u64  # messages moved straight into the peer socket
    missed: u64  # TCP-path verdicts of inserted sockets (one covers up to 1 GiB of a connection's writes)
    paired: u64  # connections paired (both ends accelerated)
    refused: u64  # pairings refused: ambiguous tuple or sequence numbers that do not mirror
    demoted: u64  # connections moved to the TCP path by the memory budget
    released: u64  # sockets taken out of the sockhash because nothing can be redirected to them any more


socks = SockHash(key=SockId, value=u64, max_entries=65536)
pending = LRUHash(key=Tuple, value=Pending, max_entries=16384)
conns = LRUHash(key=SockId, value=Conn, max_entries=131072)
class Prefix(Struct):
    """An LPM trie key: a prefix of a v4-mapped (IPv4: prefixlen + 96) or IPv6 address."""

    prefixlen: u32
    addr: u32[4]


# Policies (any match accelerates a connection; all empty: nothing is accelerated)
POLICY_LOCAL = 1  # policy_cidrs value: match the socket's local address
POLICY_REMOTE = 2  # ... its remote address (3: either)
policy_ports = Hash(key=u32, value=u32, max_entries=1024)  # `pybpfgen policy add --port N`
policy_cidrs = LPMTrie(key=Prefix, value=u32, max_entries=1024)  # `pybpfgen policy add --cidr NET [--side]`
policy_tuples = Hash(key=Tuple, value=u32, max_entries=65536)  # `pybpfgen policy add --tuple C:P-S:P` (a proxy's)
stats = PerCPUArray(value=AccelStats, max_entries=1)


class Settings(Struct):
    """Tunables, changed at run time (``Map.set(0, {...})`` on the pinned ``settings`` map); 0 = default."""

    max_unanswered_msgs: u32  # default 256
    max_unanswered_kib: u32  # default 4096 (4 MiB)


settings = Array(value=Settings, max_entries=1)
DEFAULT_MAX_UNANSWERED_MSGS = 256
DEFAULT_MAX_UNANSWERED_KIB = 4096


# ------------------------------------------------------------------ identities
def v4_mapped(ip4: u32) -> u32[4]:
    return [0, 0, V4_MAPPED, ip4]


def ops_id(ctx: SockOps) -> SockId:
    me = SockId(netns=bpf_get_netns_cookie(ctx), local_port=ctx.local_port, remote_port=ctx.remote_port)
    # IPv6 first: the verifier explores the fall-through path first, and states recorded on the IPv6 path
    # let it prune the IPv4 one (the other way round it checks everything after this function twice)
    if ctx.family != AF_INET:
        me.local_ip = ctx.local_ip6
        me.remote_ip = ctx.remote_ip6
    else:
        me.local_ip = v4_mapped(ctx.local_ip4)
        me.remote_ip = v4_mapped(ctx.remote_ip4)
    return me


def msg_id(msg: SkMsg) -> SockId:
    me = SockId(netns=bpf_get_netns_cookie(msg), local_port=msg.local_port, remote_port=msg.remote_port)
    if msg.family == AF_INET:
        me.local_ip = v4_mapped(msg.local_ip4)
        me.remote_ip = v4_mapped(msg.remote_ip4)
    else:
        me.local_ip = msg.local_ip6
        me.remote_ip = msg.remote_ip6
    return me


def cidr_matches(addr: u32[4], side: u32) -> bool:
    m = policy_cidrs.lookup(Prefix(128, addr))
    return m is not None and (m.value & side) != 0


def policy_allows(me: SockId, active: bool) -> bool:
    """Is this connection selected by a policy? ``me`` as the socket sees it."""
    if me.local_port in policy_ports or me.remote_port in policy_ports:
        return True
    if cidr_matches(me.local_ip, POLICY_LOCAL) or cidr_matches(me.remote_ip, POLICY_REMOTE):
        return True
    # a proxy's intercepted connections, as their client sees them (client -> original destination)
    if active:
        return Tuple(me.local_ip, me.remote_ip, me.local_port, me.remote_port) in policy_tuples
    return Tuple(me.remote_ip, me.local_ip, me.remote_port, me.local_port) in policy_tuples


def same_socket(a: SockId, b: SockId) -> bool:
    if a.netns != b.netns or a.local_port != b.local_port or a.remote_port != b.remote_port:
        return False
    for i in range(4):
        if a.local_ip[i] != b.local_ip[i] or a.remote_ip[i] != b.remote_ip[i]:
            return False
    return True


def tuple_of(s: SockId) -> Tuple:
    return Tuple(s.local_ip, s.remote_ip, s.local_port, s.remote_port)


def reversed_tuple_of(s: SockId) -> Tuple:
    return Tuple(s.remote_ip, s.local_ip, s.remote_port, s.local_port)


# ------------------------------------------------------------------ counters
def count_redirected():
    s = stats.lookup(0)
    if s is not None:
        s.value.redirected += 1


def count_missed():
    s = stats.lookup(0)
    if s is not None:
        s.value.missed += 1


def count_paired():
    s = stats.lookup(0)
    if s is not None:
        s.value.paired += 1


def count_refused():
    s = stats.lookup(0)
    if s is not None:
        s.value.refused += 1


def count_demoted():
    s = stats.lookup(0)
    if s is not None:
        s.value.demoted += 1


def count_released(sockets: u64):
    s = stats.lookup(0)
    if s is not None:
        s.value.released += sockets


# ------------------------------------------------------------------ sock_ops
def client_established(ctx: SockOps, me: SockId):
    """The active side: insert it and wait for its server to pair with it."""
    key = tuple_of(me)
    if pending.update(key, Pending(client=me, snd_nxt=ctx.snd_nxt, rcv_nxt=ctx.rcv_nxt), BPF_NOEXIST) != 0:
        other = pending.lookup(key)  # the same tuple from another namespace is waiting too
        if other is not None:
            other.value.ambiguous = 1
        count_refused()
        return
    if socks.update(ctx, me, BPF_ANY) != 0:
        pending.delete(key)  # the kernel refuses this socket (e.g. an MPTCP subflow): never pair it
        return
    bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG)


def server_established(ctx: SockOps, me: SockId):
    """The passive side: pair with the waiting client whose sequence numbers mirror ours."""
    key = reversed_tuple_of(me)
    p = pending.lookup(key)
    if p is None:
        return  # the client is not accelerated (outside the cgroup or the policy)
    if p.value.ambiguous != 0 or p.value.snd_nxt != ctx.rcv_nxt or p.value.rcv_nxt != ctx.snd_nxt:
        count_refused()
        return
    client = p.value.client
    pending.delete(key)
    if socks.update(ctx, me, BPF_ANY) != 0:
        return  # the kernel refuses this socket: the client stays unpaired (its messages take the TCP path)
    if conns.update(client, Conn(peer=me, mode=MODE_UNDECIDED), BPF_NOEXIST) != 0:
        # the client already has state, so it keeps its path and we stay unpaired. MODE_UNPAIRED: it sent
        # before this pairing, when it had no peer to redirect to. Then neither end ever redirects, so neither
        # needs the sockhash (and its slower send path): both leave it, their sockmap queues empty
        c = conns.lookup(client)
        if c is not None and c.value.mode == MODE_UNPAIRED:
            socks.delete(me)
            socks.delete(client)
            count_released(2)
        return
    conns.update(me, Conn(peer=client, mode=MODE_UNDECIDED), BPF_ANY)
    bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG)
    count_paired()


def on_rtt_sample(ctx: SockOps, me: SockId):
    """This socket sends on the TCP path (an ACK acknowledged its data): leave the sockhash if released."""
    c = conns.lookup(me)
    if c is not None:
        mode = c.value.mode
        if mode == MODE_UNDECIDED or mode == MODE_REDIRECT:
            return  # may still be released: keep the callback
        if mode == MODE_RELEASE:
            socks.delete(me)
            count_released(1)
        elif mode == MODE_UNPAIRED:
            # a client that spoke before any server paired with it. Still waiting in `pending`: then no server
            # ever paired with it, so nothing was redirected to it, and none will be once it stops waiting
            # (its server, outside the cgroup or the policy, or on another host, may never come)
            key = tuple_of(me)
            p = pending.lookup(key)
            if p is not None and same_socket(p.value.client, me):
                pending.delete(key)
                socks.delete(me)
                count_released(1)
    bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG)  # settled: no more RTT callbacks


def forget(me: SockId):
    conns.delete(me)
    key = tuple_of(me)
    p = pending.lookup(key)
    if p is not None and p.value.client.netns == me.netns:
        pending.delete(key)


@sock_ops
def accel_sockops(ctx: SockOps) -> int:
    op = ctx.op
    if op == BPF_SOCK_OPS_STATE_CB:
        if ctx.args1 != BPF_TCP_CLOSE:
            return 1
    elif op != BPF_SOCK_OPS_RTT_CB and op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB \
            and op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
        return 1
    family = ctx.family
    if family != AF_INET and family != AF_INET6:
        return 1
    me = ops_id(ctx)  # one identity computation for every callback below
    if op == BPF_SOCK_OPS_STATE_CB:
        forget(me)
        return 1
    if op == BPF_SOCK_OPS_RTT_CB:
        on_rtt_sample(ctx, me)
        return 1
    if not policy_allows(me, op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB):
        return 1
    if op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
        client_established(ctx, me)
    else:
        server_established(ctx, me)
    return 1


# ------------------------------------------------------------------ sk_msg
TCP_PATH_APPLY_BYTES = 1 << 30  # once on the TCP path, the program's verdict covers the next GiB


def stay_on_tcp(msg: SkMsg) -> int:
    """The TCP path for this message and, without running the program again, the next GiB of this socket."""
    count_missed()
    bpf_msg_apply_bytes(msg, TCP_PATH_APPLY_BYTES)
    return SK_PASS


@sk_msg(socks)
def accel_redirect(msg: SkMsg) -> int:
    me = msg_id(msg)
    c = conns.lookup(me)
    if c is None:
        # first message before any pairing: this connection keeps the TCP path
        if conns.update(me, Conn(mode=MODE_UNPAIRED), BPF_NOEXIST) == 0:
            return stay_on_tcp(msg)
        c = conns.lookup(me)  # paired at this very moment: decide below
        if c is None:
            return stay_on_tcp(msg)
    mode = c.value.mode
    if mode == MODE_UNDECIDED:
        # the first message decides; compare-and-swap, as the peer may fix us on the TCP path meanwhile
        mode = atomic_cmpxchg(c.value.mode, MODE_UNDECIDED, MODE_REDIRECT)
        if mode == MODE_UNDECIDED:
            mode = MODE_REDIRECT
    if mode != MODE_REDIRECT:
        return stay_on_tcp(msg)
    max_msgs: u32 = DEFAULT_MAX_UNANSWERED_MSGS
    max_kib: u32 = DEFAULT_MAX_UNANSWERED_KIB
    limits = settings.lookup(0)
    if limits is not None:
        if limits.value.max_unanswered_msgs != 0:
            max_msgs = limits.value.max_unanswered_msgs
        if limits.value.max_unanswered_kib != 0:
            max_kib = limits.value.max_unanswered_kib
    peer = c.value.peer
    if c.value.unanswered_msgs >= max_msgs or c.value.unanswered_bytes >= u64(max_kib) << 10:
        c.value.mode = MODE_KERNEL  # the peer is not answering: TCP backpressure from now on
        count_demoted()
        pc = conns.lookup(peer)
        if pc is not None:
            # a peer that never redirected is fixed on the TCP path: then nothing can reach us any more. An LRU
            # element can be reused for another socket's entry at any moment, so the entry must still be our
            # peer's after the compare-and-swap (a stranger's entry fixed on the TCP path only costs it speed)
            was = atomic_cmpxchg(pc.value.mode, MODE_UNDECIDED, MODE_TCP_ONLY)
            if (was == MODE_UNDECIDED or was == MODE_TCP_ONLY) and same_socket(pc.value.peer, me):
                c.value.mode = MODE_RELEASE  # leave the sockhash at the next RTT sample (on_rtt_sample)
        return stay_on_tcp(msg)
    if socks.redirect(msg, peer, BPF_F_INGRESS) != SK_PASS:
        c.value.mode = MODE_KERNEL  # the peer is gone
        return stay_on_tcp(msg)
    c.value.unanswered_msgs += 1
    c.value.unanswered_bytes += msg.size
    pc = conns.lookup(peer)  # this message answers the peer's
    if pc is not None:
        pc.value.unanswered_msgs = 0
        pc.value.unanswered_bytes = 0
    count_redirected()
    return SK_PASS
