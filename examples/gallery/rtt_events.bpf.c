// C twin of rtt_events.py (same semantics), for bench/insn_count.py --gallery.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct RttEvent {
    __u64 cookie;
    __u64 bytes_acked;
    __u32 srtt_us;
    __u32 rtt_min_us;
    __u32 snd_cwnd;
    __u32 local_port;
    __u32 remote_port;
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 16);
} events SEC(".maps");

SEC("sockops")
int rtt_events(struct bpf_sock_ops *ctx)
{
    __u32 op = ctx->op;
    if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB || op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
        bpf_sock_ops_cb_flags_set(ctx, ctx->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_RTT_CB_FLAG);
        return 1;
    }
    if (op != BPF_SOCK_OPS_RTT_CB)
        return 1;
    struct RttEvent *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
    if (!ev)
        return 1;
    ev->cookie = bpf_get_socket_cookie(ctx);
    ev->srtt_us = ctx->srtt_us >> 3;
    ev->rtt_min_us = ctx->rtt_min;
    ev->snd_cwnd = ctx->snd_cwnd;
    ev->bytes_acked = ctx->bytes_acked;
    ev->local_port = ctx->local_port;
    ev->remote_port = bpf_ntohl(ctx->remote_port);
    bpf_ringbuf_submit(ev, 0);
    return 1;
}

char _license[] SEC("license") = "GPL";
