// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Runs inside the VMs of scripts/bench/verifier-kernels.sh (and on the host): loads one BPF
 * object the way the agent's skeleton does (open, then load every program and create every
 * map), only loading, never attaching. When the whole object fails, each program is loaded
 * again on its own, because libbpf stops at the first program the verifier rejects and the
 * report wants a verdict for every program.
 *
 * Output, one record a line, for the host script to parse from the serial console:
 *   NLB-PROG <label> <program> <type> ok
 *   NLB-PROG <label> <program> <type> needs <version> <reason>   a helper or instruction this
 *       kernel predates; <version> is the kernel that brought it (for the 5.15 floor:
 *       acceptable when <version> <= 5.15)
 *   NLB-PROG <label> <program> <type> denied <reason>            refused with EPERM before
 *       the verifier ran (no message): the kernel's policy forbids the program type to this
 *       process, so nothing is known of its verdict here
 *   NLB-PROG <label> <program> <type> fail <reason>              any other rejection
 *   NLB-LOG <label> <program> <line>                             verifier log tail of a failure
 *   NLB-OBJ <label> ok|fail <reason>
 *
 *   usage: verifier-load LABEL OBJECT.bpf.o */
#define _GNU_SOURCE /* memmem */
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define LOG_TAIL_LINES 25

/* Everything libbpf says during one load attempt: the verifier log arrives through it. */
static char *said;
static size_t said_len, said_cap;

static int capture(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	va_list again;
	int n;

	if (level == LIBBPF_DEBUG)
		return 0;
	va_copy(again, ap);
	n = vsnprintf(NULL, 0, fmt, again);
	va_end(again);
	if (n < 0)
		return 0;
	if (said_len + n + 1 > said_cap) {
		size_t cap = (said_len + n + 1) * 2;
		char *p = realloc(said, cap);

		if (!p)
			return 0;
		said = p;
		said_cap = cap;
	}
	vsnprintf(said + said_len, said_cap - said_len, fmt, ap);
	said_len += n;
	return n;
}

static void forget(void)
{
	said_len = 0;
	if (said)
		said[0] = 0;
}

/* What a program asks of the kernel, read from its instructions after libbpf relocated them
 * (subprograms appended): the newest helper it calls and whether it takes a callback's
 * address (BPF_PSEUDO_FUNC ld_imm64: bpf_timer_set_callback, bpf_for_each_map_elem, ...). */
struct uses {
	int newest_helper;
	bool callback;
	bool atomic_fetch; /* BPF_ATOMIC other than a plain add: fetch, xchg, cmpxchg, and/or/xor */
};

/* Helper names by id, from the UAPI header this is built with; the mapper's form changed in
 * 6.2 from comma-separated FN(name) to FN(name, id, ctx...). */
#ifdef ___BPF_FUNC_MAPPER
#define NLB_HELPER_NAME(x, id, ...) [id] = "bpf_" #x,
static const char *const helper_names[] = {___BPF_FUNC_MAPPER(NLB_HELPER_NAME)};
#else
#define NLB_HELPER_NAME(x) "bpf_" #x
static const char *const helper_names[] = {__BPF_FUNC_MAPPER(NLB_HELPER_NAME)};
#endif
#define HELPER_COUNT (int)(sizeof(helper_names) / sizeof(helper_names[0]))

/* The last helper id each kernel release added (helpers are numbered in the order they were
 * merged; docs: bcc's docs/kernel-versions.md). Ids up to 155 are all in 5.10. */
static const struct {
	int last_id;
	const char *version;
} helper_since[] = {
	{155, "5.10"}, /* redirect_peer */
	{162, "5.11"}, /* task_storage_*, ktime_get_coarse_ns, ..., sock_from_file */
	{163, "5.12"}, /* check_mtu */
	{165, "5.13"}, /* for_each_map_elem, snprintf */
	{168, "5.14"}, /* sys_bpf, btf_find_by_name_kind, sys_close */
	{175, "5.15"}, /* timer_*, get_func_ip, get_attach_cookie, task_pt_regs */
	{179, "5.16"}, /* get_branch_snapshot, trace_vprintk, skc_to_unix_sock, kallsyms_... */
};

