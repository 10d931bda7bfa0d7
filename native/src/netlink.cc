#include "netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <thread>

namespace shoal {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Sends one dump request and calls `onMessage` for each reply until NLMSG_DONE. The request's
// body is `bodySize` bytes (rtgenmsg, ndmsg, ifinfomsg: each starts with its family byte).
template <typename OnMessage>
std::string Dump(int fd, int type, unsigned char family, OnMessage onMessage, size_t bodySize = sizeof(rtgenmsg)) {
  struct {
    nlmsghdr header;
    unsigned char body[sizeof(ifinfomsg)];
  } request{};
  if (bodySize > sizeof(request.body)) bodySize = sizeof(request.body);
  request.header.nlmsg_len = NLMSG_LENGTH(bodySize);
  request.header.nlmsg_type = type;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.header.nlmsg_seq = static_cast<unsigned>(type);
  request.body[0] = family;
  if (send(fd, &request, request.header.nlmsg_len, 0) < 0) return Errno("netlink send");
  std::vector<char> buffer(1 << 16);
  for (;;) {
    ssize_t length = recv(fd, buffer.data(), buffer.size(), 0);
    if (length < 0) return Errno("netlink recv");
    for (auto* header = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(header, static_cast<size_t>(length));
         header = NLMSG_NEXT(header, length)) {
      if (header->nlmsg_type == NLMSG_DONE) return "";
      if (header->nlmsg_type == NLMSG_ERROR) {
        auto* error = static_cast<nlmsgerr*>(NLMSG_DATA(header));
        return std::string("netlink error: ") + std::strerror(-error->error);
      }
      onMessage(header);
    }
  }
}

std::string FormatMac(const unsigned char* bytes, size_t length) {
  std::string mac;
  char part[4];
  for (size_t i = 0; i < length; i++) {
    std::snprintf(part, sizeof(part), i ? ":%02x" : "%02x", bytes[i]);
    mac += part;
  }
  return mac;
}

std::string ListLinks(std::vector<LinkInfo>* out) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return Errno("netlink socket");
  std::map<int, size_t> byIndex;
  std::string error = Dump(fd, RTM_GETLINK, AF_UNSPEC, [&](nlmsghdr* header) {
    if (header->nlmsg_type != RTM_NEWLINK) return;
    auto* info = static_cast<ifinfomsg*>(NLMSG_DATA(header));
    LinkInfo link;
    link.index = info->ifi_index;
    link.up = (info->ifi_flags & IFF_UP) != 0;
    int remaining = IFLA_PAYLOAD(header);
    for (auto* attr = IFLA_RTA(info); RTA_OK(attr, remaining); attr = RTA_NEXT(attr, remaining)) {
      switch (attr->rta_type) {
        case IFLA_IFNAME: link.name = static_cast<const char*>(RTA_DATA(attr)); break;
        case IFLA_MTU: link.mtu = *static_cast<unsigned*>(RTA_DATA(attr)); break;
        case IFLA_MASTER: link.master = *static_cast<int*>(RTA_DATA(attr)); break;
        case IFLA_ADDRESS: link.mac = FormatMac(static_cast<unsigned char*>(RTA_DATA(attr)), RTA_PAYLOAD(attr)); break;
        case IFLA_LINKINFO: {
          int nested = RTA_PAYLOAD(attr);
          for (auto* sub = static_cast<rtattr*>(RTA_DATA(attr)); RTA_OK(sub, nested); sub = RTA_NEXT(sub, nested)) {
            if (sub->rta_type == IFLA_INFO_KIND) link.kind = static_cast<const char*>(RTA_DATA(sub));
            // A VXLAN device's local (underlay) address; the kind comes before the data.
            if (sub->rta_type == IFLA_INFO_DATA && link.kind == "vxlan") {
              int data = RTA_PAYLOAD(sub);
              for (auto* field = static_cast<rtattr*>(RTA_DATA(sub)); RTA_OK(field, data); field = RTA_NEXT(field, data)) {
                char text[INET_ADDRSTRLEN] = {0};
                if (field->rta_type == IFLA_VXLAN_LOCAL && RTA_PAYLOAD(field) == 4 && inet_ntop(AF_INET, RTA_DATA(field), text, sizeof(text))) link.vxlanLocal = text;
              }
            }
          }
          break;
        }
      }
    }
    byIndex[link.index] = out->size();
    out->push_back(link);
  });
  if (error.empty()) {
    error = Dump(fd, RTM_GETADDR, AF_UNSPEC, [&](nlmsghdr* header) {
      if (header->nlmsg_type != RTM_NEWADDR) return;
      auto* info = static_cast<ifaddrmsg*>(NLMSG_DATA(header));
      auto found = byIndex.find(static_cast<int>(info->ifa_index));
      if (found == byIndex.end()) return;
      int remaining = IFA_PAYLOAD(header);
      for (auto* attr = IFA_RTA(info); RTA_OK(attr, remaining); attr = RTA_NEXT(attr, remaining)) {
        if (attr->rta_type != IFA_ADDRESS) continue;
        char text[INET6_ADDRSTRLEN] = {0};
        if (!inet_ntop(info->ifa_family, RTA_DATA(attr), text, sizeof(text))) continue;
        (*out)[found->second].addresses.push_back(std::string(text) + "/" + std::to_string(info->ifa_prefixlen));
      }
    });
  }
  close(fd);
  return error;
}

