// SPDX-License-Identifier: GPL-2.0
/* Loader for eagain_trace.bpf.o: eagain_trace OBJ [CGROUP_DIR]. Attaches every program, counts only tasks in
 * CGROUP_DIR, prints "attached" and waits for stdin to close (or SIGINT/SIGTERM), then prints JSON: counters and
 * the waker stacks (raw addresses) and detaches (closing the links). */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *names[] = {"recv_calls", "recv_eagain", "recv_eagain_blocking", "wait_calls", "wait_empty",
	"wait_empty_woken_by_EPOLLOUT", "wait_empty_woken_by_EPOLLIN", "wait_empty_woken_other", "wait_empty_no_wake",
	"sk_stream_write_space", "unused", "unused2"};

static void nop(int s) { (void)s; }

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s OBJ [CGROUP_DIR]\n", argv[0]);
		return 2;
	}
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || libbpf_get_error(obj)) {
		fprintf(stderr, "open failed\n");
		return 1;
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "load failed\n");
		return 1;
	}
	if (argc > 2) {
		struct stat st;
		if (stat(argv[2], &st)) {
			perror("stat cgroup");
			return 1;
		}
		__u32 z = 0;
		__u64 id = st.st_ino;
		bpf_map_update_elem(bpf_object__find_map_fd_by_name(obj, "cfg"), &z, &id, 0);
	}
	struct bpf_link *links[16];
	int n = 0;
	struct bpf_program *p;
	bpf_object__for_each_program(p, obj) {
		links[n] = bpf_program__attach(p);
		if (!links[n] || libbpf_get_error(links[n])) {
			fprintf(stderr, "attach %s failed\n", bpf_program__name(p));
			return 1;
		}
		n++;
	}
	signal(SIGINT, nop);
	signal(SIGTERM, nop);
	printf("attached\n");
	fflush(stdout);
	char buf[64];
	while (read(0, buf, sizeof buf) > 0)
		;
	int cnt = bpf_object__find_map_fd_by_name(obj, "cnt");
	printf("{\"counters\": {");
	for (__u32 i = 0; i < 10; i++) {
		__u64 v = 0;
		bpf_map_lookup_elem(cnt, &i, &v);
		printf("%s\"%s\": %llu", i ? ", " : "", names[i], (unsigned long long)v);
	}
	printf("}, \"empty_wakers\": [");
	int ew = bpf_object__find_map_fd_by_name(obj, "empty_wakers");
	int stk = bpf_object__find_map_fd_by_name(obj, "stacks");
	__u32 key, next;
	int first = 1, more = bpf_map_get_next_key(ew, NULL, &key) == 0;
	while (more) {
		__u64 count = 0, ips[32] = {0};
		bpf_map_lookup_elem(ew, &key, &count);
		bpf_map_lookup_elem(stk, &key, ips);
		printf("%s{\"count\": %llu, \"stack\": [", first ? "" : ", ", (unsigned long long)count);
		for (int j = 0; j < 32 && ips[j]; j++)
			printf("%s%llu", j ? ", " : "", (unsigned long long)ips[j]);
		printf("]}");
		first = 0;
		more = bpf_map_get_next_key(ew, &key, &next) == 0;
		key = next;
	}
	printf("]}\n");
	for (int i = 0; i < n; i++)
		bpf_link__destroy(links[i]);
	bpf_object__close(obj);
	return 0;
}
