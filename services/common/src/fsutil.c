/* File system helpers (see fsutil.h). */
#include "evpipe/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), -1)

int evp_mkdirs(const char *path, char *why, size_t whylen)
{
    char tmp[4096];
    if (strlen(path) >= sizeof tmp)
        return WHY("path too long");
    strcpy(tmp, path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return WHY("%s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return WHY("%s", strerror(errno));
    struct stat st;
    if (stat(tmp, &st) != 0)
        return WHY("%s", strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return WHY("exists and is not a directory");
    if (access(tmp, W_OK | X_OK) != 0)
        return WHY("not writable: %s", strerror(errno));
    return 0;
}

int evp_write_all(int fd, const void *data, size_t len, char *why, size_t whylen)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return WHY("write: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int evp_fsync_dir(const char *dir, char *why, size_t whylen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return WHY("open %s: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return WHY("fsync %s: %s", dir, strerror(e));
    return 0;
}

int evp_lock_file(const char *path, char *why, size_t whylen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return WHY("open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return WHY("%s is locked by another running process", path);
        return WHY("lock %s: %s", path, strerror(e));
    }
    return fd;
}

int evp_write_file_atomic(const char *path, const void *data, size_t len, char *why, size_t whylen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return WHY("open %s: %s", tmp, strerror(errno));
    if (evp_write_all(fd, data, len, why, whylen) != 0 || fsync(fd) != 0) {
        if (!*why)
            snprintf(why, whylen, "fsync %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return WHY("rename to %s: %s", path, strerror(e));
    }
    return 0;
}
