/* Network namespaces and a TCP relay for tests (see netns.h). */
#include "netns.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct tk_netns_t {
    char name[32];    /* the namespace */
    char host_if[16]; /* this host's end of the veth pair */
    char host_ip[32]; /* its address */
    char peer_ip[32]; /* the namespace's end's address */
};

/* Runs a shell command; its exit status. */
static int s_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int s_sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

tk_netns_t *tk_netns_new(char *why, size_t whylen)
{
    if (geteuid() != 0) {
        snprintf(why, whylen, "not root: cannot make a network namespace");
        return NULL;
    }
    if (s_sh("command -v ip >/dev/null 2>&1") != 0) {
        snprintf(why, whylen, "ip(8) is not installed (package iproute2)");
        return NULL;
    }
    tk_netns_t *self = calloc(1, sizeof *self);
    cr_assert_not_null(self);
    int id = (int)getpid();
    snprintf(self->name, sizeof self->name, "evptest%d", id);
    snprintf(self->host_if, sizeof self->host_if, "evph%d", id % 100000);
    /* A /30 of 10.251.0.0/16 chosen by the process id. */
    int net = (id % 16384) * 4;
    snprintf(self->host_ip, sizeof self->host_ip, "10.251.%d.%d", net / 256, net % 256 + 1);
    snprintf(self->peer_ip, sizeof self->peer_ip, "10.251.%d.%d", net / 256, net % 256 + 2);
    char peer_if[16];
    snprintf(peer_if, sizeof peer_if, "evpn%d", id % 100000);
    if (s_sh("ip netns add %s && ip link add %s type veth peer name %s && ip link set %s netns %s"
             " && ip addr add %s/30 dev %s && ip link set %s up"
             " && ip -n %s addr add %s/30 dev %s && ip -n %s link set %s up && ip -n %s link set lo up",
             self->name, self->host_if, peer_if, peer_if, self->name, self->host_ip, self->host_if, self->host_if,
             self->name, self->peer_ip, peer_if, self->name, peer_if, self->name) != 0) {
        snprintf(why, whylen, "cannot make the namespace %s with ip(8)", self->name);
        tk_netns_destroy(&self);
        return NULL;
    }
    return self;
}

void tk_netns_destroy(tk_netns_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tk_netns_t *self = *self_p;
    /* Deleting the namespace deletes its end of the pair, and so the pair. */
    s_sh("ip netns delete %s 2>/dev/null; ip link delete %s 2>/dev/null; true", self->name, self->host_if);
    free(self);
    *self_p = NULL;
}

const char *tk_netns_name(const tk_netns_t *self)
{
    return self->name;
}

const char *tk_netns_host_ip(const tk_netns_t *self)
{
    return self->host_ip;
}

void tk_netns_cut(tk_netns_t *self, bool cut)
{
    cr_assert_eq(s_sh("ip link set %s %s", self->host_if, cut ? "down" : "up"), 0, "ip link set %s failed",
                 self->host_if);
}

void tk_netns_enter_from_env(void)
{
    const char *name = getenv("TK_NETNS");
    if (!name || !*name)
        return;
    char path[128];
    snprintf(path, sizeof path, "/run/netns/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
        fprintf(stderr, "cannot enter the network namespace %s: %s\n", name, strerror(errno));
        _exit(126);
    }
    close(fd);
}

bool tk_netns_holds(const tk_netns_t *self, pid_t pid)
{
    char path[64], mine[64] = "", theirs[64] = "";
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    (void)self;
    return readlink(path, theirs, sizeof theirs - 1) > 0 && readlink("/proc/self/ns/net", mine, sizeof mine - 1) > 0 &&
           strcmp(mine, theirs) != 0;
}

/* ---- The relay ---- */

/* Copies both ways between a and b until either ends. */
static void s_pipe(int a, int b)
{
    struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buf[65536];
    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return;
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n <= 0)
                return;
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(p[1 - i].fd, buf + off, (size_t)(n - off));
                if (w <= 0)
                    return;
                off += w;
            }
        }
    }
}

pid_t tk_relay_start(const char *ip, int port, int to_port)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof a), 0, "relay: bind %s:%d: %s", ip, port, strerror(errno));
    cr_assert_eq(listen(ls, 16), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid > 0) {
        close(ls);
        return pid;
    }
    /* The relay: one child per connection, each ending with its connection
     * or with the relay. */
    signal(SIGCHLD, SIG_IGN);
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c < 0)
            continue;
        if (fork() == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)to_port)};
            inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
            int s = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(s, (struct sockaddr *)&to, sizeof to) == 0)
                s_pipe(c, s);
            _exit(0);
        }
        close(c);
    }
}
