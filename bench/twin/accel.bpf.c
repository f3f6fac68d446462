// C twin of programs/accel.py (the sockmap accelerator), for issue #3: the same maps
// (names, types, key/value layouts, max_entries, flags), the same programs, the same
// helper calls in the same order and the same decisions, written the way a C programmer
// would write it with libbpf's headers. Every DSL function is a static __always_inline
// function of the same name here; see programs/accel.py for the design and the safety
// rules (pairing proof, sticky path, memory budget).
//
// The DSL's semantics this file reproduces (docs/language.md):
//   * structs have C natural alignment and zeroed padding: `Pending` has 4 bytes of tail
//     padding, so it is built with __builtin_memset first (a designated initializer does
//     not promise zeroed padding);
//   * IPv4 addresses are stored v4-mapped (::ffff:a.b.c.d), network byte order;
//   * ports are in host byte order: remote_port is bpf_ntohl(ctx->remote_port);
//   * `x in map` is bpf_map_lookup_elem(...) != NULL; a struct assignment is a copy
//     (`client = p.value.client` is copied out before `pending.delete(key)`).
//
//   clang-19 -O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu -c accel.bpf.c -o accel.bpf.o
#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10

#define MODE_UNDECIDED 0 /* paired, no message sent yet */
#define MODE_REDIRECT 1  /* messages go to the peer's receive queue */
#define MODE_KERNEL 2    /* messages take the normal TCP path, for the rest of the connection (it redirected) */
#define MODE_TCP_ONLY 3  /* the TCP path for good, and it never redirected */
#define MODE_RELEASE 4   /* MODE_KERNEL with a MODE_TCP_ONLY peer: it leaves the sockhash */
#define MODE_UNPAIRED 5  /* sent while it had no conns entry: the TCP path for good; proves nothing */

#define V4_MAPPED 0xFFFF0000 /* ::ffff:0:0/96, third word in network byte order */

#define POLICY_LOCAL 1  /* policy_cidrs value: match the socket's local address */
#define POLICY_REMOTE 2 /* ... its remote address (3: either) */

#define DEFAULT_MAX_UNANSWERED_MSGS 256
#define DEFAULT_MAX_UNANSWERED_KIB 4096

/* One socket: its network namespace and its 4-tuple as it sees it. */
struct SockId {
    __u64 netns;
    __u32 local_ip[4];
    __u32 remote_ip[4];
    __u32 local_port;
    __u32 remote_port;
};

/* A 4-tuple without namespace: how a server finds the client waiting for it. */
struct Tuple {
    __u32 local_ip[4];
    __u32 remote_ip[4];
    __u32 local_port;
    __u32 remote_port;
};

struct Pending {
    struct SockId client;
    __u32 snd_nxt;
    __u32 rcv_nxt;
    __u32 ambiguous; /* another client waits under the same tuple: pair neither */
    /* 4 bytes of tail padding (zeroed) */
};

struct Conn {
    struct SockId peer;
    __u32 mode;
    __u32 unanswered_msgs; /* redirected since the peer last sent */
    __u64 unanswered_bytes;
};

/* Per-CPU counters (`pybpfgen status` sums them). */
struct AccelStats {
    __u64 redirected;
    __u64 missed;
    __u64 paired;
    __u64 refused;
    __u64 demoted;
    __u64 released;
};

/* An LPM trie key: a prefix of a v4-mapped (IPv4: prefixlen + 96) or IPv6 address. */
struct Prefix {
    __u32 prefixlen;
    __u32 addr[4];
};

/* Tunables, changed at run time; 0 = default. */
struct Settings {
    __u32 max_unanswered_msgs;
    __u32 max_unanswered_kib;
};

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, 65536);
    __type(key, struct SockId);
    __type(value, __u64);
} socks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct Tuple);
    __type(value, struct Pending);
} pending SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 131072);
    __type(key, struct SockId);
    __type(value, struct Conn);
} conns SEC(".maps");

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

/* ------------------------------------------------------------------ identities */
static __always_inline void v4_mapped(__u32 out[4], __u32 ip4)
{
    out[0] = 0;
    out[1] = 0;
    out[2] = V4_MAPPED;
    out[3] = ip4;
}