static const char *helper_version(int id)
{
	for (size_t i = 0; i < sizeof(helper_since) / sizeof(helper_since[0]); i++)
		if (id <= helper_since[i].last_id)
			return helper_since[i].version;
	return "5.17+";
}

static const char *helper_name(int id)
{
	return id >= 0 && id < HELPER_COUNT ? helper_names[id] : "?";
}

/* A helper an older kernel has, but not yet for this program type. Only pairs whose arrival
 * is known are listed; any other "unknown func" is a genuine rejection. */
static const struct {
	enum bpf_prog_type type;
	int id;
	const char *version;
} helper_for_type_since[] = {
	{BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie, "5.15"},
};

/* The verifier log inside what libbpf said, or NULL. */
static char *verifier_log(void)
{
	char *begin = said ? strstr(said, "-- BEGIN PROG LOAD LOG --") : NULL;
	char *end;

	if (!begin)
		return NULL;
	begin = strchr(begin, '\n');
	if (!begin)
		return NULL;
	begin++;
	end = strstr(begin, "-- END PROG LOAD LOG --");
	if (end)
		*end = 0;
	return begin;
}

/* Lines around the error that are not the reason: statistics some kernels append, and the
 * precision backtracking and state dumps older kernels print between instruction and error. */
static bool is_stats(const char *line)
{
	static const char *const noise[] = {"processed ", "verification time", "stack depth",
					    "libbpf:", "regs=", "last_idx ", "parent ",
					    "mark_precise", " frame", "from "};

	for (size_t i = 0; i < sizeof(noise) / sizeof(noise[0]); i++)
		if (!strncmp(line, noise[i], strlen(noise[i])))
			return true;
	return !*line;
}

/* The last two lines of `text` that are not statistics, joined with " | " into `out`: the
 * verifier's message and, mostly, the instruction or state it is about. */
static void last_reason(const char *text, char *out, size_t size)
{
	const char *p = text, *at[2] = {NULL, NULL};
	size_t len_at[2] = {0, 0};

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[512];

		snprintf(line, sizeof(line), "%.*s", (int)(len < 511 ? len : 511), p);
		if (!is_stats(line)) {
			at[0] = at[1];
			len_at[0] = len_at[1];
			at[1] = p;
			len_at[1] = len;
		}
		p += len + (nl ? 1 : 0);
	}
	if (!at[1])
		snprintf(out, size, "no verifier message");
	else if (!at[0])
		snprintf(out, size, "%.*s", (int)len_at[1], at[1]);
	else
		snprintf(out, size, "%.*s | %.*s", (int)len_at[0], at[0], (int)len_at[1], at[1]);
}

/* libbpf's own last complaint, for failures outside the verifier (map creation, ELF). */
static void libbpf_reason(char *out, size_t size)
{
	const char *p = said ? said : "", *best = NULL;
	size_t best_len = 0;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (memmem(p, len, "fail", 4) || memmem(p, len, "error", 5) ||
		    memmem(p, len, "invalid", 7)) {
			best = p;
			best_len = len;
		}
		p += len + (nl ? 1 : 0);
	}
	if (!best)
		snprintf(out, size, "no message from libbpf");
	else
		snprintf(out, size, "%.*s", (int)best_len, best);
}

/* Classifies a rejection: "needs" with the kernel that brought the missing piece, or "fail"
 * (NULL). Kernels name a helper id they do not know "unknown#N"; one they know but do not
 * offer to the program type by its name. */
