// Terminals of containers: runc hands a pseudo-terminal's master end over a unix socket
// (SCM_RIGHTS), which Node.js cannot receive on its own.
#pragma once
#include <string>

namespace shoal {

// Connects to DIR/NAME, reached through /proc/self/fd so that a long DIR still fits sun_path's
// 108 bytes, and receives the descriptor its server sends.
std::string FetchFd(const std::string& dir, const std::string& name, int timeoutMs, int* fd);
// Sets a terminal's window size (TIOCSWINSZ): the processes on it get SIGWINCH.
std::string SetWindowSize(int fd, int rows, int cols);

}  // namespace shoal
