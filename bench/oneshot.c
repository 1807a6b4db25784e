/*
 * oneshot.c: runs one command to its end and reports its wall time and peak memory, for the client
 * start-up figures of `npm run bench` (a one-shot `caps udp-client -m hello` against a hand-written client).
 *
 *   oneshot [--timeout-ms MS] [--stdout-expect TEXT] -- COMMAND [ARGS...]
 *
 * Prints ONE JSON line on stdout: {"wall_ms":..,"maxrss_kib":..,"exit":..,"signal":..,"matched":0|1}.
 * wall_ms runs from just before fork() to the reaping of the child (CLOCK_MONOTONIC). maxrss_kib is the
 * child's ru_maxrss from wait4(): the largest resident set of the child and of every descendant it waited
 * for, so `npm run caps -- ...` counts npm's own process, which is the point of measuring the README's
 * command. The child's stdout is captured (up to 4 KiB) so --stdout-expect can check the reply; its stderr
 * is passed through. A child still running at the timeout is killed with SIGKILL (its process group).
 *
 * C rather than Node so that measuring a command costs nothing of its own and reads the kernel's numbers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static volatile pid_t child = 0;

static void on_alarm(int sig) {
  (void)sig;
  if (child > 0) kill(-child, SIGKILL);
}

int main(int argc, char **argv) {
  long timeout_ms = 30000;
  const char *expect = NULL;
  int i = 1;
  for (; i < argc; i++) {
    if (!strcmp(argv[i], "--")) {
      i++;
      break;
    } else if (!strcmp(argv[i], "--timeout-ms") && i + 1 < argc) {
      timeout_ms = atol(argv[++i]);
    } else if (!strcmp(argv[i], "--stdout-expect") && i + 1 < argc) {
      expect = argv[++i];
    } else {
      fprintf(stderr, "usage: oneshot [--timeout-ms MS] [--stdout-expect TEXT] -- COMMAND [ARGS...]\n");
      return 2;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "oneshot: no command\n");
    return 2;
  }
  int out[2];
  if (pipe(out) == -1) {
    perror("oneshot: pipe");
    return 2;
  }
  uint64_t start = now_ns();
  pid_t pid = fork();
  if (pid == -1) {
    perror("oneshot: fork");
    return 2;
  }
  if (pid == 0) {
    setpgid(0, 0);
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execvp(argv[i], argv + i);
    fprintf(stderr, "oneshot: exec %s: %s\n", argv[i], strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);
  child = pid;
  close(out[1]);
  signal(SIGALRM, on_alarm);
  alarm((unsigned)((timeout_ms + 999) / 1000));
  char buf[4096];
  size_t used = 0;
  for (;;) {
    char scratch[4096];
    ssize_t n = read(out[0], scratch, sizeof scratch);
    if (n > 0) {
      size_t room = sizeof buf - 1 - used;
      size_t take = (size_t)n < room ? (size_t)n : room;
      memcpy(buf + used, scratch, take);
      used += take;
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  buf[used] = 0;
  int status = 0;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) == -1) {
    if (errno != EINTR) {
      perror("oneshot: wait4");
      return 2;
    }
  }
  uint64_t end = now_ns();
  alarm(0);
  int matched = expect == NULL || strstr(buf, expect) != NULL;
  printf("{\"wall_ms\":%.3f,\"maxrss_kib\":%ld,\"exit\":%d,\"signal\":%d,\"matched\":%d}\n",
         (double)(end - start) / 1e6, ru.ru_maxrss, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
         WIFSIGNALED(status) ? WTERMSIG(status) : 0, matched);
  return 0;
}
