/*
 * shoal-shim: keeps a container's exit status when nobody else can. It runs
 * `runc run -d ...` (the fast path: runc returns as soon as the container runs), stays as the
 * child subreaper that inherits the container's init when runc exits, waits for it, and writes
 * its status (code, or 128+signal) to EXIT_FILE. It outlives agent restarts, as containerd's
 * shim does; the agent reads the file whenever it comes back.
 *
 * usage: shoal-shim [--console] EXIT_FILE PID_FILE -- runc [ARG...]   (runc writes PID_FILE)
 * Once runc has returned successfully (the container runs), PID_FILE.started appears.
 *
 * --console: the container has a terminal. The shim listens on console.sock in its working
 * directory (runc's --console-socket), keeps the pseudo-terminal's master end runc sends there,
 * and hands a copy to whoever connects to tty.sock (the agent, again after each restart). So the
 * terminal stays open while the container runs, whatever becomes of the agent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int listen_here(const char *name) {
  struct sockaddr_un address;
  memset(&address, 0, sizeof(address));
  address.sun_family = AF_UNIX;
  strncpy(address.sun_path, name, sizeof(address.sun_path) - 1);
  unlink(name);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(fd, 4) < 0) {
    perror("shoal-shim: listen");
    return -1;
  }
  return fd;
}

/* One byte of data and room for one descriptor: what runc sends and the agent expects. */
struct fd_message {
  char byte;
  struct iovec io;
  union { struct cmsghdr align; char buffer[CMSG_SPACE(sizeof(int))]; } control;
  struct msghdr header;
};

static struct msghdr *fd_message_init(struct fd_message *m) {
  memset(m, 0, sizeof(*m));
  m->io.iov_base = &m->byte;
  m->io.iov_len = 1;
  m->header.msg_iov = &m->io;
  m->header.msg_iovlen = 1;
  m->header.msg_control = m->control.buffer;
  m->header.msg_controllen = sizeof(m->control.buffer);
  return &m->header;
}

static int receive_fd(int connection) {
  struct fd_message m;
  struct msghdr *message = fd_message_init(&m);
  if (recvmsg(connection, message, MSG_CMSG_CLOEXEC) < 0) return -1;
  struct cmsghdr *header = CMSG_FIRSTHDR(message);
  if (!header || header->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(header), sizeof(int));
  return fd;
}

static void send_fd(int connection, int fd) {
  struct fd_message m;
  struct msghdr *message = fd_message_init(&m);
  struct cmsghdr *header = CMSG_FIRSTHDR(message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(header), &fd, sizeof(int));
  sendmsg(connection, message, MSG_NOSIGNAL);
}

/* Takes runc's terminal once, then serves copies of it; waits at most timeout_ms. */
static void serve_console(int *console_listen, int tty_listen, int *master, int timeout_ms) {
  struct pollfd fds[2];
  int count = 0;
  if (*master < 0 && *console_listen >= 0) fds[count++] = (struct pollfd){*console_listen, POLLIN, 0};
  if (*master >= 0) fds[count++] = (struct pollfd){tty_listen, POLLIN, 0};
  if (poll(fds, count, timeout_ms) <= 0) return;
  for (int i = 0; i < count; i++) {
    if (!(fds[i].revents & POLLIN)) continue;
    int connection = accept4(fds[i].fd, NULL, NULL, SOCK_CLOEXEC);
    if (connection < 0) continue;
    if (fds[i].fd == *console_listen) {
      *master = receive_fd(connection);
      close(*console_listen);
      unlink("console.sock");
      *console_listen = -1;
    } else {
      send_fd(connection, *master);
    }
    close(connection);
  }
}

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
  int console = argc > 1 && strcmp(argv[1], "--console") == 0;
  if (console) {
    argv++;
    argc--;
  }
  if (argc < 5 || strcmp(argv[3], "--") != 0) {
    fprintf(stderr, "usage: shoal-shim [--console] EXIT_FILE PID_FILE -- runc [ARG...]\n");
    return 2;
  }
  int console_listen = -1, tty_listen = -1, master = -1;
  if (console) {
    console_listen = listen_here("console.sock");
    tty_listen = listen_here("tty.sock");
    if (console_listen < 0 || tty_listen < 0) return 1;
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
    if (console) serve_console(&console_listen, tty_listen, &master, 100);
    pid_t reaped = waitpid(-1, &status, console ? WNOHANG : 0);
    if (reaped == 0) continue;
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
      if (console) unlink("tty.sock");
      return 0;
    }
  }
}
