"""Sockmap accelerator for same-host TCP (IPv4, IPv6 and v4-mapped IPv6).

When a TCP connection whose local or remote port is in ``policy_ports`` (or whose address is in ``policy_cidrs``,
or which ``policy_tuples`` names) becomes established, both of its sockets are paired and put into the ``socks``
sockhash, keyed by their socket cookies; ``accel_redirect`` then moves each message a paired socket sends straight
into its peer's receive queue, skipping TCP/IP, routing and veth. Each socket's own state lives in socket-local
storage (``sk_state``: its path, its peer's key, its budget), freed with the socket and never evicted; what the two
ends share lives in a ``links`` slot. docs/accel-design.md has the design. Safety rules:

* **A socket is identified by its cookie**, unique across network namespaces and never reused: identical 4-tuples
  in different namespaces never share a key.
* **Pairing needs proof.** The client (active side) waits in ``pending`` under its 4-tuple; the server (passive
  side) pairs with it only if their TCP sequence numbers mirror each other (client snd_nxt == server rcv_nxt and
  client rcv_nxt == server snd_nxt): only the real peer can match. Two clients waiting under the same tuple pair
  with nobody. The server claims the client (compare-and-swap of the entry's word, which holds the client's
  cookie and its state: it fails against the client withdrawing and against an LRU element reused meanwhile) and a
  ``links`` slot; the client joins the slot at its first message.
* **A connection never switches from the TCP path to the redirect path.** Each direction's first message decides:
  a socket that sends before it is paired keeps the TCP path for its whole life, so bytes never overtake each other.
* **Bounded memory.** Redirected messages bypass TCP's backpressure, so a sender may redirect at most 256 messages /
  4 MiB (``settings``) while its peer sends nothing, counted in 8 windows (each side publishes its count in its own
  cache line of the slot and looks at its peer's once per window): 7 silent windows in a row (between 7/8 of the
  budget and the budget) and it falls back to the TCP path for good. That switch keeps order: the receiver reads
  its sockmap queue, which holds the older bytes, before its TCP queue.
* **Off the sockhash only when provably empty.** A socket in a sockhash sends through tcp_bpf, which costs a bulk
  stream 10-30% even on the TCP path. ``links.inbox[side]`` says whether anything may be redirected into a side:
  a sender marks its peer's inbox FED (compare-and-swap) before its first redirect; a socket on the TCP path for
  good seals its own inbox if it is still OPEN (and its peer's, if it never redirected). A socket whose inbox is
  sealed leaves the sockhash at its next RTT sample: its sockmap queue is empty and stays so. A client that never
  joined a slot leaves after withdrawing its ``pending`` entry (no server can claim it any more).

**Remaining window (issue 11, a kernel bug).** A socket whose inbox is FED stays in the sockhash while it may hold
redirected bytes; if it then sends on the TCP path, a concurrent blocking reader can get a spurious EAGAIN:
tcp_bpf_recvmsg sleeps once, and the write-space wakeup of the socket's own writer ends that sleep. No program can
see when such a socket's sockmap queue is drained (neither context exposes the reader's progress), so it cannot
take it out earlier; docs/hazards.md has the measured rates, ``pybpfgen doctor`` reports it
(hazard:blocking-recv-eagain), and docs/upstream-tcp_bpf_recvmsg.md the kernel fix.

A miss (peer gone, not paired, no free slot) always falls back to the normal TCP path: the sk_msg program returns
SK_PASS whatever happens. Addresses are in network byte order, ports in host byte order.
"""
from pybpfgen.lang import *

# a socket's path (sk_state.mode); written only by its own programs, which its socket lock serializes
MODE_WAITING = 0  # a client inserted at ESTABLISHED; it learns its peer at its first message
MODE_UNDECIDED = 1  # a paired server, no message sent yet
MODE_REDIRECT = 2  # messages go to the peer's receive queue
MODE_TCP = 3  # the TCP path for good (it sent before pairing, its peer sealed it, the budget, peer gone)
MODE_SETTLED = 4  # the TCP path for good, and the release was decided (it left, or it can never prove it may)

