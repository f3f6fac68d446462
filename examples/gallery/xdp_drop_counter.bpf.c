// C twin of xdp_drop_counter.py (same semantics), for bench/insn_count.py --gallery.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PROTO_TCP 6
#define PROTO_UDP 17

struct dropped {
    __u64 packets;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u32);
    __type(value, struct dropped);
    __uint(max_entries, 1024);
} blocked SEC(".maps");

SEC("xdp")
int drop_blocked_ports(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u8 *ip = data + 12;                       /* the EtherType and the IPv4 header up to its protocol */
    if ((void *)(ip + 12) > data_end)
        return XDP_PASS;
    __u8 proto = ip[11];
    if (*(__u16 *)ip != bpf_htons(0x0800) || (proto != PROTO_TCP && proto != PROTO_UDP))
        return XDP_PASS;
    if (*(__u16 *)(ip + 8) & bpf_htons(0x1FFF))
        return XDP_PASS;
    __u8 *l4 = data + 14 + (ip[2] & 0xF) * 4;
    if ((void *)(l4 + 4) > data_end)
        return XDP_PASS;
    __u32 port = bpf_ntohs(*(__u16 *)(l4 + 2));
    struct dropped *d = bpf_map_lookup_elem(&blocked, &port);
    if (!d)
        return XDP_PASS;
    __sync_fetch_and_add(&d->packets, 1);
    __sync_fetch_and_add(&d->bytes, bpf_xdp_get_buff_len(ctx));
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
