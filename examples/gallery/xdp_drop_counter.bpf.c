// C twin of xdp_drop_counter.py (same semantics), for bench/insn_count.py --gallery.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define ETH_P_IP_BE 0x0008
#define IP_FRAG_OFFSET_BE 0xFF1F
#define PROTO_TCP 6
#define PROTO_UDP 17

struct ipv4_start {
    __u16 eth_proto;
    __u8 ver_ihl;
    __u8 tos;
    __u16 tot_len;
    __u16 id;
    __u16 frag_off;
    __u8 ttl;
    __u8 protocol;
};

struct ports {
    __u16 source;
    __u16 dest;
};

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
    struct ipv4_start ip = {};
    if (bpf_xdp_load_bytes(ctx, 12, &ip, sizeof(ip)) < 0)
        return XDP_PASS;
    if (ip.eth_proto != ETH_P_IP_BE || (ip.protocol != PROTO_TCP && ip.protocol != PROTO_UDP))
        return XDP_PASS;
    if (ip.frag_off & IP_FRAG_OFFSET_BE)
        return XDP_PASS;
    struct ports ports = {};
    if (bpf_xdp_load_bytes(ctx, 14 + (ip.ver_ihl & 0xF) * 4, &ports, sizeof(ports)) < 0)
        return XDP_PASS;
    __u32 port = __builtin_bswap16(ports.dest);
    struct dropped *d = bpf_map_lookup_elem(&blocked, &port);
    if (!d)
        return XDP_PASS;
    __sync_fetch_and_add(&d->packets, 1);
    __sync_fetch_and_add(&d->bytes, bpf_xdp_get_buff_len(ctx));
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
