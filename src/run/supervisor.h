/* supervisor: the sandbox of one `ocilambda run` invocation as a process
 * to watch. It starts in a process group of its own; stopping it kills the
 * group and reaps whatever it left. The process that starts sandboxes is a
 * subreaper (ocil_supervisor_init), so the sandbox's pid 1 comes back to it
 * when bwrap goes, and the sandbox is gone only once everything in its pid
 * namespace is. A deadline (the function's timeout) goes with it. */
#ifndef OCIL_SUPERVISOR_H
#define OCIL_SUPERVISOR_H

#include <stdbool.h>
#include <sys/types.h>

#include "base/error.h"
#include "base/util.h"

typedef struct {
	pid_t pid;	 /* 0: not running */
	int status;	 /* the wait status of the last one, once reaped */
	double deadline; /* monotonic seconds; 0: none */
} ocil_supervisor;

/* Make this process a subreaper (orphans of its children come back to
 * it, to be reaped by ocil_supervisor_stop). */
void ocil_supervisor_init(void);

/* Start argv (argv[0] looked up in PATH) in a process group of its own,
 * stdin from /dev/null, stdout and stderr to errfd (-1: our stderr), in
 * the cgroup whose cgroup.procs is cgfd (-1: none); nothing else is
 * inherited. bubblewrap missing is an OCIL_E_IO error naming the package. */
int ocil_supervisor_start(ocil_supervisor *s, const char *const *argv, int errfd, int cgfd,
			  ocil_error **err);
/* Reap without waiting; true once the process has exited (its group is
 * then killed and reaped too), or when none runs. */
bool ocil_supervisor_exited(ocil_supervisor *s);
/* Kill the process group and reap it and every orphan left to us; the
 * deadline goes too. Safe when none runs. */
void ocil_supervisor_stop(ocil_supervisor *s);

/* The deadline: seconds from now; 0 clears it. */
void ocil_supervisor_arm(ocil_supervisor *s, double seconds);
/* A process runs and its deadline passed. */
bool ocil_supervisor_timed_out(const ocil_supervisor *s);

/* Monotonic seconds. */
double ocil_supervisor_now(void);

/* Whether bwrap can make a sandbox here: its own message says why not
 * (ocil_sandbox_failed). */
int ocil_supervisor_check_bwrap(ocil_error **err);

#endif
