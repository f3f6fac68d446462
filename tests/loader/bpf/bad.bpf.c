// Rejected by the verifier: dereferences a map value without a NULL check.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} counter SEC(".maps");

SEC("socket")
int bad_prog(struct __sk_buff *skb)
{
    __u32 key = 0;
    __u64 *v = bpf_map_lookup_elem(&counter, &key);
    *v += 1;
    return 0;
}

char _license[] SEC("license") = "GPL";