static __always_inline struct SockId ops_id(struct bpf_sock_ops *ctx)
{
    struct SockId me = {
        .netns = bpf_get_netns_cookie(ctx),
        .local_port = ctx->local_port,
        .remote_port = bpf_ntohl(ctx->remote_port),
    };
    if (ctx->family == AF_INET) {
        v4_mapped(me.local_ip, ctx->local_ip4);
        v4_mapped(me.remote_ip, ctx->remote_ip4);
    } else {
        /* context fields: one 32-bit load each (the verifier rejects wider ones) */
        for (int i = 0; i < 4; i++) {
            me.local_ip[i] = ctx->local_ip6[i];
            me.remote_ip[i] = ctx->remote_ip6[i];
        }
    }
    return me;
}

static __always_inline struct SockId msg_id(struct sk_msg_md *msg)
{
    struct SockId me = {
        .netns = bpf_get_netns_cookie(msg),
        .local_port = msg->local_port,
        .remote_port = bpf_ntohl(msg->remote_port),
    };
    if (msg->family == AF_INET) {
        v4_mapped(me.local_ip, msg->local_ip4);
        v4_mapped(me.remote_ip, msg->remote_ip4);
    } else {
        for (int i = 0; i < 4; i++) {
            me.local_ip[i] = msg->local_ip6[i];
            me.remote_ip[i] = msg->remote_ip6[i];
        }
    }
    return me;
}

static __always_inline bool cidr_matches(const __u32 addr[4], __u32 side)
{
    struct Prefix k = { .prefixlen = 128 };
    __builtin_memcpy(k.addr, addr, sizeof(k.addr));
    __u32 *m = bpf_map_lookup_elem(&policy_cidrs, &k);
    return m && (*m & side) != 0;
}

static __always_inline bool same_socket(const struct SockId *a, const struct SockId *b)
{
    if (a->netns != b->netns || a->local_port != b->local_port || a->remote_port != b->remote_port)
        return false;
    for (int i = 0; i < 4; i++) {
        if (a->local_ip[i] != b->local_ip[i] || a->remote_ip[i] != b->remote_ip[i])
            return false;
    }
    return true;
}

static __always_inline struct Tuple tuple_of(const struct SockId *s)
{
    struct Tuple t = { .local_port = s->local_port, .remote_port = s->remote_port };
    __builtin_memcpy(t.local_ip, s->local_ip, sizeof(t.local_ip));
    __builtin_memcpy(t.remote_ip, s->remote_ip, sizeof(t.remote_ip));
    return t;
}

static __always_inline struct Tuple reversed_tuple_of(const struct SockId *s)
{
    struct Tuple t = { .local_port = s->remote_port, .remote_port = s->local_port };
    __builtin_memcpy(t.local_ip, s->remote_ip, sizeof(t.local_ip));
    __builtin_memcpy(t.remote_ip, s->local_ip, sizeof(t.remote_ip));
    return t;
}

/* Is this connection selected by a policy? `me` as the socket sees it. */
static __always_inline bool policy_allows(const struct SockId *me, bool active)
{
    if (bpf_map_lookup_elem(&policy_ports, &me->local_port) ||
        bpf_map_lookup_elem(&policy_ports, &me->remote_port))
        return true;
    if (cidr_matches(me->local_ip, POLICY_LOCAL) || cidr_matches(me->remote_ip, POLICY_REMOTE))
        return true;
    /* a proxy's intercepted connections, as their client sees them (client -> original destination) */
    struct Tuple t = active ? tuple_of(me) : reversed_tuple_of(me);
    return bpf_map_lookup_elem(&policy_tuples, &t) != NULL;
}

/* ------------------------------------------------------------------ counters */
static __always_inline void count_redirected(void)
{
    __u32 zero = 0;
    struct AccelStats *s = bpf_map_lookup_elem(&stats, &zero);
    if (s)
        s->redirected += 1;
}

static __always_inline void count_missed(void)
{
    __u32 zero = 0;
    struct AccelStats *s = bpf_map_lookup_elem(&stats, &zero);
    if (s)
        s->missed += 1;
}

static __always_inline void count_paired(void)
{
    __u32 zero = 0;
    struct AccelStats *s = bpf_map_lookup_elem(&stats, &zero);
    if (s)
        s->paired += 1;
}

static __always_inline void count_refused(void)
{
    __u32 zero = 0;
    struct AccelStats *s = bpf_map_lookup_elem(&stats, &zero);
    if (s)
        s->refused += 1;
}

