// Test object for loader features the accelerator twin lacks: a .text
// subprogram (bpf-to-bpf call), a stats ARRAY with a struct value, a
// PERCPU_ARRAY, .rodata/.data globals, and a .pybpfgen metadata section.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct stats_val {
    __u64 redirected;
    __u64 missed;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct stats_val);
} stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} hits SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u32);
} socks SEC(".maps");

const volatile __u32 step = 3;
__u32 calls = 0;

char meta[] SEC(".pybpfgen") =
    "{\"format\": 1, \"module\": \"features\", \"source\": \"/abs/programs/features.py\", "
    "\"programs\": {\"feat_msg\": {\"type\": \"sk_msg\", \"attach_map\": \"socks\"}, "
    "\"feat_run\": {\"type\": \"syscall\"}}}";

__attribute__((noinline)) int bump(__u32 idx, __u64 by)
{
    struct stats_val *v = bpf_map_lookup_elem(&stats, &idx);
    if (!v)
        return 0;
    __sync_fetch_and_add(&v->redirected, by);
    return 1;
}

static __attribute__((noinline)) int count_hit(__u32 idx)
{
    __u64 *h = bpf_map_lookup_elem(&hits, &idx);
    if (h)
        *h += 1;
    return bump(0, step);
}

SEC("syscall")
int feat_run(void *ctx)
{
    calls += 1;
    return count_hit(1) + bump(0, 1);
}

SEC("sk_msg")
int feat_msg(struct sk_msg_md *msg)
{
    bump(0, 1);
    return SK_PASS;
}

char _license[] SEC("license") = "GPL";
