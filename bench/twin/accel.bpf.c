// C twin of programs/accel.py (the sockmap accelerator's socket-local design, issue 13): the same maps (names,
// types, key/value layouts, max_entries, flags), the same programs, the same helper calls in the same order and
// the same decisions, written the way a C programmer would write it with libbpf's headers. Every DSL function is
// a static __always_inline function of the same name here. It was written first, before the DSL could express
// socket-local storage, to learn what the design costs per message (bench/prog_cost.py --objects accel-c,...);
// docs/accel-design.md has the reasoning. The rules are programs/accel.py's (namespace-safe identity, proven
// pairing, a connection never switches from the TCP path to the redirect path, bounded memory, leaving the
// sockhash only when provably empty).
//
// What changed against the previous design (git history of this file: `conns`/`pending` LRU maps on 48-byte keys):
//   * each socket's own state lives in socket-local storage (`sk_state`, BPF_MAP_TYPE_SK_STORAGE): its path, its
//     side, its peer's key, its budget. Freed with the socket, never evicted: the LRU hazards of `conns` are gone;
//   * the sockhash `socks` is keyed by the socket cookie (8 bytes; cookies are unique across network namespaces
//     and never reused, so isolation holds by construction). sk_msg may not call bpf_get_socket_cookie on 6.18
//     ("program of this type cannot use helper"), so a socket's storage keeps the keys it needs;
//   * sock_ops and sk_msg cannot reach the peer socket's storage (a sockhash lookup returns a reference that
//     neither program type may release: "cannot use helper bpf_sk_release"), so what the two ends share lives in
//     a `links` slot (an array element: the lookup is a bounds check and an add, inlined by the verifier),
//     claimed by the server's pairing and joined by the client, reference-counted, freed by the last close:
//     whether anything was ever redirected into each side (`inbox`, compare-and-swap), and each side's count of
//     redirected messages, each in its own cache line (a side writes only its own line; its peer reads it once
//     per budget window);
//   * the budget is counted in windows of 1/8 of it in the sender's own storage: at a window's end the sender
//     looks whether its peer sent anything since the last one; 7 silent windows in a row demote it (so it
//     redirects between 7/8 of the budget and the budget while its peer sends nothing);
//   * per message: the storage lookup, the inlined array lookup, a few loads and stores in the socket's own
//     storage and its own line, the 8-byte-key redirect; the 4-tuple is built only in sock_ops (policy, pairing).
//
// The DSL's semantics this file reproduces (docs/language.md): structs have C natural alignment and zeroed padding;
// IPv4 addresses are stored v4-mapped (::ffff:a.b.c.d), network byte order; ports in host byte order.
//
//   clang-19 -O2 -g -target bpf -mcpu=v3 -I/usr/include/$(uname -m)-linux-gnu -c accel.bpf.c -o accel.bpf.o
#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10

/* a socket's path (sk_state.mode); written only by its own programs, which its socket lock serializes */
#define MODE_WAITING 0   /* a client inserted at ESTABLISHED; it learns its peer at its first message */
#define MODE_UNDECIDED 1 /* a paired server, no message sent yet */
#define MODE_REDIRECT 2  /* messages go to the peer's receive queue */
#define MODE_TCP 3       /* the TCP path for good (it sent before pairing, its peer sealed it, the budget, peer gone) */
#define MODE_SETTLED 4   /* the TCP path for good, and the release was decided (it left, or it can never prove it may) */

/* links[i].inbox[side]: what may be redirected into that side's sockmap queue (compare-and-swap only) */
#define INBOX_OPEN 0   /* nothing redirected into it yet; its peer may start */
#define INBOX_FED 1    /* its peer redirected (or is about to): its queue may hold bytes */
#define INBOX_SEALED 2 /* nothing was and nothing will be redirected into it: it may leave the sockhash */

