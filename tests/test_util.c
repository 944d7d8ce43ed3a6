#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "test.h"

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
		 ocil_strmap_get(&m, "a/b", NULL) && ocil_strmap_size(&m) == 2;
	/* a later put replaces the value, not the key */
	ocil_strmap_put(&m, "a/b", 3);
	ok = ok && ocil_strmap_get(&m, "a/b", &v) && v == 3 && ocil_strmap_size(&m) == 2;
	ocil_strmap_clear(&m);
	CHECK(ok);
	CHECK(m.t.n == 0 && m.t.cap == 0 && m.t.slots == NULL);
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
	int ok = m.t.n == 5000 && m.t.cap >= 2 * m.t.n;
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

static bool exists(const char *dir, const char *name)
{
	cleanup_free char *p = ocil_xasprintf("%s/%s", dir, name);
	struct stat st;
	return lstat(p, &st) == 0;
}

static void touch(const char *dir, const char *name)
{
	cleanup_free char *p = ocil_xasprintf("%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
}

static int mkdir_in(const char *dir, const char *name)
{
	cleanup_free char *p = ocil_xasprintf("%s/%s", dir, name);
	return mkdir(p, 0755);
}

/* A sweep removes the temporaries whose writer is gone and spares the ones
 * still locked: by this process through another descriptor, or by a child
 * that inherited the lock across fork after the parent closed its copy. */
static void tmpfile_sweep(void)
{
	cleanup_free char *dir = ocil_xasprintf("%s/tmps", ocil_test_tmpdir());
	ocil_error *err = NULL;
	CHECK_OK(ocil_mkdir_p(dir, 0755, &err), &err);
	cleanup_free char *live = NULL, *inherited = NULL;
	int fd = ocil_tmpfile_create(dir, &live, &err);
	CHECK(fd >= 0);
	int fd2 = ocil_tmpfile_create(dir, &inherited, &err);
	CHECK(fd2 >= 0);
	int gate[2];
	CHECK(pipe(gate) == 0);
	pid_t child = fork();
	if (child == 0) { /* holds fd2's lock until the gate closes */
		char c;
		close(gate[1]);
		ssize_t n = read(gate[0], &c, 1);
		_exit(n < 0);
	}
	CHECK(child > 0);
	close(gate[0]);
	close(fd2);
	touch(dir, ".tmp-AAAAAA");	     /* a dead ocil_tmpfile_create */
	touch(dir, "index.json.tmp-BBBBBB"); /* a dead ocil_write_file_atomic */
	touch(dir, ".tmp-short");	     /* other shapes stay */
	touch(dir, "index.json");
	ocil_tmpfile_sweep(dir);
	CHECK(exists(dir, strrchr(live, '/') + 1));
	CHECK(exists(dir, strrchr(inherited, '/') + 1));
	CHECK(!exists(dir, ".tmp-AAAAAA"));
	CHECK(!exists(dir, "index.json.tmp-BBBBBB"));
	CHECK(exists(dir, ".tmp-short") && exists(dir, "index.json"));
	/* the child dies: its lock goes with it */
	close(gate[1]);
	int status = 0;
	CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status));
	ocil_tmpfile_sweep(dir);
	CHECK(!exists(dir, strrchr(inherited, '/') + 1));
	CHECK(exists(dir, strrchr(live, '/') + 1));
	close(fd);
	ocil_tmpfile_sweep(dir);
	CHECK(!exists(dir, strrchr(live, '/') + 1));
}

/* Staging directories: a live build's stays, a dead one's goes with its
 * contents, another output's is not this sweep's business. */
static void staging_sweep(void)
{
	const char *parent = ocil_test_tmpdir();
	ocil_error *err = NULL;
	cleanup_free char *live = NULL;
	int fd = ocil_staging_create(parent, "out", &live, &err);
	CHECK(fd >= 0);
	CHECK(mkdir_in(parent, ".out.ocilambda-CCCCCC") == 0);
	CHECK(mkdir_in(parent, ".out.ocilambda-CCCCCC/blobs") == 0);
	touch(parent, ".out.ocilambda-CCCCCC/blobs/x");
	CHECK(mkdir_in(parent, ".other.ocilambda-DDDDDD") == 0);
	ocil_staging_sweep(parent, "out");
	CHECK(exists(parent, strrchr(live, '/') + 1));
	CHECK(!exists(parent, ".out.ocilambda-CCCCCC"));
	CHECK(exists(parent, ".other.ocilambda-DDDDDD"));
	close(fd);
	ocil_staging_sweep(parent, "out");
	CHECK(!exists(parent, strrchr(live, '/') + 1));
}

/* A scratch directory in a shared $TMPDIR: a dead one of the same name is
 * swept when the next is made, a live one and other names are not. */
