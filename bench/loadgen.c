/*
 * loadgen.c: the closed-loop load generator behind `npm run bench`.
 *
 * It is written in C so that the thing being measured (a Node or Deno server) is the bottleneck, not the
 * client: one thread, epoll, non-blocking sockets, no allocation on the hot path. Every reply is checked
 * against the uppercased request, so a fast but wrong server cannot win. Results go to stdout as ONE JSON
 * line for bench/run.ts to parse; human-readable diagnostics go to stderr.
 *
 *   loadgen tcp   --host H --port P [--conns C] [--depth D] [--payload N] [--warmup S] [--duration S]
 *   loadgen udp   --host H --port P [--sockets S] [--depth D] [--payload N] [--warmup S] [--duration S]
 *                 [--timeout-ms T]
 *   loadgen first --proto tcp|udp --host H --port P [--payload N] [--start-ns NS] [--deadline-ms MS]
 *
 * Request i is N lowercase letters: the request id in base 26 (14 letters), then a pseudo-random pattern
 * chosen by the id, so consecutive requests differ and a server that replays an old answer is caught. TCP
 * appends '\n' (the server keeps it, so replies are framed by '\n' and checked in order per connection);
 * for UDP one datagram is one request and the id in the reply says which request it answers.
 *
 * `first` polls every ~2 ms until the first correct answer and reports the time since --start-ns, a
 * CLOCK_MONOTONIC timestamp (the same clock as Node's process.hrtime) taken by the harness when it spawned
 * the server: that is "launch to first answer".
 *
 * Only loopback addresses are accepted: this tool must never send traffic off the machine.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ID_LETTERS 14 /* 26^14 > 2^64, so any 64-bit id fits */
#define MIN_PAYLOAD 16
#define MAX_UDP_PAYLOAD 65507
#define MAX_TCP_PAYLOAD (1 << 20)
#define LOST_RING 65536

/* ---------- time ---------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

/* ---------- latency histogram ----------
 * Log-linear buckets (128 per power of two): < 1% relative error at any scale, fixed memory, O(1) insert,
 * so every request can be recorded instead of a sample. */

#define SUB_BITS 7
#define SUB_COUNT (1 << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS) * SUB_COUNT + 2 * SUB_COUNT)

typedef struct {
  uint64_t counts[NBUCKETS];
  uint64_t total;
  uint64_t max;
  double sum;
} hist_t;

static int bucket_of(uint64_t v) {
  if (v < 2 * SUB_COUNT) return (int)v;
  int msb = 63 - __builtin_clzll(v);
  int shift = msb - SUB_BITS;
  return (shift + 1) * SUB_COUNT + (int)((v >> shift) & (SUB_COUNT - 1));
}

static uint64_t bucket_mid(int idx) {
  if (idx < 2 * SUB_COUNT) return (uint64_t)idx;
  int shift = idx / SUB_COUNT - 1;
  uint64_t lo = ((uint64_t)SUB_COUNT + (uint64_t)(idx % SUB_COUNT)) << shift;
  return lo + ((1ull << shift) >> 1);
}

static void hist_add(hist_t *h, uint64_t v) {
  h->counts[bucket_of(v)]++;
  h->total++;
  h->sum += (double)v;
  if (v > h->max) h->max = v;
}

static double hist_quantile_us(const hist_t *h, double q) {
  if (h->total == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)(h->total - 1)) + 1;
  uint64_t seen = 0;
  for (int i = 0; i < NBUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      uint64_t v = bucket_mid(i);
      return (double)(v > h->max ? h->max : v) / 1000.0;
    }
  }
  return (double)h->max / 1000.0;
}

/* ---------- payloads ----------
 * The body after the id is a slice of a fixed random lowercase table, starting at an offset derived from the
 * id: requests differ from each other, yet building one is a memcpy and checking a reply is a memcmp against
 * the uppercased table, which keeps the generator cheap enough to stay out of the measurement. */

#define PATTERN_OFFSETS 4093

static char *lower_tab, *upper_tab;
static char *scratch; /* expected reply, payload bytes */