static const char *classify(enum bpf_prog_type type, const struct uses *uses, const char *reason,
			    char *why, size_t size)
{
	const char *at;
	int id;

	if ((at = strstr(reason, "unknown#")) && sscanf(at, "unknown#%d", &id) == 1) {
		snprintf(why, size, "%s (helper %d, kernel %s): %s", helper_name(id), id,
			 helper_version(id), reason);
		return helper_version(id);
	}
	if ((at = strstr(reason, "unknown func ")) && (at = strchr(at, '#')) &&
	    sscanf(at, "#%d", &id) == 1) {
		for (size_t i = 0; i < sizeof(helper_for_type_since) / sizeof(helper_for_type_since[0]);
		     i++)
			if (helper_for_type_since[i].type == type && helper_for_type_since[i].id == id) {
				snprintf(why, size, "%s for %s programs (kernel %s): %s",
					 helper_name(id), libbpf_bpf_prog_type_str(type),
					 helper_for_type_since[i].version, reason);
				return helper_for_type_since[i].version;
			}
	}
	/* Before 5.13 a callback's address is an unknown ld_imm64, and the callback a function
	 * in the BTF that no call reaches: whichever check comes first names it. */
	if (uses->callback && (strstr(reason, "unrecognized bpf_ld_imm64 insn") ||
			       strstr(reason, "number of funcs in func_info doesn't match"))) {
		snprintf(why, size, "callback address, BPF_PSEUDO_FUNC (kernel 5.13): %s", reason);
		return "5.13";
	}
	/* __sync_fetch_and_add() whose result is used, and the other atomics, are 5.12's. */
	if (uses->atomic_fetch && strstr(reason, "uses reserved fields")) {
		snprintf(why, size, "atomic with fetch, BPF_ATOMIC (kernel 5.12): %s", reason);
		return "5.12";
	}
	snprintf(why, size, "%s", reason);
	return NULL;
}

static void print_log_tail(const char *label, const char *prog, const char *log)
{
	const char *lines[LOG_TAIL_LINES];
	int n = 0;
	const char *p = log;

	while (*p) {
		const char *nl = strchr(p, '\n');

		lines[n++ % LOG_TAIL_LINES] = p;
		if (!nl)
			break;
		p = nl + 1;
	}
	for (int i = n > LOG_TAIL_LINES ? n - LOG_TAIL_LINES : 0; i < n; i++) {
		const char *l = lines[i % LOG_TAIL_LINES];
		const char *nl = strchr(l, '\n');

		printf("NLB-LOG %s %s %.*s\n", label, prog, nl ? (int)(nl - l) : (int)strlen(l), l);
	}
}

/* Opens `path` with only program `only` (or all, when NULL) to be loaded; 0 when it loads. */
static int load(const char *path, const char *only, struct uses *uses)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	struct bpf_program *p;
	int err;

	if (!obj)
		return -errno;
	if (only)
		bpf_object__for_each_program(p, obj)
			bpf_program__set_autoload(p, !strcmp(bpf_program__name(p), only));
	err = bpf_object__load(obj);
	if (uses && only) {
		*uses = (struct uses){-1, false, false};
		p = bpf_object__find_program_by_name(obj, only);
		const struct bpf_insn *in = p ? bpf_program__insns(p) : NULL;
		size_t n = p ? bpf_program__insn_cnt(p) : 0;

		for (size_t i = 0; in && i < n; i++) {
			if (in[i].code == (BPF_JMP | BPF_CALL) && in[i].src_reg == 0 &&
			    in[i].imm > uses->newest_helper)
				uses->newest_helper = in[i].imm;
			if (in[i].code == (BPF_LD | BPF_IMM | BPF_DW) &&
			    in[i].src_reg == BPF_PSEUDO_FUNC)
				uses->callback = true;
			if (BPF_CLASS(in[i].code) == BPF_STX && BPF_MODE(in[i].code) == BPF_ATOMIC &&
			    in[i].imm != BPF_ADD)
				uses->atomic_fetch = true;
		}
	}
	bpf_object__close(obj);
	return err;
}

