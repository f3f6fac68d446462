// SPDX-License-Identifier: GPL-2.0
// The C twin of cgroup_bytes.py: the same map and programs, written as one would with libbpf.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct traffic {
	__u64 rx_bytes;
	__u64 rx_packets;
	__u64 tx_bytes;
	__u64 tx_packets;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, struct traffic);
	__uint(max_entries, 4096);
} traffic SEC(".maps");

static __always_inline struct traffic *counters(struct __sk_buff *skb)
{
	__u64 cg = bpf_skb_cgroup_id(skb);
	struct traffic *t = bpf_map_lookup_elem(&traffic, &cg);

	if (!t) {
		struct traffic zero = {};

		bpf_map_update_elem(&traffic, &cg, &zero, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&traffic, &cg);
	}
	return t;
}

SEC("cgroup_skb/ingress")
int count_ingress(struct __sk_buff *skb)
{
	struct traffic *t = counters(skb);

	if (!t)
		return 1;
	__sync_fetch_and_add(&t->rx_bytes, skb->len);
	__sync_fetch_and_add(&t->rx_packets, 1);
	return 1;
}

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb)
{
	struct traffic *t = counters(skb);

	if (!t)
		return 1;
	__sync_fetch_and_add(&t->tx_bytes, skb->len);
	__sync_fetch_and_add(&t->tx_packets, 1);
	return 1;
}

char _license[] SEC("license") = "GPL";
