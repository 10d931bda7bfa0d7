#include "console.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shoal {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// DIR/NAME as a short path: /proc/self/fd/N/NAME, N an O_PATH descriptor of DIR kept open by
// the caller until the socket call is done.
std::string ShortPath(const std::string& dir, const std::string& name, int* dirFd, sockaddr_un* address) {
  *dirFd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (*dirFd < 0) return Errno("open " + dir);
  std::string path = "/proc/self/fd/" + std::to_string(*dirFd) + "/" + name;
  if (path.size() >= sizeof(address->sun_path)) return "socket name too long: " + name;
  std::memset(address, 0, sizeof(*address));
  address->sun_family = AF_UNIX;
  std::memcpy(address->sun_path, path.c_str(), path.size() + 1);
  return "";
}

bool WaitReadable(int fd, int timeoutMs) {
  pollfd entry{fd, POLLIN, 0};
  for (;;) {
    int ready = poll(&entry, 1, timeoutMs);
    if (ready < 0 && errno == EINTR) continue;
    return ready > 0;
  }
}

std::string ReceiveFd(int connection, int timeoutMs, int* fd) {
  if (!WaitReadable(connection, timeoutMs)) return "no descriptor arrived within " + std::to_string(timeoutMs) + " ms";
  char byte;
  iovec io{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  ssize_t got;
  do got = recvmsg(connection, &message, MSG_CMSG_CLOEXEC);
  while (got < 0 && errno == EINTR);
  if (got < 0) return Errno("recvmsg");
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  if (!header || header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) return "the peer sent no descriptor";
  std::memcpy(fd, CMSG_DATA(header), sizeof(int));
  return "";
}

}  // namespace

std::string FetchFd(const std::string& dir, const std::string& name, int timeoutMs, int* fd) {
  int dirFd = -1;
  sockaddr_un address;
  std::string error = ShortPath(dir, name, &dirFd, &address);
  int connection = -1;
  if (error.empty()) {
    connection = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connection < 0) error = Errno("socket");
    else if (connect(connection, reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0) error = Errno("connect to " + dir + "/" + name);
    else error = ReceiveFd(connection, timeoutMs, fd);
  }
  if (connection >= 0) close(connection);
  if (dirFd >= 0) close(dirFd);
  return error;
}

std::string SetWindowSize(int fd, int rows, int cols) {
  winsize size{};
  size.ws_row = static_cast<unsigned short>(rows);
  size.ws_col = static_cast<unsigned short>(cols);
  if (ioctl(fd, TIOCSWINSZ, &size) < 0) return Errno("TIOCSWINSZ");
  return "";
}

}  // namespace shoal