# links[i].inbox[side]: what may be redirected into that side's sockmap queue (compare-and-swap only)
INBOX_OPEN = 0  # nothing redirected into it yet; its peer may start
INBOX_FED = 1  # its peer redirected (or is about to): its queue may hold bytes
INBOX_SEALED = 2  # nothing was and nothing will be redirected into it: it may leave the sockhash

# the state in pending.word (its low 2 bits)
PENDING_WAITING = 0
PENDING_CLAIMED = 1  # a server with mirrored sequence numbers paired with it
PENDING_WITHDRAWN = 2  # the client stopped waiting: a server that comes later stays unpaired
PENDING_AMBIGUOUS = 3  # another client waits under the same tuple: pair neither

SIDE_CLIENT = 0
SIDE_SERVER = 1

LINKS = 32768  # connections accelerated at once (the sockhash holds 65536 sockets)
LINK_PROBES = 8  # slots a pairing tries
NO_LINK = 0xFFFFFFFF
LINK_BUSY = 1  # owner word while the server fills a slot in: nobody can join
WINDOWS = 8  # budget windows; WINDOWS - 1 silent ones in a row demote

V4_MAPPED = 0xFFFF0000  # ::ffff:0:0/96, third word in network byte order


class Tuple(Struct):
    """A 4-tuple without namespace: how a server finds the client waiting for it (handshake only)."""

    local_ip: u32[4]
    remote_ip: u32[4]
    local_port: u32
    remote_port: u32


class Pending(Struct):
    # (the client's cookie << 2) | its PENDING_ state: identity and state in one word, so that every
    # compare-and-swap on it also checks whose entry it is (an LRU element can be freed and reused at any time)
    word: u64
    snd_nxt: u32
    rcv_nxt: u32


class SockState(Struct):
    """One socket's own state (socket-local storage)."""

    cookie: u64  # its own key in `socks` (sk_msg cannot compute a cookie)
    peer: u64  # its peer's key in `socks`; 0 until known
    sent: u64  # messages it redirected (published in its line of the link)
    peer_seen: u64  # its peer's published count at the end of the last window
    credit_bytes: i64  # what the current budget window has left
    credit_msgs: u32
    silent: u32  # windows in a row in which its peer sent nothing
    mode: u32
    side: u32
    link: u32  # its slot in `links`
    joined: u32  # it holds a reference on that slot


class Published(Struct):
    sent: u64
    pad: u64[7]  # a cache line of its own: one side writes it per message, the other reads it per window


class Link(Struct):
    """What the two ends of a connection share (one slot of an array: no hashing per message)."""

    owner: u64  # 0 free; LINK_BUSY being filled in; else (generation << 32) | references
    client: u64  # the client's cookie
    server: u64  # the server's cookie: how the client learns its peer
    inbox: u32[2]  # per side
    pad: u64[4]
    pub: Published[2]  # per side


class AccelStats(Struct):
    """Per-CPU counters (``pybpfgen status`` sums them)."""

    redirected: u64  # messages moved straight into the peer socket
    missed: u64  # TCP-path verdicts of inserted sockets (one covers up to 1 GiB of a connection's writes)
    paired: u64  # connections paired (both ends accelerated)
    refused: u64  # pairings refused: ambiguous tuple, sequence numbers that do not mirror, no free slot
    demoted: u64  # connections moved to the TCP path by the memory budget
    released: u64  # sockets taken out of the sockhash because nothing can be redirected to them any more


class Prefix(Struct):
    """An LPM trie key: a prefix of a v4-mapped (IPv4: prefixlen + 96) or IPv6 address."""

    prefixlen: u32
    addr: u32[4]


class Settings(Struct):
    """Tunables, changed at run time (``Map.set(0, {...})`` on the pinned ``settings`` map); 0 = default."""

    max_unanswered_msgs: u32  # default 256
    max_unanswered_kib: u32  # default 4096 (4 MiB)


class Window(Struct):
    """One budget window: its share of the budget, and how many windows the budget has."""

    msgs: u32
    windows: u32
    bytes: i64


socks = SockHash(key=u64, value=u64, max_entries=65536)
sk_state = SkStorage(value=SockState)
pending = LRUHash(key=Tuple, value=Pending, max_entries=16384)
links = Array(value=Link, max_entries=LINKS)

