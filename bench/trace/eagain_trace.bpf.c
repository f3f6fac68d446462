// SPDX-License-Identifier: GPL-2.0
/* Issue 11 probe: why does a blocking recv() on a sockmap socket return EAGAIN?
 * fentry/fexit (BPF trampolines; this kernel has no kprobes) on
 *   tcp_bpf_recvmsg      - every return value, EAGAIN on blocking calls
 *   tcp_msg_wait_data    - the single sk_wait_event of tcp_bpf_recvmsg; returns 0 = woken with both queues empty
 *   woken_wake_function  - who woke a task sleeping there: the poll key (EPOLLIN vs EPOLLOUT) and the waker's stack
 *   sk_stream_write_space
 * Only tasks in the cgroup whose id is in cfg[0] are counted (0 = all). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define EAGAIN 11
#define MSG_DONTWAIT 0x40
#define EPOLLIN 0x1
#define EPOLLOUT 0x4

enum {
	C_RECV_CALLS, C_RECV_EAGAIN, C_RECV_EAGAIN_BLOCKING, C_WAIT_CALLS, C_WAIT_EMPTY,
	C_WAIT_EMPTY_KEY_OUT, C_WAIT_EMPTY_KEY_IN, C_WAIT_EMPTY_KEY_OTHER, C_WAIT_EMPTY_NO_WAKE,
	C_WRITE_SPACE, C_WAIT_EMPTY_TIMEO_LEFT, C_WAIT_EMPTY_SIGNAL, C_MAX
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} cnt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cfg SEC(".maps");

struct waiting {
	__u64 key;
	__s64 stackid;
	__u64 woken;
	__u64 timeo;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct waiting);
} waiters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1024);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 32 * sizeof(__u64));
} stacks SEC(".maps");

/* stack id of the waker -> how often it woke a tcp_msg_wait_data sleeper that then found both queues empty */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} empty_wakers SEC(".maps");

static __always_inline void inc(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&cnt, &i);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline int mine(void)
{
	__u32 z = 0;
	__u64 *cg = bpf_map_lookup_elem(&cfg, &z);
	return !cg || !*cg || bpf_get_current_cgroup_id() == *cg;
}

SEC("fexit/tcp_bpf_recvmsg")
int BPF_PROG(recv_exit, struct sock *sk, struct msghdr *msg, size_t len, int flags, int *addr_len, int ret)
{
	if (!mine())
		return 0;
	inc(C_RECV_CALLS);
	if (ret == -EAGAIN) {
		inc(C_RECV_EAGAIN);
		if (!(flags & MSG_DONTWAIT) && BPF_CORE_READ(sk, sk_rcvtimeo) == 0x7fffffffffffffffL)
			inc(C_RECV_EAGAIN_BLOCKING);
	}
	return 0;
}

SEC("fentry/tcp_msg_wait_data")
int BPF_PROG(wait_enter, struct sock *sk, struct sk_psock *psock, long timeo)
{
	if (!mine())
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct waiting w = { .stackid = -1, .timeo = timeo };
	bpf_map_update_elem(&waiters, &tid, &w, BPF_ANY);
	inc(C_WAIT_CALLS);
	return 0;
}

SEC("fentry/woken_wake_function")
int BPF_PROG(wake, struct wait_queue_entry *wq_entry, unsigned mode, int sync, void *key)
{
	struct task_struct *t = BPF_CORE_READ(wq_entry, private);
	__u32 tid = BPF_CORE_READ(t, pid);
	struct waiting *w = bpf_map_lookup_elem(&waiters, &tid);
	if (!w || w->woken)
		return 0;
	w->woken = 1;
	w->key = (__u64)key;
	w->stackid = bpf_get_stackid(ctx, &stacks, 0);
	return 0;
}

SEC("fentry/sk_stream_write_space")
int BPF_PROG(ws, struct sock *sk)
{
	inc(C_WRITE_SPACE);
	return 0;
}

SEC("fexit/tcp_msg_wait_data")
int BPF_PROG(wait_exit, struct sock *sk, struct sk_psock *psock, long timeo, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct waiting *w = bpf_map_lookup_elem(&waiters, &tid);
	if (!w)
		return 0;
	if (ret == 0 && timeo) {
		inc(C_WAIT_EMPTY);
		if (!w->woken)
			inc(C_WAIT_EMPTY_NO_WAKE);
		else if (w->key & EPOLLOUT)
			inc(C_WAIT_EMPTY_KEY_OUT);
		else if (w->key & EPOLLIN)
			inc(C_WAIT_EMPTY_KEY_IN);
		else
			inc(C_WAIT_EMPTY_KEY_OTHER);
		if (w->woken && w->stackid >= 0) {
			__u32 id = w->stackid;
			__u64 one = 1, *v = bpf_map_lookup_elem(&empty_wakers, &id);
			if (v)
				__sync_fetch_and_add(v, 1);
			else
				bpf_map_update_elem(&empty_wakers, &id, &one, BPF_ANY);
		}
	}
	bpf_map_delete_elem(&waiters, &tid);
	return 0;
}
