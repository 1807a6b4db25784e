/*
 * fastserver.c: a minimal epoll uppercase server in C, used only by `npm run bench -- --calibrate`.
 *
 * It is not a competitor. It exists to show that bench/loadgen.c is not the bottleneck: if the generator
 * drives this server well past the Node baseline's rate on the same CPUs, then the numbers it reports for
 * Node and Deno servers are limited by those servers. Same command line and ready line as the baselines:
 *
 *   fastserver tcp|udp --host 127.0.0.1 --port 0     ->  "ready tcp 127.0.0.1:PORT"
 *
 * Uppercasing is ASCII-only (the load generator only sends ASCII). Loopback addresses only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536

typedef struct {
  int fd;
  char *pending; /* bytes the kernel did not take yet; while any remain we stop reading (backpressure) */
  size_t off, len;
} conn_t;

static void upper(char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] >= 'a' && p[i] <= 'z') p[i] = (char)(p[i] - 32);
}

static void fail(const char *msg) {
  fprintf(stderr, "fastserver: %s: %s\n", msg, strerror(errno));
  exit(1);
}

static void drop(int ep, conn_t *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->pending);
  free(c);
}

/* Returns 0 when everything pending was written, 1 when the socket is full, -1 on error. */
static int flush(conn_t *c) {
  while (c->off < c->len) {
    ssize_t w = send(c->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
    if (w > 0) {
      c->off += (size_t)w;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return 1;
    } else {
      return -1;
    }
  }
  c->off = c->len = 0;
  return 0;
}

static void set_events(int ep, conn_t *c, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

int main(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "tcp") && strcmp(argv[1], "udp"))) {
    fprintf(stderr, "usage: fastserver tcp|udp --host H --port P\n");
    return 2;
  }
  int tcp = !strcmp(argv[1], "tcp");
  const char *host = "127.0.0.1", *port = "0";
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    if (!strcmp(argv[i], "--port")) port = argv[i + 1];
  }
  signal(SIGPIPE, SIG_IGN);
  struct addrinfo hints = {0}, *res;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  hints.ai_socktype = tcp ? SOCK_STREAM : SOCK_DGRAM;
  if (getaddrinfo(host, port, &hints, &res) != 0) fail("bad --host/--port");
  int loopback = 0;
  if (res->ai_family == AF_INET) {
    loopback = (ntohl(((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr) >> 24) == 127;
  } else if (res->ai_family == AF_INET6) {
    const struct in6_addr *a6 = &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
    loopback = IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
  }
  if (!loopback) {
    fprintf(stderr, "fastserver: refusing a non-loopback address: the benchmark stays on this machine\n");
    return 2;
  }
  int lfd = socket(res->ai_family, res->ai_socktype | (tcp ? SOCK_NONBLOCK : 0) | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, res->ai_addr, res->ai_addrlen) != 0) fail("bind");
  if (tcp && listen(lfd, 1024) != 0) fail("listen");
  struct sockaddr_storage bound;
  socklen_t bl = sizeof bound;
  getsockname(lfd, (struct sockaddr *)&bound, &bl);
  char ip[64];
  int bport;
  if (bound.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&bound)->sin6_addr, ip, sizeof ip);
    bport = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    printf("ready %s [%s]:%d\n", argv[1], ip, bport);
  } else {
    inet_ntop(AF_INET, &((struct sockaddr_in *)&bound)->sin_addr, ip, sizeof ip);
    bport = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    printf("ready %s %s:%d\n", argv[1], ip, bport);
  }
  fflush(stdout);

  static char buf[BUF];
  if (!tcp) {
    for (;;) {
      struct sockaddr_storage peer;
      socklen_t pl = sizeof peer;
      ssize_t r = recvfrom(lfd, buf, BUF, 0, (struct sockaddr *)&peer, &pl);
      if (r < 0) continue;
      upper(buf, (size_t)r);
      sendto(lfd, buf, (size_t)r, 0, (struct sockaddr *)&peer, pl);
    }
  }

  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int k = 0; k < n; k++) {
      conn_t *c = evs[k].data.ptr;
      if (!c) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conn_t *nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      if (evs[k].events & EPOLLOUT) {
        int rc = flush(c);
        if (rc < 0) {
          drop(ep, c);
          continue;
        }
        if (rc == 0) set_events(ep, c, EPOLLIN);
        continue;
      }
      ssize_t r = recv(c->fd, buf, BUF, 0);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(ep, c);
        continue;
      }
      if (r < 0) continue;
      upper(buf, (size_t)r);
      /* Reading is paused while bytes are pending, so here nothing is queued: write straight from buf. */
      ssize_t w = send(c->fd, buf, (size_t)r, MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        drop(ep, c);
        continue;
      }
      if (w < 0) w = 0;
      if (w < r) {
        c->pending = realloc(c->pending, (size_t)(r - w));
        memcpy(c->pending, buf + w, (size_t)(r - w));
        c->off = 0;
        c->len = (size_t)(r - w);
        set_events(ep, c, EPOLLOUT);
      }
    }
  }
}
