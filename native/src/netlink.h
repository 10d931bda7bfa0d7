// Reads links and addresses through rtnetlink, inside a given network namespace.
#pragma once
#include <string>
#include <vector>

namespace shoal {

struct LinkInfo {
  int index = 0;
  std::string name;
  std::string kind;  // IFLA_INFO_KIND: veth, bridge, vxlan, ... (empty for physical/lo)
  unsigned mtu = 0;
  bool up = false;
  std::string mac;
  int master = 0;  // index of the bridge this link is enslaved to, 0 if none
  std::vector<std::string> addresses;  // "198.18.0.1/24"
};

// Runs on a fresh OS thread that enters `netnsPath` (empty: the caller's namespace) and exits
// afterwards, so no thread of the process is ever left in another namespace.
// Returns an empty string on success, or what failed.
std::string ListLinksInNetns(const std::string& netnsPath, std::vector<LinkInfo>* out);

}  // namespace shoal
