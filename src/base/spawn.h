/* spawn: the one way ocilambda starts a program. Its standard streams come
 * from descriptors, /dev/null, bytes we give it, or pipes we read (bounded);
 * nothing else is inherited (descriptors past 2 are close-on-exec in the
 * child, signals back to their defaults); a failed exec comes back as its
 * errno, not as a child that exits 127. ocil_spawn_run also waits: until
 * the program exits, its deadline passes or the run is cancelled (then it
 * is killed, with its process group when it has one).
 *
 * Users: credential helpers (registry/credentials.c), the sandbox of
 * bytecode compilation (run/sandbox.c) and of `ocilambda run`
 * (run/supervisor.c). */
#ifndef OCIL_SPAWN_H
#define OCIL_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/error.h"
#include "base/util.h"

/* A stream read into memory: the first max bytes are kept (the rest read
 * and dropped, or, with fail_over, the child is killed at once). */
typedef struct {
	size_t max;
	bool fail_over;
	char *buf; /* NUL-terminated, caller frees; NULL when nothing came */
	size_t len;
	bool overflow; /* more than max came */
} ocil_spawn_capture;

typedef struct {
	const char *const *argv;
	/* the program: path, else argv[0]; without a '/' it is looked up in
	 * PATH */
	const char *path;
	/* stdin: input's bytes when input is set (a few KiB at most, written
	 * before the output is read; a child that does not read them loses
	 * them), else stdin_fd; -1: /dev/null */
	const char *input;
	size_t input_len;
	int stdin_fd;
	/* stdout and stderr: captured (ocil_spawn_run) when out / err is set,
	 * else stdout_fd / stderr_fd; -1: /dev/null. merge: stdout goes where
	 * stderr goes. */
	int stdout_fd, stderr_fd;
	bool merge;
	ocil_spawn_capture *out, *err;
	bool new_group; /* a process group of its own (killed as one) */
	int cgroup_fd;	/* a cgroup.procs the child writes "0" to first; -1: none */
	/* ocil_spawn_run: kill it after timeout_ms (0: no deadline), or when
	 * cancelled */
	int timeout_ms;
	const ocil_cancel *cancel;
} ocil_spawn_opts;

/* Initializer: nothing captured, /dev/null for every stream. */
#define OCIL_SPAWN_OPTS_INIT                                                                       \
	{                                                                                          \
		.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .cgroup_fd = -1                  \
	}

/* Start the program (no capture, no input) and return its pid. -1 with
 * OCIL_E_IO when pipes or fork fail, or when the program cannot be
 * executed: "running <argv[0]>: <strerror>", *exec_errno (may be NULL)
 * set to the errno (ENOENT: not installed); 0 otherwise. */
int ocil_spawn(const ocil_spawn_opts *o, pid_t *pid, int *exec_errno, ocil_error **err);

typedef struct {
	int status;	/* its wait status */
	bool timed_out; /* killed at its deadline */
	int exec_errno; /* as ocil_spawn's */
} ocil_spawn_result;

/* Start, feed, read and wait. -1 as ocil_spawn, or OCIL_E_CANCELLED (the
 * program killed); a deadline passed or a capture's fail_over are not
 * errors: res and the captures say. Captures are filled either way. */
int ocil_spawn_run(const ocil_spawn_opts *o, ocil_spawn_result *res, ocil_error **err);

#endif