/* pending.state */
#define PENDING_WAITING 0
#define PENDING_CLAIMED 1   /* a server with mirrored sequence numbers paired with it */
#define PENDING_WITHDRAWN 2 /* the client stopped waiting: a server that comes later stays unpaired */
#define PENDING_AMBIGUOUS 3 /* another client waits under the same tuple: pair neither */

#define SIDE_CLIENT 0
#define SIDE_SERVER 1

#define LINKS 32768       /* connections accelerated at once (the sockhash holds 65536 sockets) */
#define LINK_PROBES 8     /* slots a pairing tries */
#define LINK_BUSY 1ULL    /* owner word while the server fills a slot in: nobody can join */
#define WINDOWS 8         /* budget windows; WINDOWS - 1 silent ones in a row demote */
#define NO_LINK 0xFFFFFFFF

#define V4_MAPPED 0xFFFF0000 /* ::ffff:0:0/96, third word in network byte order */
#define POLICY_LOCAL 1
#define POLICY_REMOTE 2
#define DEFAULT_MAX_UNANSWERED_MSGS 256
#define DEFAULT_MAX_UNANSWERED_KIB 4096
#define TCP_PATH_APPLY_BYTES (1 << 30)

/* A 4-tuple without namespace: how a server finds the client waiting for it (handshake only). */
struct Tuple {
    __u32 local_ip[4];
    __u32 remote_ip[4];
    __u32 local_port;
    __u32 remote_port;
};

struct Pending {
    /* (the client's cookie << 2) | its PENDING_ state: identity and state in one word, so that every
     * compare-and-swap on it also checks whose entry it is (an LRU element can be freed and reused at any time) */
    __u64 word;
    __u32 snd_nxt;
    __u32 rcv_nxt;
};

static __always_inline __u64 pending_word(__u64 client, __u64 state)
{
    return (client << 2) | state;
}

/* One socket's own state (socket-local storage). */
struct SockState {
    __u64 cookie;       /* its own key in `socks` */
    __u64 peer;         /* its peer's key in `socks`; 0 until known */
    __u64 sent;         /* messages it redirected (published in its line of the link) */
    __u64 peer_seen;    /* its peer's published count at the end of the last window */
    __s64 credit_bytes; /* what the current budget window has left */
    __u32 credit_msgs;
    __u32 silent;       /* windows in a row in which its peer sent nothing */
    __u32 mode;
    __u32 side;
    __u32 link;         /* its slot in `links` */
    __u32 joined;       /* it holds a reference on that slot */
};

struct Published {
    __u64 sent;
    __u64 pad[7]; /* a cache line of its own: one side writes it per message, the other reads it per window */
};

/* What the two ends of a connection share (one slot of an array: no hashing per message). */
struct Link {
    __u64 owner;    /* 0 free; LINK_BUSY being filled in; else (generation << 32) | references */
    __u64 client;   /* the client's cookie */
    __u64 server;   /* the server's cookie: how the client learns its peer */
    __u32 inbox[2]; /* per side */
    __u64 pad[4];
    struct Published pub[2]; /* per side */
};

struct AccelStats {
    __u64 redirected;
    __u64 missed;
    __u64 paired;
    __u64 refused;
    __u64 demoted;
    __u64 released;
};

struct Prefix {
    __u32 prefixlen;
    __u32 addr[4];
};

struct Settings {
    __u32 max_unanswered_msgs;
    __u32 max_unanswered_kib;
};

/* One budget window: its share of the budget, and how many windows the budget has. */
struct Window {
    __u32 msgs;
    __u32 windows;
    __s64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, 65536);
    __type(key, __u64);
    __type(value, __u64);
} socks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_SK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct SockState);
} sk_state SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct Tuple);
    __type(value, struct Pending);
} pending SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, LINKS);
    __type(key, __u32);
    __type(value, struct Link);
} links SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, __u32);
} policy_ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 1024);
    __type(key, struct Prefix);
    __type(value, __u32);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} policy_cidrs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct Tuple);
    __type(value, __u32);
} policy_tuples SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct AccelStats);
} stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct Settings);
} settings SEC(".maps");