static void init_tables(int n) {
  size_t size = (size_t)n + PATTERN_OFFSETS;
  lower_tab = malloc(size);
  upper_tab = malloc(size);
  uint32_t x = 0x2545f491u;
  for (size_t i = 0; i < size; i++) {
    x = x * 1103515245u + 12345u;
    lower_tab[i] = (char)('a' + (x >> 16) % 26);
    upper_tab[i] = (char)(lower_tab[i] - ('a' - 'A'));
  }
  scratch = malloc((size_t)n);
}

static size_t pattern_offset(uint64_t id) {
  return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 40) % PATTERN_OFFSETS;
}

static void id_letters(uint64_t id, char *out, char base) {
  for (int i = ID_LETTERS - 1; i >= 0; i--) {
    out[i] = (char)(base + id % 26);
    id /= 26;
  }
}

static void make_payload(uint64_t id, char *out, int n) {
  id_letters(id, out, 'a');
  memcpy(out + ID_LETTERS, lower_tab + pattern_offset(id), (size_t)(n - ID_LETTERS));
}

/* Returns 1 and sets *id if the first ID_LETTERS bytes are uppercase letters. */
static int decode_id(const char *p, int len, uint64_t *id) {
  if (len < ID_LETTERS) return 0;
  uint64_t v = 0;
  for (int i = 0; i < ID_LETTERS; i++) {
    if (p[i] < 'A' || p[i] > 'Z') return 0;
    v = v * 26 + (uint64_t)(p[i] - 'A');
  }
  *id = v;
  return 1;
}

/* 1 if reply (len bytes, no terminator) is exactly the uppercased request `id`. */
static int reply_ok(uint64_t id, const char *reply, int len, int n) {
  if (len != n) return 0;
  id_letters(id, scratch, 'A');
  return memcmp(reply, scratch, ID_LETTERS) == 0 &&
         memcmp(reply + ID_LETTERS, upper_tab + pattern_offset(id), (size_t)(n - ID_LETTERS)) == 0;
}

/* The first mismatch is kept, printable and JSON-safe, to make a wrong server easy to debug. */
static char first_error[200];
static void note_error(const char *what, const char *got, int len) {
  if (first_error[0]) return;
  char shown[64];
  int k = 0;
  for (int i = 0; i < len && k < 60; i++) {
    unsigned char c = (unsigned char)got[i];
    shown[k++] = (c >= 32 && c < 127 && c != '"' && c != '\\') ? (char)c : '?';
  }
  shown[k] = 0;
  snprintf(first_error, sizeof first_error, "%s (len %d): %s", what, len, shown);
}

/* ---------- options ---------- */

typedef struct {
  const char *mode;
  const char *proto;
  const char *host;
  int port;
  int conns;
  int depth;
  int payload;
  double warmup;
  double duration;
  int timeout_ms;
  uint64_t start_ns;
  int deadline_ms;
  int spin;
} opts_t;

static void die(const char *msg) {
  printf("{\"error\":\"%s\"}\n", msg);
  fflush(stdout);
  fprintf(stderr, "loadgen: %s\n", msg);
  exit(2);
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen tcp|udp|first --host H --port P [--conns C|--sockets S] [--depth D] [--payload N]\n"
          "       [--warmup S] [--duration S] [--timeout-ms T] [--proto tcp|udp] [--start-ns NS] [--deadline-ms MS]\n");
  exit(2);
}

