/* run_memory: a memory cgroup per sandbox when we may make one, /proc
 * otherwise. */
#include "run/run_memory.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

struct ocil_run_memory {
	char *dir; /* the group */
	int v;	   /* 1 or 2 */
	int procs; /* cgroup.procs */
};

#define GROUP_PREFIX "ocilambda-run-"

/* A small file's first line, or NULL. */
static char *read_line(const char *path)
{
	char buf[256];
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return ocil_xstrdup(buf);
}

static bool write_str(const char *dir, const char *file, const char *value)
{
	cleanup_free char *path = ocil_xasprintf("%s/%s", dir, file);
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
	return fd >= 0 && write(fd, value, strlen(value)) == (ssize_t)strlen(value);
}

/* The value of "key N" in a flat keyed file (memory.events, oom_control;
 * /proc/PID/status, where a tab follows the key). */
static long long keyed(const char *path, const char *key)
{
	cleanup_fclose FILE *f = fopen(path, "re");
	char line[256];
	size_t n = strlen(key);
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, n) == 0 && (line[n] == ' ' || line[n] == '\t'))
			return strtoll(line + n + 1, NULL, 10);
	return -1;
}

/* Our cgroup's directory in the hierarchy mounted as fstype (cgroup2, or
 * cgroup with the memory controller), or NULL. */
static char *own_group(bool v2)
{
	/* where our group is, inside the hierarchy */
	cleanup_fclose FILE *cg = fopen("/proc/self/cgroup", "re");
	char line[4096];
	cleanup_free char *path = NULL;
	while (cg != NULL && path == NULL && fgets(line, sizeof(line), cg) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL)
			continue;
		*c2 = '\0';
		const char *ctrls = c1 + 1;
		bool match = v2 ? strcmp(line, "0") == 0 && ctrls[0] == '\0' : false;
		for (const char *p = ctrls; !v2 && *p;) {
			size_t n = strcspn(p, ",");
			if (n == 6 && strncmp(p, "memory", 6) == 0)
				match = true;
			p += n + (p[n] == ',');
		}
		if (match)
			path = ocil_xstrdup(c2 + 1);
	}
	if (path == NULL)
		return NULL;
	/* where that hierarchy is mounted */
	cleanup_fclose FILE *mi = fopen("/proc/self/mountinfo", "re");
	while (mi != NULL && fgets(line, sizeof(line), mi) != NULL) {
		char root[1024], mnt[1024], fstype[64], opts[512];
		if (sscanf(line, "%*s %*s %*s %1023s %1023s %*[^-]- %63s %*s %511s", root, mnt,
			   fstype, opts) != 4)
			continue;
		bool ok = v2 ? strcmp(fstype, "cgroup2") == 0
			     : strcmp(fstype, "cgroup") == 0 && (strstr(opts, ",memory") != NULL ||
								 strncmp(opts, "memory", 6) == 0);
		if (!ok)
			continue;
		size_t rl = strlen(root);
		const char *rest = path;
		if (strcmp(root, "/") != 0) {
			if (strncmp(path, root, rl) != 0 || (path[rl] != '/' && path[rl] != '\0'))
				continue;
			rest = path + rl;
		}
		return ocil_xasprintf("%s%s", mnt, rest);
	}
	return NULL;
}

/* Remove the groups of ocilambda processes that are gone (SIGKILLed before
 * they could). */
static void sweep(const char *parent)
{
	DIR *d = opendir(parent);
	if (d == NULL)
		return;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (!ocil_str_has_prefix(e->d_name, GROUP_PREFIX))
			continue;
		long pid = strtol(e->d_name + strlen(GROUP_PREFIX), NULL, 10);
		if (pid > 0 && pid != getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
			cleanup_free char *p = ocil_xasprintf("%s/%s", parent, e->d_name);
			(void)rmdir(p);
		}
	}
	closedir(d);
}

static char *new_group(const char *parent)
{
	static unsigned counter;
	sweep(parent);
	char *dir = ocil_xasprintf("%s/" GROUP_PREFIX "%ld-%u", parent, (long)getpid(), counter++);
	if (mkdir(dir, 0755) < 0) {
		free(dir);
		return NULL;
	}
	return dir;
}

static bool has_file(const char *dir, const char *file)
{
	cleanup_free char *p = ocil_xasprintf("%s/%s", dir, file);
	return access(p, F_OK) == 0;
}

/* v2: a group with the memory controller, under ours. */
static char *try_v2(void)
{
	cleanup_free char *own = own_group(true);
	if (own == NULL)
		return NULL;
	char *dir = new_group(own);
	if (dir == NULL)
		return NULL;
	/* the controller must be enabled for our group's children (fails when
	 * our group holds processes and is not the root: then no luck) */
	if (!has_file(dir, "memory.max"))
		(void)write_str(own, "cgroup.subtree_control", "+memory");
	if (!has_file(dir, "memory.max")) {
		rmdir(dir);
		free(dir);
		return NULL;
	}
	return dir;
}