static __always_inline void count_demoted(void)
{
    __u32 zero = 0;
    struct AccelStats *s = bpf_map_lookup_elem(&stats, &zero);
    if (s)
        s->demoted += 1;
}

static __always_inline void count_released(__u64 sockets)
{
    __u32 zero = 0;
    struct AccelStats *s = bpf_map_lookup_elem(&stats, &zero);
    if (s)
        s->released += sockets;
}

/* ------------------------------------------------------------------ sock_ops */
/* The active side: insert it and wait for its server to pair with it. */
static __always_inline void client_established(struct bpf_sock_ops *ctx, struct SockId *me)
{
    struct Tuple key = tuple_of(me);
    struct Pending p;
    __builtin_memset(&p, 0, sizeof(p));
    p.client = *me;
    p.snd_nxt = ctx->snd_nxt;
    p.rcv_nxt = ctx->rcv_nxt;
    if (bpf_map_update_elem(&pending, &key, &p, BPF_NOEXIST) != 0) {
        /* the same tuple from another namespace is waiting too */
        struct Pending *other = bpf_map_lookup_elem(&pending, &key);
        if (other)
            other->ambiguous = 1;
        count_refused();
        return;
    }
    if (bpf_sock_hash_update(ctx, &socks, me, BPF_ANY) != 0) {
        bpf_map_delete_elem(&pending, &key); /* the kernel refuses this socket (e.g. an MPTCP subflow) */
        return;
    }
    bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG);
}

/* The passive side: pair with the waiting client whose sequence numbers mirror ours. */
static __always_inline void server_established(struct bpf_sock_ops *ctx, struct SockId *me)
{
    struct Tuple key = reversed_tuple_of(me);
    struct Pending *p = bpf_map_lookup_elem(&pending, &key);
    if (!p)
        return; /* the client is not accelerated (outside the cgroup or the policy) */
    if (p->ambiguous != 0 || p->snd_nxt != ctx->rcv_nxt || p->rcv_nxt != ctx->snd_nxt) {
        count_refused();
        return;
    }
    struct SockId client = p->client;
    bpf_map_delete_elem(&pending, &key);
    if (bpf_sock_hash_update(ctx, &socks, me, BPF_ANY) != 0)
        return; /* the kernel refuses this socket: the client stays unpaired */
    struct Conn c = { .peer = *me, .mode = MODE_UNDECIDED };
    if (bpf_map_update_elem(&conns, &client, &c, BPF_NOEXIST) != 0) {
        /* the client already has state: it keeps its path, we stay unpaired. MODE_UNPAIRED: it sent before
         * this pairing, with no peer to redirect to; neither end ever redirects, both leave the sockhash */
        struct Conn *cc = bpf_map_lookup_elem(&conns, &client);
        if (cc && cc->mode == MODE_UNPAIRED) {
            bpf_map_delete_elem(&socks, me);
            bpf_map_delete_elem(&socks, &client);
            count_released(2);
        }
        return;
    }
    struct Conn s = { .peer = client, .mode = MODE_UNDECIDED };
    bpf_map_update_elem(&conns, me, &s, BPF_ANY);
    bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG);
    count_paired();
}

