/*
 * shoal-init: pid 1 inside a container (Docker's --init role). Runs the command as its child,
 * forwards signals to it, reaps every zombie (orphans are re-parented to pid 1), and exits
 * with the child's status, 128+signal when a signal ended it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};

int main(int argc, char **argv) {
  int first = 1;
  if (argc > 1 && strcmp(argv[1], "--") == 0) first = 2;
  if (first >= argc) {
    fprintf(stderr, "shoal-init: usage: shoal-init -- COMMAND [ARG...]\n");
    return 2;
  }
  sigset_t all, previous;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &previous);
  pid_t child = fork();
  if (child < 0) {
    perror("shoal-init: fork");
    return 1;
  }
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &previous, NULL);
    execvp(argv[first], &argv[first]);
    fprintf(stderr, "shoal-init: exec %s: %s\n", argv[first], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  for (;;) {
    siginfo_t info;
    struct timespec tick = {1, 0};
    int sig = sigtimedwait(&all, &info, &tick);
    if (sig > 0 && sig != SIGCHLD) {
      for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++) {
        if (forwarded[i] == sig) kill(child, sig);
      }
    }
    int status;
    pid_t reaped;
    while ((reaped = waitpid(-1, &status, WNOHANG)) > 0) {
      if (reaped == child) {
        // Take the remaining zombies with us; the kernel kills the rest of the pid namespace.
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
        return 1;
      }
    }
  }
}
