/* run_memory: the memory of one `ocilambda run` sandbox. Lambda gives a
 * function --memory MB and reports its peak as Max Memory Used; here a
 * memory cgroup enforces the size and measures the peak where the host lets
 * an unprivileged tool make one (cgroup v2 with the memory controller
 * delegated to our cgroup, or v1's memory hierarchy writable, as for root).
 * Elsewhere nothing is enforced and the peak is the largest peak RSS
 * (VmHWM, what getrusage's ru_maxrss reports) among the sandbox's
 * processes. */
#ifndef OCIL_RUN_MEMORY_H
#define OCIL_RUN_MEMORY_H

#include <stdbool.h>
#include <sys/types.h>

#include "base/error.h"

typedef struct ocil_run_memory ocil_run_memory;

/* A cgroup limited to limit_mb under our own, or, when the host does not
 * let us make one, *out NULL and *why saying why (returns 0 either way;
 * -1 only for a limit the kernel refuses). Stale groups of dead ocilambda
 * processes are removed on the way. */
int ocil_run_memory_open(long limit_mb, ocil_run_memory **out, char **why, ocil_error **err);
/* The group's cgroup.procs, open for writing (close-on-exec): the child
 * writes "0" there before it execs, so that all of the sandbox is in the
 * group. -1 without a group. */
int ocil_run_memory_procs_fd(const ocil_run_memory *m);
/* The sandbox's peak in MB (rounded up): the group's high-water mark,
 * else the largest VmHWM among pid and its descendants; -1 when unknown. */
long ocil_run_memory_peak_mb(const ocil_run_memory *m, pid_t pid);
/* Whether the kernel killed a process of the group for want of memory. */
bool ocil_run_memory_oom(const ocil_run_memory *m);
/* What measures the peak: "cgroup v2", "cgroup v1" or "VmHWM". */
const char *ocil_run_memory_kind(const ocil_run_memory *m);
/* Remove the group (once its processes are gone) and free m. */
void ocil_run_memory_free(ocil_run_memory *m);

#endif