/* ------------------------------------------------------------------ identities (sock_ops only) */
static __always_inline void v4_mapped(__u32 out[4], __u32 ip4)
{
    out[0] = 0;
    out[1] = 0;
    out[2] = V4_MAPPED;
    out[3] = ip4;
}

/* The 4-tuple as this socket sees it. */
static __always_inline struct Tuple ops_tuple(struct bpf_sock_ops *ctx)
{
    struct Tuple me = { .local_port = ctx->local_port, .remote_port = bpf_ntohl(ctx->remote_port) };
    if (ctx->family != AF_INET) {
        for (int i = 0; i < 4; i++) {
            me.local_ip[i] = ctx->local_ip6[i];
            me.remote_ip[i] = ctx->remote_ip6[i];
        }
    } else {
        v4_mapped(me.local_ip, ctx->local_ip4);
        v4_mapped(me.remote_ip, ctx->remote_ip4);
    }
    return me;
}

static __always_inline struct Tuple reversed_tuple(const struct Tuple *s)
{
    struct Tuple t = { .local_port = s->remote_port, .remote_port = s->local_port };
    __builtin_memcpy(t.local_ip, s->remote_ip, sizeof(t.local_ip));
    __builtin_memcpy(t.remote_ip, s->local_ip, sizeof(t.remote_ip));
    return t;
}

static __always_inline bool cidr_matches(const __u32 addr[4], __u32 side)
{
    struct Prefix k = { .prefixlen = 128 };
    __builtin_memcpy(k.addr, addr, sizeof(k.addr));
    __u32 *m = bpf_map_lookup_elem(&policy_cidrs, &k);
    return m && (*m & side) != 0;
}

static __always_inline bool policy_allows(const struct Tuple *me, bool active)
{
    if (bpf_map_lookup_elem(&policy_ports, &me->local_port) ||
        bpf_map_lookup_elem(&policy_ports, &me->remote_port))
        return true;
    if (cidr_matches(me->local_ip, POLICY_LOCAL) || cidr_matches(me->remote_ip, POLICY_REMOTE))
        return true;
    if (active)
        return bpf_map_lookup_elem(&policy_tuples, me) != NULL;
    struct Tuple t = reversed_tuple(me);
    return bpf_map_lookup_elem(&policy_tuples, &t) != NULL;
}

/* ------------------------------------------------------------------ counters */
#define COUNTER(field)                                             \
    static __always_inline void count_##field(void)                \
    {                                                              \
        __u32 zero = 0;                                            \
        struct AccelStats *s = bpf_map_lookup_elem(&stats, &zero); \
        if (s)                                                     \
            s->field += 1;                                         \
    }
COUNTER(redirected)
COUNTER(missed)
COUNTER(paired)
COUNTER(refused)
COUNTER(demoted)
COUNTER(released)


/* ------------------------------------------------------------------ links */
static __always_inline __u64 link_generation(__u64 client)
{
    return ((client & 0xFFFFFFFF) | 1) << 32; /* never 0: an owned slot's word is never LINK_BUSY */
}

/* The server's pairing: a free slot near the client's cookie, filled in before anyone can join it. */
static __always_inline __u32 claim_link(__u64 client, __u64 server)
{
    for (__u32 i = 0; i < LINK_PROBES; i++) {
        __u32 idx = ((__u32)client + i) & (LINKS - 1);
        struct Link *l = bpf_map_lookup_elem(&links, &idx);
        if (!l || l->owner != 0)
            continue;
        if (__sync_val_compare_and_swap(&l->owner, 0, LINK_BUSY) != 0)
            continue;
        l->client = client;
        l->server = server;
        l->inbox[0] = INBOX_OPEN;
        l->inbox[1] = INBOX_OPEN;
        l->pub[0].sent = 0;
        l->pub[1].sent = 0;
        __sync_lock_test_and_set(&l->owner, link_generation(client) | 1); /* the server's reference */
        return idx;
    }
    return NO_LINK;
}

