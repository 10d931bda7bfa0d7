// Small system calls the engine needs often, done in-process instead of by spawning tools.
#pragma once
#include <string>

namespace shoal {

// Creates a network namespace bound at `path` (like `ip netns add`) with loopback up. Runs on
// a fresh thread that unshares and then ends, so no other thread changes namespace.
std::string CreateNetns(const std::string& path);
// Unmounts and removes a namespace bind made by CreateNetns or `ip netns add`; absent is fine.
std::string DeleteNetns(const std::string& path);
std::string MountOverlay(const std::string& lower, const std::string& upper, const std::string& work, const std::string& target);
// Lazily unmounts `target`; not mounted is fine.
std::string Unmount(const std::string& target);
std::string MakeFifo(const std::string& path);

}  // namespace shoal
