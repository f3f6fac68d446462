// C twin of prefix_redirect.py (same semantics), for bench/insn_count.py --gallery.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PRIO 0x5052494F /* "PRIO" as a big-endian u32 */
#define DROP 0x44524F50 /* "DROP" */
#define PRIO_KEY 0
#define REDIRECTED 0
#define DROPPED 1
#define PASSED 2

volatile const __u32 front_port = 0;
volatile const __u32 prio_port = 0;

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 1024);
} socks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 3);
} stats SEC(".maps");

static __always_inline void count(__u32 i)
{
    __u64 *c = bpf_map_lookup_elem(&stats, &i);
    if (c)
        __sync_fetch_and_add(c, 1);
}

SEC("sockops")
int track(struct bpf_sock_ops *ctx)
{
    __u32 op = ctx->op;
    if (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB && ctx->local_port == prio_port) {
        __u32 key = PRIO_KEY;
        bpf_sock_hash_update(ctx, &socks, &key, BPF_ANY);
    } else if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && bpf_ntohl(ctx->remote_port) == front_port) {
        __u32 key = ctx->local_port;
        bpf_sock_hash_update(ctx, &socks, &key, BPF_ANY);
    }
    return 1;
}

SEC("sk_msg")
int by_prefix(struct sk_msg_md *msg)
{
    if (bpf_ntohl(msg->remote_port) != front_port)
        return SK_PASS;
    void *data = msg->data, *data_end = msg->data_end;
    if (data + 4 <= data_end) {
        __u32 word = bpf_ntohl(*(__u32 *)data);
        if (word == PRIO) {
            count(REDIRECTED);
            __u32 key = PRIO_KEY;
            return bpf_msg_redirect_hash(msg, &socks, &key, BPF_F_INGRESS);
        }
        if (word == DROP) {
            count(DROPPED);
            return SK_DROP;
        }
    }
    count(PASSED);
    return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