/* This socket sends on the TCP path: leave the sockhash if released. */
static __always_inline void on_rtt_sample(struct bpf_sock_ops *ctx, struct SockId *me)
{
    struct Conn *c = bpf_map_lookup_elem(&conns, me);
    if (c) {
        __u32 mode = c->mode;
        if (mode == MODE_UNDECIDED || mode == MODE_REDIRECT)
            return; /* may still be released: keep the callback */
        if (mode == MODE_RELEASE) {
            bpf_map_delete_elem(&socks, me);
            count_released(1);
        } else if (mode == MODE_UNPAIRED) {
            /* spoke before any server paired with it; still waiting in pending: nothing was redirected to it */
            struct Tuple key = tuple_of(me);
            struct Pending *p = bpf_map_lookup_elem(&pending, &key);
            if (p && same_socket(&p->client, me)) {
                bpf_map_delete_elem(&pending, &key);
                bpf_map_delete_elem(&socks, me);
                count_released(1);
            }
        }
    }
    bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void forget(struct SockId *me)
{
    bpf_map_delete_elem(&conns, me);
    struct Tuple key = tuple_of(me);
    struct Pending *p = bpf_map_lookup_elem(&pending, &key);
    if (p && p->client.netns == me->netns)
        bpf_map_delete_elem(&pending, &key);
}

SEC("sockops")
int accel_sockops(struct bpf_sock_ops *ctx)
{
    __u32 op = ctx->op;
    if (op == BPF_SOCK_OPS_STATE_CB) {
        if (ctx->args[1] != BPF_TCP_CLOSE)
            return 1;
    } else if (op != BPF_SOCK_OPS_RTT_CB && op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
               op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
        return 1;
    }
    __u32 family = ctx->family;
    if (family != AF_INET && family != AF_INET6)
        return 1;
    struct SockId me = ops_id(ctx); /* one identity computation for every callback below */
    if (op == BPF_SOCK_OPS_STATE_CB) {
        forget(&me);
        return 1;
    }
    if (op == BPF_SOCK_OPS_RTT_CB) {
        on_rtt_sample(ctx, &me);
        return 1;
    }
    if (!policy_allows(&me, op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB))
        return 1;
    if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
        client_established(ctx, &me);
    else
        server_established(ctx, &me);
    return 1;
}

/* ------------------------------------------------------------------ sk_msg */
#define TCP_PATH_APPLY_BYTES (1 << 30) /* once on the TCP path, the verdict covers the next GiB */

static __always_inline int stay_on_tcp(struct sk_msg_md *msg)
{
    count_missed();
    bpf_msg_apply_bytes(msg, TCP_PATH_APPLY_BYTES);
    return SK_PASS;
}

SEC("sk_msg")
int accel_redirect(struct sk_msg_md *msg)
{
    struct SockId me = msg_id(msg);
    struct Conn *c = bpf_map_lookup_elem(&conns, &me);
    if (!c) {
        /* first message before any pairing: this connection keeps the TCP path */
        struct Conn k = { .mode = MODE_UNPAIRED };
        if (bpf_map_update_elem(&conns, &me, &k, BPF_NOEXIST) == 0) {
            return stay_on_tcp(msg);
        }
        c = bpf_map_lookup_elem(&conns, &me); /* paired at this very moment: decide below */
        if (!c) {
            return stay_on_tcp(msg);
        }
    }
    __u32 mode = c->mode;
    if (mode == MODE_UNDECIDED) {
        /* the first message decides; the peer may fix us on the TCP path meanwhile */
        mode = __sync_val_compare_and_swap(&c->mode, MODE_UNDECIDED, MODE_REDIRECT);
        if (mode == MODE_UNDECIDED)
            mode = MODE_REDIRECT;
    }
    if (mode != MODE_REDIRECT)
        return stay_on_tcp(msg);
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
    struct SockId peer = c->peer;
    if (c->unanswered_msgs >= max_msgs || c->unanswered_bytes >= (__u64)max_kib << 10) {
        c->mode = MODE_KERNEL; /* the peer is not answering: TCP backpressure from now on */
        count_demoted();
        struct Conn *pc = bpf_map_lookup_elem(&conns, &peer);
        if (pc) {
            /* a peer that never redirected is fixed on the TCP path: then nothing can reach us any more */
            /* (an LRU element can be reused for another socket: it must still be our peer's after the CAS) */
            __u32 was = __sync_val_compare_and_swap(&pc->mode, MODE_UNDECIDED, MODE_TCP_ONLY);
            if ((was == MODE_UNDECIDED || was == MODE_TCP_ONLY) && same_socket(&pc->peer, &me))
                c->mode = MODE_RELEASE;
        }
        return stay_on_tcp(msg);
    }
    if (bpf_msg_redirect_hash(msg, &socks, &peer, BPF_F_INGRESS) != SK_PASS) {
        c->mode = MODE_KERNEL; /* the peer is gone */
        return stay_on_tcp(msg);
    }
    c->unanswered_msgs += 1;
    c->unanswered_bytes += msg->size;
    struct Conn *pc = bpf_map_lookup_elem(&conns, &peer); /* this message answers the peer's */
    if (pc) {
        pc->unanswered_msgs = 0;
        pc->unanswered_bytes = 0;
    }
    count_redirected();
    return SK_PASS;
}

char _license[] SEC("license") = "GPL";