# Policies (any match accelerates a connection; all empty: nothing is accelerated)
POLICY_LOCAL = 1  # policy_cidrs value: match the socket's local address
POLICY_REMOTE = 2  # ... its remote address (3: either)
policy_ports = Hash(key=u32, value=u32, max_entries=1024)  # `pybpfgen policy add --port N`
policy_cidrs = LPMTrie(key=Prefix, value=u32, max_entries=1024)  # `pybpfgen policy add --cidr NET [--side]`
policy_tuples = Hash(key=Tuple, value=u32, max_entries=65536)  # `pybpfgen policy add --tuple C:P-S:P` (a proxy's)
stats = PerCPUArray(value=AccelStats, max_entries=1)
settings = Array(value=Settings, max_entries=1)
DEFAULT_MAX_UNANSWERED_MSGS = 256
DEFAULT_MAX_UNANSWERED_KIB = 4096


# ------------------------------------------------------------------ identities (sock_ops only)
def v4_mapped(ip4: u32) -> u32[4]:
    return [0, 0, V4_MAPPED, ip4]


def ops_tuple(ctx: SockOps) -> Tuple:
    """The 4-tuple as this socket sees it."""
    me = Tuple(local_port=ctx.local_port, remote_port=ctx.remote_port)
    # IPv6 first: the verifier explores the fall-through path first, and states recorded on the IPv6 path
    # let it prune the IPv4 one
    if ctx.family != AF_INET:
        me.local_ip = ctx.local_ip6
        me.remote_ip = ctx.remote_ip6
    else:
        me.local_ip = v4_mapped(ctx.local_ip4)
        me.remote_ip = v4_mapped(ctx.remote_ip4)
    return me


def reversed_tuple(s: Tuple) -> Tuple:
    return Tuple(s.remote_ip, s.local_ip, s.remote_port, s.local_port)


def cidr_matches(addr: u32[4], side: u32) -> bool:
    m = policy_cidrs.lookup(Prefix(128, addr))
    return m is not None and (m.value & side) != 0


def policy_allows(me: Tuple, active: bool) -> bool:
    """Is this connection selected by a policy? ``me`` as the socket sees it."""
    if me.local_port in policy_ports or me.remote_port in policy_ports:
        return True
    if cidr_matches(me.local_ip, POLICY_LOCAL) or cidr_matches(me.remote_ip, POLICY_REMOTE):
        return True
    # a proxy's intercepted connections, as their client sees them (client -> original destination)
    if active:
        return me in policy_tuples
    return reversed_tuple(me) in policy_tuples


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


def count_released():
    s = stats.lookup(0)
    if s is not None:
        s.value.released += 1


# ------------------------------------------------------------------ links
def link_generation(client: u64) -> u64:
    return ((client & 0xFFFFFFFF) | 1) << 32  # never 0: an owned slot's word is never LINK_BUSY


def claim_link(client: u64, server: u64) -> u32:
    """The server's pairing: a free slot near the client's cookie, filled in before anyone can join it."""
    for i in range(LINK_PROBES):
        idx: u32 = (u32(client) + i) & (LINKS - 1)
        l = links.lookup(idx)
        if l is None or l.value.owner != 0:
            continue
        if atomic_cmpxchg(l.value.owner, 0, LINK_BUSY) != 0:
            continue
        l.value.client = client
        l.value.server = server
        l.value.inbox[0] = INBOX_OPEN
        l.value.inbox[1] = INBOX_OPEN
        l.value.pub[0].sent = 0
        l.value.pub[1].sent = 0
        atomic_xchg(l.value.owner, link_generation(client) | 1)  # the server's reference
        return idx
    return NO_LINK


def join_link(cookie: u64) -> u32:
    """The client's first message: join the slot its server claimed (if the server has not closed meanwhile)."""
    gen = link_generation(cookie)
    for i in range(LINK_PROBES):
        idx: u32 = (u32(cookie) + i) & (LINKS - 1)
        l = links.lookup(idx)
        if l is None or (l.value.owner & 0xFFFFFFFF00000000) != gen or l.value.client != cookie:
            continue
        if atomic_cmpxchg(l.value.owner, gen | 1, gen | 2) != gen | 1:
            return NO_LINK  # its server closed: never paired for this socket
        return idx
    return NO_LINK