/* The client's first message: join the slot its server claimed (if the server has not closed meanwhile). */
static __always_inline __u32 join_link(__u64 cookie)
{
    __u64 gen = link_generation(cookie);
    for (__u32 i = 0; i < LINK_PROBES; i++) {
        __u32 idx = ((__u32)cookie + i) & (LINKS - 1);
        struct Link *l = bpf_map_lookup_elem(&links, &idx);
        if (!l || (l->owner & 0xFFFFFFFF00000000ULL) != gen || l->client != cookie)
            continue;
        if (__sync_val_compare_and_swap(&l->owner, gen | 1, gen | 2) != (gen | 1))
            return NO_LINK; /* its server closed: never paired for this socket */
        return idx;
    }
    return NO_LINK;
}

/* A closing socket drops its reference; the last one frees the slot. */
static __always_inline void release_link(__u32 idx)
{
    struct Link *l = bpf_map_lookup_elem(&links, &idx);
    if (l) {
        __u64 was = __sync_fetch_and_add(&l->owner, 0xFFFFFFFFFFFFFFFFULL);
        if ((was & 0xFFFFFFFF) == 1)
            __sync_val_compare_and_swap(&l->owner, was - 1, 0);
    }
}

/* Seal this side's inbox if nothing was redirected into it (and its peer's, if it never redirected).
 * True when its inbox is sealed: it may leave the sockhash. */
static __always_inline bool seal(__u32 idx, __u32 side, bool never_fed)
{
    struct Link *l = bpf_map_lookup_elem(&links, &idx);
    if (!l)
        return false;
    __u32 was = __sync_val_compare_and_swap(&l->inbox[side & 1], INBOX_OPEN, INBOX_SEALED);
    if (never_fed)
        __sync_val_compare_and_swap(&l->inbox[(side ^ 1) & 1], INBOX_OPEN, INBOX_SEALED);
    return was != INBOX_FED;
}

/* A client that never joined a link stops waiting in `pending`, so no server can pair with it any more.
 * True when no server ever claimed it: nothing was ever redirected into it. */
static __always_inline bool withdraw(struct Tuple *me, __u64 cookie)
{
    struct Pending *p = bpf_map_lookup_elem(&pending, me);
    if (!p)
        return false; /* its entry was evicted, or claimed and consumed: that proves nothing */
    __u64 was = __sync_val_compare_and_swap(&p->word, pending_word(cookie, PENDING_WAITING),
                                            pending_word(cookie, PENDING_WITHDRAWN));
    /* another client's entry (another namespace's, or this element reused) proves nothing either */
    return (was >> 2) == cookie && (was & 3) != PENDING_CLAIMED;
}

/* ------------------------------------------------------------------ sock_ops */
/* The active side: insert it and wait for its server to pair with it. */
/* Give the socket its state (settled on the TCP path until its pairing says otherwise) and insert it into `socks`.
 * Its cookie, or 0 when it has no storage or the kernel refuses it (e.g. an MPTCP subflow). */
static __always_inline __u64 enter(struct bpf_sock_ops *ctx, __u32 side, __u64 peer)
{
    struct bpf_sock *sk = ctx->sk;
    if (!sk)
        return 0;
    struct SockState *st = bpf_sk_storage_get(&sk_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (!st)
        return 0;
    __u64 cookie = bpf_get_socket_cookie(ctx);
    st->cookie = cookie;
    st->peer = peer;
    st->side = side;
    st->link = NO_LINK;
    st->mode = MODE_SETTLED;
    if (bpf_sock_hash_update(ctx, &socks, &cookie, BPF_ANY) != 0)
        return 0;
    return cookie;
}

/* What its handshake decided (a paired server: its slot and UNDECIDED; a client: WAITING for its server),
 * and the callbacks it needs from now on. */
static __always_inline void paired(struct bpf_sock_ops *ctx, __u32 link, __u32 mode)
{
    struct bpf_sock *sk = ctx->sk;
    if (!sk)
        return;
    struct SockState *st = bpf_sk_storage_get(&sk_state, sk, 0, 0);
    if (!st)
        return;
    if (link != NO_LINK) {
        st->link = link;
        st->joined = 1;
    }
    st->mode = mode;
    bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG);
}

