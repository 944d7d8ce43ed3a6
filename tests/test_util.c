#include <stdio.h>
#include <string.h>

#include "test.h"
#include "util.h"

static void strmap_basics(void)
{
	ocil_strmap m = {0};
	unsigned char v = 7;
	/* an empty map has nothing, and leaves *val alone */
	CHECK(!ocil_strmap_get(&m, "a", &v));
	CHECK(v == 7);

	char key[8] = "a/b";
	ocil_strmap_put(&m, key, 1);
	strcpy(key, "zz"); /* the map keeps its own copy */
	ocil_strmap_put(&m, "", 2);
	int ok = ocil_strmap_get(&m, "a/b", &v) && v == 1 && ocil_strmap_get(&m, "", &v) &&
		 v == 2 && !ocil_strmap_get(&m, "zz", NULL) && !ocil_strmap_get(&m, "a", NULL) &&
		 ocil_strmap_get(&m, "a/b", NULL) && m.n == 2;
	/* a later put replaces the value, not the key */
	ocil_strmap_put(&m, "a/b", 3);
	ok = ok && ocil_strmap_get(&m, "a/b", &v) && v == 3 && m.n == 2;
	ocil_strmap_clear(&m);
	CHECK(ok);
	CHECK(m.n == 0 && m.cap == 0 && m.keys == NULL);
	CHECK(!ocil_strmap_get(&m, "a/b", NULL));
}

/* Enough keys to grow the table several times; every key survives. */
static void strmap_growth(void)
{
	ocil_strmap m = {0};
	char key[32];
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "dir/%u", i);
		ocil_strmap_put(&m, key, (unsigned char)(i % 251));
	}
	int ok = m.n == 5000 && m.cap >= 2 * m.n;
	for (unsigned i = 0; ok && i < 5000; i++) {
		unsigned char v = 0;
		snprintf(key, sizeof(key), "dir/%u", i);
		ok = ocil_strmap_get(&m, key, &v) && v == i % 251;
		if (!ok)
			fprintf(stderr, "lost %s\n", key);
	}
	ok = ok && !ocil_strmap_get(&m, "dir/5000", NULL);
	ocil_strmap_clear(&m);
	CHECK(ok);
}

TEST_MAIN(T(strmap_basics), T(strmap_growth))