static opts_t parse_opts(int argc, char **argv) {
  if (argc < 2) usage();
  opts_t o = {argv[1], NULL, "127.0.0.1", 0, 1, 1, 64, 1.0, 5.0, 200, 0, 15000, 0};
  for (int i = 2; i < argc; i++) {
    const char *k = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (!strcmp(k, "--host")) o.host = v;
    else if (!strcmp(k, "--port")) o.port = atoi(v);
    else if (!strcmp(k, "--conns") || !strcmp(k, "--sockets")) o.conns = atoi(v);
    else if (!strcmp(k, "--depth")) o.depth = atoi(v);
    else if (!strcmp(k, "--payload")) o.payload = atoi(v);
    else if (!strcmp(k, "--warmup")) o.warmup = atof(v);
    else if (!strcmp(k, "--duration")) o.duration = atof(v);
    else if (!strcmp(k, "--timeout-ms")) o.timeout_ms = atoi(v);
    else if (!strcmp(k, "--proto")) o.proto = v;
    else if (!strcmp(k, "--start-ns")) o.start_ns = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--deadline-ms")) o.deadline_ms = atoi(v);
    else if (!strcmp(k, "--spin")) o.spin = atoi(v);
    else usage();
  }
  if (strcmp(o.mode, "first") != 0) o.proto = o.mode;
  if (!o.proto || (strcmp(o.proto, "tcp") && strcmp(o.proto, "udp"))) usage();
  if (o.port <= 0 || o.port > 65535) die("--port must be 1..65535");
  if (o.conns < 1 || o.conns > 10000 || o.depth < 1 || o.depth > 4096) die("bad --conns/--depth");
  if (o.payload < MIN_PAYLOAD) die("--payload must be at least 16 (the request id takes 14 letters)");
  if (o.payload > (strcmp(o.proto, "udp") ? MAX_TCP_PAYLOAD : MAX_UDP_PAYLOAD)) die("--payload too large");
  if (o.duration <= 0 || o.warmup < 0 || o.timeout_ms < 1) die("bad --duration/--warmup/--timeout-ms");
  return o;
}

/* ---------- addresses ---------- */

static struct sockaddr_storage addr;
static socklen_t addr_len;

static void resolve(const opts_t *o) {
  struct addrinfo hints = {0}, *res;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = strcmp(o->proto, "tcp") ? SOCK_DGRAM : SOCK_STREAM;
  char port[16];
  snprintf(port, sizeof port, "%d", o->port);
  const char *host = o->host;
  char unbracketed[64];
  size_t hl = strlen(host);
  if (hl > 2 && hl < sizeof unbracketed && host[0] == '[' && host[hl - 1] == ']') {
    memcpy(unbracketed, host + 1, hl - 2);
    unbracketed[hl - 2] = 0;
    host = unbracketed;
  }
  if (getaddrinfo(host, port, &hints, &res) != 0) die("--host must be a numeric IP address");
  memcpy(&addr, res->ai_addr, res->ai_addrlen);
  addr_len = res->ai_addrlen;
  freeaddrinfo(res);
  int loopback = 0;
  if (addr.ss_family == AF_INET) {
    loopback = (ntohl(((struct sockaddr_in *)&addr)->sin_addr.s_addr) >> 24) == 127;
  } else if (addr.ss_family == AF_INET6) {
    const struct in6_addr *a6 = &((struct sockaddr_in6 *)&addr)->sin6_addr;
    loopback = IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
  }
  if (!loopback) die("refusing a non-loopback address: the benchmark stays on this machine");
}