int ocil_run_memory_open(long limit_mb, ocil_run_memory **out, char **why, ocil_error **err)
{
	*out = NULL;
	*why = NULL;
	char limit[32];
	snprintf(limit, sizeof(limit), "%lld", (long long)limit_mb << 20);
	int v = 2;
	char *dir = try_v2();
	if (dir == NULL) {
		v = 1;
		cleanup_free char *own = own_group(false);
		dir = own ? new_group(own) : NULL;
		if (dir == NULL) {
			*why = ocil_xstrdup(own ? "no writable memory cgroup (v2 or v1) here"
						: "no memory cgroup controller here");
			return 0;
		}
	}
	ocil_run_memory *m = ocil_xcalloc(1, sizeof(*m));
	m->dir = dir;
	m->v = v;
	m->procs = -1;
	bool ok = write_str(dir, v == 2 ? "memory.max" : "memory.limit_in_bytes", limit);
	/* no swap beyond it either (where there is swap accounting) */
	if (ok && v == 2)
		(void)write_str(dir, "memory.swap.max", "0");
	else if (ok)
		(void)write_str(dir, "memory.memsw.limit_in_bytes", limit);
	if (!ok) {
		int e = errno;
		ocil_run_memory_free(m);
		return ocil_error_set_errno(err, OCIL_E_IO, e, "setting the memory cgroup's limit");
	}
	cleanup_free char *procs = ocil_xasprintf("%s/cgroup.procs", dir);
	m->procs = open(procs, O_WRONLY | O_CLOEXEC);
	if (m->procs < 0) {
		ocil_run_memory_free(m);
		*why = ocil_xstrdup("the memory cgroup's cgroup.procs is not writable");
		return 0;
	}
	*out = m;
	return 0;
}

int ocil_run_memory_procs_fd(const ocil_run_memory *m)
{
	return m ? m->procs : -1;
}

const char *ocil_run_memory_kind(const ocil_run_memory *m)
{
	return m == NULL ? "VmHWM" : m->v == 2 ? "cgroup v2" : "cgroup v1";
}

static long mb_up(long long bytes)
{
	return (long)((bytes + (1 << 20) - 1) >> 20);
}

/* The largest VmHWM (kB) of pid and its descendants. */
static long long hwm_tree(pid_t pid, int depth)
{
	cleanup_free char *status = ocil_xasprintf("/proc/%ld/status", (long)pid);
	long long best = keyed(status, "VmHWM:");
	if (depth > 32)
		return best;
	cleanup_free char *tasks = ocil_xasprintf("/proc/%ld/task", (long)pid);
	DIR *d = opendir(tasks);
	for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.')
			continue;
		cleanup_free char *children =
		    ocil_xasprintf("/proc/%ld/task/%s/children", (long)pid, e->d_name);
		cleanup_fclose FILE *f = fopen(children, "re");
		long child;
		while (f != NULL && fscanf(f, "%ld", &child) == 1) {
			long long h = hwm_tree((pid_t)child, depth + 1);
			if (h > best)
				best = h;
		}
	}
	if (d != NULL)
		closedir(d);
	return best;
}

long ocil_run_memory_peak_mb(const ocil_run_memory *m, pid_t pid)
{
	if (m != NULL) {
		const char *files[] = {m->v == 2 ? "memory.peak" : "memory.max_usage_in_bytes",
				       m->v == 2 ? "memory.current" : "memory.usage_in_bytes"};
		for (size_t i = 0; i < 2; i++) {
			cleanup_free char *p = ocil_xasprintf("%s/%s", m->dir, files[i]);
			cleanup_free char *s = read_line(p);
			if (s != NULL && s[0] >= '0' && s[0] <= '9')
				return mb_up(strtoll(s, NULL, 10));
		}
	}
	if (pid <= 0)
		return -1;
	/* VmHWM is in kB; the tool's own bwrap processes count too, as small */
	long long kb = hwm_tree(pid, 0);
	return kb < 0 ? -1 : mb_up(kb << 10);
}

bool ocil_run_memory_oom(const ocil_run_memory *m)
{
	if (m == NULL)
		return false;
	cleanup_free char *p =
	    ocil_xasprintf("%s/%s", m->dir, m->v == 2 ? "memory.events" : "memory.oom_control");
	return keyed(p, "oom_kill") > 0;
}

void ocil_run_memory_free(ocil_run_memory *m)
{
	if (m == NULL)
		return;
	if (m->procs >= 0)
		close(m->procs);
	(void)rmdir(m->dir);
	free(m->dir);
	free(m);
}