static __always_inline void client_established(struct bpf_sock_ops *ctx, struct Tuple *me)
{
    __u64 cookie = enter(ctx, SIDE_CLIENT, 0);
    if (cookie == 0)
        return; /* never paired */
    struct Pending p = { .word = pending_word(cookie, PENDING_WAITING), .snd_nxt = ctx->snd_nxt,
                         .rcv_nxt = ctx->rcv_nxt };
    if (bpf_map_update_elem(&pending, me, &p, BPF_NOEXIST) != 0) {
        struct Pending *other = bpf_map_lookup_elem(&pending, me); /* the same tuple from another namespace */
        if (other) {
            __u64 w = other->word;
            if ((w & 3) == PENDING_WAITING)
                __sync_val_compare_and_swap(&other->word, w, w | PENDING_AMBIGUOUS);
        }
        bpf_map_delete_elem(&socks, &cookie);
        count_refused();
        return;
    }
    paired(ctx, NO_LINK, MODE_WAITING); /* it learns its slot at its first message */
}

/* The passive side: pair with the waiting client whose sequence numbers mirror ours. */
static __always_inline void server_established(struct bpf_sock_ops *ctx, struct Tuple *me)
{
    struct Tuple key = reversed_tuple(me);
    struct Pending *p = bpf_map_lookup_elem(&pending, &key);
    if (!p)
        return; /* the client is not accelerated (outside the cgroup or the policy) */
    /* whose entry and its state first (an atomic read: the sequence numbers below cannot be read before it); the
     * claim below succeeds only if the entry still holds this word, so a reused element is never claimed */
    __u64 w = __sync_fetch_and_add(&p->word, 0);
    if ((w & 3) != PENDING_WAITING || p->snd_nxt != ctx->rcv_nxt || p->rcv_nxt != ctx->snd_nxt) {
        count_refused();
        return;
    }
    __u64 client = w >> 2;
    __u64 cookie = enter(ctx, SIDE_SERVER, client);
    if (cookie == 0)
        return; /* the client stays unpaired */
    /* in the sockhash before the client can learn our key; claim the client against its own withdrawal */
    __u64 claimed = pending_word(client, PENDING_CLAIMED);
    if (__sync_val_compare_and_swap(&p->word, w, claimed) != w) {
        bpf_map_delete_elem(&socks, &cookie);
        return;
    }
    __u32 idx = claim_link(client, cookie);
    if (idx == NO_LINK) {
        /* no free slot: the client finds none and keeps the TCP path; nothing will be redirected into it, which
         * the entry now says, so that it may leave the sockhash */
        __sync_val_compare_and_swap(&p->word, claimed, pending_word(client, PENDING_WITHDRAWN));
        bpf_map_delete_elem(&socks, &cookie);
        count_refused();
        return;
    }
    if (p->word == claimed)
        bpf_map_delete_elem(&pending, &key); /* consumed (unless the client closed and another one waits now) */
    paired(ctx, idx, MODE_UNDECIDED);
    count_paired();
}

/* A socket on the TCP path for good sends TCP data (an ACK just acknowledged it): it pays tcp_bpf's send path
 * for nothing unless it leaves the sockhash, which it may only when its inbox is sealed. */