static int new_socket(int type) {
  int fd = socket(addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket() failed");
  return fd;
}

/* ---------- shared counters ---------- */

static hist_t hist;
static uint64_t completed_in_window, errors, losses, late, refused, closed;
/* Every correct reply, warm-up included: what a server counting its requests should have counted too. */
static uint64_t answered;
static uint64_t window_start, window_end;
static double cpu_at_window_start = -1;

/* The generator's own CPU use over the measured window: near 100% would mean it, not the server, is the limit. */
static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

static void note_window_start(uint64_t now) {
  if (cpu_at_window_start < 0 && now >= window_start) cpu_at_window_start = cpu_seconds();
}

static void print_result(const opts_t *o, const char *conns_key) {
  double secs = (double)(window_end - window_start) / 1e9;
  double cpu = cpu_at_window_start < 0 ? 0 : cpu_seconds() - cpu_at_window_start;
  printf("{\"mode\":\"%s\",\"%s\":%d,\"depth\":%d,\"payload\":%d,\"warmup_s\":%.3f,\"duration_s\":%.3f,"
         "\"requests\":%llu,\"answered\":%llu,\"rps\":%.1f,\"mean_us\":%.2f,\"p50_us\":%.2f,\"p90_us\":%.2f,"
         "\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,\"errors\":%llu,\"losses\":%llu,\"late\":%llu,"
         "\"refused\":%llu,\"closed\":%llu,\"cpu_pct\":%.1f,\"first_error\":\"%s\"}\n",
         o->mode, conns_key, o->conns, o->depth, o->payload, o->warmup, secs, (unsigned long long)completed_in_window,
         (unsigned long long)answered, (double)completed_in_window / secs,
         hist.total ? hist.sum / (double)hist.total / 1000.0 : 0.0,
         hist_quantile_us(&hist, 0.50), hist_quantile_us(&hist, 0.90), hist_quantile_us(&hist, 0.99),
         hist_quantile_us(&hist, 0.999), (double)hist.max / 1000.0, (unsigned long long)errors,
         (unsigned long long)losses, (unsigned long long)late, (unsigned long long)refused,
         (unsigned long long)closed, secs > 0 ? cpu / secs * 100 : 0.0, first_error);
  fflush(stdout);
}

static void record(uint64_t sent_at, uint64_t now) {
  answered++;
  if (now >= window_start && now < window_end) {
    completed_in_window++;
    hist_add(&hist, now - sent_at);
  }
}

/* ---------- TCP ---------- */

typedef struct {
  int fd;
  int dead;
  uint64_t id_base; /* connection index in the high bits, sequence number in the low 40 */
  uint64_t next_seq, recv_seq;
  uint64_t *sent_at; /* ring of `depth` send times, indexed by seq % depth: replies come back in order */
  char *out;
  size_t out_off, out_len;
  char *in;
  size_t in_len, in_cap;
  int want_out;
} conn_t;

static void tcp_queue(conn_t *c, const opts_t *o, uint64_t now) {
  size_t n = (size_t)o->payload;
  if (c->out_off > 0) {
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
  }
  make_payload(c->id_base | c->next_seq, c->out + c->out_len, (int)n);
  c->out[c->out_len + n] = '\n';
  c->out_len += n + 1;
  c->sent_at[c->next_seq % (uint64_t)o->depth] = now;
  c->next_seq++;
}

static void tcp_kill(int ep, conn_t *c) {
  if (c->dead) return;
  c->dead = 1;
  closed++;
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
}

static void tcp_flush(int ep, conn_t *c) {
  while (c->out_off < c->out_len) {
    ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (w > 0) {
      c->out_off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    tcp_kill(ep, c);
    return;
  }
  if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
  int want = c->out_len > 0;
  if (want != c->want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
  }
}

static void tcp_read(int ep, conn_t *c, const opts_t *o) {
  for (;;) {
    if (c->in_len == c->in_cap) {
      /* A line longer than the buffer can only be garbage: the buffer holds two full replies. */
      errors++;
      note_error("reply line too long", c->in, 60);
      tcp_kill(ep, c);
      return;
    }
    ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      tcp_kill(ep, c);
      return;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    uint64_t now = now_ns();
    c->in_len += (size_t)r;
    size_t start = 0;
    for (;;) {
      char *nl = memchr(c->in + start, '\n', c->in_len - start);
      if (!nl) break;
      int len = (int)(nl - (c->in + start));
      if (c->recv_seq >= c->next_seq) {
        errors++;
        note_error("reply to no request", c->in + start, len);
      } else {
        if (!reply_ok(c->id_base | c->recv_seq, c->in + start, len, o->payload)) {
          errors++;
          note_error("tcp reply is not the uppercased request", c->in + start, len);
        }
        record(c->sent_at[c->recv_seq % (uint64_t)o->depth], now);
        c->recv_seq++;
        tcp_queue(c, o, now);
      }
      start += (size_t)len + 1;
    }
    if (start > 0) {
      memmove(c->in, c->in + start, c->in_len - start);
      c->in_len -= start;
    }
    if ((size_t)r < c->in_cap / 2) break; /* short read: the socket is very likely drained */
  }
  tcp_flush(ep, c);
}

static int run_tcp(const opts_t *o) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  conn_t *conns = calloc((size_t)o->conns, sizeof(conn_t));
  size_t line = (size_t)o->payload + 1;
  for (int i = 0; i < o->conns; i++) {
    conn_t *c = &conns[i];
    c->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket() failed");
    /* Nagle would hold back pipelined requests waiting for ACKs and measure the kernel, not the server. */
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, addr_len) != 0) die("tcp connect failed");
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->id_base = (uint64_t)i << 40;
    c->sent_at = calloc((size_t)o->depth, sizeof(uint64_t));
    c->out = malloc(line * (size_t)o->depth);
    c->in_cap = line * 2 > 65536 ? line * 2 : 65536;
    c->in = malloc(c->in_cap);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  uint64_t t0 = now_ns();
  window_start = t0 + (uint64_t)(o->warmup * 1e9);
  window_end = window_start + (uint64_t)(o->duration * 1e9);
  for (int i = 0; i < o->conns; i++) {
    for (int d = 0; d < o->depth; d++) tcp_queue(&conns[i], o, t0);
    tcp_flush(ep, &conns[i]);
  }
  struct epoll_event evs[256];
  int alive = o->conns;
  while (alive > 0) {
    uint64_t now = now_ns();
    if (now >= window_end) break;
    note_window_start(now);
    int wait_ms = (int)((window_end - now) / 1000000ull) + 1;
    int n = epoll_wait(ep, evs, 256, o->spin ? 0 : wait_ms > 50 ? 50 : wait_ms);
    for (int k = 0; k < n; k++) {
      conn_t *c = evs[k].data.ptr;
      if (c->dead) continue;
      if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) tcp_read(ep, c, o);
      if (!c->dead && (evs[k].events & EPOLLOUT)) tcp_flush(ep, c);
    }
    alive = 0;
    for (int i = 0; i < o->conns; i++) alive += !conns[i].dead;
  }
  if (alive == 0) window_end = now_ns() < window_end ? now_ns() : window_end;
  print_result(o, "conns");
  return 0;
}

