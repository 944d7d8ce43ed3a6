/* run_report: what `ocilambda run` says about each invocation, in the
 * words of the Runtime Interface Emulator (START / END / REPORT lines), and
 * the error bodies Lambda answers for the failures a function cannot report
 * itself (a timeout, a runtime that exits). Strings only: the caller
 * prints. */
#ifndef OCIL_RUN_REPORT_H
#define OCIL_RUN_REPORT_H

/* "START RequestId: <id> Version: <version>" */
char *ocil_run_start_line(const char *id, const char *version);
/* "END RequestId: <id>" */
char *ocil_run_end_line(const char *id);

typedef struct {
	double init_ms;	    /* < 0: not the sandbox's first invocation */
	double duration_ms; /* the invocation, from hand-out to answer */
	long memory_mb;	    /* the configured size */
	long max_used_mb;   /* < 0: not known */
	const char *status; /* NULL, or "timeout", "error" (Lambda adds it) */
	const char *error_type;
} ocil_run_report;

/* "REPORT RequestId: <id>\tInit Duration: 12.34 ms\tDuration: … ms\t
 * Billed Duration: <ceil> ms\tMemory Size: <n> MB\tMax Memory Used: <n> MB"
 * (tab-separated, a trailing tab, as the emulator prints it) */
char *ocil_run_report_line(const char *id, const ocil_run_report *rep);

/* "exit status 3", "signal: killed" (Go's words, as Lambda quotes them) */
char *ocil_run_exit_text(int wait_status);
/* {"errorType":"Sandbox.Timedout","errorMessage":"RequestId: <id> Error:
 * Task timed out after <n>.00 seconds"} */
char *ocil_run_timeout_body(const char *id, long timeout_s);
/* {"errorType":"Runtime.ExitError","errorMessage":"RequestId: <id> Error:
 * Runtime exited with error: <exit text>"}; errorType Runtime.OutOfMemory
 * when oom */
char *ocil_run_exit_body(const char *id, int wait_status, int oom);

#endif
