// C twin of sk_skb_verdict.py (same semantics), for bench/insn_count.py --gallery.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2

struct sock_key {
    __u32 local_ip4;
    __u32 remote_ip4;
    __u32 local_port;
    __u32 remote_port;
};

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __type(key, struct sock_key);
    __type(value, __u64);
    __uint(max_entries, 4096);
} socks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 64);
} echo_ports SEC(".maps");

SEC("sockops")
int add_echo_sockets(struct bpf_sock_ops *ctx)
{
    if (ctx->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB || ctx->family != AF_INET)
        return 1;
    __u32 lport = ctx->local_port;
    if (!bpf_map_lookup_elem(&echo_ports, &lport))
        return 1;
    struct sock_key key = {
        .local_ip4 = ctx->local_ip4, .remote_ip4 = ctx->remote_ip4, .local_port = ctx->local_port,
        .remote_port = bpf_ntohl(ctx->remote_port),
    };
    bpf_sock_hash_update(ctx, &socks, &key, BPF_ANY);
    return 1;
}

SEC("sk_skb/stream_verdict")
int echo(struct __sk_buff *skb)
{
    __u32 lport = skb->local_port;
    __u64 *echoed = bpf_map_lookup_elem(&echo_ports, &lport);
    if (!echoed)
        return SK_PASS;
    bpf_skb_pull_data(skb, 4);
    void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
    if (data + 4 <= data_end && *(__u32 *)data == bpf_htonl(0x51554954))   /* "QUIT": dropped */
        return SK_DROP;
    __sync_fetch_and_add(echoed, skb->len);
    struct sock_key key = {
        .local_ip4 = skb->local_ip4, .remote_ip4 = skb->remote_ip4, .local_port = skb->local_port,
        .remote_port = bpf_ntohl(skb->remote_port),
    };
    return bpf_sk_redirect_hash(skb, &socks, &key, 0);
}

char LICENSE[] SEC("license") = "GPL";
