/*
 * blob.c - the content-addressed blob store: one file per blob under
 * <store>/blobs/<first 2 hex digits>/<other 62>, named by the SHA-256 of its
 * content, written atomically (temp file in <store>/blobs/tmp, fsync,
 * rename) with mode 0600. Opening a store sweeps temp files that a killed
 * writer left behind.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A temp file this old has no writer left: a live one renames it within
 * milliseconds of creating it. An hour leaves room for slow disks. */
#define TMP_MAX_AGE_S 3600
/* Entries of blobs/tmp looked at per open, so that opening stays fast
 * whatever a crashed program left; the next open goes on where this one
 * stopped, since what it removed is gone. */
#define TMP_SWEEP_MAX 4096

static int valid_hash(const char *hash)
{
    size_t i;

    for (i = 0; i < RB_HASH_HEX_LEN; i++) {
        char c = hash[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return hash[RB_HASH_HEX_LEN] == '\0';
}

/* Removes regular files in `tmp` last modified more than TMP_MAX_AGE_S ago.
 * Best effort: a failure here must not keep the store from opening. */
/* The pid in a temp name "<hash>.<pid>.XXXXXX", or 0 if there is none. */
static long tmp_writer(const char *name)
{
    const char *dot = strchr(name, '.');
    char *end = NULL;
    long pid;

    if (!dot)
        return 0;
    pid = strtol(dot + 1, &end, 10);
    return end && *end == '.' && pid > 0 ? pid : 0;
}

static void sweep_tmp(const char *tmp)
{
    time_t now = time(NULL);
    long writer;
    struct dirent *d;
    struct stat sb;
    int n = 0, fd;
    DIR *dir;

    fd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return;
    }
    while (n++ < TMP_SWEEP_MAX && (d = readdir(dir)) != NULL) {
        if (d->d_name[0] == '.' &&
            (d->d_name[1] == '\0' || (d->d_name[1] == '.' && d->d_name[2] == '\0')))
            continue;
        if (fstatat(fd, d->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
            continue;
        /* A writer's pid is in its temp name: its file goes once it is gone,
         * whatever the clocks say (a wall clock that jumped must not make a
         * live writer's file look old). Names without one fall back to age. */
        writer = tmp_writer(d->d_name);
        if (writer > 0 ? kill((pid_t)writer, 0) != 0 && errno == ESRCH
                       : now - sb.st_mtime > TMP_MAX_AGE_S)
            unlinkat(fd, d->d_name, 0);
    }
    closedir(dir); /* closes fd too */
}

enum rb_err rb__blobs_init(struct rb_blobs *b, const char *store_dir, int sync_dir,
                           struct rb_error *err)
{
    size_t n = strlen(store_dir) + sizeof("/blobs/tmp");
    char *dir = malloc(n);
    char *tmp = malloc(n);
    enum rb_err rc = RB_OK;

    if (!dir || !tmp) {
        rc = rb__fail(err, RB_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(dir, n, "%s/blobs", store_dir);
    snprintf(tmp, n, "%s/blobs/tmp", store_dir);
    if ((mkdir(dir, 0700) != 0 && errno != EEXIST) ||
        (mkdir(tmp, 0700) != 0 && errno != EEXIST)) {
        rc = rb__fail_errno(err, rb__err_from_errno(errno), errno,
                            "cannot create blob folder '%s'", dir);
        goto out;
    }
    sweep_tmp(tmp);
    b->dir = dir;
    b->sync_dir = sync_dir;
    dir = NULL;
out:
    free(tmp);
    free(dir);
    return rc;
}

void rb__blobs_release(struct rb_blobs *b)
{
    free(b->dir);
    b->dir = NULL;
}

static void blob_path(const struct rb_blobs *b, const char *hash, char *path, size_t size)
{
    snprintf(path, size, "%s/%.2s/%s", b->dir, hash, hash + 2);
}

int rb__blob_exists(struct rb_blobs *b, const char *hash)
{
    char path[4096];

    if (!valid_hash(hash))
        return 0;
    blob_path(b, hash, path, sizeof(path));
    return access(path, F_OK) == 0;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void sync_path(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

enum rb_err rb__blob_put(struct rb_blobs *b, const char *hash, const void *data,
                         size_t len, struct rb_error *err)
{
    char path[4096], sub[4096], tmp[4096];
    int fd = -1, e;
    enum rb_err rc = RB_OK;

    if (!valid_hash(hash))
        return rb__fail(err, RB_EINVAL, "bad blob name '%.80s'", hash);
    blob_path(b, hash, path, sizeof(path));
    if (access(path, F_OK) == 0)
        return RB_OK; /* content-addressed: the same name is the same bytes */
    snprintf(sub, sizeof(sub), "%s/%.2s", b->dir, hash);
    if (mkdir(sub, 0700) != 0 && errno != EEXIST)
        return rb__fail_errno(err, rb__err_from_errno(errno), errno,
                              "cannot create blob folder '%s'", sub);
    /* A name of its own (mkstemp: mode 0600), so that threads of one process
     * writing the same blob at once do not share, truncate or rename each
     * other's temp file. */
    snprintf(tmp, sizeof(tmp), "%s/tmp/%s.%ld.XXXXXX", b->dir, hash, (long)getpid());
    fd = mkstemp(tmp);
    if (fd < 0)
        return rb__fail_errno(err, rb__err_from_errno(errno), errno,
                              "cannot write blob '%s'", tmp);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        e = errno;
        rc = rb__fail_errno(err, rb__err_from_errno(e), e, "cannot write blob '%s'", tmp);
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        e = errno;
        rc = rb__fail_errno(err, rb__err_from_errno(e), e, "cannot write blob '%s'", tmp);
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        e = errno;
        rc =
            rb__fail_errno(err, rb__err_from_errno(e), e, "cannot store blob '%s'", path);
        goto fail;
    }
    if (b->sync_dir)
        sync_path(sub);
    return RB_OK;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

enum rb_err rb__blob_get(struct rb_blobs *b, const char *hash, struct rb_buf *out,
                         struct rb_error *err)
{
    char path[4096], got[RB_HASH_HEX_LEN + 1];
    struct rb_buf tmp;
    unsigned char chunk[65536];
    enum rb_err rc = RB_OK;
    int fd;

    if (!valid_hash(hash))
        return rb__fail(err, RB_EINVAL, "bad blob name '%.80s'", hash);
    blob_path(b, hash, path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rb__fail_errno(err,
                              errno == ENOENT ? RB_ENOENT : rb__err_from_errno(errno),
                              errno, "cannot read blob '%s'", path);
    rb_buf_init(&tmp);
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = rb__fail_errno(err, RB_EIO, errno, "cannot read blob '%s'", path);
            goto out;
        }
        if (n == 0)
            break;
        if (rb_buf_append(&tmp, chunk, (size_t)n) != RB_OK) {
            rc = rb__fail(err, RB_ENOMEM, "out of memory reading blob '%s'", path);
            goto out;
        }
    }
    rb_hash_hex(tmp.data ? tmp.data : (unsigned char *)"", tmp.len, got);
    if (strcmp(got, hash) != 0) {
        rc = rb__fail(err, RB_ECORRUPT, "blob '%s' is damaged: its content hashes to %s",
                      path, got);
        goto out;
    }
    if (rb_buf_append(out, tmp.data ? tmp.data : (unsigned char *)"", tmp.len) != RB_OK)
        rc = rb__fail(err, RB_ENOMEM, "out of memory reading blob '%s'", path);
out:
    close(fd);
    rb_buf_release(&tmp);
    return rc;
}
