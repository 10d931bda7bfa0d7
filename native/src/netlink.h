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
  std::string vxlanLocal;  // a VXLAN device's local address (IFLA_VXLAN_LOCAL), else empty
};

// A neighbour entry (family "inet") or a bridge forwarding entry (family "bridge"), as
// `ip neigh show` and `bridge fdb show` list them.
struct NeighbourInfo {
  int ifindex = 0;
  std::string family;
  std::string mac;  // NDA_LLADDR
  std::string dst;  // NDA_DST: the neighbour's address, or a VXLAN FDB entry's remote VTEP
  unsigned state = 0;  // NUD_* (NUD_PERMANENT = 0x80)
  unsigned flags = 0;  // NTF_* (NTF_SELF = 0x02, NTF_MASTER = 0x04)
};

// Runs on a fresh OS thread that enters `netnsPath` (empty: the caller's namespace) and exits
// afterwards, so no thread of the process is ever left in another namespace.
// Returns an empty string on success, or what failed.
std::string ListLinksInNetns(const std::string& netnsPath, std::vector<LinkInfo>* out);

// The IPv4 neighbour and bridge FDB entries of a namespace, the same way.
std::string ListNeighboursInNetns(const std::string& netnsPath, std::vector<NeighbourInfo>* out);

}  // namespace shoal
