#include "sysops.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace shoal {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string LoopbackUp() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  ifreq request{};
  std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  std::string error;
  if (ioctl(fd, SIOCGIFFLAGS, &request) < 0) {
    error = Errno("get lo flags");
  } else {
    request.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &request) < 0) error = Errno("set lo up");
  }
  close(fd);
  return error;
}

}  // namespace

std::string CreateNetns(const std::string& path) {
  mkdir("/run/netns", 0755);
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) return Errno("create " + path);
  close(fd);
  std::string error;
  std::thread worker([&]() {
    if (unshare(CLONE_NEWNET) < 0) {
      error = Errno("unshare network namespace");
      return;
    }
    std::string self = "/proc/self/task/" + std::to_string(syscall(SYS_gettid)) + "/ns/net";
    if (mount(self.c_str(), path.c_str(), "none", MS_BIND, nullptr) < 0) {
      error = Errno("bind " + path);
      return;
    }
    error = LoopbackUp();
  });
  worker.join();
  if (!error.empty()) {
    umount2(path.c_str(), MNT_DETACH);
    unlink(path.c_str());
  }
  return error;
}

std::string WriteInNetns(const std::string& netnsPath, const std::string& file, const std::string& value) {
  int ns = open(netnsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) return Errno("open " + netnsPath);
  std::string error;
  std::thread worker([&]() {
    if (setns(ns, CLONE_NEWNET) < 0) {
      error = Errno("enter " + netnsPath);
      return;
    }
    int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      error = Errno("open " + file);
      return;
    }
    if (write(fd, value.data(), value.size()) < 0) error = Errno("write " + file);
    close(fd);
  });
  worker.join();
  close(ns);
  return error;
}

std::string SocketInNetns(const std::string& netnsPath, bool tcp, const std::string& address, int port, int* fd) {
  sockaddr_in where{};
  where.sin_family = AF_INET;
  where.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, address.c_str(), &where.sin_addr) != 1) return "not an IPv4 address: " + address;
  int ns = open(netnsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) return Errno("open " + netnsPath);
  std::string error;
  int made = -1;
  std::thread worker([&]() {
    if (setns(ns, CLONE_NEWNET) < 0) {
      error = Errno("enter " + netnsPath);
      return;
    }
    made = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (made < 0) {
      error = Errno("socket");
      return;
    }
    int on = 1;
    setsockopt(made, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(made, reinterpret_cast<sockaddr*>(&where), sizeof where) < 0) {
      error = Errno("bind " + address + ":" + std::to_string(port));
    } else if (tcp && listen(made, 128) < 0) {
      error = Errno("listen");
    }
    if (!error.empty()) {
      close(made);
      made = -1;
    }
  });
  worker.join();
  close(ns);
  *fd = made;
  return error;
}

std::string DeleteNetns(const std::string& path) {
  if (umount2(path.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) return Errno("unmount " + path);
  if (unlink(path.c_str()) < 0 && errno != ENOENT) return Errno("remove " + path);
  return "";
}

std::string MountOverlay(const std::string& lower, const std::string& upper, const std::string& work, const std::string& target) {
  std::string options = "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work;
  if (mount("overlay", target.c_str(), "overlay", 0, options.c_str()) < 0) return Errno("mount overlay on " + target);
  return "";
}

std::string Unmount(const std::string& target) {
  if (umount2(target.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) return Errno("unmount " + target);
  return "";
}

std::string MakeFifo(const std::string& path) {
  if (mkfifo(path.c_str(), 0600) < 0) return Errno("mkfifo " + path);
  return "";
}

}  // namespace shoal

#include <signal.h>
#include <spawn.h>

extern char** environ;

namespace shoal {

std::string SpawnDetached(const std::vector<std::string>& argv, int stdoutFd, int stderrFd, const std::string& cwd, int* pid) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attributes);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, stdoutFd, 1);
  posix_spawn_file_actions_adddup2(&actions, stderrFd, 2);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t child = 0;
  int result = posix_spawn(&child, args[0], &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (result != 0) return "spawn " + argv[0] + ": " + std::strerror(result);
  *pid = child;
  return "";
}

bool Reap(int pid) {
  int status = 0;
  return waitpid(pid, &status, WNOHANG) == pid;
}

}  // namespace shoal