static __always_inline void on_rtt_sample(struct bpf_sock_ops *ctx)
{
    struct bpf_sock *sk = ctx->sk;
    if (!sk)
        return;
    struct SockState *st = bpf_sk_storage_get(&sk_state, sk, 0, 0);
    if (!st || st->mode != MODE_TCP)
        return; /* still undecided or redirecting: keep the callback */
    bool empty = false;
    if (st->joined != 0) {
        empty = seal(st->link, st->side, false);
    } else if (st->side == SIDE_CLIENT) {
        /* never joined a slot: if no server ever claimed it, stop waiting, so one that comes later stays unpaired
         * (a claimed client whose server closed before it joined proves nothing: it stays) */
        struct Tuple me = ops_tuple(ctx);
        empty = withdraw(&me, st->cookie);
        if (empty)
            bpf_map_delete_elem(&pending, &me);
    }
    st->mode = MODE_SETTLED;
    if (empty) {
        bpf_map_delete_elem(&socks, &st->cookie);
        count_released();
    }
    bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG); /* settled: no more RTT callbacks */
}

static __always_inline void forget(struct bpf_sock_ops *ctx)
{
    struct bpf_sock *sk = ctx->sk;
    if (!sk)
        return;
    struct SockState *st = bpf_sk_storage_get(&sk_state, sk, 0, 0);
    if (!st)
        return;
    if (st->side == SIDE_CLIENT && st->joined == 0) {
        /* a client that never joined a slot: its entry (waiting, withdrawn or refused a slot) goes with it */
        struct Tuple me = ops_tuple(ctx);
        struct Pending *p = bpf_map_lookup_elem(&pending, &me);
        if (p && (p->word >> 2) == st->cookie)
            bpf_map_delete_elem(&pending, &me);
    }
    if (st->joined != 0) {
        st->joined = 0;
        release_link(st->link);
    }
    st->mode = MODE_SETTLED;
}

SEC("sockops")
int accel_sockops(struct bpf_sock_ops *ctx)
{
    __u32 op = ctx->op;
    if (op == BPF_SOCK_OPS_STATE_CB) {
        if (ctx->args[1] == BPF_TCP_CLOSE)
            forget(ctx);
        return 1;
    }
    if (op == BPF_SOCK_OPS_RTT_CB) {
        on_rtt_sample(ctx);
        return 1;
    }
    if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
        return 1;
    __u32 family = ctx->family;
    if (family != AF_INET && family != AF_INET6)
        return 1;
    struct Tuple me = ops_tuple(ctx);
    if (!policy_allows(&me, op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB))
        return 1;
    if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
        client_established(ctx, &me);
    else
        server_established(ctx, &me);
    return 1;
}

/* ------------------------------------------------------------------ sk_msg */
/* The TCP path for this message and, without running the program again, the next GiB of this socket. */
static __always_inline int stay_on_tcp(struct sk_msg_md *msg)
{
    count_missed();
    bpf_msg_apply_bytes(msg, TCP_PATH_APPLY_BYTES);
    return SK_PASS;
}

/* The 4-tuple as the sending socket sees it (only for a client's first message that found no link). */
static __always_inline struct Tuple msg_tuple(struct sk_msg_md *msg)
{
    struct Tuple me = { .local_port = msg->local_port, .remote_port = bpf_ntohl(msg->remote_port) };
    if (msg->family != AF_INET) {
        for (int i = 0; i < 4; i++) {
            me.local_ip[i] = msg->local_ip6[i];
            me.remote_ip[i] = msg->remote_ip6[i];
        }
    } else {
        v4_mapped(me.local_ip, msg->local_ip4);
        v4_mapped(me.remote_ip, msg->remote_ip4);
    }
    return me;
}

/* A budget window: 1/WINDOWS of the budget (one message, for budgets under WINDOWS messages). */
static __always_inline struct Window window(void)
{
    __u32 max_msgs = DEFAULT_MAX_UNANSWERED_MSGS;
    __u32 max_kib = DEFAULT_MAX_UNANSWERED_KIB;
    __u32 zero = 0;
    struct Settings *limits = bpf_map_lookup_elem(&settings, &zero);
    if (limits) {
        if (limits->max_unanswered_msgs != 0)
            max_msgs = limits->max_unanswered_msgs;
        if (limits->max_unanswered_kib != 0)
            max_kib = limits->max_unanswered_kib;
    }
    __u32 n = WINDOWS;
    if (max_msgs < WINDOWS)
        n = max_msgs;
    struct Window w = { .msgs = max_msgs / n, .windows = n, .bytes = (__s64)(((__u64)max_kib << 10) / n) };
    return w;
}

