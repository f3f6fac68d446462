// C twin of examples/gallery/tcp_tuning.py: the same maps, program and decisions, written the way a C programmer
// would with libbpf's headers (ports in host byte order: remote_port is bpf_ntohl(ctx->remote_port); the
// congestion control's name is passed with its NUL, as the DSL does).
//
//   clang-19 -O2 -g -target bpf -mcpu=v3 -I/usr/include/$(uname -m)-linux-gnu -c tcp_tuning.bpf.c
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define SOL_SOCKET 1
#define SOL_TCP 6
#define SO_SNDBUF 7
#define TCP_NODELAY 1
#define TCP_CONGESTION 13
#define TCP_NOTSENT_LOWAT 25

struct Tuning {
	__u32 nodelay;
	__u32 notsent_lowat;
	__u32 sndbuf;
};

struct Stats {
	__u64 tuned;
	__u64 refused;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct Tuning);
	__uint(max_entries, 256);
} tuned_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct Stats);
	__uint(max_entries, 1);
} stats SEC(".maps");

SEC("sockops")
int tcp_tuning(struct bpf_sock_ops *ctx)
{
	__u32 op = ctx->op;
	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	__u32 port = ctx->local_port;
	struct Tuning *t = bpf_map_lookup_elem(&tuned_ports, &port);
	if (!t) {
		port = bpf_ntohl(ctx->remote_port);
		t = bpf_map_lookup_elem(&tuned_ports, &port);
	}
	if (!t)
		return 1;
	__u64 refused = 0;
	if (t->nodelay != 0) {
		int one = 1;
		if (bpf_setsockopt(ctx, SOL_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
			refused += 1;
	}
	char cc[] = "cubic";
	if (bpf_setsockopt(ctx, SOL_TCP, TCP_CONGESTION, cc, sizeof(cc)) != 0)
		refused += 1;
	if (t->notsent_lowat != 0) {
		int lowat = t->notsent_lowat;
		if (bpf_setsockopt(ctx, SOL_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat)) != 0)
			refused += 1;
	}
	if (t->sndbuf != 0) {
		int sndbuf = t->sndbuf;
		if (bpf_setsockopt(ctx, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) != 0)
			refused += 1;
	}
	__u32 zero = 0;
	struct Stats *s = bpf_map_lookup_elem(&stats, &zero);
	if (s) {
		__sync_fetch_and_add(&s->tuned, 1);
		if (refused != 0)
			__sync_fetch_and_add(&s->refused, refused);
	}
	return 1;
}

char _license[] SEC("license") = "GPL";
