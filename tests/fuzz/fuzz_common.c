#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

int fuzz_memfd(const void *buf, size_t len)
{
	int fd = memfd_create("ocil-fuzz", MFD_CLOEXEC);
	if (fd < 0) {
		perror("memfd_create");
		abort();
	}
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n <= 0) {
			perror("write memfd");
			abort();
		}
		p += n;
		len -= (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) != 0) {
		perror("lseek memfd");
		abort();
	}
	return fd;
}

void fuzz_fd_path(int fd, char out[64])
{
	snprintf(out, 64, "/proc/self/fd/%d", fd);
}

void fuzz_drop(ocil_error **err)
{
	ocil_error_free(*err);
	*err = NULL;
}

typedef struct {
	const char *name;
	char type;
	const char *data; /* file content or link target */
	int mode;
} ent;

static int write_layer(const ent *ents, size_t n)
{
	int fd = fuzz_memfd("", 0);
	struct archive *a = archive_write_new();
	int ok = archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
		 archive_write_open_fd(a, fd) == ARCHIVE_OK;
	for (size_t i = 0; ok && i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, ents[i].name);
		archive_entry_set_perm(e, ents[i].mode ? ents[i].mode : 0755);
		size_t len = 0;
		switch (ents[i].type) {
		case 'f':
			len = strlen(ents[i].data);
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_size(e, (la_int64_t)len);
			break;
		case 'd':
			archive_entry_set_filetype(e, AE_IFDIR);
			break;
		case 'l':
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_symlink(e, ents[i].data);
			break;
		case 'h':
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_hardlink(e, ents[i].data);
			break;
		default:
			archive_entry_set_filetype(e, AE_IFCHR);
			break;
		}
		ok = archive_write_header(a, e) == ARCHIVE_OK &&
		     (len == 0 || archive_write_data(a, ents[i].data, len) == (la_ssize_t)len);
		archive_entry_free(e);
	}
	ok = ok && archive_write_close(a) == ARCHIVE_OK;
	archive_write_free(a);
	if (!ok || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int fuzz_base_layer(void)
{
	static int fd = -1;
	if (fd >= 0)
		return fd;
	static const ent ents[] = {
	    {"usr/", 'd', NULL, 0},
	    {"usr/bin/", 'd', NULL, 0},
	    {"usr/bin/python3.11", 'f', "#!ELF\n", 0755},
	    {"usr/bin/python", 'l', "python3.11", 0},
	    {"usr/bin/up", 'l', "../../../../..", 0},
	    {"usr/lib/", 'd', NULL, 0},
	    {"usr/lib/libc.so", 'f', "libc", 0644},
	    {"usr/lib/hard", 'h', "usr/lib/libc.so", 0},
	    {"lib", 'l', "usr/lib", 0},
	    {"etc/", 'd', NULL, 0},
	    {"etc/passwd", 'f', "root:x:0:0::/root:/bin/sh\n", 04755},
	    {"etc/escape", 'l', "/../../../etc/shadow", 0},
	    {"loop/", 'd', NULL, 0},
	    {"loop/a", 'l', "b", 0},
	    {"loop/b", 'l', "a", 0},
	    {"dev/", 'd', NULL, 0},
	    {"dev/null", 'c', NULL, 0666},
	    {"var/task/", 'd', NULL, 0},
	    {"var/task/app.py", 'f', "def handler(e, c):\n    return 1\n", 0644},
	};
	fd = write_layer(ents, sizeof(ents) / sizeof(ents[0]));
	if (fd < 0) {
		fputs("fuzz: cannot build the base layer\n", stderr);
		abort();
	}
	return fd;
}

int fuzz_one_entry_layer(const char *name, char type, const char *link)
{
	const ent e = {name, type, type == 'f' ? "x" : link, 0};
	return write_layer(&e, 1);
}