SEC("sk_msg")
int accel_redirect(struct sk_msg_md *msg)
{
    struct SockState *st = bpf_sk_storage_get(&sk_state, msg->sk, 0, 0);
    if (!st)
        return stay_on_tcp(msg);
    struct Link *l;
    __u32 mode = st->mode;
    if (mode == MODE_REDIRECT) {
        l = bpf_map_lookup_elem(&links, &st->link);
        if (!l)
            return stay_on_tcp(msg);
        if (st->credit_msgs == 0 || st->credit_bytes <= 0) {
            /* the end of a budget window: did the peer send anything since the last one? */
            struct Window w = window();
            st->credit_msgs = w.msgs;
            __u64 peer = l->pub[(st->side ^ 1) & 1].sent;
            if (peer != st->peer_seen) {
                st->peer_seen = peer;
                st->silent = 0;
                st->credit_bytes = w.bytes;
            } else {
                /* a silent window; a message larger than a window spent several, each one silent */
                st->silent += 1;
                st->credit_bytes += w.bytes;
                for (int i = 0; i < WINDOWS - 1; i++) {
                    if (st->credit_bytes > 0)
                        break;
                    st->credit_bytes += w.bytes;
                    st->silent += 1;
                }
                if (st->silent >= w.windows - 1) {
                    /* the peer is not answering: TCP backpressure from now on */
                    count_demoted();
                    st->mode = MODE_TCP;
                    seal(st->link, st->side, false);
                    return stay_on_tcp(msg);
                }
            }
        }
    } else if (mode == MODE_UNDECIDED || mode == MODE_WAITING) {
        /* the first message decides; a client first joins the link its server claimed */
        if (mode == MODE_WAITING) {
            __u32 idx = join_link(st->cookie);
            if (idx == NO_LINK) {
                /* not paired before its first message: the TCP path for good, and no server may pair with it now */
                st->mode = MODE_TCP;
                struct Tuple me = msg_tuple(msg);
                withdraw(&me, st->cookie);
                return stay_on_tcp(msg);
            }
            st->link = idx;
            st->joined = 1;
        }
        l = bpf_map_lookup_elem(&links, &st->link);
        if (!l)
            return stay_on_tcp(msg);
        if (mode == MODE_WAITING)
            st->peer = l->server;
        /* claim the peer's inbox before the first byte goes there */
        if (__sync_val_compare_and_swap(&l->inbox[(st->side ^ 1) & 1], INBOX_OPEN, INBOX_FED) == INBOX_SEALED) {
            st->mode = MODE_TCP; /* its peer left (or leaves) the sockhash */
            seal(st->link, st->side, true);
            return stay_on_tcp(msg);
        }
        st->mode = MODE_REDIRECT;
        st->peer_seen = l->pub[(st->side ^ 1) & 1].sent;
        st->silent = 0;
        struct Window w = window();
        st->credit_msgs = w.msgs;
        st->credit_bytes = w.bytes;
    } else {
        return stay_on_tcp(msg);
    }
    if (bpf_msg_redirect_hash(msg, &socks, &st->peer, BPF_F_INGRESS) != SK_PASS) {
        st->mode = MODE_TCP; /* the peer is gone */
        seal(st->link, st->side, false);
        return stay_on_tcp(msg);
    }
    st->credit_msgs -= 1;
    st->credit_bytes -= msg->size;
    st->sent += 1;
    l->pub[st->side & 1].sent = st->sent; /* this message answers the peer's */
    count_redirected();
    return SK_PASS;
}

char _license[] SEC("license") = "GPL";
