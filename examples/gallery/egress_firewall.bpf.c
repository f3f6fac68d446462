// SPDX-License-Identifier: GPL-2.0
// The C twin of egress_firewall.py: the same map and program, written as one would with libbpf.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1024);
} blocked SEC(".maps");

SEC("cgroup_skb/egress")
int firewall(struct __sk_buff *skb)
{
	__u32 port = bpf_ntohl(skb->remote_port);   /* the kernel gives the network-order port in the upper 16 bits */
	__u64 *drops = bpf_map_lookup_elem(&blocked, &port);

	if (!drops)
		return 1;
	__sync_fetch_and_add(drops, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";
