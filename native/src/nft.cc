// libnftables is opened at run time (it ships with the nft tool, its headers do not): one
// nft process per namespace costs about 13 ms of start-up, a context in a namespace the thread
// has entered about 0.3 ms, which is what lets `network check` read a thousand sandboxes.
#include "nft.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

namespace shoal {

namespace {

struct nft_ctx;

// The documented interface of libnftables(3).
struct Libnftables {
  nft_ctx* (*ctxNew)(uint32_t flags) = nullptr;
  void (*ctxFree)(nft_ctx* ctx) = nullptr;
  int (*bufferOutput)(nft_ctx* ctx) = nullptr;
  int (*bufferError)(nft_ctx* ctx) = nullptr;
  const char* (*outputBuffer)(nft_ctx* ctx) = nullptr;
  const char* (*errorBuffer)(nft_ctx* ctx) = nullptr;
  void (*setOutputFlags)(nft_ctx* ctx, unsigned int flags) = nullptr;
  int (*runCommand)(nft_ctx* ctx, const char* buffer) = nullptr;
  std::string error;
};

constexpr unsigned kOutputJson = 1u << 4;  // NFT_CTX_OUTPUT_JSON

const Libnftables& Library() {
  static Libnftables library;
  static std::once_flag once;
  std::call_once(once, [] {
    void* handle = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      library.error = std::string("libnftables is not installed (the nftables package): ") + dlerror();
      return;
    }
    auto bind = [&](auto& function, const char* name) {
      function = reinterpret_cast<std::remove_reference_t<decltype(function)>>(dlsym(handle, name));
      if (!function && library.error.empty()) library.error = std::string("libnftables lacks ") + name;
    };
    bind(library.ctxNew, "nft_ctx_new");
    bind(library.ctxFree, "nft_ctx_free");
    bind(library.bufferOutput, "nft_ctx_buffer_output");
    bind(library.bufferError, "nft_ctx_buffer_error");
    bind(library.outputBuffer, "nft_ctx_get_output_buffer");
    bind(library.errorBuffer, "nft_ctx_get_error_buffer");
    bind(library.setOutputFlags, "nft_ctx_output_set_flags");
    bind(library.runCommand, "nft_run_cmd_from_buffer");
  });
  return library;
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

NftResult RunHere(const Libnftables& nft, const std::string& command, bool json) {
  NftResult result;
  nft_ctx* ctx = nft.ctxNew(0);
  if (!ctx) {
    result.error = "nft_ctx_new failed";
    return result;
  }
  nft.bufferOutput(ctx);
  nft.bufferError(ctx);
  if (json) nft.setOutputFlags(ctx, kOutputJson);
  int rc = nft.runCommand(ctx, command.c_str());
  const char* output = nft.outputBuffer(ctx);
  result.output = output ? output : "";
  if (rc != 0) {
    const char* error = nft.errorBuffer(ctx);
    result.error = error && *error ? error : "nft failed";
  }
  nft.ctxFree(ctx);
  return result;
}

}  // namespace

std::string NftInNetns(const std::vector<std::string>& netnsPaths, const std::string& command, bool json, std::vector<NftResult>* out) {
  const Libnftables& nft = Library();
  if (!nft.error.empty()) return nft.error;
  out->assign(netnsPaths.size(), NftResult{});
  std::thread worker([&]() {
    for (size_t i = 0; i < netnsPaths.size(); i++) {
      int fd = open(netnsPaths[i].c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        (*out)[i].error = Errno("open " + netnsPaths[i]);
        continue;
      }
      int entered = setns(fd, CLONE_NEWNET);
      close(fd);
      if (entered < 0) {
        (*out)[i].error = Errno("setns " + netnsPaths[i]);
        continue;
      }
      // A new context per namespace: its netlink socket is opened in the namespace entered.
      (*out)[i] = RunHere(nft, command, json);
    }
  });
  worker.join();
  return "";
}

}  // namespace shoal
