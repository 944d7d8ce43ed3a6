/* Minimal unit-test harness: each tests/test_<module>.c defines TESTS with
 * TEST(name) entries; main() runs them and prints "N passed, N failed". */
#ifndef OCIL_TEST_H
#define OCIL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

extern int ocil_test_failed;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
			ocil_test_failed = 1;                                                      \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define CHECK_STREQ(a, b)                                                                          \
	do {                                                                                       \
		const char *_a = (a), *_b = (b);                                                   \
		if (_a == NULL || _b == NULL || strcmp(_a, _b) != 0) {                             \
			fprintf(stderr, "%s:%d: CHECK_STREQ failed: \"%s\" != \"%s\"\n", __FILE__, \
				__LINE__, _a ? _a : "(null)", _b ? _b : "(null)");                 \
			ocil_test_failed = 1;                                                      \
			return;                                                                    \
		}                                                                                  \
	} while (0)

/* Expect a call returning 0; prints the error otherwise. */
#define CHECK_OK(call, errp)                                                                       \
	do {                                                                                       \
		if ((call) != 0) {                                                                 \
			fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,       \
				*(errp) ? (*(errp))->msg : "(no error set)");                      \
			ocil_test_failed = 1;                                                      \
			return;                                                                    \
		}                                                                                  \
	} while (0)

/* Expect failure with the given code and a message containing needle. */
#define CHECK_FAIL(call, errp, want_code, needle)                                                  \
	do {                                                                                       \
		int _r = (call);                                                                   \
		CHECK(_r != 0);                                                                    \
		CHECK(*(errp) != NULL);                                                            \
		if ((*(errp))->code != (want_code) || strstr((*(errp))->msg, (needle)) == NULL) {  \
			fprintf(stderr, "%s:%d: wrong error (code %d): %s\n", __FILE__, __LINE__,  \
				(*(errp))->code, (*(errp))->msg);                                  \
			ocil_test_failed = 1;                                                      \
			return;                                                                    \
		}                                                                                  \
		ocil_error_free(*(errp));                                                          \
		*(errp) = NULL;                                                                    \
	} while (0)

typedef struct {
	const char *name;
	void (*fn)(void);
} ocil_test_case;

/* A per-test scratch directory (mkdtemp under $TMPDIR), removed by the runner. */
const char *ocil_test_tmpdir(void);

int ocil_test_main(const ocil_test_case *cases, size_t n, int argc, char **argv);

#define TEST_MAIN(...)                                                                             \
	int main(int argc, char **argv)                                                            \
	{                                                                                          \
		static const ocil_test_case cases[] = {__VA_ARGS__};                               \
		return ocil_test_main(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);        \
	}
#define T(fn)                                                                                      \
	{                                                                                          \
#fn, fn                                                                            \
	}

#endif