def release_link(idx: u32):
    """A closing socket drops its reference; the last one frees the slot."""
    l = links.lookup(idx)
    if l is not None:
        was = atomic_fetch_add(l.value.owner, 0xFFFFFFFFFFFFFFFF)
        if (was & 0xFFFFFFFF) == 1:
            atomic_cmpxchg(l.value.owner, was - 1, 0)


def seal(idx: u32, side: u32, never_fed: bool) -> bool:
    """Seal this side's inbox if nothing was redirected into it (and its peer's, if it never redirected).
    True when its inbox is sealed: it may leave the sockhash."""
    l = links.lookup(idx)
    if l is None:
        return False
    was = atomic_cmpxchg(l.value.inbox[side & 1], INBOX_OPEN, INBOX_SEALED)
    if never_fed:
        atomic_cmpxchg(l.value.inbox[(side ^ 1) & 1], INBOX_OPEN, INBOX_SEALED)
    return was != INBOX_FED


def pending_word(client: u64, state: u64) -> u64:
    return (client << 2) | state


def withdraw(me: Tuple, cookie: u64) -> bool:
    """A client that never joined a link stops waiting in `pending`, so no server can pair with it any more.
    True when no server ever claimed it: nothing was ever redirected into it."""
    p = pending.lookup(me)
    if p is None:
        return False  # its entry was evicted, or claimed and consumed: that proves nothing
    was = atomic_cmpxchg(p.value.word, pending_word(cookie, PENDING_WAITING), pending_word(cookie, PENDING_WITHDRAWN))
    # another client's entry (another namespace's, or this element reused) proves nothing either
    return (was >> 2) == cookie and (was & 3) != PENDING_CLAIMED


# ------------------------------------------------------------------ sock_ops
def enter(ctx: SockOps, side: u32, peer: u64) -> u64:
    """Give the socket its state (settled on the TCP path until its pairing says otherwise) and insert it into
    `socks`. Its cookie, or 0 when it has no storage or the kernel refuses it (e.g. an MPTCP subflow)."""
    sk = ctx.sk
    if sk is None:
        return 0
    st = sk_state.get(sk, create=True)
    if st is None:
        return 0
    cookie = bpf_get_socket_cookie(ctx)
    st.value.cookie = cookie
    st.value.peer = peer
    st.value.side = side
    st.value.link = NO_LINK
    st.value.mode = MODE_SETTLED
    if socks.update(ctx, cookie, BPF_ANY) != 0:
        return 0
    return cookie


def paired(ctx: SockOps, link: u32, mode: u32):
    """What its handshake decided (a paired server: its slot and UNDECIDED; a client: WAITING for its server),
    and the callbacks it needs from now on."""
    sk = ctx.sk
    if sk is None:
        return
    st = sk_state.get(sk)
    if st is None:
        return
    if link != NO_LINK:
        st.value.link = link
        st.value.joined = 1
    st.value.mode = mode
    bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG)


def client_established(ctx: SockOps, me: Tuple):
    """The active side: insert it and wait for its server to pair with it."""
    cookie = enter(ctx, SIDE_CLIENT, 0)
    if cookie == 0:
        return  # never paired
    entry = Pending(word=pending_word(cookie, PENDING_WAITING), snd_nxt=ctx.snd_nxt, rcv_nxt=ctx.rcv_nxt)
    if pending.update(me, entry, BPF_NOEXIST) != 0:
        other = pending.lookup(me)  # the same tuple from another namespace is waiting too
        if other is not None:
            w = other.value.word
            if (w & 3) == PENDING_WAITING:
                atomic_cmpxchg(other.value.word, w, w | PENDING_AMBIGUOUS)
        socks.delete(cookie)
        count_refused()
        return
    paired(ctx, NO_LINK, MODE_WAITING)  # it learns its slot at its first message


