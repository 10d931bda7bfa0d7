/*
 * shoal-shim: keeps a container's exit status when nobody else can. It runs
 * `runc run -d ...` (the fast path: runc returns as soon as the container runs), stays as the
 * child subreaper that inherits the container's init when runc exits, waits for it, and writes
 * its status (code, or 128+signal) to EXIT_FILE. It outlives agent restarts, as containerd's
 * shim does; the agent reads the file whenever it comes back.
 *
 * usage: shoal-shim EXIT_FILE PID_FILE -- runc [ARG...]   (runc writes PID_FILE)
 * Once runc has returned successfully (the container runs), PID_FILE.started appears.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void write_status(const char *path, int code) {
  char temporary[4096];
  snprintf(temporary, sizeof(temporary), "%s.tmp", path);
  FILE *file = fopen(temporary, "w");
  if (!file) return;
  fprintf(file, "%d\n", code);
  fclose(file);
  rename(temporary, path);
}

static int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

static pid_t read_pid(const char *path) {
  FILE *file = fopen(path, "r");
  if (!file) return -1;
  long pid = -1;
  if (fscanf(file, "%ld", &pid) != 1) pid = -1;
  fclose(file);
  return (pid_t)pid;
}

int main(int argc, char **argv) {
  if (argc < 5 || strcmp(argv[3], "--") != 0) {
    fprintf(stderr, "usage: shoal-shim EXIT_FILE PID_FILE -- runc [ARG...]\n");
    return 2;
  }
  const char *exit_file = argv[1];
  const char *pid_file = argv[2];
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
    perror("shoal-shim: PR_SET_CHILD_SUBREAPER");
    return 1;
  }
  pid_t runc = fork();
  if (runc < 0) {
    perror("shoal-shim: fork");
    return 1;
  }
  if (runc == 0) {
    execvp(argv[4], &argv[4]);
    fprintf(stderr, "shoal-shim: exec %s: %s\n", argv[4], strerror(errno));
    _exit(127);
  }
  pid_t container = -1;
  for (;;) {
    int status;
    pid_t reaped = waitpid(-1, &status, 0);
    if (reaped < 0) {
      if (errno == EINTR) continue;
      // No child left: runc failed before a container existed, or the container is gone.
      write_status(exit_file, container > 0 ? 255 : 1);
      return 1;
    }
    if (reaped == runc) {
      if (status_code(status) != 0) {
        write_status(exit_file, status_code(status));
        return 1;
      }
      container = read_pid(pid_file);
      char started[4096];
      snprintf(started, sizeof(started), "%s.started", pid_file);
      FILE *marker = fopen(started, "w");
      if (marker) fclose(marker);
      continue;
    }
    if (container <= 0) container = read_pid(pid_file);
    if (reaped == container) {
      write_status(exit_file, status_code(status));
      return 0;
    }
  }
}