static void tmpdir_sweep(void)
{
	cleanup_free char *parent = ocil_xasprintf("%s/scratch", ocil_test_tmpdir());
	ocil_error *err = NULL;
	CHECK_OK(ocil_mkdir_p(parent, 0755, &err), &err);
	ocil_tmpdir live = {0}, next = {0};
	CHECK_OK(ocil_tmpdir_create(parent, "check", &live, &err), &err);
	CHECK(strncmp(live.path + strlen(parent), "/ocilambda-check.", 17) == 0);
	CHECK(mkdir_in(parent, "ocilambda-check.DEAD01") == 0);
	touch(parent, "ocilambda-check.DEAD01/blob");
	CHECK(mkdir_in(parent, "ocilambda-layers.OTHER1") == 0);
	CHECK(mkdir_in(parent, "ocilambda-check.longer-name") == 0);
	CHECK_OK(ocil_tmpdir_create(parent, "check", &next, &err), &err);
	CHECK(!exists(parent, "ocilambda-check.DEAD01"));
	CHECK(exists(parent, strrchr(live.path, '/') + 1));
	CHECK(exists(parent, "ocilambda-layers.OTHER1"));
	CHECK(exists(parent, "ocilambda-check.longer-name"));
	cleanup_free char *name = ocil_xstrdup(strrchr(live.path, '/') + 1);
	ocil_tmpdir_remove(&live);
	CHECK(live.path == NULL && !exists(parent, name));
	ocil_tmpdir_remove(&live); /* twice is harmless */
	ocil_tmpdir_remove(&next);
	/* TMPDIR is where a NULL parent goes */
	setenv("TMPDIR", parent, 1);
	CHECK_OK(ocil_tmpdir_create(NULL, "x", &next, &err), &err);
	unsetenv("TMPDIR");
	CHECK(strncmp(next.path, parent, strlen(parent)) == 0);
	ocil_tmpdir_remove(&next);
}

/* Beside a user's file, only that file's own dead temporaries go. */
static void tmpfile_sweep_for(void)
{
	cleanup_free char *dir = ocil_xasprintf("%s/beside", ocil_test_tmpdir());
	ocil_error *err = NULL;
	CHECK_OK(ocil_mkdir_p(dir, 0755, &err), &err);
	cleanup_free char *path = ocil_xasprintf("%s/img.tar", dir);
	cleanup_free char *live = NULL;
	int fd = ocil_tmpfile_create_for(path, &live, &err);
	CHECK(fd >= 0);
	CHECK(strncmp(live, path, strlen(path)) == 0);
	touch(dir, "img.tar.tmp-DEAD01");
	touch(dir, "other.tar.tmp-DEAD02");
	touch(dir, ".tmp-DEAD03");
	touch(dir, "img.tar.tmp-old");
	ocil_tmpfile_sweep_for(path);
	CHECK(exists(dir, strrchr(live, '/') + 1));
	CHECK(!exists(dir, "img.tar.tmp-DEAD01"));
	CHECK(exists(dir, "other.tar.tmp-DEAD02") && exists(dir, ".tmp-DEAD03"));
	CHECK(exists(dir, "img.tar.tmp-old"));
	close(fd);
	ocil_tmpfile_sweep_for(path);
	CHECK(!exists(dir, strrchr(live, '/') + 1));
}

/* Builds that share an output's parent sweep each other's dead staging
 * directories while creating their own: a directory swept in the instant
 * between its creation and its lock is replaced, never an error. A child
 * sweeps without pause while this process creates and abandons staging
 * directories, each of which must come back locked and present. */
static void staging_create_races_sweep(void)
{
	cleanup_free char *parent = ocil_xasprintf("%s/race", ocil_test_tmpdir());
	ocil_error *err = NULL;
	CHECK_OK(ocil_mkdir_p(parent, 0755, &err), &err);
	pid_t sweeper = fork();
	if (sweeper == 0) {
		for (;;)
			ocil_staging_sweep(parent, "out");
	}
	CHECK(sweeper > 0);
	int failed = 0;
	for (int i = 0; i < 8000 && !failed; i++) {
		char *path = NULL;
		int fd = ocil_staging_create(parent, "out", &path, &err);
		if (fd < 0) {
			fprintf(stderr, "round %d: %s\n", i, err->msg);
			ocil_error_free(err);
			err = NULL;
			failed = 1;
			break;
		}
		/* locked: the sweeper must leave it alone */
		struct stat st;
		if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "round %d: %s swept while locked\n", i, path);
			failed = 1;
		}
		close(fd);
		free(path);
	}
	kill(sweeper, SIGKILL);
	int status = 0;
	waitpid(sweeper, &status, 0);
	CHECK(!failed);
}

TEST_MAIN(T(strmap_basics), T(strmap_growth), T(tmpfile_sweep), T(staging_sweep),
	  T(staging_create_races_sweep), T(tmpdir_sweep), T(tmpfile_sweep_for))