std::string ListNeighbours(std::vector<NeighbourInfo>* out) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return Errno("netlink socket");
  std::string error;
  for (unsigned char family : {static_cast<unsigned char>(AF_INET), static_cast<unsigned char>(AF_BRIDGE)}) {
    error = Dump(fd, RTM_GETNEIGH, family, [&](nlmsghdr* header) {
      if (header->nlmsg_type != RTM_NEWNEIGH) return;
      auto* info = static_cast<ndmsg*>(NLMSG_DATA(header));
      if (info->ndm_family != family) return;
      NeighbourInfo entry;
      entry.ifindex = info->ndm_ifindex;
      entry.family = family == AF_BRIDGE ? "bridge" : "inet";
      entry.state = info->ndm_state;
      entry.flags = info->ndm_flags;
      int remaining = static_cast<int>(header->nlmsg_len) - static_cast<int>(NLMSG_LENGTH(sizeof(ndmsg)));
      for (auto* attr = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(info) + NLMSG_ALIGN(sizeof(ndmsg))); RTA_OK(attr, remaining); attr = RTA_NEXT(attr, remaining)) {
        if (attr->rta_type == NDA_LLADDR) entry.mac = FormatMac(static_cast<unsigned char*>(RTA_DATA(attr)), RTA_PAYLOAD(attr));
        if (attr->rta_type == NDA_DST) {
          char text[INET6_ADDRSTRLEN] = {0};
          int addressFamily = RTA_PAYLOAD(attr) == 4 ? AF_INET : AF_INET6;
          if (inet_ntop(addressFamily, RTA_DATA(attr), text, sizeof(text))) entry.dst = text;
        }
      }
      out->push_back(entry);
    }, family == AF_BRIDGE ? sizeof(ifinfomsg) : sizeof(ndmsg));  // as `bridge fdb show` and `ip neigh show` ask
    if (!error.empty()) break;
  }
  close(fd);
  return error;
}

// Runs `work` on a fresh thread inside the namespace (empty path: the caller's own).
template <typename Work>
std::string InNetns(const std::string& netnsPath, Work work) {
  std::string error;
  std::thread worker([&]() {
    if (!netnsPath.empty()) {
      int fd = open(netnsPath.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        error = Errno("open " + netnsPath);
        return;
      }
      int result = setns(fd, CLONE_NEWNET);
      close(fd);
      if (result < 0) {
        error = Errno("setns " + netnsPath);
        return;
      }
    }
    error = work();
  });
  worker.join();
  return error;
}

}  // namespace

std::string ListNeighboursInNetns(const std::string& netnsPath, std::vector<NeighbourInfo>* out) {
  return InNetns(netnsPath, [&] { return ListNeighbours(out); });
}

std::string ListLinksInNetns(const std::string& netnsPath, std::vector<LinkInfo>* out) {
  // A fresh thread enters the namespace and ends with the work: the thread pool and the
  // JavaScript thread never change namespace.
  return InNetns(netnsPath, [&] { return ListLinks(out); });
}

}  // namespace shoal