/* Whether kernel version a is later than b ("5.15" > "5.9"; "5.17+" is 5.17). */
static bool later(const char *a, const char *b)
{
	int am = 0, an = 0, bm = 0, bn = 0;

	sscanf(a, "%d.%d", &am, &an);
	sscanf(b, "%d.%d", &bm, &bn);
	return am > bm || (am == bm && an > bn);
}

int main(int argc, char **argv)
{
	struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
	const char *label, *path;
	struct bpf_object *obj;
	struct bpf_program *p;
	int failed = 0, needs = 0, denied = 0, err;
	char reason[512], why[768], first[1024] = "";

	if (argc != 3) {
		fprintf(stderr, "usage: verifier-load LABEL OBJECT.bpf.o\n");
		return 2;
	}
	label = argv[1];
	path = argv[2];
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Kernels before 5.11 charge maps to RLIMIT_MEMLOCK; the agent's libbpf raises it too. */
	setrlimit(RLIMIT_MEMLOCK, &unlimited);
	libbpf_set_print(capture);

	obj = bpf_object__open_file(path, NULL);
	if (!obj) {
		libbpf_reason(reason, sizeof(reason));
		printf("NLB-OBJ %s fail open: %s\n", label, reason);
		return 1;
	}
	forget();
	if (load(path, NULL, NULL) == 0) {
		bpf_object__for_each_program(p, obj)
			printf("NLB-PROG %s %s %s ok\n", label, bpf_program__name(p),
			       libbpf_bpf_prog_type_str(bpf_program__type(p)));
		printf("NLB-OBJ %s ok\n", label);
		bpf_object__close(obj);
		return 0;
	}

	bpf_object__for_each_program(p, obj) {
		const char *name = bpf_program__name(p);
		enum bpf_prog_type type = bpf_program__type(p);
		struct uses uses = {-1, false, false};
		const char *since;
		char *log;

		forget();
		err = load(path, name, &uses);
		if (err == 0) {
			printf("NLB-PROG %s %s %s ok\n", label, name, libbpf_bpf_prog_type_str(type));
			continue;
		}
		log = verifier_log();
		if (log)
			last_reason(log, reason, sizeof(reason));
		else
			libbpf_reason(reason, sizeof(reason));
		if (err == -EPERM && (!log || !strcmp(reason, "no verifier message"))) {
			denied++;
			printf("NLB-PROG %s %s %s denied EPERM before any verifier message: this "
			       "kernel does not let this process load %s programs\n",
			       label, name, libbpf_bpf_prog_type_str(type),
			       libbpf_bpf_prog_type_str(type));
			continue;
		}
		since = classify(type, &uses, reason, why, sizeof(why));
		/* The verifier stops at the first missing piece; the helpers show what else the
		 * program needs (bpf_timer_* after a 5.13 callback, say). */
		if (since && uses.newest_helper >= 0 &&
		    later(helper_version(uses.newest_helper), since)) {
			since = helper_version(uses.newest_helper);
			snprintf(why + strlen(why), sizeof(why) - strlen(why),
				 "; it also calls %s (kernel %s)", helper_name(uses.newest_helper),
				 since);
		}
		if (since) {
			needs++;
			printf("NLB-PROG %s %s %s needs %s %s\n", label, name,
			       libbpf_bpf_prog_type_str(type), since, why);
		} else {
			failed++;
			printf("NLB-PROG %s %s %s fail %s\n", label, name,
			       libbpf_bpf_prog_type_str(type), why);
		}
		if (!first[0])
			snprintf(first, sizeof(first), "%s: %s", name, why);
		if (log)
			print_log_tail(label, name, log);
	}
	if (!failed && !needs && denied) {
		printf("NLB-OBJ %s denied\n", label);
	} else if (!failed && !needs) {
		/* every program alone loads, the whole object does not: maps or their sum */
		forget();
		load(path, NULL, NULL);
		libbpf_reason(reason, sizeof(reason));
		printf("NLB-OBJ %s fail whole object: %s\n", label, reason);
	} else {
		printf("NLB-OBJ %s fail %s\n", label, first);
	}
	bpf_object__close(obj);
	return 1;
}
