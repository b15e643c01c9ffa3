/* File system helpers the services share: directories, whole writes, syncs,
 * exclusive locks. Each returns 0 or -1 with the reason in `why`. */
#ifndef EVPIPE_FSUTIL_H
#define EVPIPE_FSUTIL_H

#include <stddef.h>

/* mkdir -p. */
int evp_mkdirs(const char *path, char *why, size_t whylen);
/* write() until every byte is written (or an error). */
int evp_write_all(int fd, const void *data, size_t len, char *why, size_t whylen);
/* fsync() of a directory, so a new file's name is durable. */
int evp_fsync_dir(const char *dir, char *why, size_t whylen);
/* Opens (creating) path and takes an exclusive flock on it without waiting;
 * returns the fd, or -1 when it cannot (why says if another process holds it). */
int evp_lock_file(const char *path, char *why, size_t whylen);
/* Writes data to path atomically (a temporary file, fsync, rename). */
int evp_write_file_atomic(const char *path, const void *data, size_t len, char *why, size_t whylen);

#endif
