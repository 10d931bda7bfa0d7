// nftables commands in many network namespaces from one thread, through libnftables.
#pragma once
#include <string>
#include <vector>

namespace shoal {

struct NftResult {
  std::string output;
  std::string error;  // empty on success
};

// Runs `command` (such as "list table ip shoal-sandbox") in each namespace in turn, on a fresh
// OS thread that enters them one by one and then ends, so no other thread changes namespace.
// `json` asks for nft's JSON output (nft -j). Returns an empty string, or why nothing ran.
std::string NftInNetns(const std::vector<std::string>& netnsPaths, const std::string& command, bool json, std::vector<NftResult>* out);

}  // namespace shoal