/* ---------- UDP ---------- */

typedef struct {
  uint64_t id;
  uint64_t sent_at;
  int outstanding; /* 0: waiting to be (re)sent, 1: in flight */
} slot_t;

typedef struct {
  int fd;
  slot_t *slots;
} usock_t;

static uint64_t next_id = 1; /* 0 is the `first` probe */
static uint64_t lost_ring[LOST_RING];
static uint64_t lost_count;

static int lost_take(uint64_t id) {
  uint64_t n = lost_count < LOST_RING ? lost_count : LOST_RING;
  for (uint64_t i = 0; i < n; i++) {
    if (lost_ring[i] == id) {
      lost_ring[i] = UINT64_MAX;
      return 1;
    }
  }
  return 0;
}

static void udp_send(usock_t *s, slot_t *sl, const opts_t *o, char *buf, uint64_t now) {
  if (!sl->outstanding) {
    sl->id = next_id++;
    sl->sent_at = now;
  }
  make_payload(sl->id, buf, o->payload);
  ssize_t w = send(s->fd, buf, (size_t)o->payload, 0);
  if (w == o->payload) {
    sl->outstanding = 1;
    sl->sent_at = now;
    return;
  }
  /* Full socket buffer or a stale ICMP error: keep the slot unsent and try again on the next tick. */
  if (w < 0 && errno == ECONNREFUSED) refused++;
  sl->outstanding = 0;
  next_id--; /* reuse the id: it never left the machine's socket layer */
}

