// C twin of examples/gallery/service_vip.py: the same maps, programs, helper calls and decisions, written the way
// a C programmer would with libbpf's headers. Ports are kept in host byte order in the maps (the DSL's
// convention): user_port is converted with bpf_ntohs / bpf_htons.
//
//   clang-19 -O2 -g -target bpf -mcpu=v3 -I/usr/include/$(uname -m)-linux-gnu -c service_vip.bpf.c
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ALLOW 1

struct service {
    __u32 ip4;  /* network byte order */
    __u32 port; /* host byte order */
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 256);
    __type(key, struct service);
    __type(value, struct service);
} services SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_SK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct service);
} origins SEC(".maps");

SEC("cgroup/connect4")
int to_backend(struct bpf_sock_addr *ctx)
{
    struct service vip = {.ip4 = ctx->user_ip4, .port = bpf_ntohs(ctx->user_port)};
    struct service *backend = bpf_map_lookup_elem(&services, &vip);
    if (!backend) {
        bpf_sk_storage_delete(&origins, ctx->sk); /* a UDP socket may connect again: forget an earlier VIP */
        return ALLOW;
    }
    struct service *origin = bpf_sk_storage_get(&origins, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (origin)
        *origin = vip;
    ctx->user_ip4 = backend->ip4;
    ctx->user_port = bpf_htons(backend->port);
    return ALLOW;
}

SEC("cgroup/getpeername4")
int show_vip(struct bpf_sock_addr *ctx)
{
    struct service *vip = bpf_sk_storage_get(&origins, ctx->sk, 0, 0);
    if (vip) {
        ctx->user_ip4 = vip->ip4;
        ctx->user_port = bpf_htons(vip->port);
    }
    return ALLOW;
}

char LICENSE[] SEC("license") = "GPL";
