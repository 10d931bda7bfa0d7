// Small system calls the engine needs often, done in-process instead of by spawning tools.
#pragma once
#include <string>
#include <vector>

namespace shoal {

// Creates a network namespace bound at `path` (like `ip netns add`) with loopback up. Runs on
// a fresh thread that unshares and then ends, so no other thread changes namespace.
std::string CreateNetns(const std::string& path);
// Unmounts and removes a namespace bind made by CreateNetns or `ip netns add`; absent is fine.
std::string DeleteNetns(const std::string& path);
// Writes `value` to `file` from inside the namespace at `netnsPath`: /proc/sys/net/ files are
// each namespace's own. Runs on a fresh thread that enters the namespace and then ends.
std::string WriteInNetns(const std::string& netnsPath, const std::string& file, const std::string& value);
// Opens a socket inside the namespace at `netnsPath`, bound to `address`:`port` (0: any free
// port), listening when it is TCP: a socket keeps the namespace it was made in, so the caller
// serves that namespace from its own. Non-blocking, close-on-exec; `*fd` is the descriptor.
std::string SocketInNetns(const std::string& netnsPath, bool tcp, const std::string& address, int port, int* fd);
std::string MountOverlay(const std::string& lower, const std::string& upper, const std::string& work, const std::string& target);
// Lazily unmounts `target`; not mounted is fine.
std::string Unmount(const std::string& target);
std::string MakeFifo(const std::string& path);

}  // namespace shoal

namespace shoal {

// Starts `argv` detached (its own session) with stdin from /dev/null, stdout and stderr on the
// given descriptors, in `cwd`. posix_spawn uses vfork: unlike fork, its cost does not grow
// with the caller's memory, which matters for a Node.js agent of a few hundred MB.
std::string SpawnDetached(const std::vector<std::string>& argv, int stdoutFd, int stderrFd, const std::string& cwd, int* pid);
// Collects the exit of one child this process spawned, if it has exited: true once reaped.
bool Reap(int pid);

}  // namespace shoal