def server_established(ctx: SockOps, me: Tuple):
    """The passive side: pair with the waiting client whose sequence numbers mirror ours."""
    key = reversed_tuple(me)
    p = pending.lookup(key)
    if p is None:
        return  # the client is not accelerated (outside the cgroup or the policy)
    # whose entry and its state first (an atomic read: the sequence numbers below cannot be read before it); the
    # claim below succeeds only if the entry still holds this word, so a reused element is never claimed
    w = atomic_fetch_add(p.value.word, 0)
    if (w & 3) != PENDING_WAITING or p.value.snd_nxt != ctx.rcv_nxt or p.value.rcv_nxt != ctx.snd_nxt:
        count_refused()
        return
    client = w >> 2
    cookie = enter(ctx, SIDE_SERVER, client)
    if cookie == 0:
        return  # the client stays unpaired
    # in the sockhash before the client can learn our key; claim the client against its own withdrawal
    claimed = pending_word(client, PENDING_CLAIMED)
    if atomic_cmpxchg(p.value.word, w, claimed) != w:
        socks.delete(cookie)
        return
    idx = claim_link(client, cookie)
    if idx == NO_LINK:
        # no free slot: the client finds none and keeps the TCP path; nothing will be redirected into it, which
        # the entry now says, so that it may leave the sockhash
        atomic_cmpxchg(p.value.word, claimed, pending_word(client, PENDING_WITHDRAWN))
        socks.delete(cookie)
        count_refused()
        return
    if p.value.word == claimed:
        pending.delete(key)  # consumed (unless the client closed and another one waits under the tuple now)
    paired(ctx, idx, MODE_UNDECIDED)
    count_paired()


def on_rtt_sample(ctx: SockOps):
    """A socket on the TCP path for good sends TCP data (an ACK just acknowledged it): it pays tcp_bpf's send path
    for nothing unless it leaves the sockhash, which it may only when its inbox is sealed."""
    sk = ctx.sk
    if sk is None:
        return
    st = sk_state.get(sk)
    if st is None or st.value.mode != MODE_TCP:
        return  # still undecided or redirecting: keep the callback
    empty = False
    if st.value.joined != 0:
        empty = seal(st.value.link, st.value.side, False)
    elif st.value.side == SIDE_CLIENT:
        # never joined a slot: if no server ever claimed it, stop waiting, so one that comes later stays unpaired
        # (a claimed client whose server closed before it joined proves nothing: it stays)
        me = ops_tuple(ctx)
        empty = withdraw(me, st.value.cookie)
        if empty:
            pending.delete(me)
    st.value.mode = MODE_SETTLED
    if empty:
        socks.delete(st.value.cookie)
        count_released()
    bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG)  # settled: no more RTT callbacks


def forget(ctx: SockOps):
    sk = ctx.sk
    if sk is None:
        return
    st = sk_state.get(sk)
    if st is None:
        return
    if st.value.side == SIDE_CLIENT and st.value.joined == 0:
        # a client that never joined a slot: its entry (waiting, withdrawn or refused a slot) goes with it
        me = ops_tuple(ctx)
        p = pending.lookup(me)
        if p is not None and (p.value.word >> 2) == st.value.cookie:
            pending.delete(me)
    if st.value.joined != 0:
        st.value.joined = 0
        release_link(st.value.link)
    st.value.mode = MODE_SETTLED


@sock_ops
def accel_sockops(ctx: SockOps) -> int:
    op = ctx.op
    if op == BPF_SOCK_OPS_STATE_CB:
        if ctx.args1 == BPF_TCP_CLOSE:
            forget(ctx)
        return 1
    if op == BPF_SOCK_OPS_RTT_CB:
        on_rtt_sample(ctx)
        return 1
    if op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB and op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
        return 1
    family = ctx.family
    if family != AF_INET and family != AF_INET6:
        return 1
    me = ops_tuple(ctx)
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


def msg_tuple(msg: SkMsg) -> Tuple:
    """The 4-tuple as the sending socket sees it (only for a client's first message that found no link)."""
    me = Tuple(local_port=msg.local_port, remote_port=msg.remote_port)
    if msg.family != AF_INET:
        me.local_ip = msg.local_ip6
        me.remote_ip = msg.remote_ip6
    else:
        me.local_ip = v4_mapped(msg.local_ip4)
        me.remote_ip = v4_mapped(msg.remote_ip4)
    return me