static int run_udp(const opts_t *o) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  usock_t *socks = calloc((size_t)o->conns, sizeof(usock_t));
  char *sendbuf = malloc((size_t)o->payload);
  char *recvbuf = malloc(MAX_UDP_PAYLOAD + 1);
  for (int i = 0; i < o->conns; i++) {
    usock_t *s = &socks[i];
    s->fd = new_socket(SOCK_DGRAM);
    /* A connected socket only receives from the server and reports ICMP errors for it. */
    if (connect(s->fd, (struct sockaddr *)&addr, addr_len) != 0) die("udp connect failed");
    s->slots = calloc((size_t)o->depth, sizeof(slot_t));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
  }
  uint64_t t0 = now_ns();
  uint64_t timeout = (uint64_t)o->timeout_ms * 1000000ull;
  window_start = t0 + (uint64_t)(o->warmup * 1e9);
  window_end = window_start + (uint64_t)(o->duration * 1e9);
  for (int i = 0; i < o->conns; i++)
    for (int d = 0; d < o->depth; d++) udp_send(&socks[i], &socks[i].slots[d], o, sendbuf, t0);
  struct epoll_event evs[256];
  for (;;) {
    uint64_t now = now_ns();
    if (now >= window_end) break;
    note_window_start(now);
    int wait_ms = (int)((window_end - now) / 1000000ull) + 1;
    int n = epoll_wait(ep, evs, 256, o->spin ? 0 : wait_ms > 5 ? 5 : wait_ms);
    for (int k = 0; k < n; k++) {
      usock_t *s = evs[k].data.ptr;
      for (;;) {
        ssize_t r = recv(s->fd, recvbuf, MAX_UDP_PAYLOAD + 1, 0);
        if (r < 0) {
          if (errno == ECONNREFUSED) {
            refused++;
            continue;
          }
          break;
        }
        now = now_ns();
        uint64_t id;
        if (!decode_id(recvbuf, (int)r, &id)) {
          errors++;
          note_error("udp reply without a request id", recvbuf, (int)r);
          continue;
        }
        slot_t *sl = NULL;
        for (int d = 0; d < o->depth; d++)
          if (s->slots[d].outstanding && s->slots[d].id == id) sl = &s->slots[d];
        if (!sl) {
          if (lost_take(id)) {
            late++;
          } else {
            errors++;
            note_error("udp reply to no outstanding request", recvbuf, (int)r);
          }
          continue;
        }
        if (!reply_ok(id, recvbuf, (int)r, o->payload)) {
          errors++;
          note_error("udp reply is not the uppercased request", recvbuf, (int)r);
        }
        record(sl->sent_at, now);
        sl->outstanding = 0;
        udp_send(s, sl, o, sendbuf, now);
      }
    }
    /* Declare overdue requests lost and replace them, so a dropped datagram cannot stall the load. */
    now = now_ns();
    for (int i = 0; i < o->conns; i++) {
      for (int d = 0; d < o->depth; d++) {
        slot_t *sl = &socks[i].slots[d];
        if (sl->outstanding && now - sl->sent_at > timeout) {
          losses++;
          lost_ring[lost_count++ % LOST_RING] = sl->id;
          sl->outstanding = 0;
          udp_send(&socks[i], sl, o, sendbuf, now);
        } else if (!sl->outstanding) {
          udp_send(&socks[i], sl, o, sendbuf, now);
        }
      }
    }
  }
  print_result(o, "sockets");
  return 0;
}

/* ---------- first answer ---------- */

/* Waits up to `ms` for one '\n'-terminated reply on a connected TCP socket; returns its length or -1. */
static int tcp_read_line(int fd, char *buf, int cap, int ms) {
  int len = 0;
  uint64_t until = now_ns() + (uint64_t)ms * 1000000ull;
  while (len < cap) {
    uint64_t now = now_ns();
    if (now >= until) return -1;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)((until - now) / 1000000ull) + 1) <= 0) continue;
    ssize_t r = recv(fd, buf + len, (size_t)(cap - len), 0);
    if (r <= 0) {
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      return -1;
    }
    len += (int)r;
    char *nl = memchr(buf, '\n', (size_t)len);
    if (nl) return (int)(nl - buf);
  }
  return -1;
}

