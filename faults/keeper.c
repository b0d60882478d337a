/*
 * keeper.c - the keeper: a small process forked from the supervisor that
 * holds one end of a socket pair and learns which process group the agent runs
 * in. Should the supervisor die (even by SIGKILL, where no cleanup of its own
 * can run), the socket reaches end of file and the keeper kills the whole
 * group. PR_SET_PDEATHSIG only reaches the agent's first process; the keeper
 * reaches its children too.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The keeper's life: only async-signal-safe calls, since it is a fork of a
 * process that may hold locks. */
static void keeper_main(int fd)
{
    pid_t pgid = 0, v;
    ssize_t n;
    int devnull;

    signal(SIGINT, SIG_IGN); /* a terminal's Ctrl-C is for the supervisor */
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
    }
    /* Keep nothing of the supervisor's open: sockets, pipes a test waits on. */
    if (fd != 3) {
        dup2(fd, 3);
        fd = 3;
    }
    close_range(4, ~0u, 0);
    for (;;) {
        n = read(fd, &v, sizeof(v));
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(v))
            break;
        pgid = v;
    }
    if (pgid > 0) {
        kill(-pgid, SIGKILL);
        kill(-pgid, SIGCONT);
    }
    _exit(0);
}

enum rb_err rb__keeper_start(struct rb_sup *sup, struct rb_error *err)
{
    int fds[2];
    pid_t pid;

    /* A socket pair rather than a pipe: send() with MSG_NOSIGNAL cannot
     * raise SIGPIPE in the supervisor should the keeper be gone. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        return rb__fx_fail_errno(err, RB_EIO, errno, "cannot make the keeper's socket");
    pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return rb__fx_fail_errno(err, RB_EIO, e, "cannot start the keeper");
    }
    if (pid == 0) {
        close(fds[1]);
        keeper_main(fds[0]);
    }
    close(fds[0]);
    sup->keeper_pid = pid;
    sup->keeper_fd = fds[1];
    return RB_OK;
}

void rb__keeper_watch(struct rb_sup *sup, pid_t pgid)
{
    ssize_t n;

    if (sup->keeper_fd < 0)
        return;
    do
        n = send(sup->keeper_fd, &pgid, sizeof(pgid), MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
}

void rb__keeper_stop(struct rb_sup *sup)
{
    if (sup->keeper_fd >= 0) {
        rb__keeper_watch(sup, 0);
        close(sup->keeper_fd);
        sup->keeper_fd = -1;
    }
    if (sup->keeper_pid > 0) {
        while (waitpid(sup->keeper_pid, NULL, 0) < 0 && errno == EINTR)
            ;
        sup->keeper_pid = 0;
    }
}