def window() -> Window:
    """A budget window: 1/WINDOWS of the budget (one message, for budgets under WINDOWS messages)."""
    max_msgs: u32 = DEFAULT_MAX_UNANSWERED_MSGS
    max_kib: u32 = DEFAULT_MAX_UNANSWERED_KIB
    limits = settings.lookup(0)
    if limits is not None:
        if limits.value.max_unanswered_msgs != 0:
            max_msgs = limits.value.max_unanswered_msgs
        if limits.value.max_unanswered_kib != 0:
            max_kib = limits.value.max_unanswered_kib
    n: u32 = WINDOWS
    if max_msgs < WINDOWS:
        n = max_msgs
    return Window(msgs=max_msgs // n, windows=n, bytes=i64((u64(max_kib) << 10) // n))


@sk_msg(socks)
def accel_redirect(msg: SkMsg) -> int:
    st = sk_state.get(msg.sk)
    if st is None:
        return stay_on_tcp(msg)
    mode = st.value.mode
    if mode == MODE_REDIRECT:
        l = links.lookup(st.value.link)
        if l is None:
            return stay_on_tcp(msg)
        if st.value.credit_msgs == 0 or st.value.credit_bytes <= 0:
            # the end of a budget window: did the peer send anything since the last one?
            w = window()
            st.value.credit_msgs = w.msgs
            peer = l.value.pub[(st.value.side ^ 1) & 1].sent
            if peer != st.value.peer_seen:
                st.value.peer_seen = peer
                st.value.silent = 0
                st.value.credit_bytes = w.bytes
            else:
                # a silent window; a message larger than a window spent several, each one silent
                st.value.silent += 1
                st.value.credit_bytes += w.bytes
                for _ in range(WINDOWS - 1):
                    if st.value.credit_bytes > 0:
                        break
                    st.value.credit_bytes += w.bytes
                    st.value.silent += 1
                if st.value.silent >= w.windows - 1:
                    # the peer is not answering: TCP backpressure from now on
                    count_demoted()
                    st.value.mode = MODE_TCP
                    seal(st.value.link, st.value.side, False)
                    return stay_on_tcp(msg)
    elif mode == MODE_UNDECIDED or mode == MODE_WAITING:
        # the first message decides; a client first joins the link its server claimed
        if mode == MODE_WAITING:
            idx = join_link(st.value.cookie)
            if idx == NO_LINK:
                # not paired before its first message: the TCP path for good, and no server may pair with it now
                st.value.mode = MODE_TCP
                withdraw(msg_tuple(msg), st.value.cookie)
                return stay_on_tcp(msg)
            st.value.link = idx
            st.value.joined = 1
        l = links.lookup(st.value.link)
        if l is None:
            return stay_on_tcp(msg)
        if mode == MODE_WAITING:
            st.value.peer = l.value.server
        # claim the peer's inbox before the first byte goes there
        if atomic_cmpxchg(l.value.inbox[(st.value.side ^ 1) & 1], INBOX_OPEN, INBOX_FED) == INBOX_SEALED:
            st.value.mode = MODE_TCP  # its peer left (or leaves) the sockhash
            seal(st.value.link, st.value.side, True)
            return stay_on_tcp(msg)
        st.value.mode = MODE_REDIRECT
        st.value.peer_seen = l.value.pub[(st.value.side ^ 1) & 1].sent
        st.value.silent = 0
        w = window()
        st.value.credit_msgs = w.msgs
        st.value.credit_bytes = w.bytes
    else:
        return stay_on_tcp(msg)
    if socks.redirect(msg, st.value.peer, BPF_F_INGRESS) != SK_PASS:
        st.value.mode = MODE_TCP  # the peer is gone
        seal(st.value.link, st.value.side, False)
        return stay_on_tcp(msg)
    st.value.credit_msgs -= 1
    st.value.credit_bytes -= msg.size
    st.value.sent += 1
    l.value.pub[st.value.side & 1].sent = st.value.sent  # this message answers the peer's
    count_redirected()
    return SK_PASS