static int run_first(const opts_t *o) {
  uint64_t start = o->start_ns ? o->start_ns : now_ns();
  uint64_t deadline = now_ns() + (uint64_t)o->deadline_ms * 1000000ull;
  int n = o->payload;
  char *req = malloc((size_t)n + 1), *buf = malloc((size_t)n * 2 + 2);
  make_payload(0, req, n);
  req[n] = '\n';
  int tcp = !strcmp(o->proto, "tcp");
  int udp_fd = -1;
  long attempts = 0;
  while (now_ns() < deadline) {
    attempts++;
    if (tcp) {
      int fd = new_socket(SOCK_STREAM);
      int rc = connect(fd, (struct sockaddr *)&addr, addr_len);
      int ok = rc == 0;
      if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        int err = 0;
        socklen_t el = sizeof err;
        ok = poll(&p, 1, 50) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0;
      }
      if (ok && send(fd, req, (size_t)n + 1, MSG_NOSIGNAL) == n + 1) {
        /* Accepted but slow to answer is still "not ready": wait long, not forever. */
        int len = tcp_read_line(fd, buf, n * 2 + 2, 1000);
        if (len >= 0 && reply_ok(0, buf, len, n)) {
          uint64_t t = now_ns();
          close(fd);
          printf("{\"mode\":\"first\",\"proto\":\"tcp\",\"first_ms\":%.3f,\"attempts\":%ld}\n",
                 (double)(t - start) / 1e6, attempts);
          return 0;
        }
        if (len >= 0) {
          /* A wrong answer will not become right by asking again: fail now rather than at the deadline. */
          note_error("first tcp reply is not the uppercased request", buf, len);
          errors++;
          close(fd);
          break;
        }
      }
      close(fd);
      sleep_ns(2000000);
    } else {
      if (udp_fd < 0) {
        udp_fd = new_socket(SOCK_DGRAM);
        if (connect(udp_fd, (struct sockaddr *)&addr, addr_len) != 0) die("udp connect failed");
      }
      send(udp_fd, req, (size_t)n, 0);
      uint64_t until = now_ns() + 2000000ull;
      for (;;) {
        uint64_t now = now_ns();
        if (now >= until) break;
        struct pollfd p = {udp_fd, POLLIN, 0};
        if (poll(&p, 1, (int)((until - now) / 1000000ull) + 1) <= 0) continue;
        ssize_t r = recv(udp_fd, buf, (size_t)n * 2 + 2, 0);
        if (r < 0) {
          /* Nothing bound yet (ICMP port unreachable): wait out this attempt's slot before resending. */
          uint64_t t = now_ns();
          if (errno == ECONNREFUSED && t < until) sleep_ns(until - t);
          break;
        }
        if (reply_ok(0, buf, (int)r, n)) {
          uint64_t t = now_ns();
          printf("{\"mode\":\"first\",\"proto\":\"udp\",\"first_ms\":%.3f,\"attempts\":%ld}\n",
                 (double)(t - start) / 1e6, attempts);
          return 0;
        }
        errors++;
        note_error("first udp reply is not the uppercased request", buf, (int)r);
        break;
      }
      if (errors > 0) break;
    }
  }
  printf("{\"mode\":\"first\",\"proto\":\"%s\",\"error\":\"%s\",\"attempts\":%ld,\"errors\":%llu,"
         "\"first_error\":\"%s\"}\n",
         o->proto, errors ? "wrong answer" : "no answer before the deadline", attempts, (unsigned long long)errors,
         first_error);
  return 1;
}

int main(int argc, char **argv) {
  opts_t o = parse_opts(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  /* A last line of defence against hanging: the harness has its own deadline too. */
  double budget = strcmp(o.mode, "first") ? o.warmup + o.duration + 30 : o.deadline_ms / 1000.0 + 5;
  alarm((unsigned)budget + 1);
  init_tables(o.payload);
  resolve(&o);
  if (!strcmp(o.mode, "tcp")) return run_tcp(&o);
  if (!strcmp(o.mode, "udp")) return run_udp(&o);
  if (!strcmp(o.mode, "first")) return run_first(&o);
  usage();
  return 2;
}
